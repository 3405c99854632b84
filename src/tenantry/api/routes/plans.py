"""``/v1/plans``: the plans tenants are on, their limits and placement policy (a pinned cell,
cell labels). Create, change and delete need ``plans:write``; every change is audited and
reaches every process's cached limits within a second."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import Field

from tenantry.api.auth import Principal, require
from tenantry.api.deps import TN, problems
from tenantry.api.schemas import In, PlanOut, PlanPage, PlanPatch, Text
from tenantry.core.limit_schema import Limits
from tenantry.core.model import Isolation, Plan

__all__ = ["PlanIn", "limits_given", "router"]

router = APIRouter(prefix="/plans", tags=["plans"])

Read = Annotated[Principal, Depends(require("plans:read"))]
Write = Annotated[Principal, Depends(require("plans:write"))]
Name = Annotated[Text, Path(max_length=100, description="The plan's name.")]


class PlanIn(In):
    name: Annotated[Text, Field(max_length=63, description="a-z, 0-9, `_` and `-`, starting with a letter.")]
    isolation: Isolation = Field(Isolation.POOLED, description="The tier of the plan's tenants.")
    description: Annotated[Text, Field(max_length=500)] = ""
    limits: Limits = Field(default_factory=Limits, description="The plan's limits (`null` or absent: none).")


def plan_out(plan: Plan) -> PlanOut:
    return PlanOut.model_validate(plan.to_dict())


def limits_given(limits: Limits) -> dict[str, Any]:
    """The keys a request body gave (``null`` kept: it lifts a limit)."""
    return limits.model_dump(include=set(limits.model_fields_set))


@router.get("", response_model=PlanPage, responses=problems())
def list_plans(tn: TN, _: Read) -> PlanPage:
    """Every plan, by name (a short list: not paged). Scope: `plans:read`."""
    return PlanPage(items=[plan_out(p) for p in tn.plans.list()])


@router.post("", response_model=PlanOut, status_code=201, responses=problems(400, 409, 422))
def create_plan(tn: TN, _: Write, body: PlanIn) -> PlanOut:
    """Create a plan (several per tier if you like). 409 if the name is taken. Scope: `plans:write`."""
    plan = tn.plans.create(
        body.name, isolation=body.isolation, description=body.description, limits=limits_given(body.limits)
    )
    return plan_out(plan)


@router.get("/{name}", response_model=PlanOut, responses=problems(404))
def get_plan(tn: TN, _: Read, name: Name) -> PlanOut:
    """One plan. Scope: `plans:read`."""
    return plan_out(tn.plans.get(name))


@router.patch("/{name}", response_model=PlanOut, responses=problems(400, 404, 409, 422))
def change_plan(tn: TN, _: Write, name: Name, body: PlanPatch) -> PlanOut:
    """Change a plan: its tier (only while no tenant is on it), description, limits (each key
    given replaces the plan's, `null` lifts it, others stay), and where its new database-tier
    tenants go (a pinned cell, `null` unpins; cell labels). Fields left out keep their value.
    Scope: `plans:write`."""
    given = body.model_fields_set
    if given & {"isolation", "description", "limits"}:
        tn.plans.update(
            name,
            isolation=body.isolation,
            description=body.description,
            limits=None if body.limits is None else limits_given(body.limits),
        )
    if given & {"cell", "cell_labels"}:
        current = tn.plans.get(name)
        cell = body.cell if "cell" in given else current.cell
        labels = body.cell_labels if "cell_labels" in given and body.cell_labels is not None else current.cell_labels
        return plan_out(tn.plans.pin(name, cell=cell, labels=labels))
    return plan_out(tn.plans.get(name))


@router.put("/{name}/limits", response_model=PlanOut, responses=problems(400, 404, 422))
def replace_limits(tn: TN, _: Write, name: Name, body: Limits) -> PlanOut:
    """Replace the plan's limits with the body (keys left out: no limit). Scope: `plans:write`."""
    return plan_out(tn.plans.update(name, limits=limits_given(body), replace_limits=True))


@router.delete("/{name}", response_model=PlanOut, responses=problems(404, 409))
def delete_plan(tn: TN, _: Write, name: Name) -> PlanOut:
    """Delete a plan no tenant is on; 409 says how many tenants still are. Answers with the
    plan as it was. Scope: `plans:write`."""
    return plan_out(tn.plans.delete(name))
