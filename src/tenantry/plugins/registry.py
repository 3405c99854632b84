"""``tn.plugins``: the registry of one Tenantry's plugins, their settings and their hooks.

Plugins are registered explicitly (``Tenantry(plugins=[Webhooks()])``, ``tn.plugins.register``)
or by name from ``TENANTRY_PLUGINS``; installed ones are also *discovered* through the
``tenantry.plugins`` entry point, so the CLI can list them and switch them on without loading
the app. Registering validates everything a plugin declares before anything changes.

Lifecycle hooks go through pluggy: a :class:`pluggy.PluginManager` holds the hook
specifications (:class:`~tenantry.plugins.base.HookSpecs`), validates each implementation's
arguments at registration and orders the implementations (``tryfirst``/``trylast``). The
registry then calls each implementation itself rather than through the hook caller, because
two things pluggy's call loop cannot do are required: skip the plugins that are switched off
for the tenant, and contain each plugin's exception so that the others still run.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy
import sqlalchemy as sa
from pydantic import BaseModel

from tenantry import context
from tenantry.core.events import EventKind
from tenantry.db import catalog, rls
from tenantry.db.catalog import hooks as plugin_hooks
from tenantry.db.catalog import plugins as service
from tenantry.errors import (
    CatalogNotInitialised,
    ConfigInvalid,
    ConfigurationError,
    FlagExists,
    InvalidInput,
    TenantryError,
)
from tenantry.plugins import tables
from tenantry.plugins.base import (
    PROJECT,
    AppTables,
    AsgiRoutes,
    ConfigSection,
    FlagProvider,
    HookSpecs,
    LifecycleHooks,
    Plugin,
    capabilities_of,
    check_plugin_name,
)
from tenantry.plugins.discovery import discover, load_spec
from tenantry.plugins.enablement import EnablementCache
from tenantry.plugins.hook_queue import HookQueue
from tenantry.plugins.hooks import HookDelivery, HookManager, HookRunner
from tenantry.services import plugins as plugin_settings
from tenantry.tenant_config import evaluation as flags_core

if TYPE_CHECKING:
    from tenantry.services.directory import Directory
    from tenantry.services.plane import ControlPlane
    from tenantry.tenant_config import ConfigSections

__all__ = ["PluginInfo", "Plugins"]

_log = logging.getLogger("tenantry.plugins")

#: statuses of tenants whose placements hold data a plugin may work on
LIVE_STATUSES = ("active", "suspended", "archived")


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """A plugin as ``tenantry plugins list`` shows it."""

    name: str
    source: str
    """``explicit``, ``TENANTRY_PLUGINS``, or the distribution whose entry point names it."""
    registered: bool
    """Whether it runs in this process (registered with this Tenantry)."""
    capabilities: tuple[str, ...] = ()
    description: str = ""
    error: str | None = None
    """Why an installed plugin could not be loaded to be described."""
    settings: list[service.Enablement] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "registered": self.registered,
            "capabilities": list(self.capabilities),
            "description": self.description,
            "error": self.error,
            "enabled_for": [s.to_dict() for s in self.settings],
        }


class Plugins(HookQueue):
    """The plugins of one :class:`~tenantry.Tenantry` (``tn.plugins``).

    ::

        tn = Tenantry(settings, metadata=Base.metadata, plugins=[Webhooks()])
        tn.plugins.enable("webhooks", plan="enterprise")     # audited, every process within 1 s
        with tn.tenant("initech"):
            if tn.plugins.is_enabled("webhooks"):            # cached: no query once warm
                ...
    """

    def __init__(self, plane: ControlPlane, *, app: Any, config_sections: ConfigSections, directory: Directory) -> None:
        self._plane = plane
        #: the :class:`~tenantry.Tenantry` hooks and routes are given (``tn``)
        self.app = app
        self._config_sections = config_sections
        self._directory = directory
        self._lock = threading.RLock()
        self._plugins: dict[str, Plugin] = {}
        self._sources: dict[str, str] = {}
        self._manager = HookManager(PROJECT)
        self._manager.add_hookspecs(HookSpecs)
        self._cache = EnablementCache(plane)
        plane.subscribe(self._on_event, self._on_reset)
        self._merged: tuple[tuple[Any, ...], sa.MetaData] | None = None
        self._delivery = HookDelivery(self, self._manager)
        self._runner: HookRunner | None = None
        self._chains: dict[str, tuple[str, tuple[str, ...]]] = {}  # name -> (directory, revision ids)

    # -- registration -------------------------------------------------------------------------
    def register(self, plugin: Plugin | type[Plugin] | str, *, source: str = "explicit") -> Plugin:
        """Register a plugin object (a class is built with no arguments; a string is an
        installed plugin's name or ``module:attr``). Everything it declares is checked first
        (:class:`ConfigurationError` naming the problem, nothing registered); registering the
        same object again is a no-op."""
        if isinstance(plugin, str) and source == "settings":
            source = "TENANTRY_PLUGINS"
        found = self.instance(plugin)
        with self._lock:
            name = getattr(found, "name", None)
            try:
                check_plugin_name(name)
            except InvalidInput as err:
                raise ConfigurationError(f"{type(found).__name__}: {err.message}") from None
            assert isinstance(name, str)
            existing = self._plugins.get(name)
            if existing is found:
                return found
            if existing is not None:
                raise ConfigurationError(f"a plugin named {name!r} is registered already ({type(existing).__name__})")
            chain = self._check(found)
            if isinstance(found, LifecycleHooks):
                try:
                    self._manager.register(found, name=name)
                except pluggy.PluginValidationError as err:
                    raise ConfigurationError(f"plugin {name!r}: {err}") from err
            if isinstance(found, ConfigSection):
                try:
                    self._config_sections.add(found.section, found.config_model)
                except ConfigurationError:
                    if isinstance(found, LifecycleHooks):
                        self._manager.unregister(name=name)
                    raise
            self._plugins[name] = found
            self._sources[name] = source
            if chain is not None:
                self._chains[name] = chain
        return found

    @staticmethod
    def instance(plugin: Plugin | type[Plugin] | str) -> Plugin:
        """The plugin object ``plugin`` stands for (a class built with no arguments, a string
        loaded as an installed plugin's name or ``module:attr``); nothing is registered."""
        if isinstance(plugin, str):
            found: Any = load_spec(plugin)
        elif isinstance(plugin, type):
            found = plugin()
        else:
            found = plugin
        if not isinstance(found, Plugin):
            raise ConfigurationError(f"{found!r} is not a tenantry plugin (a tenantry.plugins.Plugin)")
        return found

    def _check(self, plugin: Plugin) -> tuple[str, tuple[str, ...]] | None:
        chain = None
        if isinstance(plugin, ConfigSection):
            model = getattr(plugin, "config_model", None)
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise ConfigurationError(
                    f"plugin {plugin.name!r} has a ConfigSection but its config_model is {model!r}"
                )
        if isinstance(plugin, AppTables):
            tables.check_tables(plugin)
            for other in self._plugins.values():
                if isinstance(other, AppTables):
                    clash = set(other.metadata.tables) & set(plugin.metadata.tables)
                    if clash:
                        raise ConfigurationError(
                            f"plugin {plugin.name!r}'s tables {sorted(clash)} are {other.name!r}'s"
                        )
            chain = tables.check_migrations(plugin)
            if chain is not None:
                for other_name, (_directory, revisions) in self._chains.items():
                    same = set(revisions) & set(chain[1])
                    if same:
                        raise ConfigurationError(
                            f"plugin {plugin.name!r}'s revision(s) {sorted(same)} are {other_name!r}'s too;"
                            " revision ids must be unique"
                        )
        if isinstance(plugin, AsgiRoutes) and type(plugin).asgi_app is AsgiRoutes.asgi_app:
            raise ConfigurationError(f"plugin {plugin.name!r} has AsgiRoutes but does not define asgi_app()")
        if isinstance(plugin, FlagProvider):
            for definition in plugin.flag_definitions():
                try:
                    spec = flags_core.parse_spec(definition)
                except (ConfigInvalid, InvalidInput) as err:
                    raise ConfigurationError(f"plugin {plugin.name!r} declares a bad flag: {err.message}") from err
                if not spec.key.startswith(plugin.name + "."):
                    raise ConfigurationError(
                        f"plugin {plugin.name!r}'s flag {spec.key!r} must be named {plugin.name}.<...>"
                    )
        return chain

    def __contains__(self, name: object) -> bool:
        return name in self._plugins

    def __iter__(self) -> Iterator[Plugin]:
        return iter(list(self._plugins.values()))

    def __len__(self) -> int:
        return len(self._plugins)

    def get(self, name: str) -> Plugin | None:
        """The registered plugin called ``name``, or ``None``."""
        return self._plugins.get(name)

    def names(self) -> builtins.list[str]:
        """The registered plugins' names."""
        return sorted(self._plugins)

    def known(self) -> set[str]:
        """Plugins known without the catalog: registered here, or installed (entry points)."""
        return set(self._plugins) | set(discover())

    def list(self, *, installed: bool = True) -> builtins.list[PluginInfo]:
        """The registered plugins and (with ``installed``) the installed ones, each with
        where it comes from, its capabilities and the plans and tenants it is set for.
        Installed plugins are imported to be described; one that fails says why."""
        with self._plane.admin() as conn:
            catalog.require_catalog(conn)
            settings = service.list_enablement(conn)
        by_plugin: dict[str, builtins.list[service.Enablement]] = {}
        for setting in settings:
            by_plugin.setdefault(setting.plugin, []).append(setting)
        found: dict[str, PluginInfo] = {}
        for name, plugin in self._plugins.items():
            found[name] = PluginInfo(
                name,
                self._sources[name],
                True,
                capabilities_of(plugin),
                plugin.description,
                None,
                by_plugin.get(name, []),
            )
        for name, point in (discover() if installed else {}).items():
            if name in found:
                found[name] = PluginInfo(**{**_fields(found[name]), "source": f"{found[name].source}; {point.source}"})
                continue
            try:
                loaded = point.load()
                info = PluginInfo(
                    name, point.source, False, capabilities_of(loaded), getattr(loaded, "description", "")
                )
            except TenantryError as err:
                info = PluginInfo(name, point.source, False, error=err.message)
            found[name] = PluginInfo(**{**_fields(info), "settings": by_plugin.get(name, [])})
        for name, rows in by_plugin.items():  # set in the catalog, but neither here nor installed
            if name not in found:
                found[name] = PluginInfo(name, "unknown (not installed here)", False, settings=rows)
        return [found[name] for name in sorted(found)]

    # -- settings -----------------------------------------------------------------------------
    def enable(
        self, name: str, *, tenant: str | uuid.UUID | None = None, plan: str | None = None
    ) -> service.EnablementChange:
        """Switch ``name`` on for a tenant or for every tenant of a plan. The plugin must be
        registered or installed here, or run by a process of the app (subscribed to lifecycle
        events), else :class:`PluginNotFound`; audited; every process sees it
        within a second."""
        return self._set(name, True, tenant, plan)

    def disable(
        self, name: str, *, tenant: str | uuid.UUID | None = None, plan: str | None = None
    ) -> service.EnablementChange:
        """Switch ``name`` off for a tenant (even when its plan has it on) or a plan."""
        return self._set(name, False, tenant, plan)

    def reset(
        self, name: str, *, tenant: str | uuid.UUID | None = None, plan: str | None = None
    ) -> service.EnablementChange:
        """Remove the tenant's (or plan's) own setting: the plan's (or the default, off)
        applies again."""
        return self._set(name, None, tenant, plan)

    def _set(
        self, name: str, enabled: bool | None, tenant: str | uuid.UUID | None, plan: str | None
    ) -> service.EnablementChange:
        known: set[str] = set()
        with self._plane.admin() as conn:
            catalog.require_catalog(conn)
            if enabled is not None:  # may be switched on: known here, or run by a process of the app
                known = self.known() | plugin_hooks.subscribed(conn)
        change = plugin_settings.set_enabled(self._plane, name, enabled, known=known, tenant=tenant, plan=plan)
        if change.changed:  # this process at once; the others by NOTIFY
            self._cache.on_event(EventKind.PLUGIN, f"{change.scope.kind}:{change.scope.key}")
        return change

    def settings(self, name: str | None = None) -> builtins.list[service.Enablement]:
        """The plans and tenants ``name`` (or every plugin) is switched on or off for."""
        with self._plane.admin() as conn:
            catalog.require_catalog(conn)
            return service.list_enablement(conn, name)

    def resolve(self, name: str, *, tenant: str | uuid.UUID | None = None) -> service.Resolution:
        """Whether ``name`` is switched on for the tenant (bound, or given) and by which
        setting (``tenant``, ``plan`` or ``default``), from the catalog."""
        check_plugin_name(name)
        return self._cache.load(self._tenant_id(tenant), keep=False).resolution(name)

    def resolve_all(self, *, tenant: str | uuid.UUID | None = None) -> dict[str, service.Resolution]:
        """Every plugin known here (registered or installed) or with a setting that reaches
        the tenant (bound, or given), by name: whether it is on for the tenant and by which
        setting, read from the catalog in one query."""
        entry = self._cache.load(self._tenant_id(tenant), keep=False)
        return {name: entry.resolution(name) for name in sorted(self.known() | set(entry.resolved))}

    def enabled_for(self, tenant: str | uuid.UUID | None = None) -> builtins.list[str]:
        """Names of the plugins switched on for the tenant (bound, or given), whether or not
        they are registered in this process."""
        return sorted(self._cache.get(self._tenant_id(tenant)).enabled)

    def is_enabled(self, name: str, *, tenant: str | uuid.UUID | None = None) -> bool:
        """Whether plugin ``name`` runs for the tenant (bound, or given): registered here and
        switched on for it. From the per-process cache once warm."""
        if name not in self._plugins:
            return False
        tenant_id = self._tenant_id(tenant)
        entry = self._cache.get(tenant_id)
        return entry.tenant_id == tenant_id and name in entry.enabled

    async def ais_enabled(self, name: str) -> bool:
        """:meth:`is_enabled` for the bound tenant from async code: a cold cache is loaded in
        a worker thread, off the event loop."""
        if name not in self._plugins:
            return False
        tenant_id = context.require().id
        entry = self._cache.fresh(tenant_id)
        if entry is None:
            entry = await asyncio.to_thread(self._cache.load, tenant_id)
        return entry.tenant_id == tenant_id and name in entry.enabled

    def tenants(self, name: str) -> builtins.list[tuple[uuid.UUID, str]]:
        """``(id, slug)`` of the live (active, suspended or archived) tenants ``name`` is
        switched on for: what a plugin's background work visits."""
        check_plugin_name(name)
        with self._plane.admin() as conn:
            return service.enabled_tenants(conn, name, statuses=LIVE_STATUSES)

    def _tenant_id(self, tenant: str | uuid.UUID | None) -> uuid.UUID:
        if tenant is None:
            return context.require().id
        if isinstance(tenant, uuid.UUID):
            return tenant
        return self._directory.resolved(tenant)[0].id

    def after_init(self) -> None:
        """What ``tn.schema.init()`` does for the plugins: create their flags, and subscribe
        their hooks, so that changes made anywhere from now on queue their calls."""
        self.install_flags()
        self.subscribe_hooks()

    def versioned_tables(self) -> set[str]:
        """The tables of the registered plugins that ship migrations of their own."""
        versioned: set[str] = set()
        for name in self.migrations():
            versioned |= set(getattr(self.get(name), "metadata", sa.MetaData()).tables)
        return versioned

    def _of(self, kind: type[Any]) -> builtins.list[Any]:
        return [p for p in self._plugins.values() if isinstance(p, kind)]

    def install_flags(self) -> builtins.list[str]:
        """Create the flags plugins declare that do not exist yet; returns their keys. A flag
        that exists (perhaps changed by an operator) is left as it is."""
        created: builtins.list[str] = []
        for plugin in self._of(FlagProvider):
            for definition in plugin.flag_definitions():
                key = str(definition.get("key"))
                try:
                    self.app.flags.get(key)
                except TenantryError:
                    try:
                        self.app.flags.create(definition)
                    except FlagExists:
                        continue  # created meanwhile
                    created.append(key)
        return created

    def deploy(self) -> builtins.list[dict[str, Any]]:
        """Create the tables of the registered plugins without migrations of their own in
        every placement that lacks them (the pooled schema, every active schema- and
        database-tier tenant). Idempotent. Plugins with migrations (:meth:`migrations`) are
        left to ``tenantry migrate``."""
        return tables.deploy_everywhere(self._plane, [p for p in self._of(AppTables) if p.name not in self._chains])

    def migrations(self) -> dict[str, str]:
        """The registered plugins that ship migrations (``AppTables.migrations``), by name:
        their revision directories, resolved."""
        with self._lock:
            return {name: self._chains[name][0] for name in sorted(self._chains)}

    def managed_metadata(self, app: sa.MetaData) -> sa.MetaData:
        """The tables tenantry manages: the app's and the registered plugins' (a cached
        copy; ``app`` itself when no plugin has tables)."""
        owners = self._of(AppTables)
        if not owners:
            return app
        key = (app, tuple(app.tables), tuple((p, p.metadata, tuple(p.metadata.tables)) for p in owners))
        with self._lock:
            cached = self._merged
            if cached is not None and cached[0] == key:
                return cached[1]
            merged = tables.merged_metadata(app, owners)
            self._merged = (key, merged)
            return merged

    def routes(self) -> dict[str, AsgiRoutes]:
        """The registered plugins that serve routes, by name."""
        return {p.name: p for p in self._of(AsgiRoutes)}

    # -- cache events -------------------------------------------------------------------------
    def _on_event(self, kind: EventKind, key: str) -> None:  # (subscribed to the plane)
        if kind in (EventKind.PLUGIN, EventKind.TENANT):
            self._cache.on_event(kind, key)
        elif kind == EventKind.HOOK and key in self._plugins and self._runner is not None:
            self._runner.wake()

    def _on_reset(self) -> None:
        self._cache.on_reset()
        if self._runner is not None:  # notices may have been missed
            self._runner.wake()

    def load_deployed(self) -> builtins.list[str]:
        """Register the installed plugins the app runs, as the catalog shows it: those whose
        tables the shared tables hold (the app deployed them) and those switched on for a plan
        or a tenant, unless one of the name is registered; returns their names. What a CLI
        does when ``TENANTRY_PLUGINS`` is unset, so that it builds, moves and checks placements
        with the same tables as the app, and reads and writes the same config sections.
        Nothing when the catalog is not there yet."""
        try:
            with self._plane.admin() as conn:
                catalog.require_catalog(conn)
                deployed = set(rls.registered_tables(conn, self._plane.settings.pooled_schema))
                switched_on = {e.plugin for e in service.list_enablement(conn) if e.enabled}
        except CatalogNotInitialised:
            return []
        loaded: builtins.list[str] = []
        for name, point in discover().items():
            if name in self._plugins:
                continue
            found = point.load()
            declared = getattr(found, "metadata", None)
            if isinstance(found, AppTables) and isinstance(declared, sa.MetaData) and set(declared.tables) & deployed:
                self.register(found, source=f"{point.source}; its tables are deployed")
                loaded.append(name)
            elif name in switched_on:
                self.register(found, source=f"{point.source}; switched on in the catalog")
                loaded.append(name)
        return loaded

    def load_configured(self, specs: Iterable[str], *, explicit: Iterable[Plugin] = ()) -> None:
        """Register the plugins ``TENANTRY_PLUGINS`` names (``*``: every installed one), then
        the ``explicit`` ones (``Tenantry(plugins=...)``).

        One plugin per name: an explicit plugin wins over one of its name and class that the
        settings name (the app built it with its own arguments), and a plugin the settings name
        twice (``*,webhooks``) is loaded once. Two different plugins of one name are refused.
        """
        given = builtins.list(explicit)

        def same(found: Plugin) -> bool:  # a plugin of this name and class is (to be) registered
            return any(
                getattr(p, "name", None) == getattr(found, "name", None) and type(p) is type(found)
                for p in [*given, *self._plugins.values()]
            )

        for spec in specs:
            if spec == "*":
                for name, point in discover().items():
                    if name not in self._plugins and not same(found := point.load()):
                        self.register(found, source=point.source)
                continue
            found = self.instance(spec)
            if not same(found):
                self.register(found, source="TENANTRY_PLUGINS")
        for plugin in given:
            self.register(plugin)


def _fields(info: PluginInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "source": info.source,
        "registered": info.registered,
        "capabilities": info.capabilities,
        "description": info.description,
        "error": info.error,
        "settings": info.settings,
    }
