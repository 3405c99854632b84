"""Config and flags as a running app reads them: from a per-process cache, keyed by tenant id.

``tn.config()`` and ``tn.flags.enabled("x")`` never touch the database once warm. The first
read for a tenant loads its view (the tenant's attributes and its plan's and its own config
layers, one query); the first flag read loads every flag (one query). The cache is dropped
piecemeal by the catalog listener's events (``config:tenant:<id>``, ``config:plan:<name>``,
``flag:<key>``, ``tenant:<id>``, ``cell:<name>``) and wholly after the listener reconnects,
so a change made anywhere reaches every process within a second. Time is judged at read
time: an override that expires, or a flag's schedule, takes effect at its moment without any
event.

Both caches are :class:`~tenantry.core.caches.CatalogCache` instances: their TTL, size bound, rule
for a listener that is down and generation guard (a load that races an event is not stored,
so a stale view is never cached after the event that made it stale) are that class's.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import time
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from tenantry import context
from tenantry.core import config as config_core
from tenantry.core import flags as flags_core
from tenantry.core.caches import CatalogCache
from tenantry.core.events import EventKind
from tenantry.core.secrets import is_sealed_anywhere, unseal, unseal_overrides
from tenantry.errors import ConfigInvalid, ConfigurationError, FlagNotFound, TenantNotFound
from tenantry.services.flags import load_flags

if TYPE_CHECKING:
    from tenantry.app import Tenantry

__all__ = ["Flags", "Live", "TenantView"]

_log = logging.getLogger("tenantry.live")

M = TypeVar("M", bound=BaseModel)

_VIEW_SQL = """
SELECT t.id, t.slug, t.plan, t.status, t.created_at, p.cell, p.isolation, c.labels,
       coalesce(pl.document, '{}'::jsonb), coalesce(tl.document, '{}'::jsonb), coalesce(tl.overrides, '{}'::jsonb)
  FROM tenantry_routing.tenants t
  LEFT JOIN tenantry_routing.placements p ON p.tenant_id = t.id AND p.status = 'active'
  LEFT JOIN tenantry_routing.cells c ON c.name = p.cell
  LEFT JOIN tenantry_routing.config_layers pl ON pl.plan = t.plan
  LEFT JOIN tenantry_routing.config_layers tl ON tl.tenant_id = t.id
 WHERE t.id = %s
"""


@dataclass(frozen=True, slots=True)
class _Resolved:
    schema: type[BaseModel] | None
    until: float | None
    model: BaseModel | None
    error: ConfigInvalid | None
    attributes: dict[str, Any]
    """The tenant's attributes with its effective config under ``config``, for flag rules."""


@dataclass(slots=True, eq=False)
class TenantView:
    """What one process knows of one tenant: attributes and config layers."""

    id: uuid.UUID
    slug: str
    plan: str
    cell: str | None
    attributes: dict[str, Any]
    plan_doc: dict[str, Any]
    tenant_doc: dict[str, Any]
    overrides: dict[str, Any]
    memo: dict[str, tuple[Any, flags_core.Evaluation, float | None]] = field(default_factory=dict)
    resolved: _Resolved | None = None

    def resolve(self, now: float, schema: type[BaseModel] | None) -> _Resolved:
        """The config in force at ``now`` (epoch seconds), validated by ``schema``."""
        cached = self.resolved
        if cached is not None and cached.schema is schema and (cached.until is None or now < cached.until):
            return cached
        merged, until = config_core.resolve(
            self.plan_doc, self.tenant_doc, self.overrides, datetime.fromtimestamp(now, UTC)
        )
        model: BaseModel | None = None
        error: ConfigInvalid | None = None
        effective = merged
        if schema is not None:
            try:
                model = config_core.validate(schema, merged, what=f"tenant {self.slug}'s config")
            except ConfigInvalid as err:
                error = err  # flags still read the raw layers; tn.config() reports it
            else:
                effective = model.model_dump(mode="json")
        resolved = _Resolved(
            schema, None if until is None else until.timestamp(), model, error, {**self.attributes, "config": effective}
        )
        self.resolved = resolved
        return resolved


@dataclass(frozen=True, slots=True, eq=False)
class _FlagSet:
    by_key: dict[str, flags_core.Flag]


#: the one key of the flag cache: every flag is loaded at once
_ALL_FLAGS = "*"


def _view_tags(tenant_id: uuid.UUID, view: TenantView) -> tuple[tuple[str, str | None], ...]:
    return (("plan", view.plan), ("cell", view.cell))


