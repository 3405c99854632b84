"""The layer a per-tenant setting belongs to: a plan's, or a tenant's (:class:`Scope`).

Config layers and plugin enablement are both kept per plan and per tenant; both name the layer
a call is about the same way, through :func:`scope_of`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql

from tenantry.core.model import Status
from tenantry.db.catalog import plans as catalog_plans
from tenantry.db.catalog import tenants as catalog_tenants
from tenantry.errors import InvalidInput, TenantNotFound

__all__ = ["Scope", "ScopeKind", "scope_of"]

ScopeKind = Literal["plan", "tenant"]


@dataclass(frozen=True, slots=True)
class Scope:
    """The layer a call is about: a plan's, or a tenant's."""

    kind: ScopeKind
    target: str
    """The plan's name, or the tenant's slug."""
    plan: str
    """The plan (a tenant's: its plan)."""
    tenant_id: uuid.UUID | None = None

    @property
    def key(self) -> str:
        """How NOTIFY names it: the plan's name or the tenant's id."""
        return self.plan if self.tenant_id is None else str(self.tenant_id)

    @property
    def column(self) -> sql.Identifier:
        """The catalog column that names the layer's owner."""
        return sql.Identifier("tenant_id" if self.kind == "tenant" else "plan")

    @property
    def value(self) -> Any:
        """The owner's value in :attr:`column`."""
        return self.tenant_id if self.kind == "tenant" else self.plan

    @property
    def sealing(self) -> str:
        """What a sealed value of this layer is bound to (a layer's secrets open only there)."""
        return f"plan:{self.plan}" if self.tenant_id is None else f"tenant:{self.tenant_id}"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"scope": self.kind, "target": self.target, "plan": self.plan}
        if self.tenant_id is not None:
            data["tenant_id"] = str(self.tenant_id)
        return data


def scope_of(conn: psycopg.Connection[Any], *, tenant: str | uuid.UUID | None = None, plan: str | None = None) -> Scope:
    """The layer of ``tenant`` (slug or id) or of ``plan``: exactly one of them."""
    if (tenant is None) == (plan is None):
        raise InvalidInput("name exactly one layer: a tenant or a plan")
    if tenant is not None:
        found = catalog_tenants.get_tenant(conn, tenant)
        if found.status is Status.DELETED:
            raise TenantNotFound(f"tenant {found.slug!r} is deleted")
        return Scope("tenant", found.slug, found.plan, found.id)
    assert plan is not None
    return Scope("plan", catalog_plans.get_plan(conn, plan).name, plan)
