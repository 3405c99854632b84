"""Routing: one connection pool (and one SQLAlchemy engine) per server and database.

Pooled and schema-tier tenants share the pools of their cell's main database; each
database-tier tenant has its own, small. A process keeps at most ``max_pools`` of each kind
open and closes the least recently used first, so thousands of database-tier tenants cost a
bounded number of connections. Every new connection is checked (the runtime role must not be
able to step around RLS) before it serves anyone.

Every pool asks the router's :class:`~tenantry.db.connection_caps.ConnectionCaps` before it
lends a connection, so each tenant's ``db_connections`` cap holds over all of them, and a
tenant at its cap waits on its own queue, never in a pool's (see that module).

Each route has a :class:`~tenantry.db.liveness.ServerWatch`: a dead idle connection is replaced
at checkout (no round trip), a server that is down fails checkouts at once, and the route's
pools are replaced by fresh ones when it returns (see :mod:`tenantry.db.liveness`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tenantry import context
from tenantry.core.placement import PRIMARY_CELL
from tenantry.db import liveness
from tenantry.db.alchemy import bind_engine, capped_pool_classes
from tenantry.db.binding import Binder, RouteKey
from tenantry.db.connect import database_full, translate
from tenantry.db.connection_caps import ConnectionCaps
from tenantry.db.connections import (
    AsyncTenantConnection,
    AsyncTenantCursor,
    AsyncTenantServerCursor,
    TenantConnection,
    TenantCursor,
    TenantServerCursor,
)
from tenantry.db.pools import AsyncPool, Lru, Pool, close_pool, retire
from tenantry.errors import DatabaseUnavailable, TooManyConnections
from tenantry.settings import Settings

__all__ = ["DEFAULT_ROUTE", "Router"]

#: the main database of the primary cell: pooled and schema-tier tenants, and no tenant
DEFAULT_ROUTE: RouteKey = (PRIMARY_CELL, None)

T = TypeVar("T")
#: seconds psycopg_pool keeps retrying a failed connection with its growing back-off before it
#: gives the slot up (its default, 5 minutes, kept a pool waiting long after the server was back)
_RECONNECT_TIMEOUT = 5.0


class Router:
    """Pools and engines by route key ``(cell, database)``."""

    def __init__(
        self,
        settings: Settings,
        *,
        url_for: Callable[[RouteKey], str],
        binder: Callable[[], Binder],
        check_sql: str,
        check_params: dict[str, object],
        judge: Callable[[tuple[Any, ...] | None], None],
    ) -> None:
        self._settings = settings
        self._url_for = url_for
        self._binder = binder
        self._check_sql = check_sql
        self._check_params = check_params
        self._judge = judge
        #: each tenant's connections held at once, over every pool and engine here
        self.caps = ConnectionCaps(settings.connect_timeout)
        self._pool_classes = capped_pool_classes(self.caps)
        self._lock = threading.RLock()
        # a pool a checkout is taking a connection from is pinned: evicting (closing) it then
        # would fail that checkout, and under churn the same thread could lose every retry.
        # A route that needs a new pool while every pool is pinned waits for one to unpin.
        self._unpinned = threading.Condition(self._lock)
        self._pins: dict[int, int] = {}
        self._pools: Lru[ConnectionPool[TenantConnection]] = Lru(
            settings.max_pools, close_pool, busy=lambda pool: self._pins.get(id(pool), 0) > 0
        )
        self._engines: Lru[sa.Engine] = Lru(settings.max_pools, lambda e: e.dispose())
        self._async_engines: Lru[AsyncEngine] = Lru(settings.max_pools, lambda e: self._in_loop(e.dispose()))
        self._async_pools: Lru[AsyncConnectionPool[AsyncTenantConnection]] = Lru(
            settings.max_pools, lambda p: self._in_loop(p.close())
        )
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._watches: dict[RouteKey, liveness.ServerWatch] = {}
        # the watch generation each route's current pool was made in (see liveness)
        self._born: dict[RouteKey, int] = {}
        self._async_born: dict[RouteKey, int] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def _in_loop(self, work: Coroutine[Any, Any, None]) -> None:
        """Run async clean-up in the event loop that owns the pools: scheduled when called from
        that loop, waited for when called from another thread, dropped if the loop is gone."""
        loop = self._async_loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and running is loop:
            loop.create_task(work)
        elif loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(work, loop).result(timeout=30)
        else:
            work.close()  # the loop and its connections are gone already

    def _sizes(self, key: RouteKey) -> tuple[int, int]:
        if key == DEFAULT_ROUTE:
            return self._settings.pool_min_size, self._settings.pool_max_size
        return 0, self._settings.tenant_pool_max_size

    # -- liveness -----------------------------------------------------------------------------
    def watch(self, key: RouteKey) -> liveness.ServerWatch:
        """Whether the server behind ``key`` is up (made on first use)."""
        with self._lock:
            watch = self._watches.get(key)
            if watch is None:
                what = f"PostgreSQL for {key[1] or 'the shared database'} on cell {key[0]!r}"
                watch = self._watches[key] = liveness.ServerWatch(self._url_for(key), what=what)
            return watch

    def wake(self) -> None:
        """Probe every server known to be down now (the catalog listener just reconnected)."""
        for watch in list(self._watches.values()):
            if watch.down:
                watch.suspect()

    def checkout(self, key: RouteKey) -> tuple[ConnectionPool[TenantConnection], TenantConnection]:
        """A live connection for ``key`` and its pool (give it back with ``pool.putconn``);
        :class:`DatabaseUnavailable` at once while its server is down."""
        watch = self.watch(key)
        watch.check()
        # the tenant's own queue first: a borrower over its cap pins no pool and waits in none
        gate = self.caps.acquire(context.current())
        pinned: list[ConnectionPool[TenantConnection]] = []

        def current() -> tuple[ConnectionPool[TenantConnection], int]:
            with self._lock:
                pool = self.pool(key)
                self._pins[id(pool)] = self._pins.get(id(pool), 0) + 1
                pinned.append(pool)
                return pool, self._born.get(key, -1)

        try:
            pool, conn = liveness.checkout(current, watch, self._settings.connect_timeout)
        except BaseException:
            if gate is not None:
                self.caps.release(gate)
            raise
        finally:
            with self._lock:
                for pinned_pool in pinned:
                    left = self._pins.pop(id(pinned_pool)) - 1
                    if left:
                        self._pins[id(pinned_pool)] = left
                self._unpinned.notify_all()
        if gate is not None:
            assert isinstance(pool, Pool)  # (every pool of a router is one)
            pool.adopt(conn, gate)  # given back with the connection
        return pool, conn

    async def acheckout(
        self, key: RouteKey
    ) -> tuple[AsyncConnectionPool[AsyncTenantConnection], AsyncTenantConnection]:
        """Async :meth:`checkout`."""
        watch = self.watch(key)
        watch.check()
        gate = await self.caps.aacquire(context.current())  # (as in checkout)

        async def current() -> tuple[AsyncConnectionPool[AsyncTenantConnection], int]:
            pool = await self.async_pool(key)
            return pool, self._async_born.get(key, -1)

        try:
            pool, conn = await liveness.acheckout(current, watch, self._settings.connect_timeout)
        except BaseException:
            if gate is not None:
                self.caps.release(gate)
            raise
        if gate is not None:
            assert isinstance(pool, AsyncPool)
            pool.adopt(conn, gate)
        return pool, conn

    # -- psycopg ------------------------------------------------------------------------------
    def _configure(self, key: RouteKey) -> Callable[[TenantConnection], None]:
        def configure(conn: TenantConnection) -> None:
            row = conn.execute(self._check_sql, self._check_params).fetchone()
            conn.rollback()
            self._judge(row)
            conn.server_cursor_factory = TenantServerCursor
            conn._tenantry_serves = key
            conn._tenantry_binder = self._binder()

        return configure

    def pool(self, key: RouteKey) -> ConnectionPool[TenantConnection]:
        """The pool for ``key``, opened on first use."""
        deadline = time.monotonic() + self._settings.connect_timeout
        with self._lock:
            while True:
                watch = self.watch(key)
                pool = self._pools.get(key)
                if pool is not None:
                    if self._born.get(key) == watch.generation:
                        return pool
                    self._pools.pop(key)  # made before its server restarted: its connections are dead
                    retire(pool)
                if not self._pools.full():
                    break
                left = deadline - time.monotonic()  # (another thread may open this route's pool meanwhile)
                if left <= 0 or not self._unpinned.wait(left):
                    raise DatabaseUnavailable(
                        f"no room for another connection pool: all {self._settings.max_pools} (max_pools) are"
                        " busy handing out connections; raise TENANTRY_MAX_POOLS"
                    )
            min_size, max_size = self._sizes(key)
            born = watch.generation
            pool = Pool(
                self.caps,
                watch.url,
                connection_class=TenantConnection,
                kwargs={"cursor_factory": TenantCursor},
                configure=self._configure(key),
                min_size=min_size,
                max_size=max_size,
                timeout=self._settings.connect_timeout,
                reconnect_timeout=_RECONNECT_TIMEOUT,
                name=f"tenantry:{key[0]}:{key[1] or 'main'}",
                open=False,
            )
            try:
                pool.open(wait=min_size > 0, timeout=self._settings.connect_timeout)
            except Exception as err:
                pool.close()
                raise DatabaseUnavailable(f"cannot open the runtime pool: {err}") from err
            self._pools.put(key, pool)
            self._born[key] = born
            return pool

    async def async_pool(self, key: RouteKey) -> AsyncConnectionPool[AsyncTenantConnection]:
        """The asyncio pool for ``key`` in the running loop (pools belong to their loop)."""
        loop = asyncio.get_running_loop()
        if self._async_loop is not loop:
            # pools of another (finished) loop cannot be closed from this one; close them with
            # `await tn.aclose()` before their loop ends
            self._async_pools.drain()
            self._async_loop = loop
        watch = self.watch(key)
        pool = self._async_pools.get(key)
        if pool is not None:
            if self._async_born.get(key) == watch.generation:
                return pool
            if self._async_pools.pop(key) is pool:  # made before its server restarted
                closing = loop.create_task(pool.close(timeout=5.0))
                self._closing.add(closing)  # the loop keeps only a weak reference
                closing.add_done_callback(self._closing.discard)
        born = watch.generation

        async def configure(conn: AsyncTenantConnection) -> None:
            cur = await conn.execute(self._check_sql, self._check_params)
            row = await cur.fetchone()
            await conn.rollback()
            self._judge(row)
            conn.server_cursor_factory = AsyncTenantServerCursor
            conn._tenantry_serves = key
            conn._tenantry_binder = self._binder()

        min_size, max_size = self._sizes(key)
        pool = AsyncPool(
            self.caps,
            watch.url,
            connection_class=AsyncTenantConnection,
            kwargs={"cursor_factory": AsyncTenantCursor},
            configure=configure,
            min_size=min_size,
            max_size=max_size,
            timeout=self._settings.connect_timeout,
            reconnect_timeout=_RECONNECT_TIMEOUT,
            name=f"tenantry-async:{key[0]}:{key[1] or 'main'}",
            open=False,
        )
        await pool.open(wait=min_size > 0, timeout=self._settings.connect_timeout)
        existing = self._async_pools.get(key)
        if existing is not None and self._async_born.get(key) == born:  # another task won the race
            await pool.close()
            return existing
        self._async_pools.put(key, pool)  # may close the least recently used, in this loop
        self._async_born[key] = born
        return pool

    # -- SQLAlchemy -----------------------------------------------------------------------------
    def _watch(self, engine: sa.Engine, watch: liveness.ServerWatch) -> None:
        @sa.event.listens_for(engine.pool, "checkout")
        def _alive(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            # a session the server ended: SQLAlchemy reconnects, and drops the pool's other
            # connections of before (the server restarted)
            if liveness.is_dead(_pgconn(dbapi_connection)):
                raise sa.exc.InvalidatePoolError("the server ended this pooled session")

        @sa.event.listens_for(engine, "before_execute")
        def _alive_before_begin(conn: sa.Connection, *_args: Any) -> None:
            # a connection held across transactions died in between: nothing of the next
            # transaction was sent yet, so SQLAlchemy may take a new one from the pool
            if not conn.in_transaction() and not conn.invalidated:
                if liveness.is_dead(_pgconn(conn.connection.dbapi_connection)):
                    conn.invalidate()

        @sa.event.listens_for(engine, "handle_error")
        def _lost(ctx: sa.engine.ExceptionContext) -> BaseException | None:
            # the server went away under a statement (a crash, a restart): probe it now, and
            # answer "unavailable" (503), not SQLAlchemy's OperationalError (500)
            if not ctx.is_disconnect:
                return None
            watch.suspect()
            original = ctx.original_exception
            named = getattr(ctx, "chained_exception", None)  # set once a listener returned one
            if named is not None or not isinstance(original, psycopg.Error):
                return None  # another listener named it already
            mapped = translate(original)
            if not isinstance(mapped, DatabaseUnavailable):
                return None
            mapped.__cause__ = original
            return mapped

        @sa.event.listens_for(engine, "connect")
        def _check(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(self._check_sql, self._check_params)
                row = cursor.fetchone()
            finally:
                cursor.close()
            dbapi_connection.rollback()
            self._judge(row)

    def engine(self, key: RouteKey, **options: Any) -> sa.Engine:
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                watch = self.watch(key)
                engine = sa.create_engine(
                    "postgresql+psycopg://",
                    creator=lambda: self._connect(watch),
                    **(self._engine_options(key) | {"poolclass": self._pool_classes[0]} | options),
                )
                bind_engine(engine, self._binder(), key, schema_recycle_after=self._settings.schema_recycle_after)
                self._watch(engine, watch)
                self._engines.put(key, engine)
            return engine

    def async_engine(self, key: RouteKey, **options: Any) -> AsyncEngine:
        try:
            self._async_loop = asyncio.get_running_loop()
        except RuntimeError:
            pass
        with self._lock:
            engine = self._async_engines.get(key)
            if engine is None:
                watch = self.watch(key)
                engine = create_async_engine(
                    "postgresql+psycopg://",
                    async_creator=lambda: self._aconnect(watch),
                    **(self._engine_options(key) | {"poolclass": self._pool_classes[1]} | options),
                )
                bind_engine(engine, self._binder(), key, schema_recycle_after=self._settings.schema_recycle_after)
                self._watch(engine.sync_engine, watch)
                self._async_engines.put(key, engine)
            return engine

    def _connect(self, watch: liveness.ServerWatch) -> psycopg.Connection[Any]:
        # (tenantry's connection class: the hand-over guard covers raw_connection() too)
        watch.check()
        try:
            return TenantConnection.connect(
                watch.url, connect_timeout=self._connect_seconds(), cursor_factory=TenantCursor
            )
        except psycopg.OperationalError as err:
            raise _refused(watch, err) from err

    async def _aconnect(self, watch: liveness.ServerWatch) -> psycopg.AsyncConnection[Any]:
        watch.check()
        try:
            return await AsyncTenantConnection.connect(
                watch.url, connect_timeout=self._connect_seconds(), cursor_factory=AsyncTenantCursor
            )
        except psycopg.OperationalError as err:
            raise _refused(watch, err) from err

    def _connect_seconds(self) -> int:
        return max(2, round(self._settings.connect_timeout))

    def _engine_options(self, key: RouteKey) -> dict[str, Any]:
        return {"pool_size": self._sizes(key)[1], "max_overflow": 0}

    # -- lifetime ---------------------------------------------------------------------------
    def open_pools(self) -> int:
        """How many psycopg pools are open (for tests and metrics)."""
        return len(self._pools)

    def pool_stats(self) -> dict[str, dict[str, int]]:
        """psycopg_pool's ``pool_size``, ``pool_available`` and ``requests_waiting`` of every
        open pool, sync and async, summed by route (``cell`` or ``cell/database``; for metrics).
        Opens nothing."""
        found: dict[str, dict[str, int]] = {}
        pools: list[tuple[RouteKey, Any]] = [*self._pools.items(), *self._async_pools.items()]
        for (cell, database), pool in pools:
            route = cell if database is None else f"{cell}/{database}"
            try:
                stats = pool.get_stats()
            except Exception:  # noqa: BLE001 (a pool closing under us)
                continue
            into = found.setdefault(route, {})
            for name in ("pool_size", "pool_available", "requests_waiting"):
                into[name] = into.get(name, 0) + int(stats.get(name, 0))
        return found

    def open_counts(self) -> dict[str, int]:
        """How many of each kind are open: psycopg pools, SQLAlchemy engines, and their async
        twins. Each kind is bounded by ``max_pools`` on its own (for metrics)."""
        return {
            "pools": len(self._pools),
            "engines": len(self._engines),
            "async_pools": len(self._async_pools),
            "async_engines": len(self._async_engines),
        }

    def forget(self, key: RouteKey) -> None:
        """Close what serves ``key`` (its database is going away)."""
        with self._lock:
            pool = self._pools.pop(key)
            if pool is not None:
                close_pool(pool)
            engine = self._engines.pop(key)
            if engine is not None:
                engine.dispose()
            async_engine = self._async_engines.pop(key)
            if async_engine is not None:
                self._in_loop(async_engine.dispose())
            async_pool = self._async_pools.pop(key)
            if async_pool is not None:
                self._in_loop(async_pool.close())
            watch = self._watches.pop(key, None)
            if watch is not None:
                watch.close()

    def close(self) -> None:
        with self._lock:
            for watch in self._watches.values():
                watch.close()
            self._watches.clear()
            for pool in self._pools.drain():
                close_pool(pool)
            for engine in self._engines.drain():
                engine.dispose()
            for async_engine in self._async_engines.drain():
                self._in_loop(async_engine.dispose())
            for async_pool in self._async_pools.drain():
                self._in_loop(async_pool.close())

    async def aclose(self) -> None:
        """Close the asyncio pools and engines (in their loop); the rest stays open."""
        for pool in self._async_pools.drain():
            await pool.close()
        for engine in self._async_engines.drain():
            await engine.dispose()


def _pgconn(dbapi_connection: Any) -> Any:
    """The libpq connection of a SQLAlchemy DBAPI connection (sync, or asyncio's adapter)."""
    return getattr(dbapi_connection, "driver_connection", dbapi_connection).pgconn


def _refused(watch: liveness.ServerWatch, err: psycopg.OperationalError) -> TooManyConnections | DatabaseUnavailable:
    """What a failed connect of an engine means: the tenant's database at its CONNECTION LIMIT
    (the server is up), else the server unavailable (probed now)."""
    if database_full(err):
        return TooManyConnections(f"{watch.what} refused one more session: {_first_line(err)} (db_connections)")
    watch.suspect()
    return DatabaseUnavailable(f"cannot connect to {watch.what}: {_first_line(err)}")


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
