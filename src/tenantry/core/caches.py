"""Bounding the per-process caches keyed by tenant (or hostname).

Pure: no I/O. Each cache is a plain ``dict`` filled in load order, read without a lock on the
hot path; :func:`make_room` drops its oldest entries before one more is added, so a process
serving many tenants keeps at most ``Settings.tenant_cache_size`` of them in each cache (a
dropped tenant is simply loaded again on its next request). An entry loaded while the catalog
listener is not connected, so that no event would drop it once stale, is served only
:data:`UNTRUSTED_SECONDS` (:func:`expires_at`).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from time import monotonic
from typing import Any

__all__ = ["UNTRUSTED_SECONDS", "expires_at", "make_room"]

#: seconds an entry loaded while the listener is not connected may be served
UNTRUSTED_SECONDS = 0.5


def expires_at(ttl: float, *, trusted: bool) -> float:
    """The ``time.monotonic()`` moment an entry loaded now stops being served: after ``ttl``
    seconds while the listener that drops stale entries is connected (``trusted``), else after
    :data:`UNTRUSTED_SECONDS`."""
    return monotonic() + (ttl if trusted else UNTRUSTED_SECONDS)


def make_room(cache: MutableMapping[Any, Any], limit: int) -> None:
    """Drop the entries loaded first until ``cache`` holds fewer than ``limit``. Safe against
    other threads changing the cache meanwhile (an entry they took is not dropped twice)."""
    while len(cache) >= max(1, limit):
        try:
            cache.pop(next(iter(cache)), None)
        except (StopIteration, RuntimeError):  # emptied, or changed under us: try again later
            return
