"""A tenant's edge limits, the rate arithmetic behind them, and the header fields that tell
clients about them.

Pure: no I/O, no clock of its own (callers pass ``now``).

* :class:`EdgeLimits` is what the edge enforces for one tenant: a rate
  (``requests_per_second`` with a ``burst``) and a cap on requests in flight
  (``concurrency``). :meth:`EdgeLimits.from_layers` builds it from the plan's ``limits``
  document and any layers above it (a per-tenant override, later), each key of a later layer
  winning; ``None`` in a layer means "no limit".
* :func:`gcra` is the generic cell rate algorithm: one number per tenant (the theoretical
  arrival time), a burst of ``burst`` requests at once, then one every ``1 / rate`` seconds.
* :func:`policy_field` and :func:`ratelimit_field` render the ``RateLimit-Policy`` and
  ``RateLimit`` fields of draft-ietf-httpapi-ratelimit-headers (-10): Structured Field lists
  of quoted policy names with parameters, ``"rate";q=20;w=2`` and ``"rate";r=7;t=1``; the
  concurrency cap is a policy of quota unit ``"concurrent-requests"``.

>>> limits = EdgeLimits.from_layers({"requests_per_second": 10, "concurrency": 5})
>>> limits
EdgeLimits(rate=10.0, burst=10, concurrency=5)
>>> policy_field(limits)
'"rate";q=10;w=1, "concurrency";q=5;qu="concurrent-requests"'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "CONNECTIONS_KEY",
    "DATABASE_KEYS",
    "NO_LIMITS",
    "count",
    "connection_cap",
    "READ_ONLY",
    "storage_quota_bytes",
    "database_settings",
    "milliseconds",
    "rate",
    "work_mem_value",
    "RATE_POLICY",
    "CONCURRENCY_POLICY",
    "EdgeLimits",
    "Decision",
    "gcra",
    "policy_field",
    "ratelimit_field",
]

#: the names of the two policies in the header fields
RATE_POLICY = "rate"
CONCURRENCY_POLICY = "concurrency"

#: the keys of a plan's ``limits`` document the edge reads
_KEYS = ("requests_per_second", "burst", "concurrency")


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """The limits the edge enforces for one tenant; ``None`` for none of that kind.

    ``rate``: requests per second, sustained; ``burst``: requests that may come at once (the
    bucket's size; by default one second's worth, at least 1); ``concurrency``: requests in
    flight at once.
    """

    rate: float | None = None
    burst: int | None = None
    concurrency: int | None = None
    #: whether nothing is limited (the edge then adds no work to the request)
    none: bool = field(init=False, repr=False, compare=False)
    #: the ``RateLimit-Policy`` field value, made once (:func:`policy_field`)
    policy: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "none", self.rate is None and self.concurrency is None)
        object.__setattr__(self, "policy", policy_field(self).encode())

    @classmethod
    def from_layers(cls, *layers: Mapping[str, Any] | None) -> EdgeLimits:
        """The limits of ``layers`` (a plan's ``limits`` document, then overrides; a later
        layer's key wins, ``None`` there lifts the limit). Raises :class:`ValueError` naming
        the key of a value that is not a limit."""
        merged: dict[str, Any] = {}
        for layer in layers:
            if layer:
                merged.update({k: layer[k] for k in _KEYS if k in layer})
        per_second = rate(merged.get("requests_per_second"), "requests_per_second")
        burst = count(merged.get("burst"), "burst")
        concurrency = count(merged.get("concurrency"), "concurrency")
        if per_second is None:
            burst = None
        elif burst is None:
            burst = max(1, math.ceil(per_second))
        return cls(per_second, burst, concurrency)

    def window(self) -> tuple[int, int]:
        """``(quota, seconds)`` of the rate as the ``RateLimit-Policy`` field states it: the
        burst over the seconds the rate takes to refill it (at least 1; the quota grows
        with the rounding, so ``q / w`` is never below the rate)."""
        assert self.rate is not None and self.burst is not None
        seconds = max(1, round(self.burst / self.rate))
        return max(self.burst, round(self.rate * seconds)), seconds


#: a plan's ``limits`` keys the database enforces, and the setting each becomes (set
#: transaction-locally by the bind, so a tenant's transactions carry its plan's limits)
DATABASE_KEYS: dict[str, str] = {
    "statement_timeout_ms": "statement_timeout",
    "idle_in_transaction_timeout_ms": "idle_in_transaction_session_timeout",
    "work_mem": "work_mem",
}
#: the setting a tenant over its ``storage_mb`` is bound with: its transactions are read-only
READ_ONLY = ("transaction_read_only", "on")


def storage_quota_bytes(*layers: Mapping[str, Any] | None) -> int | None:
    """The ``storage_mb`` of ``layers`` (a later layer's key wins) in bytes; ``None``: no quota.

    >>> storage_quota_bytes({"storage_mb": 500})
    524288000
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        if layer and "storage_mb" in layer:
            merged["storage_mb"] = layer["storage_mb"]
    mb = rate(merged.get("storage_mb"), "storage_mb")
    return None if mb is None else int(mb * 1024 * 1024)


_MEMORY = re.compile(r"^[1-9][0-9]{0,9}(kB|MB|GB)$")


def database_settings(*layers: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """The settings a tenant's transactions run with, from ``layers`` (the plan's ``limits``
    document, then overrides; a later layer's key wins, ``None`` lifts the limit): pairs of
    (setting, value) in :data:`DATABASE_KEYS` order. Timeouts are whole milliseconds >= 1;
    ``work_mem`` is kilobytes (a whole number) or a string such as ``"8MB"``. Raises
    :class:`ValueError` naming the key of a value that is not one.

    >>> database_settings({"statement_timeout_ms": 5000, "work_mem": "8MB"})
    (('statement_timeout', '5000ms'), ('work_mem', '8MB'))
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        if layer:
            merged.update({k: layer[k] for k in DATABASE_KEYS if k in layer})
    found: list[tuple[str, str]] = []
    for key, setting in DATABASE_KEYS.items():
        value = merged.get(key)
        if value is None:
            continue
        if key == "work_mem":
            found.append((setting, work_mem_value(value)))
        else:
            found.append((setting, f"{milliseconds(value, key)}ms"))
    return tuple(found)


#: the plan's ``limits`` key of the cap on connections a tenant holds at once
CONNECTIONS_KEY = "db_connections"
#: the most a cap may be (PostgreSQL's ``max_connections`` cannot be more)
_MAX_CONNECTIONS = 262143


def connection_cap(*layers: Mapping[str, Any] | None) -> int | None:
    """The most connections a tenant may hold at once in one process, from ``layers`` (the
    plan's ``limits`` document, then overrides; a later layer's key wins, ``None`` lifts the
    cap): ``db_connections``, or ``None`` for no cap. Raises :class:`ValueError` naming the
    key of a value that is not a whole number >= 1.

    >>> connection_cap({"db_connections": 5}), connection_cap({"db_connections": 5}, {"db_connections": None})
    (5, None)
    """
    value = None
    for layer in layers:
        if layer and CONNECTIONS_KEY in layer:
            value = layer[CONNECTIONS_KEY]
    cap = count(value, CONNECTIONS_KEY)
    if cap is not None and cap > _MAX_CONNECTIONS:
        raise ValueError(f"{CONNECTIONS_KEY} must be at most {_MAX_CONNECTIONS}, not {value!r}")
    return cap


def work_mem_value(value: Any) -> str:
    """The ``work_mem`` setting for a limit's value: kilobytes (a whole number >= 64) or a
    size such as ``"8MB"``. Raises :class:`ValueError` for anything else."""
    if isinstance(value, int) and not isinstance(value, bool) and 64 <= value <= 2**31 - 1:
        return f"{value}kB"
    if isinstance(value, str) and _MEMORY.match(value):
        return value
    raise ValueError(f"work_mem must be kilobytes (>= 64) or a size such as '8MB', not {value!r}")


def milliseconds(value: Any, key: str) -> int:
    """A timeout limit's value: whole milliseconds, 1 to 2**31 - 1 (what PostgreSQL takes).
    Raises :class:`ValueError` naming ``key`` for anything else."""
    ms = count(value, key)
    if ms is None:
        raise ValueError(f"{key} must be a whole number >= 1 or null, not {value!r}")
    if ms > 2**31 - 1:
        raise ValueError(f"{key} must be at most {2**31 - 1}, not {value!r}")
    return ms


def rate(value: Any, key: str) -> float | None:
    """A rate limit's value: a positive finite number, or ``None`` (no limit)."""
    if value is None:
        return None
    try:
        number = None if isinstance(value, bool) or not isinstance(value, int | float) else float(value)
    except OverflowError:  # (an int too large for a float)
        number = None
    if number is None or not math.isfinite(number) or number <= 0:
        raise ValueError(f"{key} must be a positive number or null, not {repr(value)[:40]}")
    return number


def count(value: Any, key: str) -> int | None:
    """A count limit's value: a whole number >= 1, or ``None`` (no limit)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key} must be a whole number >= 1 or null, not {value!r}")
    return value


class Decision(NamedTuple):
    """What :func:`gcra` decided about one request."""

    allowed: bool
    tat: float
    """The theoretical arrival time to store (unchanged when refused)."""
    remaining: int | None
    """Requests that could come at once now, after this one (``None``: not known)."""
    reset: float | None
    """Seconds until the bucket is full again (``None``: not known)."""
    retry_after: float
    """Seconds until one request would be allowed (0 when this one was)."""


def gcra(tat: float, now: float, rate: float, burst: int) -> Decision:
    """Decide one request at ``now`` against the stored theoretical arrival time ``tat`` (0
    for a tenant not seen yet) for ``rate`` requests per second in bursts of ``burst``.

    >>> first = gcra(0.0, 100.0, rate=2, burst=2)
    >>> first.allowed, first.remaining
    (True, 1)
    >>> second = gcra(first.tat, 100.0, 2, 2)
    >>> third = gcra(second.tat, 100.0, 2, 2)
    >>> second.remaining, third.allowed, third.retry_after
    (0, False, 0.5)
    """
    interval = 1.0 / rate
    capacity = burst * interval
    new_tat = max(tat, now) + interval
    ahead = new_tat - now
    if ahead > capacity + 1e-9:
        retry = ahead - capacity
        return Decision(False, tat, 0, max(0.0, tat - now), retry)
    return Decision(True, new_tat, int((capacity - ahead) / interval + 1e-9), ahead, 0.0)


def _seconds(value: float) -> int:
    """Whole seconds for a header, rounded up (a client that waits that long is not early)."""
    return max(0, math.ceil(value - 1e-9))


def policy_field(limits: EdgeLimits) -> str:
    """The ``RateLimit-Policy`` field value for ``limits`` ('' when nothing is limited)."""
    items = []
    if limits.rate is not None:
        quota, seconds = limits.window()
        items.append(f'"{RATE_POLICY}";q={quota};w={seconds}')
    if limits.concurrency is not None:
        items.append(f'"{CONCURRENCY_POLICY}";q={limits.concurrency};qu="concurrent-requests"')
    return ", ".join(items)


def ratelimit_field(
    limits: EdgeLimits, *, remaining: int | None = None, reset: float | None = None, in_flight: int | None = None
) -> str:
    """The ``RateLimit`` field value: the rate policy's ``remaining`` requests and the
    seconds to its ``reset`` (when known), the concurrency policy's free slots given the
    requests ``in_flight`` (when known)."""
    items = []
    if limits.rate is not None and remaining is not None:
        item = f'"{RATE_POLICY}";r={max(0, remaining)}'
        if reset is not None:
            item += f";t={_seconds(reset)}"
        items.append(item)
    if limits.concurrency is not None and in_flight is not None:
        items.append(f'"{CONCURRENCY_POLICY}";r={max(0, limits.concurrency - in_flight)}')
    return ", ".join(items)


#: the limits of a tenant whose plan limits nothing at the edge
NO_LIMITS = EdgeLimits()