class Live:
    """The per-process cache of one :class:`~tenantry.Tenantry` (``tn._live``)."""

    def __init__(self, tn: Tenantry) -> None:
        self._tn = tn
        ttl, size = tn.settings.tenant_cache_ttl, tn.settings.tenant_cache_size
        #: config views by tenant id, tagged by plan and cell
        self.views: CatalogCache[uuid.UUID, TenantView] = CatalogCache(
            "config views", ttl=ttl, size=size, trusted=tn.plane.trusted, tags=_view_tags
        )
        self.flag_sets: CatalogCache[str, _FlagSet] = CatalogCache("flags", ttl=ttl, size=1, trusted=tn.plane.trusted)

    @property
    def flag_set(self) -> _FlagSet | None:
        """Every flag, compiled, while the cache may serve it."""
        return self.flag_sets.get(_ALL_FLAGS)

    # -- loading ----------------------------------------------------------------------------
    def view(self, tenant_id: uuid.UUID) -> TenantView:
        """The tenant's view, loaded when missing or expired."""
        view = self.views.get(tenant_id)
        if view is not None:
            return view
        self._tn.plane.listen()
        ticket = self.views.begin()
        with self._tn.catalog_reader() as conn:
            row = conn.execute(_VIEW_SQL, (tenant_id,)).fetchone()
        if row is None:
            raise TenantNotFound(f"no tenant {str(tenant_id)!r}")
        (id_, slug, plan, status, created_at, cell, tier, labels, plan_doc, tenant_doc, overrides) = row
        keyring = self._tn.secret_keyring()
        view = TenantView(
            id=id_,
            slug=slug,
            plan=plan,
            cell=cell,
            attributes={
                "tenant": slug,
                "tenant_id": str(id_),
                "plan": plan,
                "status": status,
                "created_at": created_at,
                "cell": cell,
                "tier": tier,
                "region": (labels or {}).get("region"),
            },
            # sealed secrets are opened once per load (the model holds them as SecretStr); one
            # this process has no key for stays sealed: flags still work, tn.config() refuses
            plan_doc=unseal(plan_doc, keyring, f"plan:{plan}", strict=False),
            tenant_doc=unseal(tenant_doc, keyring, f"tenant:{id_}", strict=False),
            overrides=unseal_overrides(overrides, keyring, f"tenant:{id_}", strict=False),
        )
        if view.id != tenant_id:  # defence in depth: a view answers for its own tenant only
            raise TenantNotFound(f"no tenant {str(tenant_id)!r}")
        self.views.put(tenant_id, view, ticket)
        return view

    def flags(self) -> _FlagSet:
        """Every flag, compiled; loaded when missing or expired."""
        found = self.flag_sets.get(_ALL_FLAGS)
        if found is not None:
            return found
        self._tn.plane.listen()
        return self.flag_sets.get_or_load(_ALL_FLAGS, self._load_flags)

    def _load_flags(self) -> _FlagSet:
        with self._tn.catalog_reader() as conn:
            records = load_flags(conn)
        return _FlagSet({r.key: flags_core.compile_flag(r.spec) for r in records})

    def schema(self) -> type[BaseModel] | None:
        sections = self._tn.config_sections
        return sections.schema() if sections.configured else None

    def tenant_id(self, tenant: str | uuid.UUID | None) -> uuid.UUID:
        """The id of ``tenant`` (slug or id), else of the tenant bound to the context."""
        if tenant is None:
            return context.require().id
        if isinstance(tenant, uuid.UUID):
            return tenant
        resolved = self._tn.directory.resolved(tenant)
        return resolved[0].id

    # -- reads ------------------------------------------------------------------------------
    def config(self, tenant_id: uuid.UUID, as_type: type[M] | None = None) -> BaseModel:
        schema = self._tn.config_sections.schema()
        view = self.view(tenant_id)
        if any(is_sealed_anywhere(d) for d in (view.plan_doc, view.tenant_doc, view.overrides)):
            raise ConfigurationError(
                f"tenant {view.slug}'s config holds secret values this process cannot open:"
                " set TENANTRY_SECRET_KEYS to the keys that sealed them"
            )
        resolved = view.resolve(time(), schema)
        if resolved.error is not None:
            raise ConfigurationError(
                f"{resolved.error.message} (the app's schema or the tenant's plan changed since it was written)"
            )
        model = resolved.model
        assert model is not None
        if as_type is not None and not isinstance(model, as_type):
            raise ConfigurationError(f"the config schema is {type(model).__name__}, not a {as_type.__name__}")
        return model

    # -- invalidation -----------------------------------------------------------------------
    def on_event(self, kind: EventKind, key: str) -> None:
        """Drop what an event made stale (called by the catalog listener and after writes)."""
        if kind == EventKind.FLAG:
            self.flag_sets.clear()
        elif kind == EventKind.TENANT:
            self._pop(key)
        elif kind == EventKind.CELL:
            self.views.drop_tagged(("cell", key))
        elif kind == EventKind.CONFIG:
            scope, _, name = key.partition(":")
            if scope == "tenant":
                self._pop(name)
            elif scope == "plan":
                self.views.drop_tagged(("plan", name))

    def _pop(self, tenant_id: str) -> None:
        # by key: tenant events come for every tenant, and must not read every cached view
        try:
            key = uuid.UUID(tenant_id)
        except ValueError:
            return
        self.views.drop(key)

    def on_reset(self) -> None:
        """Forget everything: events may have been missed (listener (re)connected)."""
        self.views.clear()
        self.flag_sets.clear()


