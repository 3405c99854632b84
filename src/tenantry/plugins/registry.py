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
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy
import sqlalchemy as sa
from pydantic import BaseModel

from tenantry import context
from tenantry.core.events import EventKind
from tenantry.core.hooks import POLL_SECONDS
from tenantry.db import catalog
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
    hook_names,
)
from tenantry.plugins.discovery import discover, load_spec
from tenantry.plugins.enablement import EnablementCache
from tenantry.plugins.hooks import HookDelivery, HookRunner, follow
from tenantry.plugins.hooks import RunReport as HookRunReport
from tenantry.services import plugin_hooks
from tenantry.services import plugins as service
from tenantry.tenant_config import evaluation as flags_core

if TYPE_CHECKING:
    from tenantry.app import Tenantry

__all__ = ["PluginInfo", "Plugins"]

_log = logging.getLogger("tenantry.plugins")

#: statuses of tenants whose placements hold data a plugin may work on
LIVE_STATUSES = ("active", "suspended", "archived")

_IMPLICIT: pluggy.HookimplOpts = {
    "wrapper": False,
    "hookwrapper": False,
    "optionalhook": False,
    "tryfirst": False,
    "trylast": False,
    "specname": None,
}


class _Manager(pluggy.PluginManager):
    """pluggy's manager, taking a :class:`LifecycleHooks` method that overrides the base's as
    a hook implementation without a decorator (as pytest takes ``pytest_*`` functions)."""

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name in hook_names() and isinstance(plugin, LifecycleHooks):
            if getattr(type(plugin), name, None) is not getattr(LifecycleHooks, name):
                return dict(_IMPLICIT)  # type: ignore[return-value]
        return opts


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


