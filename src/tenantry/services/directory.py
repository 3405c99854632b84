"""``Directory`` (``tn.directory``): what the request path knows of tenants and hostnames.

Tenant lookups by key (slug, or the id's canonical text) and hostname routes, each a
:class:`~tenantry.core.caches.CatalogCache` dropped by the catalog events this process hears
or makes; apart, the keys and hostnames the catalog does not know, so that junk requests do not
each cost a catalog read nor push known ones out. Reads go through the routing views, so they
work in a data-plane process.

A tenant's binding also carries its plan's database settings (statement timeout,
idle-in-transaction timeout, ``work_mem``: :func:`~tenantry.core.limits.database_settings`),
kept per plan and dropped by the plan's events, with the tenant's own overrides laid over
them (``tn.tenants.limits_set``). Those are read with the tenant (:meth:`Directory.load`) and
kept with its lookup, found by the lookup's identity: the tenant's ``limits`` events drop its
lookup, and the next one reads both again. Neither costs a catalog read, nor a lookup of its
own, per transaction. A tenant over its plan's ``storage_mb`` (the routing view
``storage_over_quota``, read once for all tenants and dropped by ``storage``, plan and tenant
events) is bound read-only as well (``transaction_read_only``): its writes fail with
:class:`~tenantry.errors.StorageQuotaExceeded`, its reads go on.

The edge uses the split verbs (:meth:`Directory.cached` without I/O on the event loop, then
:meth:`Directory.load` in a thread); ``tn.tenant(...)`` uses :meth:`Directory.bind`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from tenantry.context import BoundTenant
from tenantry.core.caches import UNKNOWN_SIZE, UNKNOWN_TTL, CatalogCache
from tenantry.core.events import EventKind
from tenantry.core.limits import READ_ONLY, connection_cap, database_settings
from tenantry.core.model import Status, Tenant
from tenantry.core.placement import Placement
from tenantry.db import catalog
from tenantry.db.catalog import domains as domains_service
from tenantry.db.catalog import tenants as catalog_tenants
from tenantry.db.catalog import usage as usage_catalog
from tenantry.db.catalog.domains import UNKNOWN_HOST, HostRoute
from tenantry.db.catalog.placements import read_placement
from tenantry.db.catalog.plans import plan_limits
from tenantry.db.catalog.tenant_limits import read_overrides
from tenantry.errors import TenantNotActive, TenantNotFound
from tenantry.services.plane import ControlPlane

__all__ = ["Directory", "Resolved"]

_log = logging.getLogger("tenantry.limits")
#: a plan's database settings, as the binding carries them
Settings = tuple[tuple[str, str], ...]
#: a plan's limits document and its database settings
PlanLimits = tuple[Mapping[str, Any], Settings]
#: what a tenant without overrides of its plan's limits has (compared by identity)
NO_OVERRIDES: Mapping[str, Any] = MappingProxyType({})

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
        #: each plan's limits document and database settings, by plan name
        self._plan_settings: CatalogCache[str, PlanLimits] = CatalogCache(
            "plan settings", ttl=ttl, size=1024, trusted=trusted
        )
        #: each tenant lookup's overrides (NO_OVERRIDES: none), read with it, by the identity
        #: of its Tenant (held here, so the id is not reused while the entry lives); the
        #: lookups cache decides what is current (a limits event drops the tenant's lookup)
        self._own_of: dict[int, tuple[Tenant, Mapping[str, Any]]] = {}
        self._own_lock = threading.Lock()
        #: the database settings of tenants with overrides, made once per (plan, overrides)
        self._own_settings: dict[uuid.UUID, tuple[PlanLimits, Mapping[str, Any], Settings]] = {}
        #: the tenants over their storage quota (one entry, key ``None``), and each settings
        #: tuple with the read-only one added (same object per settings: cheap identity)
        self._over_quota: CatalogCache[None, frozenset[uuid.UUID]] = CatalogCache(
            "storage over quota", ttl=ttl, size=1, trusted=trusted
        )
        self._read_only: dict[Settings, Settings] = {}
        #: per lookup: (it, its plan's limits, whether over quota, the binding made of them)
        self._bounds: dict[int, tuple[Resolved, PlanLimits, bool, BoundTenant]] = {}
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
            canonical = str(catalog_tenants.tenant_key(key))
            hit = self._tenants.get(canonical)
            if hit is None and self._missing_tenants.get(canonical):
                raise TenantNotFound(f"no tenant {str(key)[:70]!r}")
        if hit is not None and (
            self._plan_settings.get(hit[0].plan) is None
            or id(hit[0]) not in self._own_of
            or self._over_quota.get(None) is None
        ):
            return None  # its limits are read with it (load), never on the event loop
        return hit

    def load(self, key: str | uuid.UUID) -> Resolved:
        """Read the tenant and its active placement through the routing views, and keep them
        (unless an event came meanwhile)."""
        self._plane.listen()
        canonical = str(catalog_tenants.tenant_key(key))
        # taken before the read: a change whose notice arrives while we read may be newer
        # than what we read, and keeping it would outlive the notice meant to drop it
        ticket, missing = self._tenants.begin(), self._missing_tenants.begin()
        with self._plane.catalog_reader() as conn:
            try:
                tenant = catalog_tenants.get_tenant(conn, key, source=catalog.ROUTING_SCHEMA)
            except TenantNotFound:
                self._missing_tenants.put(canonical, True, missing)
                raise
            placement = read_placement(conn, tenant.id, source=catalog.ROUTING_SCHEMA)
            self._read_plan_settings(conn, tenant.plan)
            self._read_own(conn, tenant)
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
        bound = self._bind(key, allow_inactive, resolved or self.resolved(key), io=True)
        assert bound is not None
        return bound

    def bind_cached(
        self, key: str | uuid.UUID, *, resolved: Resolved, allow_inactive: bool = False
    ) -> BoundTenant | None:
        """:meth:`bind` without I/O, for the event loop: ``None`` when something it needs is
        not known here now (an event dropped the plan's settings since ``resolved`` was
        found): then call :meth:`bind` in a worker thread."""
        return self._bind(key, allow_inactive, resolved, io=False)

    def _bind(self, key: str | uuid.UUID, allow_inactive: bool, resolved: Resolved, *, io: bool) -> BoundTenant | None:
        tenant, placement = resolved
        if tenant.status is Status.DELETED:
            raise TenantNotFound(f"tenant {tenant.slug!r} is deleted")
        if not allow_inactive and not tenant.serves:
            raise TenantNotActive(f"tenant {tenant.slug!r} is {tenant.status.value}, not active")
        if placement is None:
            raise TenantNotActive(f"tenant {tenant.slug!r} has no active placement yet")
        # one BoundTenant per cache entry (the entry is held, so its id is not reused): the
        # binder then finds the bind statement by identity, with no hashing of the dataclass
        plan = self._plan_settings.get(tenant.plan)
        over = self._over_quota.get(None)
        if plan is None or over is None:
            if not io:
                return None
            with self._plane.catalog_reader() as conn:
                plan = self._read_plan_settings(conn, tenant.plan)
                over = self._read_over_quota(conn)
        read_only = tenant.id in over
        same = self._bounds.get(id(resolved))
        if same is not None and same[0] is resolved and same[1] is plan and same[2] is read_only:
            return same[3]
        # (a new lookup, or its plan changed: the tenant's own limits were read with the lookup)
        own = self.overrides(tenant)
        if own is None:
            if not io:
                return None
            with self._plane.catalog_reader() as conn:
                own = self._read_own(conn, tenant)
        settings = plan[1] if own is NO_OVERRIDES else self._settings_with(tenant, plan, own)
        if read_only:
            settings = self._read_only_settings(settings)
        bound = BoundTenant(
            id=tenant.id,
            slug=tenant.slug,
            route=placement.route,
            epoch=tenant.epoch,
            settings=settings,
            connections=_connections(tenant, plan[0], own),
        )
        if len(self._bounds) >= self._bounds_size:
            self._bounds.clear()
        self._bounds[id(resolved)] = (resolved, plan, read_only, bound)
        return bound

    def _settings_with(self, tenant: Tenant, plan: PlanLimits, own: Mapping[str, Any]) -> Settings:
        """The database settings of a tenant with overrides: its plan's with its own over them
        (made once per plan and overrides document: the next bind finds them by identity)."""
        made = self._own_settings.get(tenant.id)
        if made is not None and made[0] is plan and made[1] is own:
            return made[2]
        try:
            settings = database_settings(plan[0], own)
        except ValueError as err:  # (checked when saved; a row written by hand may not be)
            _log.error("the limits of tenant %s are not valid, its plan's apply: %s", tenant.slug, err)
            settings = plan[1]
        if settings == plan[1]:
            settings = plan[1]  # (the same object: the binding made for it is found by identity)
        if len(self._own_settings) >= self._bounds_size:
            self._own_settings.clear()
        self._own_settings[tenant.id] = (plan, own, settings)
        return settings

    def overrides(self, tenant: Tenant) -> Mapping[str, Any] | None:
        """The overrides of its plan's limits read with ``tenant`` (a lookup of this
        directory: :meth:`cached`, :meth:`load`), without I/O: :data:`NO_OVERRIDES` when it
        has none, ``None`` when they are not known here (then :meth:`load_overrides`)."""
        entry = self._own_of.get(id(tenant))
        return entry[1] if entry is not None and entry[0] is tenant else None

    def load_overrides(self, tenant: Tenant) -> Mapping[str, Any]:
        """The tenant's overrides (:data:`NO_OVERRIDES`: none): those read with its lookup, or
        read now through the routing view."""
        known = self.overrides(tenant)
        if known is not None:
            return known
        with self._plane.catalog_reader() as conn:
            return self._read_own(conn, tenant)

    def _read_own(self, conn: Any, tenant: Tenant) -> Mapping[str, Any]:
        """Read the tenant's overrides and keep them with this lookup of it (the oldest go
        first past ``tenant_cache_size``: such a lookup reads them again)."""
        document = read_overrides(conn, tenant.id, source=catalog.ROUTING_SCHEMA)
        own: Mapping[str, Any] = NO_OVERRIDES if not document else MappingProxyType(document)
        with self._own_lock:
            self._own_of.pop(id(tenant), None)
            while len(self._own_of) >= self._bounds_size:
                del self._own_of[next(iter(self._own_of))]
            self._own_of[id(tenant)] = (tenant, own)
        return own

    def _read_plan_settings(self, conn: Any, plan: str) -> PlanLimits:
        """The plan's limits and database settings, read through the routing view unless known."""
        known = self._plan_settings.get(plan)
        if known is not None:
            return known
        ticket = self._plan_settings.begin()
        document = plan_limits(conn, plan)
        try:
            settings = database_settings(document)
        except ValueError as err:
            # a plan saved before its limits were validated: serve, and say so (refusing every
            # tenant of the plan for a limit no one can read would be worse)
            _log.error("the database limits of plan %r are not valid, not enforced: %s", plan, err)
            settings = ()
        found = (document, settings)
        self._plan_settings.put(plan, found, ticket)
        return found

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
        if kind in (EventKind.STORAGE, EventKind.PLAN, EventKind.TENANT, EventKind.LIMITS):
            self._over_quota.clear()  # (a quota raised, a plan changed: the view answers anew)
        if kind == EventKind.TENANT:
            self._tenants.drop_tagged(key)
            self._missing_tenants.clear()  # the event names an id; a new tenant's slug may be here
        elif kind == EventKind.DOMAIN:
            self._hosts.drop(key)
            self._missing_hosts.drop(key)
        elif kind == EventKind.PLAN:
            self._plan_settings.drop(key)
        elif kind == EventKind.LIMITS:
            # the tenant's overrides live with its lookups: the next lookup reads both again
            self._tenants.drop_tagged(key)

    def _on_reset(self) -> None:
        for cache in self.caches():
            cache.clear()


def _connections(tenant: Tenant, plan: Mapping[str, Any], own: Mapping[str, Any]) -> int | None:
    """The tenant's cap on connections held at once (``db_connections``: its own over its
    plan's), ``None`` for none."""
    try:
        return connection_cap(plan, own)
    except ValueError as err:  # as for the settings: serve, and say so
        _log.error("the db_connections limit of tenant %s is not valid, not enforced: %s", tenant.slug, err)
        return None
