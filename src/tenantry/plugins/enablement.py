"""Which plugins are on for a tenant, as a running process reads it: a per-process cache.

The first question about a tenant loads every setting that reaches it (its own and its
plan's) in one query; after that ``tn.plugins.is_enabled("x")`` is a dictionary lookup. The
cache is keyed by tenant id and each entry is checked to be the tenant's own. It is dropped
piecemeal by the catalog listener's events (``plugin:tenant:<id>``, ``plugin:plan:<name>``,
``tenant:<id>`` for a tenant whose plan changed) and wholly after the listener reconnects, so
a ``tenantry plugins enable`` anywhere reaches every process within a second. Entries loaded
while the listener is not connected are kept only half a second, and a load that races an
event is not kept (a generation counter), as in :mod:`tenantry.live`.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from time import monotonic
from typing import TYPE_CHECKING

from tenantry.core.caches import expires_at, make_room
from tenantry.errors import TenantNotFound
from tenantry.services.plugins import Resolution, resolve_for_tenant

if TYPE_CHECKING:
    from tenantry.app import Tenantry

__all__ = ["EnablementCache", "TenantPlugins"]


@dataclass(frozen=True, slots=True)
class TenantPlugins:
    """The plugin settings that reach one tenant, resolved."""

    tenant_id: uuid.UUID
    plan: str
    resolved: dict[str, Resolution]
    enabled: frozenset[str]
    expires: float

    def resolution(self, plugin: str) -> Resolution:
        return self.resolved.get(plugin) or Resolution(plugin, False, "default")


class EnablementCache:
    """The per-process cache of one Tenantry's plugin settings, by tenant id."""

    def __init__(self, tn: Tenantry) -> None:
        self._tn = tn
        self._lock = threading.Lock()
        self._generation = 0
        self.entries: dict[uuid.UUID, TenantPlugins] = {}

    def fresh(self, tenant_id: uuid.UUID) -> TenantPlugins | None:
        """The cached entry while it may be served, else ``None`` (no I/O)."""
        entry = self.entries.get(tenant_id)
        return entry if entry is not None and entry.expires > monotonic() else None

    def get(self, tenant_id: uuid.UUID) -> TenantPlugins:
        """The tenant's entry, loaded when missing or expired."""
        return self.fresh(tenant_id) or self.load(tenant_id)

    def load(self, tenant_id: uuid.UUID, *, keep: bool = True) -> TenantPlugins:
        """Read the tenant's settings from the catalog (and keep them, unless an event
        arrived meanwhile or ``keep`` is false)."""
        tn = self._tn
        tn._listen()
        generation = self._generation
        listener = tn._listener
        trusted = listener is not None and listener.listening.is_set()
        expires = expires_at(tn.settings.tenant_cache_ttl, trusted=trusted)
        with tn.catalog_reader() as conn:
            found = resolve_for_tenant(conn, tenant_id)
        if found is None:
            raise TenantNotFound(f"no tenant {str(tenant_id)!r}")
        plan, resolved = found
        entry = TenantPlugins(
            tenant_id, plan, resolved, frozenset(r.plugin for r in resolved.values() if r.enabled), expires
        )
        if keep:
            with self._lock:
                if self._generation == generation:
                    make_room(self.entries, self._tn.settings.tenant_cache_size)
                    self.entries[tenant_id] = entry
        return entry

    def on_event(self, kind: str, key: str) -> None:
        """Drop what a catalog event made stale."""
        with self._lock:
            self._generation += 1
            if kind == "tenant":
                self._pop(key)
            elif kind == "plugin":
                scope, _, name = key.partition(":")
                if scope == "tenant":
                    self._pop(name)
                elif scope == "plan":
                    for tenant_id, entry in list(self.entries.items()):
                        if entry.plan == name:
                            self.entries.pop(tenant_id, None)

    def _pop(self, key: str) -> None:
        try:
            self.entries.pop(uuid.UUID(key), None)
        except ValueError:
            pass

    def on_reset(self) -> None:
        """Forget everything (the listener (re)connected: events may have been missed)."""
        with self._lock:
            self._generation += 1
            self.entries = {}