class Plugins:
    """The plugins of one :class:`~tenantry.Tenantry` (``tn.plugins``).

    ::

        tn = Tenantry(settings, metadata=Base.metadata, plugins=[Webhooks()])
        tn.plugins.enable("webhooks", plan="enterprise")     # audited, every process within 1 s
        with tn.tenant("initech"):
            if tn.plugins.is_enabled("webhooks"):            # cached: no query once warm
                ...
    """

    def __init__(self, tn: Tenantry) -> None:
        self._tn = tn
        self._lock = threading.RLock()
        self._plugins: dict[str, Plugin] = {}
        self._sources: dict[str, str] = {}
        self._manager = _Manager(PROJECT)
        self._manager.add_hookspecs(HookSpecs)
        self._cache = EnablementCache(tn)
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
                    self._tn.config.sections.add(found.section, found.config_model)
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
        with self._tn.admin() as conn:
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
        with self._tn.admin() as conn:
            catalog.require_catalog(conn)
            if enabled is not None:  # may be switched on: known here, or run by a process of the app
                known = self.known() | plugin_hooks.subscribed(conn)
        change = service.set_enabled(self._tn, name, enabled, known=known, tenant=tenant, plan=plan)
        if change.changed:  # this process at once; the others by NOTIFY
            self._cache.on_event(EventKind.PLUGIN, f"{change.scope.kind}:{change.scope.key}")
        return change

    def settings(self, name: str | None = None) -> builtins.list[service.Enablement]:
        """The plans and tenants ``name`` (or every plugin) is switched on or off for."""
        with self._tn.admin() as conn:
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
        with self._tn.admin() as conn:
            return service.enabled_tenants(conn, name, statuses=LIVE_STATUSES)

    def _tenant_id(self, tenant: str | uuid.UUID | None) -> uuid.UUID:
        if tenant is None:
            return context.require().id
        if isinstance(tenant, uuid.UUID):
            return tenant
        return (self._tn._cached(tenant) or self._tn._lookup(tenant))[0].id

    # -- what plugins raised ------------------------------------------------------------------
    def errors(
        self, *, plugin: str | None = None, tenant: str | uuid.UUID | None = None, limit: int = 100
    ) -> builtins.list[service.PluginFailure]:
        """What plugins raised, newest first, counted per (plugin, hook, tenant)."""
        tenant_id = None if tenant is None else self._tenant_id(tenant)
        with self._tn.admin() as conn:
            catalog.require_catalog(conn)
            return service.list_errors(conn, plugin=plugin, tenant_id=tenant_id, limit=limit)

    @staticmethod
    def error_text(error: BaseException) -> str:
        """``error`` as one line: its type and message."""
        lines = traceback.format_exception_only(type(error), error)
        return " ".join(" ".join(lines).split())

    def report_error(self, plugin: str, hook: str, error: BaseException, tenant_id: uuid.UUID | None = None) -> None:
        """Log and record that ``plugin`` raised ``error`` in ``hook``; never raises."""
        _log.error("plugin %r raised in %s (tenant %s)", plugin, hook, tenant_id, exc_info=error)
        text = self.error_text(error)
        try:
            with self._tn.admin() as conn, conn.transaction():
                service.record_error(conn, plugin, hook, tenant_id, text)
        except Exception:  # the catalog is unreachable: the log line is all we can do
            _log.exception("could not record the error of plugin %r", plugin)

    # -- lifecycle hooks: the durable queue ----------------------------------------------------
    def origin(self) -> plugin_hooks.Origin:
        """Who this process is to the hook queue: a change made here reserves the calls of
        the plugins registered here for it (see :mod:`tenantry.services.plugin_hooks`)."""
        return self._delivery.origin()

    def deliver(self, tenant: str | uuid.UUID | None = None, *, limit: int | None = None) -> HookRunReport:
        """Run the queued lifecycle hook calls that are due for the plugins registered here
        (of one tenant, if given), each contained; returns what was done. The process that
        changes a tenant calls this for it right after the change commits."""
        tenant_id = None if tenant is None else self._tenant_id(tenant)
        return self._delivery.deliver(tenant_id, limit=limit)

    def hook_handlers(self) -> dict[str, tuple[str, ...]]:
        """The plugins registered here that have lifecycle hooks, and the events each handles."""
        return self._delivery.handlers()

    def follow_hooks(
        self,
        stop: threading.Event,
        *,
        poll: float = POLL_SECONDS,
        on_pass: Callable[[HookRunReport], None] | None = None,
    ) -> None:
        """Deliver in this thread until ``stop`` is set: a pass over the queue, then a wait of
        ``poll`` seconds or until a call for one of these plugins is queued (``NOTIFY``).
        What ``tenantry plugins hooks run --follow`` runs."""
        follow(self._delivery, stop=stop, poll=poll, on_pass=on_pass or (lambda _report: None))

    def _deliver_after_change(self, tenant_id: uuid.UUID) -> None:
        try:  # (no I/O when no plugin here has hooks)
            self._delivery.deliver(tenant_id)
        except Exception as err:  # the change stands; the runner or another process delivers later
            _log.warning("could not deliver the hooks of tenant %s now (queued): %s", tenant_id, err)

    def subscribe_hooks(self) -> None:
        """Record in the catalog which lifecycle events the plugins registered here handle, so
        that changes made anywhere (the CLI, the admin API) queue calls for them. Done by
        ``tn.init()``, by the hook runner and by the first delivery."""
        self._delivery.subscribe()

    def start_hooks(self) -> bool:
        """Start this process's hook runner (a daemon thread) if plugins registered here have
        lifecycle hooks; ``True`` when it runs. Started by itself with the catalog listener
        (the process's first tenant lookup), unless ``Settings.hook_runner`` is off."""
        if not self._delivery.handlers():
            return False
        with self._lock:
            if self._runner is None or not self._runner.alive:
                self._delivery.subscribe()
                self._runner = HookRunner(self._delivery)
                self._runner.start()
        self._tn._listen()  # NOTIFY wakes the runner as soon as a call is queued
        return True

    def _start_runner(self) -> None:
        if self._tn.settings.hook_runner and self._runner is None:
            try:
                self.start_hooks()
            except Exception as err:
                _log.warning("could not start the plugin hook runner: %s", err)

    def stop_hooks(self) -> None:
        """Stop this process's hook runner (calls in flight finish first)."""
        with self._lock:
            runner, self._runner = self._runner, None
        if runner is not None:
            runner.stop()

    def hooks(
        self,
        *,
        plugin: str | None = None,
        tenant: str | uuid.UUID | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> builtins.list[plugin_hooks.QueuedHook]:
        """Queued lifecycle hook calls (pending, running, done, failed, skipped), newest first."""
        tenant_id = None if tenant is None else self._tenant_id(tenant)
        with self._tn.admin() as conn:
            catalog.require_catalog(conn)
            return plugin_hooks.list_hooks(conn, plugin=plugin, tenant_id=tenant_id, status=status, limit=limit)

    def hook_summary(self) -> dict[str, dict[str, int]]:
        """How many queued calls each plugin has in each status."""
        with self._tn.admin() as conn:
            catalog.require_catalog(conn)
            return plugin_hooks.summary(conn)

    def retry_hooks(
        self,
        ids: Iterable[int] | None = None,
        *,
        plugin: str | None = None,
        tenant: str | uuid.UUID | None = None,
    ) -> builtins.list[int]:
        """Queue failed calls again (by id, or every failed call of a plugin or tenant), due
        now with fresh retries; audited. Returns the ids queued again."""
        tenant_id = None if tenant is None else self._tenant_id(tenant)
        with self._tn.admin() as conn:
            catalog.require_catalog(conn)
            return plugin_hooks.retry(
                conn,
                actor=self._tn.actor,
                ids=None if ids is None else builtins.list(ids),
                plugin=plugin,
                tenant_id=tenant_id,
            )

    def unsubscribe_hooks(self, name: str) -> tuple[int, int]:
        """Forget a plugin no app process runs any more: changes stop queueing calls for it
        and its pending calls are skipped; audited. Returns (events forgotten, calls skipped).
        Refused (:class:`InvalidInput`) for a plugin registered here."""
        check_plugin_name(name)
        if name in self._plugins:
            raise InvalidInput(f"plugin {name!r} runs in this process: it would subscribe again; unregister it first")
        with self._tn.admin() as conn:
            catalog.require_catalog(conn)
            return plugin_hooks.unsubscribe(conn, name, actor=self._tn.actor)

    def purge_hooks(self, *, older_than: float, include_failed: bool = False) -> int:
        """Delete calls finished more than ``older_than`` seconds ago; audited."""
        with self._tn.admin() as conn:
            catalog.require_catalog(conn)
            return plugin_hooks.purge(conn, older_than=older_than, include_failed=include_failed, actor=self._tn.actor)

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
                    self._tn.flags.get(key)
                except TenantryError:
                    try:
                        self._tn.flags.create(definition)
                    except FlagExists:
                        continue  # created meanwhile
                    created.append(key)
        return created

    def deploy(self) -> builtins.list[dict[str, Any]]:
        """Create the tables of the registered plugins without migrations of their own in
        every placement that lacks them (the pooled schema, every active schema- and
        database-tier tenant). Idempotent. Plugins with migrations (:meth:`migrations`) are
        left to ``tenantry migrate``."""
        return tables.deploy_everywhere(self._tn, [p for p in self._of(AppTables) if p.name not in self._chains])

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
    def _on_event(self, kind: EventKind, key: str) -> None:
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
            with self._tn.admin() as conn:
                catalog.require_catalog(conn)
                deployed = {
                    r[0]
                    for r in conn.execute(
                        "SELECT table_name FROM tenantry.app_tables WHERE schema_name = %s",
                        (self._tn.settings.pooled_schema,),
                    ).fetchall()
                }
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
