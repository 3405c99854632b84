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
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

import psycopg
import sqlalchemy as sa
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolClosed
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry import context
from tenantry.appspec import find_config_model, load_metadata
from tenantry.branding.service import Branding
from tenantry.context import BoundTenant
from tenantry.core.caches import UNKNOWN_SIZE, UNKNOWN_TTL, CatalogCache
from tenantry.core.events import EventKind
from tenantry.core.model import Isolation, Plan, Status, Tenant
from tenantry.core.placement import PRIMARY_CELL, Placement, Route
from tenantry.core.secrets import Keyring
from tenantry.db import catalog, rls
from tenantry.db.binding import Binder, RouteKey
from tenantry.db.catalog_pool import CatalogPool
from tenantry.db.connect import admin_connection, translate, translated, with_user
from tenantry.db.connections import AsyncTenantConnection, TenantConnection
from tenantry.db.deploy import deploy_tables
from tenantry.db.embedded_keys import embedded_keyring
from tenantry.db.local import context_keys
from tenantry.db.roles import (
    RUNTIME_CHECK_SQL,
    check_runtime_role,
    ensure_reader,
    ensure_roles,
    runtime_check_params,
    runtime_problems,
)
from tenantry.db.routing import DEFAULT_ROUTE, Router
from tenantry.db.server import EmbeddedServer
from tenantry.errors import (
    ConfigurationError,
    ControlPlaneOnly,
    DatabaseUnavailable,
    TenantNotActive,
    TenantNotFound,
    UnsafeRuntimeRole,
)
from tenantry.services import audit, fences, moves, provisioning, role_checks
from tenantry.services import cells as cells_service
from tenantry.services import domains as domains_service
from tenantry.services import spares as spares_service
from tenantry.services import tenants as tenant_service
from tenantry.services import tokens as token_service
from tenantry.services.cells import Cell
from tenantry.services.domain_checks import DomainChecker
from tenantry.services.domains import UNKNOWN_HOST, Domain, HostRoute
from tenantry.services.events import CatalogListener
from tenantry.settings import Settings
from tenantry.tenant_config import ConfigSections, Flags, Live, TenantConfig

if TYPE_CHECKING:
    from tenantry.plugins.base import Plugin

__all__ = ["TenantScope", "Tenantry"]

EMBEDDED_DATABASE = "tenantry"

#: advisory lock serialising `init` on one database
_INIT_LOCK = 0x74656E69

#: a tenant and its active placement, as the resolution cache holds them
_Resolved = tuple[Tenant, Placement | None]

#: how often a checkout retries when another thread evicts the pool it found (see _checkout)
_CHECKOUT_ATTEMPTS = 20
#: statuses whose change fences the bindings made before it, and the fence's reason
_FENCED: dict[Status, fences.Reason] = {Status.SUSPENDED: "suspended", Status.ARCHIVED: "archived"}


def _too_busy(max_pools: int) -> str:
    return (
        f"the connection pools kept being evicted: more databases are in use at once than"
        f" max_pools ({max_pools}) allows; raise TENANTRY_MAX_POOLS"
    )


def _tenant_tags(canonical: str, resolved: _Resolved) -> tuple[str]:
    # a lookup is tagged with its tenant's id, so that a tenant event drops every key it is
    # cached under (its slug, its id) without reading the whole cache
    return (str(resolved[0].id),)


