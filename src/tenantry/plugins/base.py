"""The plugin base classes: one small class per capability.

A plugin is an object with a ``name``; what it can do is the capability classes it inherits::

    class Audit(LifecycleHooks, ConfigSection, AppTables):
        name = "audit-export"
        config_model = AuditConfig            # ConfigSection: tn.config.current().audit_export
        metadata = AuditBase.metadata         # AppTables: tenant tables in every placement

        def on_tenant_suspended(self, tn, tenant):   # LifecycleHooks
            ...

========================  =========================================================================
``LifecycleHooks``        ``on_tenant_created|suspended|resumed|archived|deleted|moved``, queued
                          with the change (wherever it is made) and called after it commits,
                          at least once, in order per tenant, only for tenants the plugin is
                          enabled for; what a hook raises is contained, recorded and retried
``ConfigSection``         a pydantic model for the section ``<name>`` of every tenant's config
``AppTables``             a SQLAlchemy ``MetaData`` of :class:`~tenantry.TenantScoped` tables,
                          deployed beside the app's in every placement (RLS and all), and
                          optionally ``migrations``: an Alembic branch of its own
``AsgiRoutes``            an ASGI app served at ``/_plugins/<name>/`` to tenants it is enabled for
``FlagProvider``          feature flag definitions (keys ``<name>.*``) created when missing
========================  =========================================================================

Pure: nothing here does I/O. Lifecycle hooks are dispatched by pluggy: an overriding method is
a hook implementation (no decorator needed), and :data:`hookimpl` marks one explicitly when it
needs pluggy's options (``@hookimpl(tryfirst=True)``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy
import sqlalchemy as sa
from pydantic import BaseModel

from tenantry._asgi import ASGIApp
from tenantry.core.hooks import LIFECYCLE_EVENTS
from tenantry.errors import InvalidInput

if TYPE_CHECKING:
    from tenantry.app import Tenantry
    from tenantry.core.model import Tenant
    from tenantry.services.moves import MoveReport

__all__ = [
    "CAPABILITIES",
    "LIFECYCLE_EVENTS",
    "ASGIApp",
    "AppTables",
    "AsgiRoutes",
    "ConfigSection",
    "FlagProvider",
    "LifecycleHooks",
    "Plugin",
    "capabilities_of",
    "check_plugin_name",
    "hookimpl",
    "hookspec",
]

PROJECT = "tenantry"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: a plugin's name: a lowercase label (it names a URL segment, a config section, table prefixes)
PLUGIN_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")


def check_plugin_name(name: object) -> str:
    """``name`` if it can name a plugin, else :class:`InvalidInput` saying what can."""
    if not isinstance(name, str) or not PLUGIN_NAME.fullmatch(name):
        raise InvalidInput(
            f"plugin name {str(name)[:60]!r} must be 1-40 characters: a-z, 0-9 and '-', starting with a letter"
        )
    return name


class Plugin:
    """The base of every plugin: a ``name`` (and, for ``tenantry plugins list``, a
    ``description``). Inherit the capability classes below rather than this one alone."""

    name: str
    """Unique among a Tenantry's plugins; names the plugin in the catalog, the CLI and URLs."""

    description: str = ""

    @property
    def section(self) -> str:
        """The plugin's name as an identifier (``audit-export`` -> ``audit_export``): its
        config section and the prefix of its tables."""
        return self.name.replace("-", "_")


class LifecycleHooks(Plugin):
    """Hooks into tenant lifecycle events. Override the ones you need.

    Each change queues its call in the catalog in the transaction that makes it, whichever
    process makes it (the app, the CLI, the admin API), so no committed change loses its
    call. The call runs after the commit, only if the plugin is enabled for the tenant (then
    and when the call is due), in a process that runs the plugin: the one that made the change
    right away when it runs the plugin, else any app process's hook runner (within
    milliseconds: it is woken by ``NOTIFY``) or ``tenantry plugins hooks run``.

    Delivery is at least once and in order per tenant: a process that dies during a call has
    it taken again by another after a lease, so a hook should be idempotent (the ``tenant``
    and the event name it; ``tn.plugins.hooks()`` lists the calls with their ids). A hook that
    raises is contained (logged, counted in ``tenantry plugins errors``; the operation, the
    other plugins and tenants carry on) and called again after :attr:`hook_backoff` seconds,
    doubled each time, up to :attr:`hook_retries` times; then the call is ``failed`` and held
    for ``tenantry plugins hooks retry``. The tenant's later calls to this plugin wait for an
    earlier one that is being retried.
    """

    hook_retries: int = 5
    """How many times a call that raised is made again before it is marked ``failed``."""

    hook_backoff: float = 10.0
    """Seconds before the first retry; each further retry waits twice as long (at most an hour)."""

    def on_tenant_created(self, tn: Tenantry, tenant: Tenant) -> None:
        """The tenant was created and is active."""

    def on_tenant_suspended(self, tn: Tenantry, tenant: Tenant) -> None:
        """The tenant was suspended."""

    def on_tenant_resumed(self, tn: Tenantry, tenant: Tenant) -> None:
        """The tenant serves again (from suspended or archived)."""

    def on_tenant_archived(self, tn: Tenantry, tenant: Tenant) -> None:
        """The tenant was archived."""

    def on_tenant_deleted(self, tn: Tenantry, tenant: Tenant) -> None:
        """The tenant's data is gone (``tenant`` is as it was just before)."""

    def on_tenant_moved(self, tn: Tenantry, tenant: Tenant, report: MoveReport) -> None:
        """The tenant was moved (its rows, this plugin's tables' included, went with it)."""


