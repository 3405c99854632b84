"""``Tenantry``: the composition root that wires the services together and serves tenant traffic.

Build one per process and hand it to the app, the CLI and the tests alike::

    tn = Tenantry(Settings.from_env(), metadata=Base.metadata)
    tn.schema.init()                           # roles, catalog, the app's tables with RLS
    tn.tenants.create("acme")
    with tn.tenant("acme"), Session(tn.engine()) as session:
        session.add(Project(name="Launch"))   # tenant_id comes from the context
        session.commit()

It keeps the data plane (:meth:`Tenantry.tenant`, :meth:`Tenantry.connection`,
:meth:`Tenantry.engine` and their async twins), the process's lifetime and who changes are
audited as. Each control-plane area is a service object with the same verbs: ``tn.tenants``,
``tn.plans``, ``tn.cells``, ``tn.domains``, ``tn.spares``, ``tn.tokens``, ``tn.audit``,
``tn.schema``, ``tn.plugins``, ``tn.branding``, ``tn.usage``; each takes the narrow
:class:`~tenantry.services.plane.ControlPlane` (``tn.plane``), never this object.
Nothing connects until it is needed: constructing a ``Tenantry`` does no I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import getpass
import uuid
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import psycopg
import sqlalchemy as sa
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry import context
from tenantry.appspec import find_config_model
from tenantry.branding.service import Branding
from tenantry.context import BoundTenant
from tenantry.core.secrets import Keyring
from tenantry.db.binding import RouteKey
from tenantry.db.connections import AsyncTenantConnection, TenantConnection
from tenantry.db.routing import DEFAULT_ROUTE, Router
from tenantry.errors import ConfigurationError
from tenantry.plugins.registry import Plugins
from tenantry.services.audit import AuditService
from tenantry.services.backups import BackupService
from tenantry.services.cells import CellService
from tenantry.services.connections import Plane
from tenantry.services.directory import Directory
from tenantry.services.domains import DomainService
from tenantry.services.lifecycle import PlanService, TenantService
from tenantry.services.schema import SchemaService
from tenantry.services.spares import SpareService
from tenantry.services.tokens import TokenService
from tenantry.services.usage import UsageService
from tenantry.settings import Settings
from tenantry.tenant_config import ConfigSections, Flags, Live, TenantConfig

if TYPE_CHECKING:
    from tenantry.plugins.base import Plugin

__all__ = ["TenantScope", "Tenantry"]


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
        #: connections, catalog events and shared facts: what every service is given
        self.plane = Plane(self.settings, metadata=metadata, actor=actor or f"{getpass.getuser()}@python")
        #: what the request path knows of tenants and hostnames (cached)
        self.directory = Directory(self.plane)
        self.tenants = TenantService(self.plane, self.directory)
        self.plans = PlanService(self.plane)
        self.cells = CellService(self.plane)
        self.domains = DomainService(self.plane)
        self.spares = SpareService(self.plane)
        self.tokens = TokenService(self.plane)
        self.audit = AuditService(self.plane)
        self.schema = SchemaService(self.plane)
        #: storage per tenant and its quota, usage metering: ``tn.usage.measure_storage()``
        self.usage = UsageService(self.plane, self.plane.meter)
        #: per-tenant backups and restores: ``tn.backups.create("acme")``
        self.backups = BackupService(self.plane)
        #: white-label brands: ``tn.branding.set("acme", {...}, logo=path)``, and for the bound
        #: tenant ``tn.branding.current()`` (cached, refreshed within a second of a change)
        self.branding = Branding(self.plane)

        #: the per-process cache of config and flags (its schema: the app's model and the
        #: sections plugins add)
        self._live = Live(
            self.plane,
            ConfigSections(config, loader=lambda: find_config_model(self.settings.config, self.settings.app)),
            trusted=self.plane.trusted,
            listen=self.plane.listen,
            lookup=lambda slug: self.directory.resolved(slug)[0].id,
        )
        self.plane.subscribe(self._live.on_event, self._live.on_reset)
        # (attributes, not properties: ``tn.flags.enabled`` is on the request path, and a
        # property would add about 40 ns to a 0.3 µs read)
        #: per-tenant config: ``tn.config.set("limits.max_projects", 50, tenant="acme")``, and for
        #: the bound tenant ``tn.config.current(AppConfig)`` (cached, fresh within a second)
        self.config = TenantConfig(self.plane, self._live)
        #: feature flags: ``tn.flags.create({"key": "new-editor"})``, and for the bound tenant
        #: ``tn.flags.enabled("new-editor")`` (cached, fresh within a second)
        self.flags = Flags(self.plane, self._live)

        #: the plugins this object runs, their settings per plan and tenant, their hooks
        self.plugins = Plugins(self.plane, app=self, config_sections=self._live.sections, directory=self.directory)
        self.plane.attach(self.plugins)  # its hooks run after each change; its tables are the app's
        self.plugins.load_configured(self.settings.plugins, explicit=[self.plugins.instance(p) for p in plugins or ()])

    # -- who changes are audited as, and the plumbing services share ------------------------
    @property
    def actor(self) -> str:
        """Who control-plane changes are audited as: the actor bound by :meth:`acting_as` in
        this thread or task, else the one this object was built with."""
        return self.plane.actor

    @actor.setter
    def actor(self, value: str) -> None:
        self.plane.actor = value

    def acting_as(self, actor: str) -> contextlib.AbstractContextManager[str]:
        """Audit the changes made in this ``with`` block (in this thread or asyncio task only)
        as ``actor``; concurrent requests of a server each keep their own::

            with tn.acting_as("token:ci"):
                tn.tenants.suspend("acme")   # audited as token:ci
        """
        return self.plane.acting_as(actor)

    @property
    def metadata(self) -> sa.MetaData | None:
        """The app's metadata of tenant-scoped tables, as given (or loaded from ``Settings.app``)."""
        return self.plane.metadata

    @metadata.setter
    def metadata(self, value: sa.MetaData | None) -> None:
        self.plane.metadata = value

    @property
    def admin_url(self) -> str:
        """The admin connection string; starts the embedded server when none is configured.
        A data-plane process (:attr:`Settings.data_plane`) has none:
        :class:`~tenantry.errors.ControlPlaneOnly`."""
        return self.plane.admin_url

    @property
    def runtime_url(self) -> str:
        """The connection string of the runtime role."""
        return self.plane.runtime_url

    def secret_keyring(self) -> Keyring | None:
        """The keys that seal secret config values (:mod:`tenantry.core.secrets`)."""
        return self.plane.secret_keyring()

    def data_plane_settings(self) -> Settings:
        """These settings as a data-plane process needs them: the runtime and reader URLs
        (with the passwords ``tenantry init`` gave the roles), the other cells' runtime URLs,
        and no admin URL. What ``tenantry credentials`` prints, as environment variables."""
        return self.plane.data_plane_settings()

    def admin(self) -> contextlib.AbstractContextManager[psycopg.Connection[Any]]:
        """An autocommit admin connection (control-plane work opens its own transactions).
        The first one is opened directly, so an unreachable server fails at once with a clear
        error; after that, they come from a small pool."""
        return self.plane.admin()

    def catalog_reader(self) -> contextlib.AbstractContextManager[psycopg.Connection[Any]]:
        """An autocommit connection for the request path's catalog reads (the routing views):
        as the reader role when ``Settings.reader_url`` is set, else the admin connection."""
        return self.plane.catalog_reader()

    # -- tenant traffic -------------------------------------------------------------------------
    def tenant(self, key: str | uuid.UUID, *, allow_inactive: bool = False) -> TenantScope:
        """Bind a tenant (by slug or id) for a ``with`` or ``async with`` block.

        Only ``active`` tenants may be bound unless ``allow_inactive`` is set (maintenance).
        """
        return TenantScope(self.directory, key, allow_inactive)

    @property
    def router(self) -> Router:
        """Pools and engines per server and database (checked, bounded, LRU)."""
        return self.plane.router

    def _route_key(self) -> RouteKey:
        bound = context.current()
        if bound is None or bound.route is None:
            return DEFAULT_ROUTE
        return bound.route.pool_key

    def pool(self) -> ConnectionPool[TenantConnection]:
        """The psycopg_pool pool that serves the context's tenant (or no tenant)."""
        return self.router.pool(self._route_key())

    def connection(self) -> contextlib.AbstractContextManager[TenantConnection]:
        """A pooled psycopg connection whose transactions are bound to the context's tenant,
        from the pool of the server and database that hold its rows.

        Commits when the block ends, rolls back when it raises.
        """
        return self.plane.connection(self._route_key())

    async def async_pool(self) -> AsyncConnectionPool[AsyncTenantConnection]:
        """The asyncio pool that serves the context's tenant, in the running loop."""
        await asyncio.to_thread(lambda: self.router)
        return await self.router.async_pool(self._route_key())

    def async_connection(self) -> contextlib.AbstractAsyncContextManager[AsyncTenantConnection]:
        """Async :meth:`connection`."""
        return self.plane.async_connection(self._route_key())

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
        self.usage.close()  # (flushes what this process counted, while the catalog is reachable)
        self.plane.stop_listening()
        self.plugins.stop_hooks()
        self.plane.close()

    async def aclose(self) -> None:
        """Close the async pools and engines, then everything else."""
        await self.plane.aclose()
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

    def __init__(self, directory: Directory, key: str | uuid.UUID, allow_inactive: bool) -> None:
        self._directory = directory
        self._key = key
        self._allow_inactive = allow_inactive

    def __enter__(self) -> BoundTenant:
        bound = self._directory.bind(self._key, allow_inactive=self._allow_inactive)
        context.enter(self, bound)
        return bound

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        context.leave(self)

    async def __aenter__(self) -> BoundTenant:
        directory = self._directory
        resolved = directory.cached(self._key)
        if resolved is None:
            resolved = await asyncio.to_thread(directory.load, self._key)
        # no I/O on the event loop: if an event dropped the plan's settings since, in a thread
        bound = directory.bind_cached(self._key, allow_inactive=self._allow_inactive, resolved=resolved)
        if bound is None:
            bound = await asyncio.to_thread(
                functools.partial(directory.bind, self._key, allow_inactive=self._allow_inactive, resolved=resolved)
            )
        context.enter(self, bound)
        return bound

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        context.leave(self)