def _own_databases(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """``(cell, database)`` of every database-tier tenant and ready spare, which hold app
    tables of their own."""
    rows = conn.execute(
        "SELECT cell, database_name FROM tenantry.placements"
        " WHERE database_name IS NOT NULL AND status = 'active'"
        " UNION SELECT cell, database_name FROM tenantry.spares"
        " WHERE database_name IS NOT NULL AND status = 'ready' ORDER BY 2"
    ).fetchall()
    return [(str(cell), str(database)) for cell, database in rows]


class Tenantry:
    """Multi-tenancy for one app on PostgreSQL.

    ``metadata`` is the app's SQLAlchemy metadata of tenant-scoped tables (see
    :class:`tenantry.TenantScoped`); ``config`` is the app's per-tenant config schema, a
    pydantic model (see :attr:`config`); ``actor`` names who control-plane changes are audited
    as; ``plugins`` are plugin objects (or classes, or installed plugins' names) to run, after
    those ``Settings.plugins`` names (see :attr:`plugins`).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        metadata: sa.MetaData | None = None,
        actor: str | None = None,
        config: type[BaseModel] | None = None,
        plugins: Iterable[Plugin | type[Plugin] | str] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        if self.settings.database_url is None and not self.settings.embedded and not self.settings.data_plane:
            raise ConfigurationError(
                "no database: set TENANTRY_DATABASE_URL (Settings(database_url=...)); or, for a process that"
                " only serves tenant traffic, TENANTRY_RUNTIME_URL and TENANTRY_READER_URL; or TENANTRY_EMBEDDED=1"
                " (Settings(embedded=True)) for the embedded development server"
            )
        self.metadata = metadata
        self._actor = actor or f"{getpass.getuser()}@python"
        self._lock = threading.RLock()
        self._admin_url: str | None = None
        self._runtime_url: str | None = None
        self._keyring: Keyring | None = None
        self._binder: Binder | None = None
        self._bounds: dict[int, tuple[_Resolved, BoundTenant]] = {}
        self._runtime_checked = False
        self._runtime_problem: UnsafeRuntimeRole | None = None
        self._router: Router | None = None
        timeout = self.settings.connect_timeout
        self._admin_pool = CatalogPool(
            lambda: self.admin_url, name="tenantry-admin", what="the catalog's PostgreSQL", timeout=timeout
        )
        #: the request path's catalog reads: as the reader role when a reader URL is set
        self._reader_pool: CatalogPool | None = None
        if self.settings.reader_url is not None:
            reader_url = self.settings.reader_url.get_secret_value()
            self._reader_pool = CatalogPool(
                lambda: reader_url, name="tenantry-reader", what="the catalog's PostgreSQL (reader)", timeout=timeout
            )
        self._listener: CatalogListener | None = None
        ttl, size = self.settings.tenant_cache_ttl, self.settings.tenant_cache_size
        #: the catalog facts this process keeps (see tenantry.core.caches): cells by name,
        #: lookups by canonical tenant key (slug, or the id's canonical text), routes by
        #: hostname; and, apart, the keys and hostnames the catalog does not know, so that
        #: junk requests do not each cost a catalog read nor push known ones out
        self._cells: CatalogCache[str, Cell] = CatalogCache("cells", ttl=ttl, size=size, trusted=self._trusted)
        self._tenant_cache: CatalogCache[str, _Resolved] = CatalogCache(
            "tenant lookups", ttl=ttl, size=size, trusted=self._trusted, tags=_tenant_tags
        )
        self._missing_tenants: CatalogCache[str, bool] = CatalogCache(
            "unknown tenants", ttl=UNKNOWN_TTL, size=min(UNKNOWN_SIZE, size), trusted=self._trusted
        )
        self._host_cache: CatalogCache[str, HostRoute] = CatalogCache(
            "hostnames", ttl=ttl, size=size, trusted=self._trusted
        )
        self._missing_hosts: CatalogCache[str, bool] = CatalogCache(
            "unknown hostnames", ttl=UNKNOWN_TTL, size=min(UNKNOWN_SIZE, size), trusted=self._trusted
        )
        #: what else keeps catalog facts in this process (the edge's plan limits): told of
        #: every catalog event and every reconnection of the listener, like the caches above
        self._subscribers: list[tuple[Callable[[EventKind, str], None], Callable[[], None]]] = []
        #: (metadata, its table names, fingerprint) of the app's tables (services.spares)
        self._spare_fingerprint: tuple[sa.MetaData, tuple[str, ...], str] | None = None
        self._branding: Branding | None = None

        #: the per-process cache of config and flags (its schema: the app's model and the
        #: sections plugins add)
        self._live = Live(
            self,
            ConfigSections(config, loader=lambda: find_config_model(self.settings.config, self.settings.app)),
            trusted=self._trusted,
            listen=self._listen,
            lookup=lambda slug: (self._cached(slug) or self._lookup(slug))[0].id,
        )
        # (attributes, not properties: ``tn.flags.enabled`` is on the request path, and a
        # property would add about 40 ns to a 0.3 µs read)
        #: per-tenant config: ``tn.config.set("limits.max_projects", 50, tenant="acme")``, and for
        #: the bound tenant ``tn.config.current(AppConfig)`` (cached, fresh within a second)
        self.config = TenantConfig(self, self._live)
        #: feature flags: ``tn.flags.create({"key": "new-editor"})``, and for the bound tenant
        #: ``tn.flags.enabled("new-editor")`` (cached, fresh within a second)
        self.flags = Flags(self, self._live)
        from tenantry.plugins.registry import Plugins  # (the plugins' web side imports this module)

        #: the plugins this object runs, their settings per plan and tenant, their hooks
        self.plugins = Plugins(self)
        self.plugins.load_configured(self.settings.plugins, explicit=[self.plugins.instance(p) for p in plugins or ()])

    # -- who changes are audited as -------------------------------------------------------
    @property
    def actor(self) -> str:
        """Who control-plane changes are audited as: the actor bound by :meth:`acting_as` in
        this thread or task, else the one this object was built with."""
        return context.bound_actor(self) or self._actor

    @actor.setter
    def actor(self, value: str) -> None:
        self._actor = value

    @contextmanager
    def acting_as(self, actor: str) -> Iterator[str]:
        """Audit the changes made in this ``with`` block (in this thread or asyncio task only)
        as ``actor``; concurrent requests of a server each keep their own::

            with tn.acting_as("token:ci"):
                tn.suspend("acme")   # audited as token:ci
        """
        token = context._set_actor(self, actor)
        try:
            yield actor
        finally:
            context._reset_actor(token)

    # -- connection strings ---------------------------------------------------------------
    @property
    def admin_url(self) -> str:
        """The admin connection string; starts the embedded server when none is configured.

        A data-plane process (:attr:`Settings.data_plane`) has none: every control-plane
        operation asks for it here, and gets :class:`~tenantry.errors.ControlPlaneOnly`.
        """
        if self.settings.data_plane:
            raise ControlPlaneOnly(
                "this process holds data-plane credentials only (TENANTRY_RUNTIME_URL, TENANTRY_READER_URL):"
                " it serves tenant traffic; run control-plane work (creating or changing tenants, plans, config,"
                " migrations, moves, checks) with the CLI, the admin API or a worker, which hold TENANTRY_DATABASE_URL"
            )
        with self._lock:
            if self._admin_url is None:
                if self.settings.database_url is not None:
                    self._admin_url = self.settings.database_url.get_secret_value()
                else:
                    self._admin_url = self._embedded_url()
            return self._admin_url

    def _embedded_url(self) -> str:
        server = EmbeddedServer(self.settings.data_dir)
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
        """The keys that seal secret config values (:mod:`tenantry.core.secrets`): those of
        ``Settings.secret_keys``; with the embedded server and none set, a key file of its own;
        else ``None`` (secret fields cannot be written)."""
        with self._lock:
            if self._keyring is None:
                if self.settings.secret_keys is not None:
                    self._keyring = Keyring.parse(self.settings.secret_keys.get_secret_value())
                elif self.settings.database_url is None and not self.settings.data_plane:
                    self._keyring = embedded_keyring(EmbeddedServer(self.settings.data_dir).data_dir)
            return self._keyring

    @property
    def runtime_url(self) -> str:
        """The connection string of the runtime role."""
        with self._lock:
            if self._runtime_url is None:
                if self.settings.runtime_url is not None:
                    self._runtime_url = self.settings.runtime_url.get_secret_value()
                else:
                    self._runtime_url = self._stored_role_url("runtime")
            return self._runtime_url

    def _stored_role_url(self, which: str) -> str:
        """The admin URL with the ``runtime`` or ``reader`` role and the password ``init`` gave it."""
        with self.admin() as conn:
            catalog.require_catalog(conn)
            password = catalog.stored_password(conn, which)
        role = self.settings.runtime_role if which == "runtime" else self.settings.reader_role
        return with_user(self.admin_url, role, password)

    def data_plane_settings(self) -> Settings:
        """These settings as a data-plane process needs them: the runtime and reader URLs
        (with the passwords ``tenantry init`` gave the roles), the other cells' runtime URLs,
        and no admin URL. What ``tenantry credentials`` prints, as environment variables."""
        runtime = self.runtime_url
        reader = (
            self.settings.reader_url.get_secret_value() if self.settings.reader_url else self._stored_role_url("reader")
        )
        cells = {
            cell.name: cell.runtime_url(runtime, self.settings.runtime_role)
            for cell in self.cells()
            if cell.name != PRIMARY_CELL
        }
        return self.settings.with_changes(
            database_url=None, embedded=False, runtime_url=runtime, reader_url=reader, cell_runtime_urls=cells
        )

    @contextmanager
    def admin(self) -> Iterator[psycopg.Connection[Any]]:
        """An autocommit admin connection (control-plane work opens its own transactions).

        The first one is opened directly, so an unreachable server fails at once with a clear
        error; after that, admin connections come from a small pool. In a data-plane process,
        :class:`~tenantry.errors.ControlPlaneOnly`.
        """
        with self._admin_pool.connection() as conn:
            yield conn

    @contextmanager
    def catalog_reader(self) -> Iterator[psycopg.Connection[Any]]:
        """An autocommit connection for the request path's catalog reads, which read the
        routing views only (schema ``tenantry_routing``): as the reader role when
        ``Settings.reader_url`` is set, else the admin connection."""
        pool = self._reader_pool or self._admin_pool
        with pool.connection() as conn:
            yield conn

    # -- set-up -----------------------------------------------------------------------------
    def init(self) -> catalog.InitReport:
        """Create or upgrade roles, catalog and (given metadata) the app's tables. Idempotent.

        Concurrent inits of one database run one after the other (a session advisory lock on a
        connection of its own), so their DDL never interleaves into a deadlock.
        """
        with admin_connection(self.admin_url, timeout=self.settings.connect_timeout, autocommit=True) as lock:
            lock.execute("SELECT pg_advisory_lock(%s)", (_INIT_LOCK,))
            try:
                return self._init()
            finally:
                lock.execute("SELECT pg_advisory_unlock(%s)", (_INIT_LOCK,))

    def _init(self) -> catalog.InitReport:
        report = catalog.InitReport()
        s = self.settings
        with self.admin() as conn:
            existed = {
                r[0]
                for r in conn.execute(
                    "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                    ([s.owner_role, s.runtime_role, s.reader_role],),
                ).fetchall()
            }
            passwords = {
                "runtime": ensure_roles(conn, s.owner_role, s.runtime_role),
                "reader": ensure_reader(conn, s.reader_role),
            }
            report.roles_created = [r for r in (s.owner_role, s.runtime_role, s.reader_role) if r not in existed]
            report.migrations_applied = catalog.migrate_catalog(
                conn,
                owner=s.owner_role,
                runtime=s.runtime_role,
                reader=s.reader_role,
                pooled_schema=s.pooled_schema,
                passwords={role: password for role, password in passwords.items() if password is not None},
            )
            report.version = catalog.catalog_version(conn)
            if report.migrations_applied or report.roles_created:
                with conn.transaction():
                    audit.record(
                        conn,
                        actor=self.actor,
                        action="catalog.init",
                        target_type="catalog",
                        target=conn.info.dbname,
                        after=report.to_dict(),
                    )
        report.databases_refreshed = provisioning.refresh_local(self)
        if self.metadata is not None or self.settings.app:
            self.deploy()
        self.plugins.install_flags()
        self.plugins.subscribe_hooks()  # changes made anywhere from now on queue their calls
        return report

    def deploy(self, metadata: sa.MetaData | None = None) -> rls.DeployReport:
        """Create the app's tenant tables in the pooled schema and secure each with RLS."""
        from tenantry.services import app_migrations  # alembic loads only when needed

        metadata = self._metadata(metadata)
        s = self.settings
        with self.admin() as conn:
            catalog.require_catalog(conn)
        if app_migrations.configured(self) and app_migrations.recorded_revision(self, app_migrations.POOLED):
            # versioned tables change only through `tenantry migrate`: creating tables of a
            # newer metadata here would make the pending migration fail
            if app_migrations.migrations_directory(self):
                return rls.DeployReport(schema=s.pooled_schema, created=[], secured=[], dropped_policies=[])
            # only plugins have migrations: the app's tables (and those of plugins without
            # migrations) are unversioned and deployed from the metadata as ever
            metadata = self._unversioned(metadata)
        report = deploy_tables(
            self.admin_url, metadata, schema=s.pooled_schema, owner=s.owner_role, runtime=s.runtime_role
        )
        app_migrations.stamp(self, app_migrations.POOLED)
        with self.admin() as conn, conn.transaction():
            audit.record(
                conn,
                actor=self.actor,
                action="app.deploy",
                target_type="schema",
                target=s.pooled_schema,
                after=report.to_dict(),
            )
        return report

    def _unversioned(self, metadata: sa.MetaData) -> sa.MetaData:
        """``metadata`` without the tables of plugins that ship migrations."""
        versioned: set[str] = set()
        for name in self.plugins.migrations():
            plugin = self.plugins.get(name)
            versioned |= set(getattr(plugin, "metadata", sa.MetaData()).tables)
        if not versioned & set(metadata.tables):
            return metadata
        kept = sa.MetaData()
        for table in metadata.tables.values():
            if table.name not in versioned:
                table.to_metadata(kept)
        return kept

    def _metadata(self, metadata: sa.MetaData | None = None) -> sa.MetaData:
        found = metadata if metadata is not None else self.metadata
        if found is None and self.settings.app:
            found = self.metadata = load_metadata(self.settings.app)
        if found is None:
            raise ConfigurationError("no app metadata: pass Tenantry(metadata=...), or set TENANTRY_APP=module:Base")
        return self.plugins.managed_metadata(found)  # the app's tables and its plugins'

    def unprotected_tables(self) -> list[str]:
        """App tables whose row-level security is off, unforced, missing its exact policy, or
        widened by another permissive policy: in the shared database (``schema.table``, spare
        schemas included) and in every database-tier tenant's (or ready spare's) own database
        (``database:schema.table``)."""
        with self.admin() as conn:
            found = rls.unprotected_tables(conn)
            databases = _own_databases(conn)
        for cell, database in databases:
            url = provisioning.database_url(self.cell_admin_url(cell), database)
            with admin_connection(url, timeout=self.settings.connect_timeout, autocommit=True) as conn:
                found += [f"{database}:{name}" for name in rls.unprotected_tables(conn)]
        return found

    def unscoped_unique_indexes(self) -> list[str]:
        """Unique indexes (of constraints too, partial and expression ones included) and
        exclusion constraints on app tables without ``tenant_id`` among their keys, wherever
        :meth:`unprotected_tables` looks: ``[database:]schema.table.index: definition``. Each
        lets one tenant learn from a duplicate-key error which values another tenant uses."""
        with self.admin() as conn:
            found = [f"{s}.{t}.{i}: {d}" for s, t, i, d in rls.unscoped_unique_indexes(conn)]
            databases = _own_databases(conn)
        for cell, database in databases:
            url = provisioning.database_url(self.cell_admin_url(cell), database)
            with admin_connection(url, timeout=self.settings.connect_timeout, autocommit=True) as conn:
                found += [f"{database}:{s}.{t}.{i}: {d}" for s, t, i, d in rls.unscoped_unique_indexes(conn)]
        return found

    def role_problems(self) -> dict[str, list[str]]:
        """What the runtime and reader roles can do beyond their part, by role (``cell:role``
        on the cells other than ``primary``); empty when nothing. ``tenantry check`` reports
        them: a runtime role that may write the catalog, ``SET ROLE`` to the owner or create in
        a schema; a reader that may read more than the routing views; a database-tier tenant's
        database the runtime role cannot connect to.

        >>> tn.role_problems()   # doctest: +SKIP
        {}
        """
        return role_checks.check_roles(self)

    # -- catalog reads and lifecycle --------------------------------------------------------
    def plans(self) -> list[Plan]:
        with self.admin() as conn:
            return tenant_service.list_plans(conn)

    def plan(self, name: str) -> Plan:
        with self.admin() as conn:
            return tenant_service.get_plan(conn, name)

    def pin_plan(self, name: str, *, cell: str | None = None, labels: dict[str, str] | None = None) -> Plan:
        """Place the plan's new database-tier tenants on ``cell``, or on cells with ``labels``."""
        with self.admin() as conn:
            return tenant_service.pin_plan(conn, name, cell=cell, labels=labels or {}, actor=self.actor)

    def create_tenant(
        self, slug: str, *, name: str | None = None, plan: str = "free", cell: str | None = None
    ) -> Tenant:
        """Create a tenant on ``plan``'s tier and make it active.

        Pooled tenants cost one catalog transaction. Schema- and database-tier tenants claim
        a spare placement built ahead of time when one is ready (:meth:`fill_spares`), also in
        one catalog transaction; otherwise they are built in recorded steps, and if the process
        dies midway, calling this again with the same slug and plan finishes the job. ``cell`` places a database-tier tenant on that server
        (default: the plan's pinned cell, or the fitting cell with the most room).
        """
        with self.admin() as conn:
            catalog.require_catalog(conn)
        tenant = provisioning.provision(self, slug, name=name, plan=plan, cell=cell)
        self._forget(tenant)
        self.plugins._deliver_after_change(tenant.id)
        return tenant

    # -- spares ------------------------------------------------------------------------------
    def fill_spares(
        self,
        count: int | None = None,
        *,
        tier: Isolation | str = Isolation.SCHEMA,
        cell: str | None = None,
        progress: spares_service.FillProgress | None = None,
    ) -> spares_service.SpareReport:
        """Keep ``count`` spare placements of ``tier`` (on ``cell``) ready, built ahead of time
        so that :meth:`create_tenant` claims one instead of running the DDL.

        Schema tier by default, with ``count`` defaulting to :attr:`Settings.spare_schemas`.
        Idempotent and resumable: spares already ready are kept, half-built ones finished,
        stale ones (built for other app tables or another migration head) dropped. Nothing
        calls it for you: run it after each deploy and periodically (``tenantry spares fill``)::

            tn.fill_spares(20)                     # 20 schemas ready on the primary cell
            tn.create_tenant("acme", plan="business")  # claims one: a catalog transaction
        """
        with self.admin() as conn:
            catalog.require_catalog(conn)
        return spares_service.fill(self, count, tier=tier, cell=cell, progress=progress)

    def spares(self, *, tier: Isolation | str | None = None, cell: str | None = None) -> list[spares_service.Spare]:
        """The spare placements (of ``tier``, on ``cell``), oldest first."""
        with self.admin() as conn:
            catalog.require_catalog(conn)
        return spares_service.list_spares(self, tier=tier, cell=cell)

    def drop_spares(
        self, *, tier: Isolation | str | None = None, cell: str | None = None, stale_only: bool = False
    ) -> spares_service.SpareReport:
        """Drop spare placements (of ``tier``, on ``cell``; with ``stale_only``, only those no
        process of this app version would claim): their schemas or databases, and their rows."""
        with self.admin() as conn:
            catalog.require_catalog(conn)
        return spares_service.drop(self, tier=tier, cell=cell, stale_only=stale_only)

    def get_tenant(self, key: str | uuid.UUID) -> Tenant:
        """The tenant as the catalog holds it now (control plane; see :meth:`lookup`)."""
        with self.admin() as conn:
            return tenant_service.get_tenant(conn, key)

    def lookup(self, key: str | uuid.UUID) -> Tenant:
        """The tenant as the request path knows it: from this process's cache (dropped within
        a second of a change anywhere), else read through the routing views. Works in a
        data-plane process, and costs no round trip once warm::

            with tn.tenant("acme") as bound:
                name = tn.lookup(bound.id).name
        """
        return (self._cached(key) or self._lookup(key))[0]

    def lookup_placement(self, key: str | uuid.UUID) -> Placement | None:
        """The tenant's active placement as the request path knows it (see :meth:`lookup`)."""
        return (self._cached(key) or self._lookup(key))[1]

    def placement(self, key: str | uuid.UUID) -> Placement | None:
        """The tenant's active placement (``None`` while it is being built)."""
        with self.admin() as conn:
            tenant = tenant_service.get_tenant(conn, key)
            return provisioning.read_placement(conn, tenant.id)

    def list_tenants(
        self,
        *,
        status: Status | None = None,
        plan: str | None = None,
        include_deleted: bool = False,
        prefix: str | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[Tenant]:
        """Tenants by slug (byte order), optionally only those with ``status``, on ``plan``,
        or whose slug starts with ``prefix``."""
        with self.admin() as conn:
            catalog.require_catalog(conn)
            return tenant_service.list_tenants(
                conn,
                status=status,
                plan=plan,
                include_deleted=include_deleted,
                prefix=prefix,
                limit=limit,
                offset=offset,
            )

    def _set_status(self, key: str | uuid.UUID, status: Status) -> Tenant:
        with self.admin() as conn:
            tenant, changed = tenant_service.transition(
                conn, key, status, actor=self.actor, origin=self.plugins.origin()
            )
            placement = provisioning.read_placement(conn, tenant.id)
        if tenant.status in _FENCED and placement is not None:
            # bindings already open elsewhere are refused from their next statement (also when
            # the status was set already: a rerun finishes a change whose fence was not written)
            fences.fence_placement(self, placement, tenant.epoch, _FENCED[tenant.status])
        self._forget(tenant)
        if changed:
            self.plugins._deliver_after_change(tenant.id)
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
        """Remove every row of the tenant (its schema or database on those tiers) and mark it
        deleted; returns what was removed."""
        tenant = self.get_tenant(key)
        counts = provisioning.deprovision(self, tenant.id)
        self._forget(tenant)
        if tenant.status is not Status.DELETED:
            self.plugins._deliver_after_change(tenant.id)
        return counts

    def move_tenant(
        self,
        key: str | uuid.UUID,
        *,
        plan: str | None = None,
        cell: str | None = None,
        on_step: Callable[[str], None] | None = None,
    ) -> moves.MoveReport:
        """Move a tenant to ``plan``'s tier (and, for the database tier, ``cell``) without
        losing a row; run it again to finish a move that was interrupted."""
        report = moves.move(self, key, plan=plan, cell=cell, on_step=on_step)
        self.plugins._deliver_after_change(self.get_tenant(key).id)
        return report

    def abort_move(self, key: str | uuid.UUID) -> bool:
        """Undo a move that has not flipped yet; ``False`` when there is none."""
        return moves.abort(self, key)

    def audit_log(
        self, *, target_type: str | None = None, target: str | None = None, limit: int = 100
    ) -> list[audit.AuditEntry]:
        with self.admin() as conn:
            return audit.list_entries(conn, target_type=target_type, target=target, limit=limit)

    # -- admin API tokens -------------------------------------------------------------------
    def create_token(
        self, name: str, scopes: list[str] | tuple[str, ...], *, expires_in: timedelta | None = None
    ) -> tuple[token_service.ApiToken, str]:
        """Create an admin API token with ``scopes``; returns its record and its secret, which
        is shown this once (the catalog keeps only its SHA-256)."""
        with self.admin() as conn:
            catalog.require_catalog(conn)
            return token_service.create_token(conn, name, scopes, expires_in=expires_in, actor=self.actor)

    def tokens(self, *, include_revoked: bool = False) -> list[token_service.ApiToken]:
        """The admin API tokens, by name (never their secrets)."""
        with self.admin() as conn:
            catalog.require_catalog(conn)
            return token_service.list_tokens(conn, include_revoked=include_revoked)

    def revoke_token(self, key: str | uuid.UUID) -> token_service.ApiToken:
        """Revoke a token (by name or id) at once; revoking it again is a no-op."""
        with self.admin() as conn:
            return token_service.revoke_token(conn, key, actor=self.actor)

    def authenticate_token(self, presented: str) -> token_service.ApiToken:
        """The live token ``presented`` is; raises :class:`AuthenticationFailed` otherwise."""
        with self.admin() as conn:
            return token_service.authenticate(conn, presented)

    @property
    def branding(self) -> Branding:
        """White-label brands: ``tn.branding.set("acme", {...}, logo=path)``, and for the bound
        tenant ``tn.branding.current()`` (cached, refreshed within a second of a change)."""
        with self._lock:
            if self._branding is None:
                self._branding = Branding(self)
            return self._branding

    # -- tenant context ---------------------------------------------------------------------
    def tenant(self, key: str | uuid.UUID, *, allow_inactive: bool = False) -> TenantScope:
        """Bind a tenant (by slug or id) for a ``with`` or ``async with`` block.

        Only ``active`` tenants may be bound unless ``allow_inactive`` is set (maintenance).
        """
        return TenantScope(self, key, allow_inactive)

    # the cache is keyed by the canonical key (slug, or the id's canonical text), so every
    # spelling of one tenant shares one entry and _forget reaches them all; a key remembered
    # as missing raises TenantNotFound here, as the lookup would
    def _cached(self, key: str | uuid.UUID) -> _Resolved | None:
        # the cache holds canonical keys only, so a key found as given is its own canonical
        # form (the fast path of every request at the edge); other spellings are canonicalised
        hit = self._tenant_cache.get(key) if isinstance(key, str) else None
        if hit is None:
            canonical = str(tenant_service.tenant_key(key))
            hit = self._tenant_cache.get(canonical)
            if hit is None and self._missing_tenants.get(canonical):
                raise TenantNotFound(f"no tenant {str(key)[:70]!r}")
        return hit

    def _lookup(self, key: str | uuid.UUID) -> _Resolved:
        self._listen()
        canonical = str(tenant_service.tenant_key(key))
        # taken before the read: a change whose notice arrives while we read may be newer
        # than what we read, and keeping it would outlive the notice meant to drop it
        ticket, missing = self._tenant_cache.begin(), self._missing_tenants.begin()
        with self.catalog_reader() as conn:
            try:
                tenant = tenant_service.get_tenant(conn, key, source=catalog.ROUTING_SCHEMA)
            except TenantNotFound:
                self._missing_tenants.put(canonical, True, missing)
                raise
            placement = provisioning.read_placement(conn, tenant.id, source=catalog.ROUTING_SCHEMA)
        resolved = (tenant, placement)
        self._tenant_cache.put(canonical, resolved, ticket)
        return resolved

    def _resolve(self, key: str | uuid.UUID, allow_inactive: bool, resolved: _Resolved | None = None) -> BoundTenant:
        resolved = resolved or self._cached(key) or self._lookup(key)
        tenant, placement = resolved
        if tenant.status is Status.DELETED:
            raise TenantNotFound(f"tenant {tenant.slug!r} is deleted")
        if not allow_inactive and not tenant.serves:
            raise TenantNotActive(f"tenant {tenant.slug!r} is {tenant.status.value}, not active")
        if placement is None:
            raise TenantNotActive(f"tenant {tenant.slug!r} has no active placement yet")
        # one BoundTenant per cache entry (the entry is held, so its id is not reused): the
        # binder then finds the bind statement by identity
        same = self._bounds.get(id(resolved))
        if same is not None and same[0] is resolved:
            return same[1]
        bound = BoundTenant(id=tenant.id, slug=tenant.slug, route=placement.route, epoch=tenant.epoch)
        if len(self._bounds) >= self.settings.tenant_cache_size:
            self._bounds.clear()
        self._bounds[id(resolved)] = (resolved, bound)
        return bound

    def _forget(self, tenant: Tenant) -> None:
        self._tenant_cache.drop(tenant.slug, str(tenant.id))
        self._missing_tenants.drop(tenant.slug, str(tenant.id))

    def _forget_tenant(self, tenant_id: uuid.UUID) -> None:
        self._on_catalog_event(EventKind.TENANT, str(tenant_id))

    def _trusted(self) -> bool:
        """Whether the catalog listener is connected now: while it is not, no event would drop
        a stale entry, so no :class:`~tenantry.core.caches.CatalogCache` serves one."""
        listener = self._listener
        return listener is not None and listener.listening.is_set()

    def _subscribe(self, on_event: Callable[[EventKind, str], None], on_reset: Callable[[], None]) -> None:
        """Call ``on_event(kind, key)`` for every catalog event this process hears and
        ``on_reset()`` whenever the listener (re)connects (events may have been missed): for a
        :class:`~tenantry.core.caches.CatalogCache` kept outside this object."""
        self._subscribers.append((on_event, on_reset))

    def _catalog_caches(self) -> list[CatalogCache[Any, Any]]:
        """The catalog caches this object keeps (for their hit and miss counts)."""
        return [self._tenant_cache, self._missing_tenants, self._host_cache, self._missing_hosts, self._cells]

    def _listen(self) -> None:
        """Start the catalog listener once: other processes' changes reach this cache within
        a second (the TTL is only the backstop)."""
        if self._listener is not None:
            return
        with self._lock:
            if self._listener is None:
                reader = self.settings.reader_url
                self._listener = CatalogListener(
                    self.admin_url if reader is None else reader.get_secret_value(),
                    on_event=self._on_catalog_event,
                    on_reset=self._on_catalog_reset,
                )
                self._listener.start()
        if not self.settings.data_plane:  # (hooks write the catalog: a worker's job)
            self.plugins._start_runner()  # calls queued by changes made elsewhere run here

    def _on_catalog_event(self, kind: EventKind, key: str) -> None:
        if kind in (EventKind.TENANT, EventKind.BRAND) and self._branding is not None:
            self._branding._forget(key)
        self._live.on_event(kind, key)
        self.plugins._on_event(kind, key)
        if kind == EventKind.TENANT:
            self._tenant_cache.drop_tagged(key)
            self._missing_tenants.clear()  # the event names an id; a new tenant's slug may be here
        elif kind == EventKind.CELL:
            self._cells.drop(key)
        elif kind == EventKind.DOMAIN:
            self._host_cache.drop(key)
            self._missing_hosts.drop(key)
        for on_event, _ in self._subscribers:
            on_event(kind, key)

    def _on_catalog_reset(self) -> None:
        # the listener (re)connected: servers known to be down may be back, probe them now
        self._admin_pool.suspect()
        if self._reader_pool is not None:
            self._reader_pool.suspect()
        if self._router is not None:
            self._router.wake()
        for cache in (self._tenant_cache, self._missing_tenants, self._host_cache, self._missing_hosts, self._cells):
            cache.clear()
        if self._branding is not None:
            self._branding._clear()
        self._live.on_reset()
        self.plugins._on_reset()
        for _, on_reset in self._subscribers:
            on_reset()

    def _cached_host(self, hostname: str) -> HostRoute | None:
        """What the edge knows of a (normalised) hostname without a query, or ``None``."""
        hit = self._host_cache.get(hostname)
        if hit is None:
            return UNKNOWN_HOST if self._missing_hosts.get(hostname) else None
        return hit

    def _lookup_host(self, hostname: str) -> HostRoute:
        self._listen()
        ticket, missing = self._host_cache.begin(), self._missing_hosts.begin()
        with self.catalog_reader() as conn:
            route = domains_service.lookup_host(conn, hostname)
        if route == UNKNOWN_HOST:  # (either is kept only if no domain event came meanwhile)
            self._missing_hosts.put(hostname, True, missing)
        else:
            self._host_cache.put(hostname, route, ticket)
        return route

    # -- tenant traffic ---------------------------------------------------------------------
    def _get_binder(self) -> Binder:
        with self._lock:
            if self._binder is None:
                with self.catalog_reader() as conn:
                    catalog.require_routing(conn)
                    keys = context_keys(conn, catalog.ROUTING_SCHEMA)
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

    def _judge_runtime(self, row: tuple[Any, ...] | None) -> None:
        problem = runtime_problems(row, self.settings.owner_role)
        if problem is not None:
            self._runtime_problem = UnsafeRuntimeRole(problem)
            raise self._runtime_problem

    def _cell(self, name: str) -> Cell:
        return self._cells.get_or_load(name, lambda: self._read_cell(name))

    def _read_cell(self, name: str) -> Cell:
        with self.admin() as conn:
            return cells_service.get_cell(conn, name)

    def cell_admin_url(self, name: str) -> str:
        """Admin connection string of a cell (the catalog's for ``primary``)."""
        return self._cell(name).admin_url(self.admin_url)

    def _route_url(self, key: RouteKey) -> str:
        cell, database = key
        if cell == PRIMARY_CELL:
            base = self.runtime_url
        elif self.settings.data_plane or cell in self.settings.cell_runtime_urls:
            found = self.settings.cell_runtime_urls.get(cell)
            if found is None:
                raise ConfigurationError(
                    f"no runtime URL for cell {cell!r}: a data-plane process needs one for each cell"
                    " (TENANTRY_CELL_RUNTIME_URLS; `tenantry credentials` prints them)"
                )
            base = found.get_secret_value()
        else:
            base = self._cell(cell).runtime_url(self.runtime_url, self.settings.runtime_role)
        return provisioning.database_url(base, database)

    # -- cells ------------------------------------------------------------------------------
    def cells(self) -> list[Cell]:
        """The servers that hold tenant data, with how many placements each has."""
        with self.admin() as conn:
            catalog.require_catalog(conn)
            return cells_service.list_cells(conn)

    def get_cell(self, name: str) -> Cell:
        with self.admin() as conn:
            return cells_service.get_cell(conn, name)

    def add_cell(self, name: str, dsn: str, *, capacity: int = 1000, labels: dict[str, str] | None = None) -> Cell:
        """Register a PostgreSQL server (admin connection string ``dsn``) as a cell."""
        with self.admin() as conn:
            catalog.require_catalog(conn)
        return cells_service.add_cell(self, name, dsn, capacity=capacity, labels=labels)

    def drain_cell(self, name: str) -> Cell:
        """Stop placing new tenants on a cell (its tenants stay until moved)."""
        return cells_service.set_cell_status(self, name, "draining")

    def undrain_cell(self, name: str) -> Cell:
        """Let a drained cell take new tenants again."""
        return cells_service.set_cell_status(self, name, "active")

    # -- custom domains ---------------------------------------------------------------------
    def add_domain(self, hostname: str, tenant: str | uuid.UUID) -> Domain:
        """Register a custom hostname for a tenant; it routes once :meth:`verify_domain`
        passes. Adding it again to the same tenant returns it unchanged.

        >>> tn.add_domain("Shop.Acme.com", "acme").token   # doctest: +SKIP
        """
        with self.admin() as conn:
            catalog.require_catalog(conn)
        domain = domains_service.add_domain(self, hostname, tenant)
        self._on_catalog_event(EventKind.DOMAIN, domain.hostname)  # this process at once; others by NOTIFY
        return domain

    def verify_domain(self, hostname: str, *, method: str = "http", checker: DomainChecker | None = None) -> Domain:
        """Check a pending domain (``http``: the token at ``/.well-known/tenantry/<token>``,
        ``dns``: a TXT record; or your own ``checker``) and mark it verified, or raise
        :class:`~tenantry.errors.VerificationFailed` saying what to publish."""
        domain = domains_service.verify_domain(self, hostname, method=method, checker=checker)
        self._on_catalog_event(EventKind.DOMAIN, domain.hostname)
        return domain

    def domains(self, tenant: str | uuid.UUID | None = None) -> list[Domain]:
        """Custom domains, of one tenant or of all."""
        with self.admin() as conn:
            catalog.require_catalog(conn)
            owner = None if tenant is None else tenant_service.get_tenant(conn, tenant).id
            return domains_service.list_domains(conn, owner)

    def get_domain(self, hostname: str) -> Domain:
        with self.admin() as conn:
            return domains_service.get_domain(conn, hostname)

    def remove_domain(self, hostname: str) -> Domain | None:
        """Stop serving a custom domain; returns it, or ``None`` when it was not registered."""
        removed = domains_service.remove_domain(self, hostname)
        if removed is not None:
            self._on_catalog_event(EventKind.DOMAIN, removed.hostname)
        return removed

    @property
    def router(self) -> Router:
        """Pools and engines per server and database (checked, bounded, LRU)."""
        with self._lock:
            if self._router is None:
                self._get_binder()
                self._check_runtime()
                self._router = Router(
                    self.settings,
                    url_for=self._route_url,
                    binder=self._get_binder,
                    check_sql=RUNTIME_CHECK_SQL,
                    check_params=runtime_check_params(self.settings.owner_role, self.settings.pooled_schema),
                    judge=self._judge_runtime,
                )
            return self._router

    def _route_key(self) -> RouteKey:
        bound = context.current()
        if bound is None or bound.route is None:
            return DEFAULT_ROUTE
        return bound.route.pool_key

    def _forget_route(self, route: Route) -> None:
        if self._router is not None:
            self._router.forget(route.pool_key)

    def pool(self) -> ConnectionPool[TenantConnection]:
        """The psycopg_pool pool that serves the context's tenant (or no tenant)."""
        return self.router.pool(self._route_key())

    @contextmanager
    def connection(self) -> Iterator[TenantConnection]:
        """A pooled psycopg connection whose transactions are bound to the context's tenant,
        from the pool of the server and database that hold its rows.

        Commits when the block ends, rolls back when it raises.
        """
        pool, conn = self._checkout()
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
            if self._spent(conn):
                conn.close()
            pool.putconn(conn)

    def _checkout(self) -> tuple[ConnectionPool[TenantConnection], TenantConnection]:
        # Another thread may evict (close) the pool between our lookup and the checkout, when
        # more databases are in use at once than max_pools: then the route's new pool serves.
        for _ in range(_CHECKOUT_ATTEMPTS):
            router = self.router
            if self._runtime_problem is not None:
                raise self._runtime_problem
            try:
                return router.checkout(self._route_key())
            except PoolClosed:
                continue
        raise DatabaseUnavailable(_too_busy(self.settings.max_pools))

    def _spent(self, conn: TenantConnection | AsyncTenantConnection) -> bool:
        # a backend keeps a catalog cache entry for every relation it touched: a connection
        # that has served many tenant schemas is closed, and the pool opens a fresh one
        schemas = conn._tenantry_schemas
        return bool(schemas) and len(schemas) > self.settings.schema_recycle_after  # type: ignore[arg-type]

    async def async_pool(self) -> AsyncConnectionPool[AsyncTenantConnection]:
        """The asyncio pool that serves the context's tenant, in the running loop."""
        await asyncio.to_thread(lambda: self.router)
        return await self.router.async_pool(self._route_key())

    @asynccontextmanager
    async def async_connection(self) -> AsyncIterator[AsyncTenantConnection]:
        """Async :meth:`connection`."""
        pool, conn = await self._acheckout()
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
            if self._spent(conn):
                await conn.close()
            await pool.putconn(conn)

    async def _acheckout(self) -> tuple[AsyncConnectionPool[AsyncTenantConnection], AsyncTenantConnection]:
        for _ in range(_CHECKOUT_ATTEMPTS):  # as in _checkout()
            await asyncio.to_thread(lambda: self.router)
            if self._runtime_problem is not None:
                raise self._runtime_problem
            try:
                return await self.router.acheckout(self._route_key())
            except PoolClosed:
                continue
        raise DatabaseUnavailable(_too_busy(self.settings.max_pools))

    def engine(self, **options: Any) -> sa.Engine:
        """The SQLAlchemy engine for the context's tenant: bind it inside ``tn.tenant(...)``.

        Pooled and schema-tier tenants (and no tenant) share one engine; a database-tier
        tenant gets the engine of its own database. The tenant is bound per transaction.
        """
        return self.router.engine(self._route_key(), **options)

    def async_engine(self, **options: Any) -> AsyncEngine:
        """Async :meth:`engine` (``sqlalchemy.ext.asyncio``)."""
        return self.router.async_engine(self._route_key(), **options)

    # -- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close pools, engines and the catalog listener (the embedded server keeps running)."""
        with self._lock:
            if self._listener is not None:
                self._listener.stop()
                self._listener = None
        self.plugins.stop_hooks()
        with self._lock:
            if self._router is not None:
                self._router.close()
                self._router = None
            self._admin_pool.close()
            if self._reader_pool is not None:
                self._reader_pool.close()

    async def aclose(self) -> None:
        """Close the async pools and engines, then everything else."""
        if self._router is not None:
            await self._router.aclose()
        self.close()

    def __enter__(self) -> Tenantry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TenantScope:
    """What ``tn.tenant(...)`` returns: binds the tenant for a ``with`` or ``async with`` block.

    One scope object may be entered by several threads or tasks at once, and nested: each
    entry's binding belongs to the thread or task that made it and ends with its block.
    """

    def __init__(self, tn: Tenantry, key: str | uuid.UUID, allow_inactive: bool) -> None:
        self._tn = tn
        self._key = key
        self._allow_inactive = allow_inactive

    def __enter__(self) -> BoundTenant:
        bound = self._tn._resolve(self._key, self._allow_inactive)
        context.enter(self, bound)
        return bound

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        context.leave(self)

    async def __aenter__(self) -> BoundTenant:
        tenant = self._tn._cached(self._key) or await asyncio.to_thread(self._tn._lookup, self._key)
        bound = self._tn._resolve(self._key, self._allow_inactive, tenant)
        context.enter(self, bound)
        return bound

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        context.leave(self)


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
