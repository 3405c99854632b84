"""``/v1/tenants/{key}/backups`` and ``/v1/backups``: per-tenant backups (see docs/backups.md).

Taking a backup and restoring one are long work: the answer is 202 with a job to poll
(``Location: /v1/jobs/{id}``), whose ``step`` follows the tables as they are written and
whose ``result`` is the backup (or the restore's report) once done.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from tenantry.api.auth import Principal, require
from tenantry.api.deps import TN, Runner, problems
from tenantry.api.routes.jobs import job_view
from tenantry.api.schemas import JobOut
from tenantry.db.catalog import jobs as catalog_jobs
from tenantry.services import jobs as job_service

__all__ = ["router"]

router = APIRouter(tags=["backups"])

Read = Annotated[Principal, Depends(require("tenants:read"))]
Write = Annotated[Principal, Depends(require("tenants:write"))]
Key = Annotated[str, Path(description="The tenant's slug or id.", max_length=100)]
BackupId = Annotated[uuid.UUID, Path(description="The backup's id.")]
START_WAIT = 5.0


class BackupOut(BaseModel):
    """One backup, as ``tenantry.backups`` records it (``manifest`` on ``GET /v1/backups/{id}``)."""

    id: uuid.UUID
    tenant: str
    tenant_id: uuid.UUID
    plan: str
    isolation: str
    status: str = Field(description="running, complete or failed")
    storage: str
    location: str
    encrypted: bool
    rows: int | None
    size: int | None
    error: str | None
    created_by: str
    created_at: str
    completed_at: str | None
    manifest: dict[str, Any] | None = None


class BackupList(BaseModel):
    items: list[BackupOut]


class RestoreIn(BaseModel):
    """Restore into a new tenant ``as`` (on ``plan``, by default the backed-up tenant's); without
    ``as``, over the tenant the backup was taken of (its writes refused only for the swap)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    as_: str | None = Field(default=None, alias="as", min_length=1, max_length=63, description="The new tenant's slug.")
    plan: str | None = Field(default=None, max_length=63)
    cell: str | None = Field(default=None, max_length=63, description="A database-tier clone's cell (server).")


class ImportIn(BaseModel):
    """An archive in the backup storage (``TENANTRY_BACKUP_URL``) to record."""

    model_config = ConfigDict(extra="forbid")

    location: str = Field(
        min_length=3,
        max_length=200,
        description="Where the archive is inside the storage: `<tenant slug>/<backup id>`.",
    )


class DeletedBackup(BaseModel):
    id: uuid.UUID
    deleted: bool


def _accepted(job: JobOut) -> JSONResponse:
    return JSONResponse(job.model_dump(mode="json"), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


def _started(tn: TN, submitted: job_service.Submitted) -> JSONResponse:
    submitted.wait_started(START_WAIT)
    if submitted.error is not None and not submitted.began:
        raise submitted.error  # refused before it began: answer with the error
    with tn.admin() as conn:
        job = catalog_jobs.get_job(conn, submitted.job.id)
    return _accepted(job_view(tn, job))


@router.post("/tenants/{key}/backups", status_code=202, response_model=JobOut, responses=problems(400, 404, 409))
def create_backup(tn: TN, runner: Runner, principal: Write, key: Key) -> Any:
    """Back up the tenant while it keeps serving: 202 with a job to poll; its result is the
    backup. Scope: `tenants:write`."""
    tenant = tn.tenants.get(key)

    def work(started: job_service.Started) -> dict[str, Any]:
        started(None)
        backup = tn.backups.create(tenant.id, progress=lambda table, _done, _total: started(table))
        return backup.to_dict()

    submitted = runner.submit(
        "tenant.backup", tenant=tenant.slug, tenant_id=tenant.id, actor=principal.actor, payload={}, work=work
    )
    return _started(tn, submitted)


@router.get("/tenants/{key}/backups", response_model=BackupList, responses=problems(404))
def list_backups(
    tn: TN, _: Read, key: Key, limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100
) -> BackupList:
    """The tenant's backups, newest first. Scope: `tenants:read`."""
    found = tn.backups.list(key, limit=limit)
    return BackupList(items=[BackupOut.model_validate(b.to_dict()) for b in found])


@router.get("/backups/{backup_id}", response_model=BackupOut, responses=problems(404))
def get_backup(tn: TN, _: Read, backup_id: BackupId) -> BackupOut:
    """One backup, with its manifest. Scope: `tenants:read`."""
    return BackupOut.model_validate(tn.backups.get(backup_id).to_dict(manifest=True))


@router.post("/backups/import", status_code=201, response_model=BackupOut, responses=problems(400, 404, 409))
def import_backup(tn: TN, _: Write, body: ImportIn) -> BackupOut:
    """Record an archive of the backup storage whose backup this catalog does not know (after
    the catalog was lost or rebuilt); it can then be verified and restored as any other.
    Importing the same archive again answers its record. Scope: `tenants:write`."""
    return BackupOut.model_validate(tn.backups.import_archive(body.location).to_dict(manifest=True))


@router.delete("/backups/{backup_id}", response_model=DeletedBackup, responses=problems(404, 409))
def delete_backup(tn: TN, _: Write, backup_id: BackupId) -> DeletedBackup:
    """Delete a backup and its archive. Scope: `tenants:write`."""
    if not tn.backups.delete(backup_id):
        from tenantry.errors import BackupNotFound

        raise BackupNotFound(f"no backup has id {backup_id}")
    return DeletedBackup(id=backup_id, deleted=True)


@router.post("/backups/{backup_id}/restore", status_code=202, response_model=JobOut, responses=problems(400, 404, 409))
def restore_backup(tn: TN, runner: Runner, principal: Write, backup_id: BackupId, body: RestoreIn) -> Any:
    """Restore the backup into a new tenant, on any plan, or over its own tenant: 202 with a
    job to poll. Sending the same request again finishes an interrupted restore.
    Scope: `tenants:write`."""
    backup = tn.backups.get(backup_id)

    def work(started: job_service.Started) -> dict[str, Any]:
        started(None)
        return tn.backups.restore(
            backup.id,
            as_slug=body.as_,
            plan=body.plan,
            cell=body.cell,
            progress=lambda step, _done, _total: started(step),
        )

    submitted = runner.submit(
        "tenant.restore",
        tenant=body.as_ or backup.tenant,
        tenant_id=None,
        actor=principal.actor,
        payload={"request": body.model_dump(by_alias=True), "backup": str(backup.id)},
        work=work,
    )
    return _started(tn, submitted)