class Flags:
    """Feature flags for the tenant bound to the context: ``tn.flags``.

    ::

        with tn.tenant("acme"):
            if tn.flags.enabled("new-editor"):
                ...
            theme = tn.flags.value("theme", default="light", user=user.id)

    Evaluations come from the process's cache (no database round trip once warm). ``user``
    makes a rollout split users within the tenant; ``attributes`` are extra values rules may
    test (tenantry's own attributes, such as ``plan``, cannot be overridden). ``tenant`` (slug
    or id) evaluates for that tenant instead of the bound one, for admin tools.
    """

    def __init__(self, live: Live) -> None:
        self._live = live

    def enabled(
        self,
        key: str,
        *,
        user: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        tenant: str | uuid.UUID | None = None,
    ) -> bool:
        """Whether the flag serves ``true``; an unknown flag is off."""
        if user is None and attributes is None and tenant is None:
            # the hot path: a memoised evaluation of a warm view
            bound = context._current.get()
            live = self._live
            flag_set = live.flag_sets.get(_ALL_FLAGS)
            if bound is not None and flag_set is not None:
                view = live.views.get(bound.id)
                if view is not None:
                    hit = view.memo.get(key)
                    if hit is not None and hit[0] is flag_set and (hit[2] is None or hit[2] > time()):
                        return hit[1].value is True
        try:
            return self.evaluate(key, user=user, attributes=attributes, tenant=tenant).value is True
        except FlagNotFound:
            return False

    def value(
        self,
        key: str,
        default: Any = None,
        *,
        user: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        tenant: str | uuid.UUID | None = None,
    ) -> Any:
        """The value of the variant the flag serves; ``default`` for an unknown flag."""
        try:
            return self.evaluate(key, user=user, attributes=attributes, tenant=tenant).value
        except FlagNotFound:
            return default

    def evaluate(
        self,
        key: str,
        *,
        user: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        tenant: str | uuid.UUID | None = None,
    ) -> flags_core.Evaluation:
        """The full evaluation (value, variant, reason, rule); :class:`FlagNotFound` for an
        unknown flag."""
        live = self._live
        view = live.view(live.tenant_id(tenant))
        memo = view.memo  # read before the flags: an event in between orphans this memo
        flag_set = live.flags()
        flag = flag_set.by_key.get(key)
        if flag is None:
            raise FlagNotFound(f"no flag {key!r}")
        now = time()
        plain = user is None and not attributes
        if plain:
            hit = memo.get(key)
            if hit is not None and hit[0] is flag_set and (hit[2] is None or hit[2] > now):
                return hit[1]
        resolved = view.resolve(now, live.schema())
        values = resolved.attributes
        if not plain:
            extra = {k: v for k, v in (attributes or {}).items() if k not in flags_core.RESERVED_ATTRIBUTES}
            values = {**extra, **values, "user": user}
        result, until = flags_core.evaluate(flag, str(view.id), values, now, user)
        if resolved.until is not None:
            until = resolved.until if until is None else min(until, resolved.until)
        if plain:
            memo[key] = (flag_set, result, until)
        return result

    def evaluate_all(
        self, *, user: str | None = None, tenant: str | uuid.UUID | None = None
    ) -> dict[str, flags_core.Evaluation]:
        """Every flag's evaluation for the tenant, by key."""
        keys = sorted(self._live.flags().by_key)
        found = {}
        for key in keys:
            try:
                found[key] = self.evaluate(key, user=user, tenant=tenant)
            except FlagNotFound:  # deleted meanwhile
                continue
        return found
