"""``/v1/plans``: the tiers, and their placement policy (a pinned cell, cell labels)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from tenantry.api.auth import Principal, require
from tenantry.api.deps import TN, problems
from tenantry.api.schemas import PlanOut, PlanPage, PlanPatch, Text
from tenantry.core.model import Plan

__all__ = ["router"]

router = APIRouter(prefix="/plans", tags=["plans"])

Read = Annotated[Principal, Depends(require("plans:read"))]
Write = Annotated[Principal, Depends(require("plans:write"))]
Name = Annotated[Text, Path(max_length=100, description="The plan's name.")]


def plan_out(plan: Plan) -> PlanOut:
    return PlanOut.model_validate(plan.to_dict())


@router.get("", response_model=PlanPage, responses=problems())
def list_plans(tn: TN, _: Read) -> PlanPage:
    """Every plan, by name (a short list: not paged). Scope: `plans:read`."""
    return PlanPage(items=[plan_out(p) for p in tn.plans.list()])


@router.get("/{name}", response_model=PlanOut, responses=problems(404))
def get_plan(tn: TN, _: Read, name: Name) -> PlanOut:
    """One plan. Scope: `plans:read`."""
    return plan_out(tn.plans.get(name))


@router.patch("/{name}", response_model=PlanOut, responses=problems(400, 404, 409))
def pin_plan(tn: TN, _: Write, name: Name, body: PlanPatch) -> PlanOut:
    """Change where the plan's new database-tier tenants go: a pinned cell (`null` unpins)
    and the labels a cell must carry. Fields left out keep their value. Scope: `plans:write`."""
    current = tn.plans.get(name)
    given = body.model_fields_set
    cell = body.cell if "cell" in given else current.cell
    labels = body.cell_labels if "cell_labels" in given and body.cell_labels is not None else current.cell_labels
    return plan_out(tn.plans.pin(name, cell=cell, labels=labels))
