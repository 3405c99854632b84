"""``/v1/jobs``: the jobs of long operations, to poll.

A job the API runs (``tenant.create``, ``tenant.move``) is ``running``, then ``done`` with its
``result`` or ``failed`` with its ``error``. If the server died while it ran, the next read
records it as failed (interrupted). Either way, when the operation's own steps are kept,
``resumable`` is true and ``retry`` is the request that finishes it (for a move, ``abort`` is
the request that undoes it instead).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from tenantry.api.auth import Principal, require
from tenantry.api.deps import TN, problems
from tenantry.api.paging import Cursor, Limit, decode_cursor, paginate
from tenantry.api.schemas import JobOut, JobPage, RetryOut, Text
from tenantry.app import Tenantry
from tenantry.core.model import Isolation
from tenantry.core.placement import plan_steps
from tenantry.db.catalog import jobs as catalog_jobs
from tenantry.services import jobs as job_service
from tenantry.services.moves import STEPS as MOVE_STEPS

__all__ = ["job_view", "router"]

router = APIRouter(prefix="/jobs", tags=["jobs"])

Read = Annotated[Principal, Depends(require("jobs:read"))]


def _steps(job: catalog_jobs.Job) -> list[str]:
    if job.kind in ("tenant.move", "move"):
        return list(MOVE_STEPS)
    if job.kind == "tenant.create" and job.payload.get("isolation") in {i.value for i in Isolation}:
        return list(plan_steps(Isolation(job.payload["isolation"])))
    return []


def job_view(tn: Tenantry, job: catalog_jobs.Job) -> JobOut:
    """The job as the API shows it: its row (recorded as interrupted if its process died),
    with the steps its operation has done, and how to finish or undo it."""
    with tn.admin() as conn:
        job = job_service.reconcile(conn, job)
        under = job_service.underlying(conn, job) if job.background else None
    payload = job.payload
    request = payload.get("request") if isinstance(payload.get("request"), dict) else None
    resumable = job.status == "failed" and under is not None and under.status == "running"
    retry = abort = None
    if resumable and job.tenant is not None:
        if job.kind == "tenant.move":
            retry = RetryOut(method="POST", path=f"/v1/tenants/{job.tenant}/move", body=request)
            abort = f"/v1/tenants/{job.tenant}/move/abort"
        else:
            retry = RetryOut(method="POST", path="/v1/tenants", body=request)
    links = {"self": f"/v1/jobs/{job.id}"}
    if job.tenant is not None:
        links["tenant"] = f"/v1/tenants/{job.tenant}"
    result = payload.get("result")
    return JobOut(
        id=job.id,
        kind=job.kind,
        status=job.status,  # type: ignore[arg-type]
        tenant=job.tenant,
        actor=payload.get("actor") if job.background else None,
        request=request,
        step=payload.get("step") if job.status == "running" else None,
        steps=_steps(job),
        steps_done=list(under.steps_done if under is not None else job.steps_done),
        result=result if isinstance(result, dict) else None,
        error=job.error,
        error_status=payload.get("error_status") if job.status == "failed" else None,
        resumable=resumable,
        retry=retry,
        abort=abort,
        attempts=job.attempts,
        created_at=job.created_at,
        updated_at=job.updated_at,
        links=links,
    )


@router.get("", response_model=JobPage, responses=problems())
def list_jobs(
    tn: TN,
    _: Read,
    request: Request,
    response: Response,
    limit: Limit = 100,
    cursor: Cursor = None,
    kind: Annotated[Text | None, Query(max_length=100, description="Only jobs of this kind.")] = None,
    status: Annotated[
        Literal["running", "done", "failed"] | None, Query(description="Only jobs in this status.")
    ] = None,
    tenant: Annotated[Text | None, Query(max_length=100, description="Only jobs of this tenant (slug).")] = None,
) -> JobPage:
    """Jobs, newest first, a page at a time. Scope: `jobs:read`."""
    before = None if cursor is None else decode_cursor(cursor, datetime.fromisoformat, uuid.UUID)
    with tn.admin() as conn:
        found = catalog_jobs.list_jobs(conn, kind=kind, status=status, tenant=tenant, before=before, limit=limit + 1)
    page, url, next_cursor = paginate(request, response, found, limit, lambda j: (j.created_at.isoformat(), str(j.id)))
    return JobPage(items=[job_view(tn, j) for j in page], next=url, next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobOut, responses=problems(404))
def get_job(tn: TN, _: Read, job_id: Annotated[uuid.UUID, Path(description="The job's id.")]) -> JobOut:
    """One job: poll it until its status is `done` or `failed`. Scope: `jobs:read`."""
    with tn.admin() as conn:
        job = catalog_jobs.get_job(conn, job_id)
    return job_view(tn, job)
