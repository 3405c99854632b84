"""``Tenantry``: the one root object that owns connections, the catalog and the services.

Build one per process and hand it to the app, the CLI and the tests alike::

    tn = Tenantry(Settings.from_env(), metadata=Base.metadata)
    tn.init()                                  # roles, catalog, the app's tables with RLS
    tn.create_tenant("acme")
    with tn.tenant("acme"), Session(tn.engine()) as session:
        session.add(Project(name="Launch"))   # tenant_id comes from the context
        session.commit()

Nothing connects until it is needed: constructing a ``Tenantry`` does no I/O.
"""

from __future__ import annotations

import asyncio
import getpass
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import Token
from types import TracebackType
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tenantry import context
from tenantry.context import BoundTenant
from tenantry.core.model import Plan, Status, Tenant
from tenantry.db import catalog, rls
from tenantry.db.alchemy import bind_engine
from tenantry.db.binding import (
    AsyncTenantConnection,
    AsyncTenantCursor,
    Binder,
    TenantConnection,
    TenantCursor,
    TenantServerCursor,
    AsyncTenantServerCursor,
)
from tenantry.db.connect import admin_connection, translate, with_user
from tenantry.db.local import context_keys
from tenantry.db.roles import (
    RUNTIME_CHECK_SQL,
    check_runtime_role,
    ensure_roles,
    runtime_check_params,
    runtime_problems,
)
from tenantry.db.server import EmbeddedServer
from tenantry.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    TenantNotActive,
    TenantNotFound,
    UnsafeRuntimeRole,
)
from tenantry.services import audit
from tenantry.services import tenants as tenant_service
from tenantry.settings import Settings

__all__ = ["TenantScope", "Tenantry"]

EMBEDDED_DATABASE = "tenantry"


