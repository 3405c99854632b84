"""Which plugins are on for a tenant, as a running process reads it: a per-process cache.

The first question about a tenant loads every setting that reaches it (its own and its
plan's) in one query; after that ``tn.plugins.is_enabled("x")`` is a dictionary lookup. The
cache is keyed by tenant id and each entry is checked to be the tenant's own. It is dropped
piecemeal by the catalog listener's events (``plugin:tenant:<id>``, ``plugin:plan:<name>``,
``tenant:<id>`` for a tenant whose plan changed) and wholly after the listener reconnects, so
a ``tenantry plugins enable`` anywhere reaches every process within a second. It is a
:class:`~tenantry.core.caches.CatalogCache`: its TTL, size bound, rule for a listener that is
down and generation guard (a load that races an event is not kept) are that class's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tenantry.core.caches import CatalogCache
from tenantry.core.events import EventKind
from tenantry.db.catalog.plugins import Resolution, resolve_for_tenant
from tenantry.errors import TenantNotFound

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = ["EnablementCache", "TenantPlugins"]


@dataclass(frozen=True, slots=True)
class TenantPlugins:
    """The plugin settings that reach one tenant, resolved."""

    tenant_id: uuid.UUID
    plan: str
    resolved: dict[str, Resolution]
    enabled: frozenset[str]

    def resolution(self, plugin: str) -> Resolution:
        return self.resolved.get(plugin) or Resolution(plugin, False, "default")


def _tags(tenant_id: uuid.UUID, entry: TenantPlugins) -> tuple[tuple[str, str]]:
    return (("plan", entry.plan),)


class EnablementCache:
    """The per-process cache of one Tenantry's plugin settings, by tenant id."""

    def __init__(self, tn: ControlPlane) -> None:
        self._tn = tn
        self.entries: CatalogCache[uuid.UUID, TenantPlugins] = CatalogCache(
            "plugin enablement",
            ttl=tn.settings.tenant_cache_ttl,
            size=tn.settings.tenant_cache_size,
            trusted=tn.trusted,
            tags=_tags,
        )

    def fresh(self, tenant_id: uuid.UUID) -> TenantPlugins | None:
        """The cached entry while it may be served, else ``None`` (no I/O)."""
        return self.entries.get(tenant_id)

    def get(self, tenant_id: uuid.UUID) -> TenantPlugins:
        """The tenant's entry, loaded when missing or expired."""
        return self.fresh(tenant_id) or self.load(tenant_id)

    def load(self, tenant_id: uuid.UUID, *, keep: bool = True) -> TenantPlugins:
        """Read the tenant's settings from the catalog (and keep them, unless an event
        arrived meanwhile or ``keep`` is false)."""
        tn = self._tn
        tn.listen()
        ticket = self.entries.begin()
        with tn.catalog_reader() as conn:
            found = resolve_for_tenant(conn, tenant_id)
        if found is None:
            raise TenantNotFound(f"no tenant {str(tenant_id)!r}")
        plan, resolved = found
        entry = TenantPlugins(tenant_id, plan, resolved, frozenset(r.plugin for r in resolved.values() if r.enabled))
        if keep:
            self.entries.put(tenant_id, entry, ticket)
        return entry

    def on_event(self, kind: EventKind, key: str) -> None:
        """Drop what a catalog event made stale."""
        if kind == EventKind.TENANT:
            self._pop(key)
        elif kind == EventKind.PLUGIN:
            scope, _, name = key.partition(":")
            if scope == "tenant":
                self._pop(name)
            elif scope == "plan":
                self.entries.drop_tagged(("plan", name))

    def _pop(self, key: str) -> None:
        try:
            tenant_id = uuid.UUID(key)
        except ValueError:
            return
        self.entries.drop(tenant_id)

    def on_reset(self) -> None:
        """Forget everything (the listener (re)connected: events may have been missed)."""
        self.entries.clear()
