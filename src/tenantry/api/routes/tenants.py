"""``/v1/tenants``: list, create, read, change status, delete; placement; move and abort.

A pooled tenant is created at once (201). Schema- and database-tier tenants, and moves, are
built in the background: the answer is 202 with a job to poll (``Location: /v1/jobs/{id}``).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from tenantry.api.auth import Principal, require
from tenantry.api.deps import TN, Runner, problems
from tenantry.api.paging import Cursor, Limit, decode_cursor, paginate, text_key
from tenantry.api.routes.jobs import job_view
from tenantry.api.schemas import (
    AbortOut,
    DeletedOut,
    JobOut,
    MoveIn,
    PlacementOut,
    TenantIn,
    TenantOut,
    TenantPage,
    TenantPatch,
    TenantPlacementOut,
    Text,
)
from tenantry.app import Tenantry
from tenantry.core.model import Isolation, Status, Tenant
from tenantry.core.naming import validate_slug
from tenantry.core.placement import Placement, choose_cell
from tenantry.db.catalog import jobs as catalog_jobs
from tenantry.db.catalog import tenants as catalog_tenants
from tenantry.db.catalog.cells import cell_loads
from tenantry.db.catalog.placements import read_placement
from tenantry.db.catalog.tenants import get_tenant
from tenantry.errors import Conflict, InvalidInput, TenantExists, TenantNotFound
from tenantry.services import jobs as job_service

__all__ = ["router"]

router = APIRouter(prefix="/tenants", tags=["tenants"])

Key = Annotated[str, Path(description="The tenant's slug or id.")]
Read = Annotated[Principal, Depends(require("tenants:read"))]
Write = Annotated[Principal, Depends(require("tenants:write"))]
Mover = Annotated[Principal, Depends(require("moves:write"))]

#: how long a move request waits for the move to get past its checks (so that a refused move
#: is answered with its error, not with a job that fails at once)
START_WAIT = 5.0


def tenant_out(tenant: Tenant) -> TenantOut:
    return TenantOut.model_validate(tenant.to_dict())


def _placement(placement: Placement | None) -> PlacementOut | None:
    return None if placement is None else PlacementOut.model_validate(placement.to_dict())


def _accepted(job: JobOut) -> JSONResponse:
    return JSONResponse(job.model_dump(mode="json"), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


def _no_job_running(tn: Tenantry, tenant: Tenant) -> None:
    with tn.admin() as conn:
        running = job_service.running_for(conn, tenant.slug)
    if running is not None:
        raise Conflict(f"job {running.id} ({running.kind}) is running for tenant {tenant.slug!r}; wait for it to end")


@router.get("", response_model=TenantPage, responses=problems())
def list_tenants(
    tn: TN,
    _: Read,
    request: Request,
    response: Response,
    limit: Limit = 100,
    cursor: Cursor = None,
    status: Annotated[Status | None, Query(description="Only tenants with this status.")] = None,
    plan: Annotated[Text | None, Query(max_length=200, description="Only tenants on this plan.")] = None,
    include_deleted: Annotated[bool, Query(description="Include deleted tenants (tombstones).")] = False,
    prefix: Annotated[
        Text | None, Query(max_length=63, description="Only tenants whose slug starts with this.")
    ] = None,
) -> TenantPage:
    """Tenants by slug, a page at a time. Scope: `tenants:read`."""
    after = None if cursor is None else decode_cursor(cursor, text_key, uuid.UUID)
    with tn.admin() as conn:
        found = catalog_tenants.list_tenants(
            conn,
            status=status,
            plan=plan,
            include_deleted=include_deleted,
            prefix=prefix,
            after=after,
            limit=limit + 1,
        )
    page, url, next_cursor = paginate(request, response, found, limit, lambda t: (t.slug, str(t.id)))
    return TenantPage(items=[tenant_out(t) for t in page], next=url, next_cursor=next_cursor)


def _precheck(tn: Tenantry, body: TenantIn, isolation: Isolation) -> None:
    """Refuse a create that would fail, before a job is started for it."""
    validate_slug(body.slug)
    display = (body.name if body.name is not None else body.slug).strip()
    if not 1 <= len(display) <= 200:
        raise InvalidInput("tenant name must be 1 to 200 characters")
    tn.plane.app_metadata()
    with tn.admin() as conn:
        choose_cell(tn.plans.get(body.plan), cell_loads(conn), requested=body.cell)
        try:
            existing = get_tenant(conn, body.slug)
        except TenantNotFound:
            return
    if existing.status is not Status.PROVISIONING:
        raise TenantExists(f"a tenant with slug {body.slug!r} exists already")
    if existing.plan != body.plan:
        raise Conflict(
            f"tenant {body.slug!r} is half-built on plan {existing.plan!r}; create it again on that plan to finish"
        )


@router.post(
    "",
    status_code=201,
    response_model=TenantOut,
    responses={
        202: {"model": JobOut, "description": "Schema and database tiers: building; poll the job."},
        **problems(400, 404, 409),
    },
)
def create_tenant(tn: TN, runner: Runner, principal: Write, body: TenantIn, response: Response) -> Any:
    """Create a tenant on its plan's tier. Pooled: 201 with the tenant. Schema and database
    tiers: 202 with a job; sending the same request again resumes an interrupted one.
    Scope: `tenants:write`."""
    plan = tn.plans.get(body.plan)
    if plan.isolation is Isolation.POOLED:
        tenant = tn.tenants.create(body.slug, name=body.name, plan=body.plan, cell=body.cell)
        response.headers["Location"] = f"/v1/tenants/{tenant.slug}"
        return tenant_out(tenant)
    _precheck(tn, body, plan.isolation)

    def work(started: job_service.Started) -> dict[str, Any]:
        started(None)
        return {"tenant": tn.tenants.create(body.slug, name=body.name, plan=body.plan, cell=body.cell).to_dict()}

    submitted = runner.submit(
        "tenant.create",
        tenant=body.slug,
        tenant_id=None,
        actor=principal.actor,
        payload={"request": body.model_dump(), "isolation": plan.isolation.value},
        work=work,
    )
    return _accepted(job_view(tn, submitted.job))


@router.get("/{key}", response_model=TenantOut, responses=problems(404))
def get(tn: TN, _: Read, key: Key) -> TenantOut:
    """One tenant, by slug or id (a deleted one by id only). Scope: `tenants:read`."""
    return tenant_out(tn.tenants.get(key))


_VERBS = {Status.ACTIVE: "resume", Status.SUSPENDED: "suspend", Status.ARCHIVED: "archive"}


@router.patch("/{key}", response_model=TenantOut, responses=problems(400, 404, 409))
def change_status(tn: TN, _: Write, key: Key, body: TenantPatch) -> TenantOut:
    """Suspend, resume or archive a tenant; asking for the status it has changes nothing.
    Scope: `tenants:write`."""
    tenant = tn.tenants.get(key)
    _no_job_running(tn, tenant)
    changed: Tenant = getattr(tn.tenants, _VERBS[body.status])(tenant.id)
    return tenant_out(changed)


@router.delete("/{key}", response_model=DeletedOut, responses=problems(404, 409))
def delete(tn: TN, _: Write, key: Key) -> DeletedOut:
    """Delete a tenant and every row it owns (its schema or database on those tiers).
    Scope: `tenants:write`."""
    tenant = tn.tenants.get(key)
    _no_job_running(tn, tenant)
    counts = tn.tenants.delete(tenant.id)
    return DeletedOut(id=tenant.id, slug=tenant.slug, rows_deleted=counts)


@router.get("/{key}/placement", response_model=TenantPlacementOut, responses=problems(404))
def placement(tn: TN, _: Read, key: Key) -> TenantPlacementOut:
    """Where the tenant's rows live, and the placement being built, if any. Scope: `tenants:read`."""
    with tn.admin() as conn:
        tenant = get_tenant(conn, key)
        active = read_placement(conn, tenant.id)
        building = read_placement(conn, tenant.id, "building")
    return TenantPlacementOut(tenant=tenant.slug, active=_placement(active), building=_placement(building))


