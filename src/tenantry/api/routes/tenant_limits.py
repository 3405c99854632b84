"""``/v1/tenants/{key}/limits``: one tenant's overrides of its plan's limits.

Read with ``plans:read``, changed with ``plans:write`` (a limit is a plan's business, whoever
manages tenants' lifecycle). Every change is audited and reaches every process's edge and
bind within a second.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from tenantry.api.auth import Principal, require
from tenantry.api.deps import TN, problems
from tenantry.api.routes.plans import limits_given
from tenantry.core.limit_schema import LIMIT_KEYS, Limits
from tenantry.errors import InvalidInput
from tenantry.services.tenant_limits import TenantLimits

__all__ = ["TenantLimitsOut", "router"]

router = APIRouter(prefix="/tenants", tags=["limits"])

Read = Annotated[Principal, Depends(require("plans:read"))]
Write = Annotated[Principal, Depends(require("plans:write"))]
Key = Annotated[str, Path(description="The tenant's slug or id.")]


class TenantLimitsOut(BaseModel):
    tenant: str = Field(description="The tenant's slug.")
    tenant_id: str
    plan: str
    plan_limits: dict[str, Any] = Field(description="The plan's limits.")
    overrides: dict[str, Any] = Field(description="The tenant's own (`null`: that limit lifted for it).")
    effective: dict[str, Any] = Field(description="What applies: the plan's, with the tenant's winning.")
    sources: dict[str, str] = Field(description="Where each effective limit comes from: `tenant` or `plan`.")


def _out(found: TenantLimits) -> TenantLimitsOut:
    return TenantLimitsOut.model_validate(found.to_dict())


@router.get("/{key}/limits", response_model=TenantLimitsOut, responses=problems(404))
def show_limits(tn: TN, _: Read, key: Key) -> TenantLimitsOut:
    """The tenant's limits: its plan's, its overrides, the effective ones. Scope: `plans:read`."""
    return _out(tn.tenants.limits(key))


@router.patch("/{key}/limits", response_model=TenantLimitsOut, responses=problems(400, 404, 422))
def set_limits(tn: TN, _: Write, key: Key, body: Limits) -> TenantLimitsOut:
    """Override limits for this tenant: each key given replaces its override (`null` lifts that
    limit for the tenant alone); other overrides stay. Scope: `plans:write`."""
    given = limits_given(body)
    if not given:
        return _out(tn.tenants.limits(key))
    return _out(tn.tenants.limits_set(key, **given))


@router.put("/{key}/limits", response_model=TenantLimitsOut, responses=problems(400, 404, 422))
def replace_limits(tn: TN, _: Write, key: Key, body: Limits) -> TenantLimitsOut:
    """Make the body the tenant's whole overrides (`{}`: none; its plan's limits apply).
    Scope: `plans:write`."""
    return _out(tn.tenants.limits_replace(key, limits_given(body)))


@router.delete("/{key}/limits", response_model=TenantLimitsOut, responses=problems(404, 422))
def unset_limits(
    tn: TN,
    _: Write,
    key: Key,
    limit: Annotated[list[str] | None, Query(description="A limit to unset (repeatable); none: all.")] = None,
) -> TenantLimitsOut:
    """Drop the tenant's overrides of the limits named (all of them when none is): its plan's
    apply again. Scope: `plans:write`."""
    unknown = [k for k in limit or [] if k not in LIMIT_KEYS]
    if unknown:
        raise InvalidInput(f"limits: unknown key {unknown[0][:60]!r} (keys: {', '.join(sorted(LIMIT_KEYS))})")
    return _out(tn.tenants.limits_unset(key, *(limit or [])))
