"""Per-tenant overrides of the plan's limits: set, unset and read them, each change audited.

A tenant's overrides are a limits document of its own (checked against
:class:`~tenantry.core.limit_schema.Limits`) laid over its plan's: a key it sets wins, a key
set to ``None`` lifts that limit for the tenant alone, a key it does not set is the plan's.
The change fires the catalog's ``tenant_limits_notify`` trigger (catalog 0015): every process
drops what it cached of the tenant's limits when it commits, and the edge and the bind apply
the new ones from the tenant's next request or transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from tenantry.core.limit_schema import LIMIT_KEYS, check_limits
from tenantry.db.catalog import audit
from tenantry.db.catalog import tenant_limits as store
from tenantry.db.catalog.plans import get_plan
from tenantry.db.catalog.tenants import get_tenant
from tenantry.errors import InvalidInput

__all__ = ["TenantLimits", "read_limits", "replace_limits", "set_limits", "unset_limits"]


@dataclass(frozen=True, slots=True)
class TenantLimits:
    """A tenant's limits: its plan's, its overrides, and what applies (overrides win)."""

    tenant: str
    """The tenant's slug."""
    tenant_id: uuid.UUID
    plan: str
    plan_limits: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def effective(self) -> dict[str, Any]:
        """Every limit that applies, by key (``None``: lifted by an override)."""
        return {**self.plan_limits, **self.overrides}

    def source(self, key: str) -> str:
        """Where the limit ``key`` comes from: ``"tenant"``, ``"plan"`` or ``"none"``."""
        return "tenant" if key in self.overrides else "plan" if key in self.plan_limits else "none"

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "tenant_id": str(self.tenant_id),
            "plan": self.plan,
            "plan_limits": self.plan_limits,
            "overrides": self.overrides,
            "effective": self.effective,
            "sources": {k: self.source(k) for k in LIMIT_KEYS if self.source(k) != "none"},
        }


def read_limits(conn: psycopg.Connection[Any], key: str | uuid.UUID) -> TenantLimits:
    """The tenant's plan limits, overrides and effective limits."""
    tenant = get_tenant(conn, key)
    plan = get_plan(conn, tenant.plan)
    own = store.read_overrides(conn, tenant.id) or {}
    return TenantLimits(tenant.slug, tenant.id, tenant.plan, dict(plan.limits), own)


def set_limits(
    conn: psycopg.Connection[Any], key: str | uuid.UUID, changes: Mapping[str, Any], *, actor: str
) -> tuple[TenantLimits, bool]:
    """Set ``changes`` over the tenant's overrides (other keys keep theirs; ``None`` lifts that
    limit for the tenant). Returns the limits and whether anything changed (a no-op is not
    audited)."""
    checked = check_limits(changes)
    if not checked:
        raise InvalidInput(f"name at least one limit to set ({', '.join(LIMIT_KEYS)})")
    return _change(conn, key, lambda own: {**own, **checked}, actor=actor, action="tenant.limits.set")


def replace_limits(
    conn: psycopg.Connection[Any], key: str | uuid.UUID, document: Mapping[str, Any], *, actor: str
) -> tuple[TenantLimits, bool]:
    """Make ``document`` the tenant's whole overrides (``{}``: none, its plan's limits apply)."""
    checked = check_limits(document)
    return _change(conn, key, lambda own: dict(checked), actor=actor, action="tenant.limits.replace")


def unset_limits(
    conn: psycopg.Connection[Any], key: str | uuid.UUID, keys: Iterable[str], *, actor: str
) -> tuple[TenantLimits, bool]:
    """Remove the overrides of ``keys`` (the plan's limits apply again); no keys: all of them."""
    names = list(keys)
    unknown = [k for k in names if k not in LIMIT_KEYS]
    if unknown:
        raise InvalidInput(f"limits: unknown key {unknown[0][:60]!r} (keys: {', '.join(sorted(LIMIT_KEYS))})")
    return _change(
        conn,
        key,
        lambda own: {k: v for k, v in own.items() if names and k not in names},
        actor=actor,
        action="tenant.limits.unset",
    )


def _change(
    conn: psycopg.Connection[Any],
    key: str | uuid.UUID,
    apply: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    actor: str,
    action: str,
) -> tuple[TenantLimits, bool]:
    with conn.transaction():
        tenant = get_tenant(conn, key, for_update=True)
        own = store.read_overrides(conn, tenant.id, for_update=True) or {}
        new: dict[str, Any] = apply(own)
        plan = dict(get_plan(conn, tenant.plan).limits)
        before = TenantLimits(tenant.slug, tenant.id, tenant.plan, plan, own)
        if new == own:
            return before, False
        if new:
            store.write_overrides(conn, tenant.id, new)
        else:
            store.delete_overrides(conn, tenant.id)
        after = TenantLimits(tenant.slug, tenant.id, tenant.plan, plan, new)
        audit.record(
            conn,
            actor=actor,
            action=action,
            target_type="tenant",
            target=tenant.slug,
            before={"overrides": own},
            after={"overrides": new},
        )
    return after, True