class Tenantry:
    """Multi-tenancy for one app on PostgreSQL.

    ``metadata`` is the app's SQLAlchemy metadata of tenant-scoped tables (see
    :class:`tenantry.TenantScoped`); ``actor`` names who control-plane changes are audited as.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        metadata: sa.MetaData | None = None,
        actor: str | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        self.metadata = metadata
        self.actor = actor or f"{getpass.getuser()}@python"
        self._lock = threading.RLock()
        self._admin_url: str | None = None
        self._runtime_url: str | None = None
        self._binder: Binder | None = None
        self._runtime_checked = False
        self._runtime_problem: UnsafeRuntimeRole | None = None
        self._pool: ConnectionPool[TenantConnection] | None = None
        self._async_pool: AsyncConnectionPool[AsyncTenantConnection] | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._engine: sa.Engine | None = None
        self._async_engine: AsyncEngine | None = None
        self._tenant_cache: dict[str, tuple[float, Tenant]] = {}

    # -- connection strings ---------------------------------------------------------------
    @property
    def admin_url(self) -> str:
        """The admin connection string; starts the embedded server when none is configured."""
        with self._lock:
            if self._admin_url is None:
                if self.settings.database_url:
                    self._admin_url = self.settings.database_url
                else:
                    self._admin_url = self._embedded_url()
            return self._admin_url

    def _embedded_url(self) -> str:
        server = EmbeddedServer(self.settings.data_dir)
        base = server.ensure_running()
        with admin_connection(base, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DATABASE,)
            ).fetchone()
            if exists is None:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(EMBEDDED_DATABASE)))
                except psycopg.errors.DuplicateDatabase:
                    pass
        params = conninfo_to_dict(base)
        params["dbname"] = EMBEDDED_DATABASE
        return make_conninfo("", **params)

    @property
    def runtime_url(self) -> str:
        """The connection string of the runtime role."""
        with self._lock:
            if self._runtime_url is None:
                if self.settings.runtime_url:
                    self._runtime_url = self.settings.runtime_url
                else:
                    with self.admin() as conn:
                        catalog.require_catalog(conn)
                        password = catalog.runtime_password(conn)
                    self._runtime_url = with_user(self.admin_url, self.settings.runtime_role, password)
            return self._runtime_url

    @contextmanager
    def admin(self) -> Iterator[psycopg.Connection[Any]]:
        """An autocommit admin connection (control-plane work opens its own transactions)."""
        with admin_connection(
            self.admin_url, timeout=self.settings.connect_timeout, autocommit=True
        ) as conn:
            yield conn

    # -- set-up -----------------------------------------------------------------------------
    def init(self) -> catalog.InitReport:
        """Create or upgrade roles, catalog and (given metadata) the app's tables. Idempotent."""
        report = catalog.InitReport()
        s = self.settings
        with self.admin() as conn:
            existed = {
                r[0]
                for r in conn.execute(
                    "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                    ([s.owner_role, s.runtime_role],),
                ).fetchall()
            }
            password = ensure_roles(conn, s.owner_role, s.runtime_role)
            report.roles_created = [r for r in (s.owner_role, s.runtime_role) if r not in existed]
            report.migrations_applied = catalog.migrate_catalog(
                conn,
                owner=s.owner_role,
                runtime=s.runtime_role,
                pooled_schema=s.pooled_schema,
                runtime_password=password,
            )
            report.version = catalog.catalog_version(conn)
            if report.migrations_applied or report.roles_created:
                with conn.transaction():
                    audit.record(
                        conn, actor=self.actor, action="catalog.init", target_type="catalog",
                        target=conn.info.dbname, after=report.to_dict(),
                    )
        if self.metadata is not None:
            self.deploy()
        return report

    def deploy(self, metadata: sa.MetaData | None = None) -> rls.DeployReport:
        """Create the app's tenant tables in the pooled schema and secure each with RLS."""
        metadata = metadata if metadata is not None else self.metadata
        if metadata is None:
            raise ConfigurationError("no app metadata: pass Tenantry(metadata=...) or deploy(metadata)")
        tables = rls.validate_metadata(metadata)
        s = self.settings
        engine = sa.create_engine(
            "postgresql+psycopg://", creator=lambda: psycopg.connect(self.admin_url), poolclass=sa.NullPool
        )
        try:
            with engine.begin() as conn:
                raw = conn.connection.driver_connection
                assert isinstance(raw, psycopg.Connection)
                catalog.require_catalog(raw)
                raw.execute("SELECT pg_advisory_xact_lock(%s)", (catalog.LOCK_KEY,))
                existing = {
                    r[0]
                    for r in raw.execute(
                        "SELECT tablename FROM pg_tables WHERE schemaname = %s", (s.pooled_schema,)
                    ).fetchall()
                }
                raw.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(s.owner_role)))
                metadata.create_all(
                    conn.execution_options(schema_translate_map={None: s.pooled_schema}),
                    tables=tables,
                )
                dropped: list[str] = []
                for table in tables:
                    # a permissive policy beside tenantry's would widen what tenants see
                    dropped += [
                        f"{table.name}.{name}"
                        for name in rls.drop_foreign_policies(raw, s.pooled_schema, table.name)
                    ]
                    rls.apply_policies(raw, s.pooled_schema, table.name, s.runtime_role)
                raw.execute("RESET ROLE")
                report = rls.DeployReport(
                    schema=s.pooled_schema,
                    created=[t.name for t in tables if t.name not in existing],
                    secured=[t.name for t in tables],
                    dropped_policies=dropped,
                )
                audit.record(
                    raw, actor=self.actor, action="app.deploy", target_type="schema",
                    target=s.pooled_schema, after=report.to_dict(),
                )
        except sa.exc.OperationalError as err:
            raise DatabaseUnavailable(f"cannot reach PostgreSQL: {err.orig}") from err
        finally:
            engine.dispose()
        return report

    def unprotected_tables(self) -> list[str]:
        """App tables whose row-level security is off, unforced or missing its policy."""
        with self.admin() as conn:
            return rls.unprotected_tables(conn)

    # -- catalog reads and lifecycle --------------------------------------------------------
    def plans(self) -> list[Plan]:
        with self.admin() as conn:
            return tenant_service.list_plans(conn)

    def plan(self, name: str) -> Plan:
        with self.admin() as conn:
            return tenant_service.get_plan(conn, name)

    def create_tenant(self, slug: str, *, name: str | None = None, plan: str = "free") -> Tenant:
        """Create a tenant (active at once on pooled plans)."""
        with self.admin() as conn:
            catalog.require_catalog(conn)
            tenant = tenant_service.create_tenant(conn, slug, name=name, plan=plan, actor=self.actor)
        self._forget(tenant)
        return tenant

    def get_tenant(self, key: str | uuid.UUID) -> Tenant:
        with self.admin() as conn:
            return tenant_service.get_tenant(conn, key)

    def list_tenants(
        self,
        *,
        status: Status | None = None,
        plan: str | None = None,
        include_deleted: bool = False,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[Tenant]:
        with self.admin() as conn:
            catalog.require_catalog(conn)
            return tenant_service.list_tenants(
                conn, status=status, plan=plan, include_deleted=include_deleted, limit=limit, offset=offset
            )

    def _set_status(self, key: str | uuid.UUID, status: Status) -> Tenant:
        with self.admin() as conn:
            tenant = tenant_service.change_status(conn, key, status, actor=self.actor)
        self._forget(tenant)
        return tenant

    def suspend(self, key: str | uuid.UUID) -> Tenant:
        """Stop a tenant from serving traffic; its data stays."""
        return self._set_status(key, Status.SUSPENDED)

    def resume(self, key: str | uuid.UUID) -> Tenant:
        """Let a suspended or archived tenant serve traffic again."""
        return self._set_status(key, Status.ACTIVE)

    def archive(self, key: str | uuid.UUID) -> Tenant:
        """Retire a tenant: it serves no traffic and awaits deletion or revival."""
        return self._set_status(key, Status.ARCHIVED)

    def delete_tenant(self, key: str | uuid.UUID) -> dict[str, int]:
        """Remove every row of the tenant and mark it deleted; returns rows deleted per table."""
        with self.admin() as conn:
            tenant = tenant_service.get_tenant(conn, key)
            counts = tenant_service.delete_tenant(
                conn, tenant.id, owner=self.settings.owner_role, binder=self._get_binder(), actor=self.actor
            )
        self._forget(tenant)
        return counts

    def audit_log(
        self, *, target_type: str | None = None, target: str | None = None, limit: int = 100
    ) -> list[audit.AuditEntry]:
        with self.admin() as conn:
            return audit.list_entries(conn, target_type=target_type, target=target, limit=limit)

    # -- tenant context ---------------------------------------------------------------------
    def tenant(self, key: str | uuid.UUID, *, allow_inactive: bool = False) -> TenantScope:
        """Bind a tenant (by slug or id) for a ``with`` or ``async with`` block.

        Only ``active`` tenants may be bound unless ``allow_inactive`` is set (maintenance).
        """
        return TenantScope(self, key, allow_inactive)

    # the cache is keyed by the canonical key (slug, or the id's canonical text), so every
    # spelling of one tenant shares one entry and _forget reaches them all
    def _cached(self, key: str | uuid.UUID) -> Tenant | None:
        hit = self._tenant_cache.get(str(tenant_service.tenant_key(key)))
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def _lookup(self, key: str | uuid.UUID) -> Tenant:
        canonical = str(tenant_service.tenant_key(key))
        with self.admin() as conn:
            tenant = tenant_service.get_tenant(conn, key)
        self._tenant_cache[canonical] = (time.monotonic() + self.settings.tenant_cache_ttl, tenant)
        return tenant

    def _resolve(self, key: str | uuid.UUID, allow_inactive: bool, tenant: Tenant | None = None) -> BoundTenant:
        if tenant is None:
            tenant = self._cached(key) or self._lookup(key)
        if tenant.status is Status.DELETED:
            raise TenantNotFound(f"tenant {tenant.slug!r} is deleted")
        if not allow_inactive and not tenant.is_active:
            raise TenantNotActive(f"tenant {tenant.slug!r} is {tenant.status.value}, not active")
        return BoundTenant(id=tenant.id, slug=tenant.slug)

    def _forget(self, tenant: Tenant) -> None:
        for key in (tenant.slug, str(tenant.id)):
            self._tenant_cache.pop(key, None)

    # -- tenant traffic ---------------------------------------------------------------------
    def _get_binder(self) -> Binder:
        with self._lock:
            if self._binder is None:
                with self.admin() as conn:
                    catalog.require_catalog(conn)
                    keys = context_keys(conn)
                self._binder = Binder(keys, self.settings.pooled_schema)
            return self._binder

    def _check_runtime(self) -> None:
        if self._runtime_problem is not None:
            raise self._runtime_problem
        with self._lock:
            if self._runtime_checked:
                return
            with admin_connection(self.runtime_url, timeout=self.settings.connect_timeout) as conn:
                check_runtime_role(conn, self.settings.owner_role, self.settings.pooled_schema)
            self._runtime_checked = True

    def _configure(self, conn: TenantConnection) -> None:
        # every new connection is checked: a role granted BYPASSRLS (or a superuser role)
        # after start-up must not serve tenants
        row = conn.execute(RUNTIME_CHECK_SQL, self._runtime_check_params()).fetchone()
        conn.rollback()
        self._judge_runtime(row)
        conn.server_cursor_factory = TenantServerCursor
        conn._tenantry_binder = self._binder

    def _runtime_check_params(self) -> dict[str, object]:
        return runtime_check_params(self.settings.owner_role, self.settings.pooled_schema)

    def _judge_runtime(self, row: tuple[Any, ...] | None) -> None:
        problem = runtime_problems(row, self.settings.owner_role)
        if problem is not None:
            self._runtime_problem = UnsafeRuntimeRole(problem)
            raise self._runtime_problem

    def pool(self) -> ConnectionPool[TenantConnection]:
        """The runtime connection pool (psycopg_pool) of tenant-bound connections."""
        with self._lock:
            if self._pool is None:
                self._get_binder()
                self._check_runtime()
                pool: ConnectionPool[TenantConnection] = ConnectionPool(
                    self.runtime_url,
                    connection_class=TenantConnection,
                    kwargs={"cursor_factory": TenantCursor},
                    configure=self._configure,
                    min_size=self.settings.pool_min_size,
                    max_size=self.settings.pool_max_size,
                    timeout=self.settings.connect_timeout,
                    name="tenantry",
                    open=False,
                )
                try:
                    pool.open(wait=True, timeout=self.settings.connect_timeout)
                except Exception as err:
                    pool.close()
                    raise DatabaseUnavailable(f"cannot open the runtime pool: {err}") from err
                self._pool = pool
            return self._pool

    @contextmanager
    def connection(self) -> Iterator[TenantConnection]:
        """A pooled psycopg connection whose transactions are bound to the context's tenant.

        Commits when the block ends, rolls back when it raises.
        """
        pool = self.pool()
        if self._runtime_problem is not None:
            raise self._runtime_problem
        with pool.connection() as conn:
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
                    conn.commit()

    async def async_pool(self) -> AsyncConnectionPool[AsyncTenantConnection]:
        """The asyncio runtime pool, opened on first use in the running loop.

        A pool belongs to the event loop that opened it; called from another loop (a new
        ``asyncio.run``), this opens a fresh pool for that loop.
        """
        loop = asyncio.get_running_loop()
        if self._async_pool is not None and self._async_loop is not loop:
            self._async_pool = None
        if self._async_pool is None:
            await asyncio.to_thread(self._get_binder)
            await asyncio.to_thread(self._check_runtime)
            pool: AsyncConnectionPool[AsyncTenantConnection] = AsyncConnectionPool(
                self.runtime_url,
                connection_class=AsyncTenantConnection,
                kwargs={"cursor_factory": AsyncTenantCursor},
                configure=self._aconfigure,
                min_size=self.settings.pool_min_size,
                max_size=self.settings.pool_max_size,
                timeout=self.settings.connect_timeout,
                name="tenantry-async",
                open=False,
            )
            await pool.open(wait=True, timeout=self.settings.connect_timeout)
            if self._async_pool is None:
                self._async_pool = pool
                self._async_loop = loop
            else:  # another task won the race
                await pool.close()
        return self._async_pool

    async def _aconfigure(self, conn: AsyncTenantConnection) -> None:
        cur = await conn.execute(RUNTIME_CHECK_SQL, self._runtime_check_params())
        row = await cur.fetchone()
        await conn.rollback()
        self._judge_runtime(row)
        conn.server_cursor_factory = AsyncTenantServerCursor
        conn._tenantry_binder = self._binder

    @asynccontextmanager
    async def async_connection(self) -> AsyncIterator[AsyncTenantConnection]:
        """Async :meth:`connection`."""
        pool = await self.async_pool()
        if self._runtime_problem is not None:
            raise self._runtime_problem
        async with pool.connection() as conn:
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
                    await conn.commit()

    def engine(self, **kwargs: Any) -> sa.Engine:
        """A SQLAlchemy engine for tenant traffic (runtime role, tenant bound per transaction)."""
        with self._lock:
            if self._engine is None:
                binder = self._get_binder()
                self._check_runtime()
                url = self.runtime_url
                options: dict[str, Any] = {
                    "pool_size": self.settings.pool_max_size,
                    "max_overflow": 0,
                    "pool_pre_ping": False,
                }
                options.update(kwargs)
                engine = sa.create_engine(
                    "postgresql+psycopg://", creator=lambda: psycopg.connect(url), **options
                )
                bind_engine(engine, binder)
                self._watch_runtime(engine)
                self._engine = engine
            return self._engine

    def async_engine(self, **kwargs: Any) -> AsyncEngine:
        """Async :meth:`engine` (``sqlalchemy.ext.asyncio``)."""
        with self._lock:
            if self._async_engine is None:
                binder = self._get_binder()
                self._check_runtime()
                url = self.runtime_url
                options: dict[str, Any] = {"pool_size": self.settings.pool_max_size, "max_overflow": 0}
                options.update(kwargs)
                engine = create_async_engine(
                    "postgresql+psycopg://",
                    async_creator=lambda: psycopg.AsyncConnection.connect(url),
                    **options,
                )
                bind_engine(engine, binder)
                self._watch_runtime(engine.sync_engine)
                self._async_engine = engine
            return self._async_engine

    def _watch_runtime(self, engine: sa.Engine) -> None:
        """Check every new connection of ``engine`` like the pools' do."""

        @sa.event.listens_for(engine, "connect")
        def _check(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(RUNTIME_CHECK_SQL, self._runtime_check_params())
                row = cursor.fetchone()
            finally:
                cursor.close()
            dbapi_connection.rollback()
            self._judge_runtime(row)

    # -- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close pools and engines (the embedded server keeps running)."""
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
            if self._async_engine is not None:
                # disposing an async engine needs its loop; drop the pool's connections directly
                self._async_engine.sync_engine.dispose(close=False)
                self._async_engine = None

    async def aclose(self) -> None:
        """Close the async pool and engine, then everything else."""
        if self._async_pool is not None:
            await self._async_pool.close()
            self._async_pool = None
        if self._async_engine is not None:
            await self._async_engine.dispose()
            self._async_engine = None
        self.close()

    def __enter__(self) -> Tenantry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TenantScope:
    """What ``tn.tenant(...)`` returns: binds the tenant for a ``with`` or ``async with`` block."""

    def __init__(self, tn: Tenantry, key: str | uuid.UUID, allow_inactive: bool) -> None:
        self._tn = tn
        self._key = key
        self._allow_inactive = allow_inactive
        self._tokens: list[Token[BoundTenant | None]] = []

    def __enter__(self) -> BoundTenant:
        bound = self._tn._resolve(self._key, self._allow_inactive)
        self._tokens.append(context._set(bound))
        return bound

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        context._reset(self._tokens.pop())

    async def __aenter__(self) -> BoundTenant:
        tenant = self._tn._cached(self._key) or await asyncio.to_thread(self._tn._lookup, self._key)
        bound = self._tn._resolve(self._key, self._allow_inactive, tenant)
        self._tokens.append(context._set(bound))
        return bound

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        context._reset(self._tokens.pop())


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
