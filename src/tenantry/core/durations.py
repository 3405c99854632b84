"""Durations as people type them: ``90s``, ``15m``, ``2h``, ``1d12h``, ``1w``.

Pure: no I/O. The CLI's ``--expires`` and ``--older-than`` options take them.
"""

from __future__ import annotations

import re
from datetime import timedelta

from tenantry.errors import InvalidInput

__all__ = ["parse_duration"]

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
