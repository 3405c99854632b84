"""Config and flags as a running app reads them: from a per-process cache, keyed by tenant id.

``tn.config.current()`` and ``tn.flags.enabled("x")`` never touch the database once warm. The first
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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import time
from typing import Any, TypeVar

from pydantic import BaseModel

from tenantry import context
from tenantry.core.caches import CatalogCache
from tenantry.core.events import EventKind
from tenantry.core.secrets import is_sealed_anywhere, unseal, unseal_overrides
from tenantry.db.catalog import config as store
from tenantry.errors import ConfigInvalid, ConfigurationError, TenantNotFound
from tenantry.tenant_config import evaluation, layers, records
from tenantry.tenant_config.plane import ControlPlane
from tenantry.tenant_config.schema import ConfigSections, validate

__all__ = ["FlagSet", "Live", "TenantView"]

_log = logging.getLogger("tenantry.live")

M = TypeVar("M", bound=BaseModel)


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
    memo: dict[str, tuple[Any, evaluation.Evaluation, float | None]] = field(default_factory=dict)
    resolved: _Resolved | None = None

    def resolve(self, now: float, schema: type[BaseModel] | None) -> _Resolved:
        """The config in force at ``now`` (epoch seconds), validated by ``schema``."""
        cached = self.resolved
        if cached is not None and cached.schema is schema and (cached.until is None or now < cached.until):
            return cached
        merged, until = layers.resolve(self.plan_doc, self.tenant_doc, self.overrides, datetime.fromtimestamp(now, UTC))
        model: BaseModel | None = None
        error: ConfigInvalid | None = None
        effective = merged
        if schema is not None:
            try:
                model = validate(schema, merged, what=f"tenant {self.slug}'s config")
            except ConfigInvalid as err:
                error = err  # flags still read the raw layers; tn.config.current() reports it
            else:
                effective = model.model_dump(mode="json")
        resolved = _Resolved(
            schema, None if until is None else until.timestamp(), model, error, {**self.attributes, "config": effective}
        )
        self.resolved = resolved
        return resolved


@dataclass(frozen=True, slots=True, eq=False)
class FlagSet:
    """Every flag, compiled (one load: flags are few, and every evaluation may need any)."""

    by_key: dict[str, evaluation.Flag]


#: the one key of the flag cache: every flag is loaded at once
ALL_FLAGS = "*"


def _view_tags(tenant_id: uuid.UUID, view: TenantView) -> tuple[tuple[str, str | None], ...]:
    return (("plan", view.plan), ("cell", view.cell))


class Live:
    """The per-process cache behind ``tn.config`` and ``tn.flags`` (one per
    :class:`~tenantry.Tenantry`, shared by both).

    ``trusted`` says whether the catalog listener is connected now (see
    :class:`~tenantry.core.caches.CatalogCache`), ``listen`` starts it, and ``lookup`` gives a
    tenant's id from its slug through the owner's tenant-lookup cache.
    """

    def __init__(
        self,
        plane: ControlPlane,
        sections: ConfigSections,
        *,
        trusted: Callable[[], bool],
        listen: Callable[[], None],
        lookup: Callable[[str], uuid.UUID],
    ) -> None:
        self._plane = plane
        self.sections = sections
        self._listen = listen
        self._lookup = lookup
        ttl, size = plane.settings.tenant_cache_ttl, plane.settings.tenant_cache_size
        #: config views by tenant id, tagged by plan and cell
        self.views: CatalogCache[uuid.UUID, TenantView] = CatalogCache(
            "config views", ttl=ttl, size=size, trusted=trusted, tags=_view_tags
        )
        self.flag_sets: CatalogCache[str, FlagSet] = CatalogCache("flags", ttl=ttl, size=1, trusted=trusted)
        sections.on_change(self.on_reset)

    @property
    def flag_set(self) -> FlagSet | None:
        """Every flag, compiled, while the cache may serve it."""
        return self.flag_sets.get(ALL_FLAGS)

    # -- loading ----------------------------------------------------------------------------
    def view(self, tenant_id: uuid.UUID) -> TenantView:
        """The tenant's view, loaded when missing or expired."""
        view = self.views.get(tenant_id)
        if view is not None:
            return view
        self._listen()
        ticket = self.views.begin()
        with self._plane.catalog_reader() as conn:
            row = store.read_view(conn, tenant_id)
        if row is None:
            raise TenantNotFound(f"no tenant {str(tenant_id)!r}")
        keyring = self._plane.secret_keyring()
        view = TenantView(
            id=row.id,
            slug=row.slug,
            plan=row.plan,
            cell=row.cell,
            attributes={
                "tenant": row.slug,
                "tenant_id": str(row.id),
                "plan": row.plan,
                "status": row.status,
                "created_at": row.created_at,
                "cell": row.cell,
                "tier": row.tier,
                "region": (row.labels or {}).get("region"),
            },
            # sealed secrets are opened once per load (the model holds them as SecretStr); one
            # this process has no key for stays sealed: flags still work, tn.config.current() refuses
            plan_doc=unseal(row.plan_doc, keyring, f"plan:{row.plan}", strict=False),
            tenant_doc=unseal(row.tenant_doc, keyring, f"tenant:{row.id}", strict=False),
            overrides=unseal_overrides(row.overrides, keyring, f"tenant:{row.id}", strict=False),
        )
        if view.id != tenant_id:  # defence in depth: a view answers for its own tenant only
            raise TenantNotFound(f"no tenant {str(tenant_id)!r}")
        self.views.put(tenant_id, view, ticket)
        return view

    def flags(self) -> FlagSet:
        """Every flag, compiled; loaded when missing or expired."""
        found = self.flag_sets.get(ALL_FLAGS)
        if found is not None:
            return found
        self._listen()
        return self.flag_sets.get_or_load(ALL_FLAGS, self._load_flags)

    def _load_flags(self) -> FlagSet:
        with self._plane.catalog_reader() as conn:
            loaded = records.load_flags(conn)
        return FlagSet({r.key: evaluation.compile_flag(r.spec) for r in loaded})

    def schema(self) -> type[BaseModel] | None:
        sections = self.sections
        return sections.schema() if sections.configured else None

    def tenant_id(self, tenant: str | uuid.UUID | None) -> uuid.UUID:
        """The id of ``tenant`` (slug or id), else of the tenant bound to the context."""
        if tenant is None:
            return context.require().id
        if isinstance(tenant, uuid.UUID):
            return tenant
        return self._lookup(tenant)

    # -- reads ------------------------------------------------------------------------------
    def config(self, tenant_id: uuid.UUID, as_type: type[M] | None = None) -> BaseModel:
        """The tenant's config model (cached; see the module docs)."""
        schema = self.sections.schema()
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
