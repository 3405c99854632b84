"""The catalog's jobs: the durable record of control-plane work (``tenantry.jobs``).

Every long operation keeps a row: provisioning (kind ``provision``), moves (``move``),
failed app migrations (``migrate``), and the admin API's background jobs (``tenant.create``,
``tenant.move``). Durable work records its steps here (:mod:`tenantry.services.steps`); the
runner of background jobs is :mod:`tenantry.services.jobs`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from tenantry.errors import NotFound

__all__ = [
    "BACKGROUND_KINDS",
    "JOB_LOCK",
    "Job",
    "count_attempt",
    "fail_running_jobs",
    "finish_job",
    "get_job",
    "insert_job",
    "job_alive",
    "latest_job",
    "list_jobs",
    "merge_payload",
    "queue_depths",
    "record_steps",
    "running_background",
    "running_job",
    "set_job_tenant",
]

#: kinds of the jobs a JobRunner runs (and watches with its advisory lock)
BACKGROUND_KINDS = ("tenant.create", "tenant.move", "tenant.backup", "tenant.restore")
#: advisory lock namespace: (JOB_LOCK, hashtext(job id)) is held while a background job runs
JOB_LOCK = 0x746A6F62

_COLUMNS = """
    j.id, j.kind, j.status, j.tenant_id, coalesce(t.slug, j.payload->>'tenant'), j.steps_done, j.payload,
    j.attempts, j.error, j.created_at, j.updated_at
"""
_FROM = "FROM tenantry.jobs j LEFT JOIN tenantry.tenants t ON t.id = j.tenant_id"


@dataclass(frozen=True, slots=True)
class Job:
    """One job row; ``tenant`` is the slug of its tenant, if any."""

    id: uuid.UUID
    kind: str
    status: str
    tenant_id: uuid.UUID | None
    tenant: str | None
    steps_done: tuple[str, ...]
    payload: dict[str, Any]
    attempts: int
    error: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def background(self) -> bool:
        """Run by a :class:`JobRunner` (and watched by its lock)."""
        return self.kind in BACKGROUND_KINDS


def _job(row: tuple[Any, ...]) -> Job:
    return Job(row[0], row[1], row[2], row[3], row[4], tuple(row[5]), dict(row[6]), *row[7:11])


def get_job(conn: psycopg.Connection[Any], job_id: uuid.UUID, *, for_update: bool = False) -> Job:
    lock = " FOR UPDATE OF j" if for_update else ""
    row = conn.execute(f"SELECT {_COLUMNS} {_FROM} WHERE j.id = %s{lock}", (job_id,)).fetchone()
    if row is None:
        raise NotFound(f"no job {str(job_id)!r}")
    return _job(row)


def list_jobs(
    conn: psycopg.Connection[Any],
    *,
    kind: str | None = None,
    status: str | None = None,
    tenant: str | None = None,
    before: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 100,
) -> list[Job]:
    """Newest first; ``before`` is the (created_at, id) of the last job of the previous page."""
    rows = conn.execute(
        f"""
        SELECT {_COLUMNS} {_FROM}
         WHERE (%(kind)s::text IS NULL OR j.kind = %(kind)s)
           AND (%(status)s::text IS NULL OR j.status = %(status)s)
           AND (%(tenant)s::text IS NULL OR coalesce(t.slug, j.payload->>'tenant') = %(tenant)s)
           AND (%(at)s::timestamptz IS NULL OR (j.created_at, j.id) < (%(at)s, %(id)s::uuid))
         ORDER BY j.created_at DESC, j.id DESC
         LIMIT %(limit)s
        """,
        {
            "kind": kind,
            "status": status,
            "tenant": tenant,
            "limit": limit,
            "at": None if before is None else before[0],
            "id": None if before is None else before[1],
        },
    ).fetchall()
    return [_job(r) for r in rows]


def job_alive(conn: psycopg.Connection[Any], job_id: uuid.UUID) -> bool:
    row = conn.execute(
        """
        SELECT EXISTS (
            SELECT 1 FROM pg_locks
             WHERE locktype = 'advisory' AND granted AND objsubid = 2
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND classid = %s::int4::oid AND objid = hashtext(%s)::oid)
        """,
        (JOB_LOCK, str(job_id)),
    ).fetchone()
    return bool(row and row[0])


def running_background(conn: psycopg.Connection[Any], tenant: str) -> list[Job]:
    """The background jobs recorded as running for the tenant (slug)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} {_FROM} WHERE j.status = 'running' AND j.kind = ANY(%s) AND j.payload->>'tenant' = %s",
        (list(BACKGROUND_KINDS), tenant),
    ).fetchall()
    return [_job(r) for r in rows]


