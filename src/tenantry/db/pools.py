"""The pools the router keeps (:mod:`tenantry.db.routing`): psycopg_pool pools that count each
tenant's connections against its ``db_connections`` cap and mark every connection handed back
for the hand-over reset, and the least-recently-used set the router keeps them in.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Generic, TypeVar

from psycopg_pool import AsyncConnectionPool, ConnectionPool

from tenantry import context
from tenantry.db.binding import RouteKey, mark_returned
from tenantry.db.connection_caps import ConnectionCaps, Gate
from tenantry.db.connections import AsyncTenantConnection, TenantConnection

__all__ = ["AsyncPool", "Lru", "Pool", "close_pool", "retire"]

T = TypeVar("T")


class Lru(Generic[T]):
    """At most ``size`` values by key; the least recently used is handed to ``close``, skipping
    values ``busy`` says are in use (see :meth:`full`)."""

    def __init__(self, size: int, close: Callable[[T], None], busy: Callable[[T], bool] = lambda _: False) -> None:
        self._size = size
        self._close = close
        self._busy = busy
        self._items: OrderedDict[RouteKey, T] = OrderedDict()

    def items(self) -> list[tuple[RouteKey, T]]:
        """The values by key, least recently used first (a copy)."""
        return list(self._items.items())

    def full(self) -> bool:
        """Whether a new value would find nothing to evict: as many values as ``size``, all
        busy."""
        return len(self._items) >= self._size and all(self._busy(v) for v in self._items.values())

    def get(self, key: RouteKey) -> T | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: RouteKey, value: T) -> None:
        self._items[key] = value
        excess = len(self._items) - self._size
        for old in list(self._items):  # least recently used first
            if excess <= 0:
                break
            evicted = self._items[old]
            if old != key and not self._busy(evicted):
                del self._items[old]
                self._close(evicted)
                excess -= 1

    def pop(self, key: RouteKey) -> T | None:
        return self._items.pop(key, None)

    def drain(self) -> list[T]:
        values = list(self._items.values())
        self._items.clear()
        return values

    def __len__(self) -> int:
        return len(self._items)


class Pool(ConnectionPool[TenantConnection]):
    """A pool that gives a tenant's permit (``caps``) back with the connection it came with,
    marks each connection handed back (:func:`mark_returned`, no I/O: its next use resets its
    session) and takes it back at once, in the caller's thread.

    :meth:`~tenantry.db.routing.Router.checkout` takes the tenant's permit before it asks the pool (and pins it);
    :meth:`connection`, for code that uses the pool directly, does the same. ``getconn`` by
    hand is not counted.

    Not with psycopg_pool's ``reset=`` callback: a pool with one hands every returned
    connection to its worker thread, so each borrow paid a hand-over between threads, and a
    borrower that found every connection out waited for the worker to put one back.
    """

    def __init__(self, caps: ConnectionCaps, conninfo: str, **kwargs: Any) -> None:
        self._caps = caps
        self._gates: dict[int, Gate] = {}  # the permit of each connection lent to a capped tenant
        super().__init__(conninfo, **kwargs)

    def adopt(self, conn: TenantConnection, gate: Gate) -> None:
        """Give ``gate`` back when ``conn`` comes back."""
        self._gates[id(conn)] = gate

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[TenantConnection]:
        gate = self._caps.acquire(context.current())
        adopted = False
        try:
            with super().connection(timeout) as conn:
                if gate is not None:
                    self.adopt(conn, gate)
                    adopted = True
                yield conn
        finally:
            if gate is not None and not adopted:
                self._caps.release(gate)

    def putconn(self, conn: TenantConnection) -> None:
        gate = self._gates.pop(id(conn), None)
        try:
            mark_returned(conn)
            super().putconn(conn)
        finally:
            if gate is not None:
                self._caps.release(gate)


class AsyncPool(AsyncConnectionPool[AsyncTenantConnection]):
    """The asyncio twin of :class:`Pool` (no task per returned connection)."""

    def __init__(self, caps: ConnectionCaps, conninfo: str, **kwargs: Any) -> None:
        self._caps = caps
        self._gates: dict[int, Gate] = {}
        super().__init__(conninfo, **kwargs)

    def adopt(self, conn: AsyncTenantConnection, gate: Gate) -> None:
        self._gates[id(conn)] = gate

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[AsyncTenantConnection]:
        gate = await self._caps.aacquire(context.current())
        adopted = False
        try:
            async with super().connection(timeout) as conn:
                if gate is not None:
                    self.adopt(conn, gate)
                    adopted = True
                yield conn
        finally:
            if gate is not None and not adopted:
                self._caps.release(gate)

    async def putconn(self, conn: AsyncTenantConnection) -> None:
        gate = self._gates.pop(id(conn), None)
        try:
            mark_returned(conn)
            await super().putconn(conn)
        finally:
            if gate is not None:
                self._caps.release(gate)


def close_pool(pool: ConnectionPool[TenantConnection]) -> None:
    pool.close(timeout=5.0)


def retire(pool: ConnectionPool[TenantConnection]) -> None:
    """Close a replaced pool without making the caller wait for its workers; connections
    still lent out are closed when they come back."""
    threading.Thread(target=close_pool, args=(pool,), name="tenantry-retire-pool", daemon=True).start()