class ConfigSection(Plugin):
    """A section of every tenant's config, named after the plugin (``audit-export`` ->
    ``audit_export``), validated by ``config_model`` on every write. Give every field a
    default: the section exists for tenants that never set it."""

    config_model: type[BaseModel]

    def config(self, tn: Tenantry) -> Any:
        """The bound tenant's section (from the per-process cache)."""
        return getattr(tn.config.current(), self.section)


class AppTables(Plugin):
    """Tenant-scoped tables of the plugin's own, deployed with the app's into every
    placement (pooled tables, each schema, each database) and moved with the tenant.

    Every table must be :class:`~tenantry.TenantScoped` and named ``<section>_...``
    (``audit_export_runs``); foreign keys stay within the plugin's tables.

    ``migrations``, optional, is a directory of Alembic revision files that own the tables::

        class Audit(AppTables):
            name = "audit-export"
            metadata = AuditBase.metadata                          # the head of the chain
            migrations = Path(__file__).parent / "migrations"      # its revisions

    Its revisions are one branch labelled with the plugin's section: the base revision has
    ``down_revision = None`` and ``branch_labels = ("audit_export",)``, and every revision
    depends only on revisions of the directory (not on the app's: a plugin serves any app).
    ``tenantry migrate`` runs the branch beside the app's migrations in every placement (from
    its base where the plugin is new), secures the new tables with RLS and records every head;
    new placements are built from ``metadata``, so it must describe the branch's head.
    Without ``migrations`` the tables are created from ``metadata`` (``tenantry plugins
    deploy`` for placements that predate the plugin). Checked at registration: the directory
    exists, its revisions load and form one chain with one head, the base carries the label.
    """

    metadata: sa.MetaData
    migrations: str | os.PathLike[str] | None = None
    """A directory of Alembic revisions owning the tables (see above); ``None``: none."""


class AsgiRoutes(Plugin):
    """An ASGI app served at ``/_plugins/<name>/`` (see :class:`~tenantry.plugins.PluginRoutes`)
    for the bound tenant, only when the plugin is enabled for it."""

    def asgi_app(self, tn: Tenantry) -> ASGIApp:
        """The ASGI app (called once per :class:`PluginRoutes`). ``scope["root_path"]`` ends
        with ``/_plugins/<name>``; ``scope["path"]`` is the full path."""
        raise NotImplementedError


class FlagProvider(Plugin):
    """Feature flags the plugin reads: definitions (as :class:`~tenantry.FlagSpec` takes
    them) that ``tn.init()`` creates when missing. Keys start with ``<name>.``; a flag the
    operator changed is never overwritten."""

    def flag_definitions(self) -> Sequence[Mapping[str, Any]]:
        return ()


def capabilities_of(plugin: object) -> tuple[str, ...]:
    """The capability classes ``plugin`` inherits, by name."""
    found = []
    for name, kind in CAPABILITIES.items():
        if isinstance(plugin, kind):
            found.append(name)
    return tuple(found)


CAPABILITIES: dict[str, type[Plugin]] = {
    "lifecycle": LifecycleHooks,
    "config": ConfigSection,
    "tables": AppTables,
    "routes": AsgiRoutes,
    "flags": FlagProvider,
}


def hook_names() -> tuple[str, ...]:
    return tuple(f"on_tenant_{event}" for event in LIFECYCLE_EVENTS)


class HookSpecs:
    """The lifecycle hooks as pluggy specifications (argument names are the contract)."""

    @hookspec
    def on_tenant_created(self, tn: Tenantry, tenant: Tenant) -> None: ...

    @hookspec
    def on_tenant_suspended(self, tn: Tenantry, tenant: Tenant) -> None: ...

    @hookspec
    def on_tenant_resumed(self, tn: Tenantry, tenant: Tenant) -> None: ...

    @hookspec
    def on_tenant_archived(self, tn: Tenantry, tenant: Tenant) -> None: ...

    @hookspec
    def on_tenant_deleted(self, tn: Tenantry, tenant: Tenant) -> None: ...

    @hookspec
    def on_tenant_moved(self, tn: Tenantry, tenant: Tenant, report: MoveReport) -> None: ...
