"""Durations as people type them: ``90s``, ``15m``, ``2h``, ``1d12h``, ``1w``.

Pure: no I/O. The CLI's ``--expires`` and ``--older-than`` options take them.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from tenantry.errors import InvalidInput

__all__ = ["parse_duration", "parse_moment", "parse_since"]

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"15m"``, ``"2h"``, ``"1d12h"``, ``"1w"`` -> a positive timedelta."""
    compact = text.strip().lower().replace(" ", "")
    pieces = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in pieces) != compact:
        raise InvalidInput(f"duration {text[:40]!r} must look like 90s, 15m, 2h, 1d12h or 1w")
    seconds = sum(int(n) * _UNITS[u] for n, u in pieces)
    if seconds <= 0:
        raise InvalidInput(f"duration {text!r} must be longer than zero")
    return timedelta(seconds=seconds)


def parse_moment(text: str, *, field: str) -> tuple[timedelta | None, datetime | None]:
    """A duration (``"2h"``) or an ISO 8601 time with a zone, whichever ``text`` is: ``(the
    duration, None)`` or ``(None, the time)``; :class:`InvalidInput` names ``field`` otherwise."""
    try:
        return parse_duration(text), None
    except InvalidInput:
        pass
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{field} {text[:40]!r} must be a duration (90s, 15m, 2h, 1d) or an ISO 8601 time with a zone"
        ) from None
    if moment.tzinfo is None:
        raise InvalidInput(f"{field} needs a time zone, like 2026-12-01T00:00:00Z")
    return None, moment


def parse_since(text: str, now: datetime, *, field: str = "since") -> datetime:
    """A point in time as people type it: how long ago (``"1h"``, ``"2d"``) before ``now``, or
    an ISO 8601 time with a zone (``"2026-12-01T00:00:00Z"``); :class:`InvalidInput` names
    ``field`` otherwise.

    >>> from datetime import UTC
    >>> parse_since("2h", datetime(2026, 1, 1, 12, tzinfo=UTC)).hour
    10
    """
    ago, moment = parse_moment(text, field=field)
    if ago is not None:
        return now - ago
    assert moment is not None
    return moment
