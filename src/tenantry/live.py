"""Config and flags as a running app reads them: from a per-process cache, keyed by tenant id.

``tn.config()`` and ``tn.flags.enabled("x")`` never touch the database once warm. The first
read for a tenant loads its view (the tenant's attributes and its plan's and its own config
layers, one query); the first flag read loads every flag (one query). The cache is dropped
piecemeal by the catalog listener's events (``config:tenant:<id>``, ``config:plan:<name>``,
``flag:<key>``, ``tenant:<id>``, ``cell:<name>``) and wholly after the listener reconnects,
so a change made anywhere reaches every process within a second. Entries loaded while the
listener is not connected are kept only briefly. Time is judged at read time: an override
that expires, or a flag's schedule, takes effect at its moment without any event.

A load that races with an event is not stored (a generation counter), so a stale view can
never be cached after the event that made it stale.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import monotonic, time
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from tenantry import context
from tenantry.core import config as config_core
from tenantry.core import flags as flags_core
from tenantry.core.caches import expires_at, make_room
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
    expires: float
    """``time.monotonic()`` after which the view must be loaded again."""
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


@dataclass(frozen=True, slots=True)
class _FlagSet:
    by_key: dict[str, flags_core.Flag]
    expires: float


class Live:
    """The per-process cache of one :class:`~tenantry.Tenantry` (``tn._live``)."""

    def __init__(self, tn: Tenantry) -> None:
        self._tn = tn
        self._lock = threading.Lock()
        self._generation = 0
        self.views: dict[uuid.UUID, TenantView] = {}
        self.flag_set: _FlagSet | None = None

    # -- loading ----------------------------------------------------------------------------
    def _expiry(self) -> float:
        listener = self._tn._listener
        trusted = listener is not None and listener.listening.is_set()
        return expires_at(self._tn.settings.tenant_cache_ttl, trusted=trusted)

    def view(self, tenant_id: uuid.UUID) -> TenantView:
        """The tenant's view, loaded when missing or expired."""
        view = self.views.get(tenant_id)
        if view is not None and view.expires > monotonic():
            return view
        self._tn._listen()
        generation = self._generation
        expires = self._expiry()
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
            expires=expires,
        )
        if view.id != tenant_id:  # defence in depth: a view answers for its own tenant only
            raise TenantNotFound(f"no tenant {str(tenant_id)!r}")
        with self._lock:
            if self._generation == generation:
                make_room(self.views, self._tn.settings.tenant_cache_size)
                self.views[tenant_id] = view
        return view

    def flags(self) -> _FlagSet:
        """Every flag, compiled; loaded when missing or expired."""
        found = self.flag_set
        if found is not None and found.expires > monotonic():
            return found
        self._tn._listen()
        generation = self._generation
        expires = self._expiry()
        with self._tn.catalog_reader() as conn:
            records = load_flags(conn)
        found = _FlagSet({r.key: flags_core.compile_flag(r.spec) for r in records}, expires)
        with self._lock:
            if self._generation == generation:
                self.flag_set = found
        return found

    def schema(self) -> type[BaseModel] | None:
        sections = self._tn.config_sections
        return sections.schema() if sections.configured else None

    def tenant_id(self, tenant: str | uuid.UUID | None) -> uuid.UUID:
        """The id of ``tenant`` (slug or id), else of the tenant bound to the context."""
        if tenant is None:
            return context.require().id
        if isinstance(tenant, uuid.UUID):
            return tenant
        resolved = self._tn._cached(tenant) or self._tn._lookup(tenant)
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
    def on_event(self, kind: str, key: str) -> None:
        """Drop what an event made stale (called by the catalog listener and after writes)."""
        with self._lock:
            self._generation += 1
            if kind == "flag":
                self.flag_set = None
            elif kind == "tenant":
                self._pop(key)
            elif kind == "cell":
                self._drop(lambda v: v.cell == key)
            elif kind == "config":
                scope, _, name = key.partition(":")
                if scope == "tenant":
                    self._pop(name)
                elif scope == "plan":
                    self._drop(lambda v: v.plan == name)

    def _pop(self, tenant_id: str) -> None:
        # by key: tenant events come for every tenant, and must not read every cached view
        try:
            self.views.pop(uuid.UUID(tenant_id), None)
        except ValueError:
            pass

    def _drop(self, stale: Any) -> None:
        for tenant_id, view in list(self.views.items()):
            if stale(view):
                self.views.pop(tenant_id, None)

    def on_reset(self) -> None:
        """Forget everything: events may have been missed (listener (re)connected)."""
        with self._lock:
            self._generation += 1
            self.views = {}
            self.flag_set = None


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
            flag_set = live.flag_set
            if bound is not None and flag_set is not None:
                view = live.views.get(bound.id)
                if view is not None:
                    hit = view.memo.get(key)
                    if hit is not None and hit[0] is flag_set:
                        now = monotonic()
                        if view.expires > now and flag_set.expires > now and (hit[2] is None or hit[2] > time()):
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