@router.post(
    "/{key}/move",
    status_code=202,
    response_model=JobOut,
    responses=problems(400, 404, 409),
)
def move(tn: TN, runner: Runner, principal: Mover, key: Key, body: MoveIn) -> Any:
    """Move a tenant to another tier (plan) or cell without losing a row: 202 with a job to
    poll. Sending the same request again resumes an interrupted move. Scope: `moves:write`."""
    if body.plan is None and body.cell is None:
        raise InvalidInput("say where to move: plan and/or cell")
    tenant = tn.tenants.get(key)

    def work(started: job_service.Started) -> dict[str, Any]:
        report = tn.tenants.move(tenant.id, plan=body.plan, cell=body.cell, on_step=started)
        return report.to_dict()

    submitted = runner.submit(
        "tenant.move",
        tenant=tenant.slug,
        tenant_id=tenant.id,
        actor=principal.actor,
        payload={"request": body.model_dump()},
        work=work,
    )
    submitted.wait_started(START_WAIT)
    if submitted.error is not None and not submitted.began:
        raise submitted.error  # refused before it began (nothing to resume): answer with the error
    with tn.admin() as conn:
        job = catalog_jobs.get_job(conn, submitted.job.id)
    return _accepted(job_view(tn, job))


@router.post("/{key}/move/abort", response_model=AbortOut, responses=problems(404, 409))
def abort_move(tn: TN, _: Mover, key: Key) -> AbortOut:
    """Undo a move that has not switched routing yet (409 once it has: move back instead).
    Scope: `moves:write`."""
    tenant = tn.tenants.get(key)
    _no_job_running(tn, tenant)
    return AbortOut(aborted=tn.tenants.abort_move(tenant.id))