def latest_job(
    conn: psycopg.Connection[Any], kind: str, *, tenant_id: uuid.UUID | None, tenant: str, since: datetime
) -> Job | None:
    """The newest job of ``kind`` of the tenant (by id, else its live slug) still running or
    touched since ``since``."""
    row = conn.execute(
        f"""
        SELECT {_COLUMNS} {_FROM}
         WHERE j.kind = %s AND j.tenant_id = coalesce(%s, (
               SELECT id FROM tenantry.tenants WHERE slug = %s AND status <> 'deleted'))
           AND (j.status = 'running' OR j.updated_at >= %s)
         ORDER BY j.created_at DESC LIMIT 1
        """,
        (kind, tenant_id, tenant, since),
    ).fetchone()
    return None if row is None else _job(row)


def insert_job(
    conn: psycopg.Connection[Any],
    kind: str,
    tenant_id: uuid.UUID | None,
    *,
    payload: dict[str, Any] | None = None,
    attempts: int = 1,
) -> uuid.UUID:
    row = conn.execute(
        "INSERT INTO tenantry.jobs (kind, tenant_id, payload, attempts) VALUES (%s, %s, %s, %s) RETURNING id",
        (kind, tenant_id, Jsonb(payload or {}), attempts),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def running_job(
    conn: psycopg.Connection[Any], tenant_id: uuid.UUID, kind: str, *, for_update: bool = False
) -> tuple[uuid.UUID, list[str], dict[str, Any]] | None:
    """``(id, steps done, payload)`` of the tenant's running job of ``kind``, if any."""
    row = conn.execute(
        sql.SQL(
            "SELECT id, steps_done, payload FROM tenantry.jobs"
            " WHERE tenant_id = %s AND kind = %s AND status = 'running'{}"
        ).format(sql.SQL(" FOR UPDATE" if for_update else "")),
        (tenant_id, kind),
    ).fetchone()
    return None if row is None else (row[0], list(row[1]), dict(row[2]))


def count_attempt(conn: psycopg.Connection[Any], job_id: uuid.UUID) -> tuple[list[str], int]:
    """Count one more attempt at the job; returns its steps done and attempts so far."""
    row = conn.execute(
        "UPDATE tenantry.jobs SET attempts = attempts + 1, updated_at = now() WHERE id = %s"
        " RETURNING steps_done, attempts",
        (job_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no job {str(job_id)!r}")
    return list(row[0]), int(row[1])


def finish_job(
    conn: psycopg.Connection[Any],
    job_id: uuid.UUID,
    status: Literal["done", "failed"],
    *,
    error: str | None = None,
    payload: dict[str, Any] | None = None,
    only_running: bool = False,
) -> None:
    """Record the job's end (merging ``payload`` into its own); with ``only_running``, only
    if it is still recorded as running."""
    conn.execute(
        sql.SQL(
            "UPDATE tenantry.jobs SET status = %s, error = %s, payload = payload || %s, updated_at = now()"
            " WHERE id = %s{}"
        ).format(sql.SQL(" AND status = 'running'" if only_running else "")),
        (status, error, Jsonb(payload or {}), job_id),
    )


def fail_running_jobs(conn: psycopg.Connection[Any], tenant_id: uuid.UUID, error: str) -> None:
    conn.execute(
        "UPDATE tenantry.jobs SET status = 'failed', error = %s, updated_at = now()"
        " WHERE tenant_id = %s AND status = 'running'",
        (error, tenant_id),
    )


def merge_payload(conn: psycopg.Connection[Any], job_id: uuid.UUID, payload: dict[str, Any]) -> None:
    conn.execute(
        "UPDATE tenantry.jobs SET payload = payload || %s, updated_at = now() WHERE id = %s", (Jsonb(payload), job_id)
    )


def record_steps(
    conn: psycopg.Connection[Any],
    table: Literal["jobs", "spares"],
    row_id: uuid.UUID,
    steps: Sequence[str],
    payload: dict[str, Any] | None = None,
) -> None:
    """Record the steps done of durable work (a job's, with ``payload`` merged into its
    own; or a spare's build)."""
    if table == "jobs":
        conn.execute(
            "UPDATE tenantry.jobs SET steps_done = %s, payload = payload || %s, updated_at = now() WHERE id = %s",
            (list(steps), Jsonb(payload or {}), row_id),
        )
    else:
        conn.execute(
            "UPDATE tenantry.spares SET steps_done = %s, updated_at = now() WHERE id = %s", (list(steps), row_id)
        )


def queue_depths(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """How much work waits: plugin hook calls pending or running, and jobs running."""
    rows = conn.execute(
        "SELECT 'plugin_hooks', count(*) FROM tenantry.plugin_hooks WHERE status IN ('pending', 'running')"
        " UNION ALL SELECT 'jobs', count(*) FROM tenantry.jobs WHERE status = 'running'"
    ).fetchall()
    return {str(name): int(count) for name, count in rows}


def set_job_tenant(conn: psycopg.Connection[Any], job_id: uuid.UUID, tenant_id: uuid.UUID) -> None:
    """Name the tenant of a job recorded before it had one (a restore's, once it is made)."""
    conn.execute("UPDATE tenantry.jobs SET tenant_id = %s, updated_at = now() WHERE id = %s", (tenant_id, job_id))
