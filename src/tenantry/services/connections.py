"""``Plane`` (``tn.plane``): the connections and catalog events of one process.

The one implementation of :class:`~tenantry.services.plane.ControlPlane`. It owns what every
service shares: the connection strings (the admin URL starts the embedded server when none is
configured), the catalog's admin and reader pools, the tenant traffic's router, the keys that
seal secrets, the catalog listener and the subscribers its events reach, and the cells cache.
Nothing connects until it is needed.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
import sqlalchemy as sa
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolClosed

from tenantry import context
from tenantry.appspec import load_metadata
from tenantry.core.caches import CatalogCache
from tenantry.core.events import EventKind
from tenantry.core.metering import Meter
from tenantry.core.placement import PRIMARY_CELL
from tenantry.core.secrets import Keyring
from tenantry.db import catalog
from tenantry.db.binding import Binder, RouteKey
from tenantry.db.catalog import cells as cells_service
from tenantry.db.catalog.cells import Cell
from tenantry.db.catalog.events import CatalogListener
from tenantry.db.catalog_pool import CatalogPool
from tenantry.db.connect import admin_connection, database_url, translate, translated, with_user
from tenantry.db.connections import AsyncTenantConnection, TenantConnection
from tenantry.db.embedded_keys import embedded_keyring
from tenantry.db.local import context_keys
from tenantry.db.roles import RUNTIME_CHECK_SQL, check_runtime_role, runtime_check_params, runtime_problems
from tenantry.db.routing import Router
from tenantry.db.server import EmbeddedServer
from tenantry.errors import ConfigurationError, ControlPlaneOnly, DatabaseUnavailable, UnsafeRuntimeRole
from tenantry.services.plane import EventHandler, Extensions, ResetHandler

if TYPE_CHECKING:
    from tenantry.db.catalog.hooks import Origin
    from tenantry.settings import Settings

__all__ = ["EMBEDDED_DATABASE", "Plane"]

EMBEDDED_DATABASE = "tenantry"

#: how often a checkout retries when another thread evicts the pool it found (see _checkout)
_CHECKOUT_ATTEMPTS = 20


class Plane:
    """Connections, catalog events and the facts every service shares, for one process.

    ``metadata`` is the app's SQLAlchemy metadata (or ``None``: loaded from ``Settings.app``
    when first needed); ``actor`` names who changes are audited as.
    """

    def __init__(self, settings: Settings, *, metadata: sa.MetaData | None, actor: str) -> None:
        self._settings = settings
        self.metadata = metadata
        self._actor = actor
        self._lock = threading.RLock()
        self._admin_url: str | None = None
        self._runtime_url: str | None = None
        self._keyring: Keyring | None = None
        self._binder: Binder | None = None
        #: this process's usage counts (``tn.usage``): bound transactions are counted here
        self.meter: Meter | None = Meter() if settings.usage_metering else None
        self._runtime_checked = False
        #: the runtime role's problem, once found: every later checkout raises it
        self.runtime_problem: UnsafeRuntimeRole | None = None
        self._router: Router | None = None
        self._extensions: Extensions | None = None
        timeout = settings.connect_timeout
        self._admin_pool = CatalogPool(
            lambda: self.admin_url, name="tenantry-admin", what="the catalog's PostgreSQL", timeout=timeout
        )
        #: the request path's catalog reads: as the reader role when a reader URL is set
        self._reader_pool: CatalogPool | None = None
        if settings.reader_url is not None:
            reader_url = settings.reader_url.get_secret_value()
            self._reader_pool = CatalogPool(
                lambda: reader_url, name="tenantry-reader", what="the catalog's PostgreSQL (reader)", timeout=timeout
            )
        self._listener: CatalogListener | None = None
        self._subscribers: list[tuple[EventHandler, ResetHandler]] = []
        self._cells: CatalogCache[str, Cell] = CatalogCache(
            "cells", ttl=settings.tenant_cache_ttl, size=settings.tenant_cache_size, trusted=self.trusted
        )

    @property
    def settings(self) -> Settings:
        return self._settings

    # -- who changes are audited as -------------------------------------------------------
    @property
    def actor(self) -> str:
        return context.bound_actor(self) or self._actor

    @actor.setter
    def actor(self, value: str) -> None:
        self._actor = value

    @contextmanager
    def acting_as(self, actor: str) -> Iterator[str]:
        """Audit the changes of this ``with`` block (this thread or task only) as ``actor``."""
        token = context._set_actor(self, actor)
        try:
            yield actor
        finally:
            context._reset_actor(token)

    # -- connection strings ---------------------------------------------------------------
    @property
    def admin_url(self) -> str:
        """The admin connection string; starts the embedded server when none is configured.
        A data-plane process has none: :class:`~tenantry.errors.ControlPlaneOnly`."""
        if self._settings.data_plane:
            raise ControlPlaneOnly(
                "this process holds data-plane credentials only (TENANTRY_RUNTIME_URL, TENANTRY_READER_URL):"
                " it serves tenant traffic; run control-plane work (creating or changing tenants, plans, config,"
                " migrations, moves, checks) with the CLI, the admin API or a worker, which hold TENANTRY_DATABASE_URL"
            )
        with self._lock:
            if self._admin_url is None:
                if self._settings.database_url is not None:
                    self._admin_url = self._settings.database_url.get_secret_value()
                else:
                    self._admin_url = self._embedded_url()
            return self._admin_url

    def _embedded_url(self) -> str:
        server = EmbeddedServer(self._settings.data_dir)
        base = server.ensure_running()
        with admin_connection(base, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DATABASE,)).fetchone()
            if exists is None:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(EMBEDDED_DATABASE)))
                except psycopg.errors.DuplicateDatabase:
                    pass
        params = conninfo_to_dict(base)
        params["dbname"] = EMBEDDED_DATABASE
        return make_conninfo("", **params)

    def secret_keyring(self) -> Keyring | None:
        """The keys that seal secret config values: ``Settings.secret_keys``; with the embedded
        server and none set, a key file of its own; else ``None``."""
        with self._lock:
            if self._keyring is None:
                if self._settings.secret_keys is not None:
                    self._keyring = Keyring.parse(self._settings.secret_keys.get_secret_value())
                elif self._settings.database_url is None and not self._settings.data_plane:
                    self._keyring = embedded_keyring(EmbeddedServer(self._settings.data_dir).data_dir)
            return self._keyring

    @property
    def runtime_url(self) -> str:
        """The connection string of the runtime role."""
        with self._lock:
            if self._runtime_url is None:
                if self._settings.runtime_url is not None:
                    self._runtime_url = self._settings.runtime_url.get_secret_value()
                else:
                    self._runtime_url = self._stored_role_url("runtime")
            return self._runtime_url

    def _stored_role_url(self, which: str) -> str:
        """The admin URL with the ``runtime`` or ``reader`` role and the password ``init`` gave it."""
        with self.admin() as conn:
            catalog.require_catalog(conn)
            password = catalog.stored_password(conn, which)
        role = self._settings.runtime_role if which == "runtime" else self._settings.reader_role
        return with_user(self.admin_url, role, password)

    def data_plane_settings(self) -> Settings:
        """These settings as a data-plane process needs them (see ``Tenantry.data_plane_settings``)."""
        s = self._settings
        runtime = self.runtime_url
        reader = s.reader_url.get_secret_value() if s.reader_url else self._stored_role_url("reader")
        with self.admin() as conn:
            catalog.require_catalog(conn)
            cells = cells_service.list_cells(conn)
        urls = {c.name: c.runtime_url(runtime, s.runtime_role) for c in cells if c.name != PRIMARY_CELL}
        return s.with_changes(
            database_url=None, embedded=False, runtime_url=runtime, reader_url=reader, cell_runtime_urls=urls
        )

    # -- catalog connections ----------------------------------------------------------------
    @contextmanager
    def admin(self) -> Iterator[psycopg.Connection[Any]]:
        """An autocommit admin connection (see ``Tenantry.admin``)."""
        with self._admin_pool.connection() as conn:
            yield conn

    @contextmanager
    def catalog_reader(self) -> Iterator[psycopg.Connection[Any]]:
        """An autocommit connection for the request path's catalog reads (the routing views):
        as the reader role when ``Settings.reader_url`` is set, else the admin connection."""
        pool = self._reader_pool or self._admin_pool
        with pool.connection() as conn:
            yield conn

    # -- cells --------------------------------------------------------------------------------
    def cell(self, name: str) -> Cell:
        """The cell, from this process's cache (dropped by ``cell:<name>`` events)."""
        return self._cells.get_or_load(name, lambda: self._read_cell(name))

    def _read_cell(self, name: str) -> Cell:
        with self.admin() as conn:
            return cells_service.get_cell(conn, name)

    def cell_admin_url(self, name: str) -> str:
        """Admin connection string of a cell (the catalog's for ``primary``)."""
        return self.cell(name).admin_url(self.admin_url)

    # -- the app's tables ----------------------------------------------------------------------
    @property
    def extensions(self) -> Extensions:
        if self._extensions is None:
            raise ConfigurationError("no plugin registry attached to this control plane")
        return self._extensions

    def attach(self, extensions: Extensions) -> None:
        """Set the plugin registry this process runs (done once, by ``Tenantry``)."""
        self._extensions = extensions

    def app_metadata(self, metadata: sa.MetaData | None = None) -> sa.MetaData:
        found = metadata if metadata is not None else self.metadata
        if found is None and self._settings.app:
            found = self.metadata = load_metadata(self._settings.app)
        if found is None:
            raise ConfigurationError("no app metadata: pass Tenantry(metadata=...), or set TENANTRY_APP=module:Base")
        return self.extensions.managed_metadata(found)  # the app's tables and its plugins'

    # -- tenant traffic -------------------------------------------------------------------------
    def binder(self) -> Binder:
        with self._lock:
            if self._binder is None:
                with self.catalog_reader() as conn:
                    catalog.require_routing(conn)
                    keys = context_keys(conn, catalog.ROUTING_SCHEMA)
                self._binder = Binder(keys, self._settings.pooled_schema, meter=self.meter)
            return self._binder

    def pool_stats(self) -> dict[str, dict[str, int]]:
        """The open pools' use by route (:meth:`Router.pool_stats`); nothing before the first
        connection (the router is not made for it)."""
        router = self._router
        return {} if router is None else router.pool_stats()

    def caches(self) -> list[CatalogCache[Any, Any]]:
        """The catalog caches kept here (for their hit and miss counts)."""
        return [self._cells]

    @property
    def router(self) -> Router:
        """Pools and engines per server and database (checked, bounded, LRU)."""
        with self._lock:
            if self._router is None:
                self.binder()
                self._check_runtime()
                s = self._settings
                self._router = Router(
                    s,
                    url_for=self._route_url,
                    binder=self.binder,
                    check_sql=RUNTIME_CHECK_SQL,
                    check_params=runtime_check_params(s.owner_role, s.pooled_schema),
                    judge=self._judge_runtime,
                )
            return self._router

    def _check_runtime(self) -> None:
        if self.runtime_problem is not None:
            raise self.runtime_problem
        with self._lock:
            if self._runtime_checked:
                return
            with admin_connection(self.runtime_url, timeout=self._settings.connect_timeout) as conn:
                check_runtime_role(conn, self._settings.owner_role, self._settings.pooled_schema)
            self._runtime_checked = True

    def _judge_runtime(self, row: tuple[Any, ...] | None) -> None:
        problem = runtime_problems(row, self._settings.owner_role)
        if problem is not None:
            self.runtime_problem = UnsafeRuntimeRole(problem)
            raise self.runtime_problem

    def _route_url(self, key: RouteKey) -> str:
        cell, database = key
        s = self._settings
        if cell == PRIMARY_CELL:
            base = self.runtime_url
        elif s.data_plane or cell in s.cell_runtime_urls:
            found = s.cell_runtime_urls.get(cell)
            if found is None:
                raise ConfigurationError(
                    f"no runtime URL for cell {cell!r}: a data-plane process needs one for each cell"
                    " (TENANTRY_CELL_RUNTIME_URLS; `tenantry credentials` prints them)"
                )
            base = found.get_secret_value()
        else:
            base = self.cell(cell).runtime_url(self.runtime_url, s.runtime_role)
        return database_url(base, database)

    @contextmanager
    def connection(self, key: RouteKey) -> Iterator[TenantConnection]:
        """A pooled connection of route ``key``, bound per transaction to the context's tenant
        (``Tenantry.connection``): commits when the block ends, rolls back when it raises."""
        pool, conn = self._checkout(key)
        bound = context.current() if self.meter is not None else None
        started = time.perf_counter() if bound is not None else 0.0
        try:
            yield conn
        except psycopg.Error as err:
            _rollback_quietly(conn)
            mapped = translate(err)
            if mapped is None:
                raise
            raise mapped from err
        except BaseException:
            _rollback_quietly(conn)
            raise
        else:
            if not conn.closed:
                try:
                    conn.commit()
                except psycopg.Error as err:  # a server that went away at the commit is unavailable
                    mapped = translate(err)
                    if mapped is None:
                        raise
                    raise mapped from err
        finally:
            if bound is not None and self.meter is not None:
                self.meter.transaction(bound.id, time.perf_counter() - started)
            if self._spent(conn):
                conn.close()
            pool.putconn(conn)

    def _checkout(self, key: RouteKey) -> tuple[ConnectionPool[TenantConnection], TenantConnection]:
        # Another thread may evict (close) the pool between our lookup and the checkout, when
        # more databases are in use at once than max_pools: then the route's new pool serves.
        for _ in range(_CHECKOUT_ATTEMPTS):
            router = self.router
            if self.runtime_problem is not None:
                raise self.runtime_problem
            try:
                return router.checkout(key)
            except PoolClosed:
                continue
        raise DatabaseUnavailable(_too_busy(self._settings.max_pools))

    def _spent(self, conn: TenantConnection | AsyncTenantConnection) -> bool:
        # a backend keeps a catalog cache entry for every relation it touched: a connection
        # that has served many tenant schemas is closed, and the pool opens a fresh one
        schemas = conn._tenantry_schemas
        return bool(schemas) and len(schemas) > self._settings.schema_recycle_after  # type: ignore[arg-type]

    @asynccontextmanager
    async def async_connection(self, key: RouteKey) -> AsyncIterator[AsyncTenantConnection]:
        """Async :meth:`connection` (``Tenantry.async_connection``)."""
        pool, conn = await self._acheckout(key)
        bound = context.current() if self.meter is not None else None
        started = time.perf_counter() if bound is not None else 0.0
        try:
            yield conn
        except psycopg.Error as err:
            await _arollback_quietly(conn)
            mapped = translate(err)
            if mapped is None:
                raise
            raise mapped from err
        except BaseException:
            await _arollback_quietly(conn)
            raise
        else:
            if not conn.closed:
                with translated():
                    await conn.commit()
        finally:
            if bound is not None and self.meter is not None:
                self.meter.transaction(bound.id, time.perf_counter() - started)
            if self._spent(conn):
                await conn.close()
            await pool.putconn(conn)

    async def _acheckout(
        self, key: RouteKey
    ) -> tuple[AsyncConnectionPool[AsyncTenantConnection], AsyncTenantConnection]:
        for _ in range(_CHECKOUT_ATTEMPTS):  # as in _checkout()
            await asyncio.to_thread(lambda: self.router)
            if self.runtime_problem is not None:
                raise self.runtime_problem
            try:
                return await self.router.acheckout(key)
            except PoolClosed:
                continue
        raise DatabaseUnavailable(_too_busy(self._settings.max_pools))

    def forget_route(self, key: RouteKey) -> None:
        if self._router is not None:
            self._router.forget(key)

    # -- catalog events ---------------------------------------------------------------------------
    def trusted(self) -> bool:
        """Whether the catalog listener is connected now: while it is not, no event would drop
        a stale entry, so no :class:`~tenantry.core.caches.CatalogCache` serves one."""
        listener = self._listener
        return listener is not None and listener.listening.is_set()

    def listen(self) -> None:
        """Start the catalog listener once: other processes' changes reach this process's
        caches within a second (the TTL is only the backstop)."""
        if self._listener is not None:
            return
        with self._lock:
            if self._listener is None:
                reader = self._settings.reader_url
                self._listener = CatalogListener(
                    self.admin_url if reader is None else reader.get_secret_value(),
                    on_event=self.publish,
                    on_reset=self._on_reset,
                )
                self._listener.start()
        if not self._settings.data_plane and self._extensions is not None:  # (hooks write the catalog)
            self._extensions.autostart()  # calls queued by changes made elsewhere run here

    def subscribe(self, on_event: EventHandler, on_reset: ResetHandler) -> None:
        with self._lock:
            self._subscribers.append((on_event, on_reset))

    def publish(self, kind: EventKind, key: str) -> None:
        if kind == EventKind.CELL:
            self._cells.drop(key)
        for on_event, _ in list(self._subscribers):
            on_event(kind, key)

    def _on_reset(self) -> None:
        # the listener (re)connected: servers known to be down may be back, probe them now
        self._admin_pool.suspect()
        if self._reader_pool is not None:
            self._reader_pool.suspect()
        if self._router is not None:
            self._router.wake()
        self._cells.clear()
        for _, on_reset in list(self._subscribers):
            on_reset()

    # -- plugin hooks -------------------------------------------------------------------------------
    def after_change(self, tenant_id: uuid.UUID) -> None:
        if self._extensions is not None:
            self._extensions.deliver_now(tenant_id)

    def origin(self) -> Origin:
        return self.extensions.origin()

    # -- lifetime ------------------------------------------------------------------------------------
    def stop_listening(self) -> None:
        with self._lock:
            if self._listener is not None:
                self._listener.stop()
                self._listener = None

    def close(self) -> None:
        """Close the router's pools and engines and the catalog pools."""
        with self._lock:
            if self._router is not None:
                self._router.close()
                self._router = None
            self._admin_pool.close()
            if self._reader_pool is not None:
                self._reader_pool.close()

    async def aclose(self) -> None:
        if self._router is not None:
            await self._router.aclose()


def _too_busy(max_pools: int) -> str:
    return (
        f"the connection pools kept being evicted: more databases are in use at once than"
        f" max_pools ({max_pools}) allows; raise TENANTRY_MAX_POOLS"
    )


def _rollback_quietly(conn: psycopg.Connection[Any]) -> None:
    if not conn.closed:
        try:
            conn.rollback()
        except psycopg.Error:
            pass


async def _arollback_quietly(conn: psycopg.AsyncConnection[Any]) -> None:
    if not conn.closed:
        try:
            await conn.rollback()
        except psycopg.Error:
            pass
