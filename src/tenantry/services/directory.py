"""``Directory`` (``tn.directory``): what the request path knows of tenants and hostnames.

Tenant lookups by key (slug, or the id's canonical text) and hostname routes, each a
:class:`~tenantry.core.caches.CatalogCache` dropped by the catalog events this process hears
or makes; apart, the keys and hostnames the catalog does not know, so that junk requests do not
each cost a catalog read nor push known ones out. Reads go through the routing views, so they
work in a data-plane process.

A tenant's binding also carries its plan's database settings (statement timeout,
idle-in-transaction timeout, ``work_mem``: :func:`~tenantry.core.limits.database_settings`),
kept per plan and dropped by the plan's events. A tenant over its plan's ``storage_mb`` (the
routing view ``storage_over_quota``, read once for all tenants and dropped by ``storage``,
plan and tenant events) is bound read-only as well (``transaction_read_only``): its writes
fail with :class:`~tenantry.errors.StorageQuotaExceeded`, its reads go on.

The edge uses the split verbs (:meth:`Directory.cached` without I/O on the event loop, then
:meth:`Directory.load` in a thread); ``tn.tenant(...)`` uses :meth:`Directory.bind`.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from tenantry.context import BoundTenant
from tenantry.core.caches import UNKNOWN_SIZE, UNKNOWN_TTL, CatalogCache
from tenantry.core.events import EventKind
from tenantry.core.limits import READ_ONLY, database_settings
from tenantry.core.model import Status, Tenant
from tenantry.core.placement import Placement
from tenantry.db import catalog
from tenantry.db.catalog import usage as usage_catalog
from tenantry.errors import TenantNotActive, TenantNotFound
from tenantry.services import domains as domains_service
from tenantry.services import tenants as tenant_service
from tenantry.services.domains import UNKNOWN_HOST, HostRoute
from tenantry.services.placements import read_placement
from tenantry.services.plane import ControlPlane

__all__ = ["Directory", "Resolved"]

_log = logging.getLogger("tenantry.limits")
#: a plan's database settings, as the binding carries them
Settings = tuple[tuple[str, str], ...]

#: a tenant and its active placement, as the resolution cache holds them
Resolved = tuple[Tenant, Placement | None]


def _tenant_tags(canonical: str, resolved: Resolved) -> tuple[str]:
    # a lookup is tagged with its tenant's id, so that a tenant event drops every key it is
    # cached under (its slug, its id) without reading the whole cache
    return (str(resolved[0].id),)


class Directory:
    """Tenant lookups and hostname routes of one process (see the module docstring)."""

    def __init__(self, plane: ControlPlane) -> None:
        self._plane = plane
        s = plane.settings
        ttl, size, trusted = s.tenant_cache_ttl, s.tenant_cache_size, plane.trusted
        self._tenants: CatalogCache[str, Resolved] = CatalogCache(
            "tenant lookups", ttl=ttl, size=size, trusted=trusted, tags=_tenant_tags
        )
        self._missing_tenants: CatalogCache[str, bool] = CatalogCache(
            "unknown tenants", ttl=UNKNOWN_TTL, size=min(UNKNOWN_SIZE, size), trusted=trusted
        )
        self._hosts: CatalogCache[str, HostRoute] = CatalogCache("hostnames", ttl=ttl, size=size, trusted=trusted)
        self._missing_hosts: CatalogCache[str, bool] = CatalogCache(
            "unknown hostnames", ttl=UNKNOWN_TTL, size=min(UNKNOWN_SIZE, size), trusted=trusted
        )
        #: each plan's database settings, by plan name
        self._plan_settings: CatalogCache[str, Settings] = CatalogCache(
            "plan settings", ttl=ttl, size=1024, trusted=trusted
        )
        #: the tenants over their storage quota (one entry, key ``None``), and each plan's
        #: settings with the read-only one added (same object per plan settings: cheap identity)
        self._over_quota: CatalogCache[None, frozenset[uuid.UUID]] = CatalogCache(
            "storage over quota", ttl=ttl, size=1, trusted=trusted
        )
        self._read_only: dict[Settings, Settings] = {}
        self._bounds: dict[int, tuple[Resolved, Settings, BoundTenant]] = {}
        self._bounds_size = size
        plane.subscribe(self._on_event, self._on_reset)

    def caches(self) -> list[CatalogCache[Any, Any]]:
        """The catalog caches kept here (for their hit and miss counts)."""
        return [
            self._tenants,
            self._missing_tenants,
            self._hosts,
            self._missing_hosts,
            self._plan_settings,
            self._over_quota,
        ]

    # -- tenants ------------------------------------------------------------------------------
    # the cache is keyed by the canonical key (slug, or the id's canonical text), so every
    # spelling of one tenant shares one entry and an event reaches them all; a key remembered
    # as missing raises TenantNotFound here, as the lookup would
    def cached(self, key: str | uuid.UUID) -> Resolved | None:
        """The tenant and its active placement if this process knows them now (no I/O), else
        ``None``; :class:`~tenantry.errors.TenantNotFound` for a key known to be missing."""
        # the cache holds canonical keys only, so a key found as given is its own canonical
        # form (the fast path of every request at the edge); other spellings are canonicalised
        hit = self._tenants.get(key) if isinstance(key, str) else None
        if hit is None:
            canonical = str(tenant_service.tenant_key(key))
            hit = self._tenants.get(canonical)
            if hit is None and self._missing_tenants.get(canonical):
                raise TenantNotFound(f"no tenant {str(key)[:70]!r}")
        if hit is not None and (self._plan_settings.get(hit[0].plan) is None or self._over_quota.get(None) is None):
            return None  # its plan's settings are read with it (load), never on the event loop
        return hit

    def load(self, key: str | uuid.UUID) -> Resolved:
        """Read the tenant and its active placement through the routing views, and keep them
        (unless an event came meanwhile)."""
        self._plane.listen()
        canonical = str(tenant_service.tenant_key(key))
        # taken before the read: a change whose notice arrives while we read may be newer
        # than what we read, and keeping it would outlive the notice meant to drop it
        ticket, missing = self._tenants.begin(), self._missing_tenants.begin()
        with self._plane.catalog_reader() as conn:
            try:
                tenant = tenant_service.get_tenant(conn, key, source=catalog.ROUTING_SCHEMA)
            except TenantNotFound:
                self._missing_tenants.put(canonical, True, missing)
                raise
            placement = read_placement(conn, tenant.id, source=catalog.ROUTING_SCHEMA)
            self._read_plan_settings(conn, tenant.plan)
            self._read_over_quota(conn)
        resolved = (tenant, placement)
        self._tenants.put(canonical, resolved, ticket)
        return resolved

    def resolved(self, key: str | uuid.UUID) -> Resolved:
        """:meth:`cached`, else :meth:`load`."""
        return self.cached(key) or self.load(key)

    def bind(
        self, key: str | uuid.UUID, *, allow_inactive: bool = False, resolved: Resolved | None = None
    ) -> BoundTenant:
        """What binding the tenant binds (``resolved``, if the caller has it already); refuses
        a deleted tenant, an inactive one (unless ``allow_inactive``) and one without a placement."""
        resolved = resolved or self.resolved(key)
        tenant, placement = resolved
        if tenant.status is Status.DELETED:
            raise TenantNotFound(f"tenant {tenant.slug!r} is deleted")
        if not allow_inactive and not tenant.serves:
            raise TenantNotActive(f"tenant {tenant.slug!r} is {tenant.status.value}, not active")
        if placement is None:
            raise TenantNotActive(f"tenant {tenant.slug!r} has no active placement yet")
        # one BoundTenant per cache entry (the entry is held, so its id is not reused): the
        # binder then finds the bind statement by identity, with no hashing of the dataclass
        settings = self._plan_settings.get(tenant.plan)
        over = self._over_quota.get(None)
        if settings is None or over is None:
            with self._plane.catalog_reader() as conn:
                settings = self._read_plan_settings(conn, tenant.plan)
                over = self._read_over_quota(conn)
        if tenant.id in over:
            settings = self._read_only_settings(settings)
        same = self._bounds.get(id(resolved))
        if same is not None and same[0] is resolved and same[1] is settings:
            return same[2]
        bound = BoundTenant(
            id=tenant.id, slug=tenant.slug, route=placement.route, epoch=tenant.epoch, settings=settings
        )
        if len(self._bounds) >= self._bounds_size:
            self._bounds.clear()
        self._bounds[id(resolved)] = (resolved, settings, bound)
        return bound

    def _read_plan_settings(self, conn: Any, plan: str) -> Settings:
        """The plan's database settings, read through the routing view unless known."""
        known = self._plan_settings.get(plan)
        if known is not None:
            return known
        ticket = self._plan_settings.begin()
        row = conn.execute(f"SELECT limits FROM {catalog.ROUTING_SCHEMA}.plans WHERE name = %s", (plan,)).fetchone()
        document = row[0] if row is not None and isinstance(row[0], dict) else {}
        try:
            settings = database_settings(document)
        except ValueError as err:
            # a plan saved before its limits were validated: serve, and say so (refusing every
            # tenant of the plan for a limit no one can read would be worse)
            _log.error("the database limits of plan %r are not valid, not enforced: %s", plan, err)
            settings = ()
        self._plan_settings.put(plan, settings, ticket)
        return settings

    def _read_over_quota(self, conn: Any) -> frozenset[uuid.UUID]:
        """The tenants over their storage quota, read through the routing view unless known."""
        known = self._over_quota.get(None)
        if known is not None:
            return known
        ticket = self._over_quota.begin()
        found = usage_catalog.over_quota(conn, source=catalog.ROUTING_SCHEMA)
        self._over_quota.put(None, found, ticket)
        return found

    def _read_only_settings(self, settings: Settings) -> Settings:
        found = self._read_only.get(settings)
        if found is None:
            if len(self._read_only) >= 1024:
                self._read_only.clear()
            found = self._read_only[settings] = (*settings, READ_ONLY)
        return found

    # -- hostnames ----------------------------------------------------------------------------
    def cached_host(self, hostname: str) -> HostRoute | None:
        """What this process knows of a (normalised) hostname without a query, or ``None``."""
        hit = self._hosts.get(hostname)
        if hit is None:
            return UNKNOWN_HOST if self._missing_hosts.get(hostname) else None
        return hit

    def load_host(self, hostname: str) -> HostRoute:
        """Read the hostname's route through the routing views, and keep it."""
        self._plane.listen()
        ticket, missing = self._hosts.begin(), self._missing_hosts.begin()
        with self._plane.catalog_reader() as conn:
            route = domains_service.lookup_host(conn, hostname)
        if route == UNKNOWN_HOST:  # (either is kept only if no domain event came meanwhile)
            self._missing_hosts.put(hostname, True, missing)
        else:
            self._hosts.put(hostname, route, ticket)
        return route

    # -- events ---------------------------------------------------------------------------------
    def _on_event(self, kind: EventKind, key: str) -> None:
        if kind in (EventKind.STORAGE, EventKind.PLAN, EventKind.TENANT):
            self._over_quota.clear()  # (a quota raised, a plan changed: the view answers anew)
        if kind == EventKind.TENANT:
            self._tenants.drop_tagged(key)
            self._missing_tenants.clear()  # the event names an id; a new tenant's slug may be here
        elif kind == EventKind.DOMAIN:
            self._hosts.drop(key)
            self._missing_hosts.drop(key)
        elif kind == EventKind.PLAN:
            self._plan_settings.drop(key)

    def _on_reset(self) -> None:
        for cache in self.caches():
            cache.clear()
