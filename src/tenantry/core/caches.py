"""Bounding the per-process caches keyed by tenant (or hostname).

Pure: no I/O. Each cache is a plain ``dict`` filled in load order, read without a lock on the
hot path; :func:`make_room` drops its oldest entries before one more is added, so a process
serving many tenants keeps at most ``Settings.tenant_cache_size`` of them in each cache (a
dropped tenant is simply loaded again on its next request).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

__all__ = ["make_room"]


def make_room(cache: MutableMapping[Any, Any], limit: int) -> None:
    """Drop the entries loaded first until ``cache`` holds fewer than ``limit``. Safe against
    other threads changing the cache meanwhile (an entry they took is not dropped twice)."""
    while len(cache) >= max(1, limit):
        try:
            cache.pop(next(iter(cache)), None)
        except (StopIteration, RuntimeError):  # emptied, or changed under us: try again later
            return
