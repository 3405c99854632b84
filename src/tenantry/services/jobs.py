"""Jobs: the durable record of control-plane work, and a runner for work done in the background.

Every long operation keeps a ``tenantry.jobs`` row: provisioning (kind ``provision``), moves
(``move``), failed app migrations (``migrate``). A server process such as the admin API runs
operations in background threads with :class:`JobRunner`; each gets a row of its own (kind
``tenant.create``, ``tenant.move``) that is the source of truth for whoever polls it: status
``running``, ``done`` (with the result) or ``failed`` (with the error).

While a background job runs, its process holds a session advisory lock on the job (on a
connection of its own, taken in the transaction that records the job). If the process dies,
PostgreSQL releases the lock; the next read of the row finds it ``running`` without its lock,
and records it as failed: interrupted. The operations themselves are resumable (their own
``provision``/``move`` rows keep the steps done), so the same request again finishes them.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from tenantry.db.connect import admin_connection
from tenantry.errors import Conflict, NotFound, TenantryError

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = [
    "BACKGROUND_KINDS",
    "INTERRUPTED",
    "Job",
    "JobRunner",
    "Started",
    "Submitted",
    "get_job",
    "list_jobs",
    "reconcile",
    "running_for",
    "underlying",
]

log = logging.getLogger("tenantry.jobs")

#: kinds of the jobs a JobRunner runs (and watches with its advisory lock)
BACKGROUND_KINDS = ("tenant.create", "tenant.move", "tenant.backup", "tenant.restore")
#: advisory lock namespace: (JOB_LOCK, hashtext(job id)) is held while a background job runs
JOB_LOCK = 0x746A6F62
#: serialises submissions for one tenant, so two cannot both find none running
_SUBMIT_LOCK = 0x746A7375
INTERRUPTED = (
    "interrupted: the process running this job stopped before it finished; the steps done are"
    " kept, and sending the same request again resumes the operation"
)

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


def _alive(conn: psycopg.Connection[Any], job_id: uuid.UUID) -> bool:
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


def reconcile(conn: psycopg.Connection[Any], job: Job) -> Job:
    """``job``, recorded as failed (interrupted) if it is a background job still marked
    running whose process holds its lock no more."""
    if job.status != "running" or not job.background or _alive(conn, job.id):
        return job
    with conn.transaction():
        locked = get_job(conn, job.id, for_update=True)
        # the runner records the outcome before it lets go of the lock: a running row
        # without its lock is a job whose process died
        if locked.status != "running" or _alive(conn, job.id):
            return locked
        conn.execute(
            "UPDATE tenantry.jobs SET status = 'failed', error = %s, updated_at = now() WHERE id = %s",
            (INTERRUPTED, job.id),
        )
    return get_job(conn, job.id)


def running_for(conn: psycopg.Connection[Any], tenant: str) -> Job | None:
    """The background job running for the tenant (slug), if any (a dead one is recorded as
    interrupted and not returned)."""
    for row in conn.execute(
        f"SELECT {_COLUMNS} {_FROM} WHERE j.status = 'running' AND j.kind = ANY(%s) AND j.payload->>'tenant' = %s",
        (list(BACKGROUND_KINDS), tenant),
    ).fetchall():
        job = reconcile(conn, _job(row))
        if job.status == "running":
            return job
    return None


#: the durable job of the operation a background job runs
_UNDERLYING = {"tenant.create": "provision", "tenant.move": "move"}


def underlying(conn: psycopg.Connection[Any], job: Job) -> Job | None:
    """The operation's own job (``provision``, ``move``) behind a background job: the newest
    of its tenant still running or touched since the background job began, which holds the
    steps done (and is still running if a rerun would resume)."""
    kind = _UNDERLYING.get(job.kind)
    if kind is None or job.tenant is None:
        return None
    row = conn.execute(
        f"""
        SELECT {_COLUMNS} {_FROM}
         WHERE j.kind = %s AND j.tenant_id = coalesce(%s, (
               SELECT id FROM tenantry.tenants WHERE slug = %s AND status <> 'deleted'))
           AND (j.status = 'running' OR j.updated_at >= %s)
         ORDER BY j.created_at DESC LIMIT 1
        """,
        (kind, job.tenant_id, job.tenant, job.created_at),
    ).fetchone()
    return None if row is None else _job(row)


@dataclass(slots=True)
class Submitted:
    """A job handed to the runner: its row as first recorded, and how it goes in this process."""

    job: Job
    started: threading.Event = field(default_factory=threading.Event)
    """Set when the work calls ``started()`` (it got past its checks) or when it ends."""
    began: bool = False
    """The work said it got past its checks (so a failure now leaves something to resume)."""
    error: BaseException | None = None
    """What the work raised, once it has ended."""
    future: Future[None] | None = None

    def wait_started(self, timeout: float) -> bool:
        """Wait until the work started or ended; ``False`` on timeout."""
        return self.started.wait(timeout)

    @property
    def ended(self) -> bool:
        return self.future is not None and self.future.done()


#: what the work calls when it gets past its checks, and as each step starts (with its name)
Started = Callable[[str | None], None]
#: the work of a job: called with its ``Started``; returns the result to record
Work = Callable[[Started], dict[str, Any]]


class JobRunner:
    """Runs operations in background threads (``workers`` at a time), each with a job row."""

    def __init__(self, tn: ControlPlane, *, workers: int = 2) -> None:
        self._tn = tn
        self._workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._running: set[Future[None]] = set()

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._closed:
                raise Conflict("the server is shutting down and starts no more jobs; send the request again")
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="tenantry-job")
            return self._executor

    def submit(
        self, kind: str, *, tenant: str, tenant_id: uuid.UUID | None, payload: dict[str, Any], actor: str, work: Work
    ) -> Submitted:
        """Record a running job of ``kind`` for the tenant (slug) and start ``work``.

        Raises :class:`Conflict` when a background job for that tenant is running already.
        """
        if kind not in BACKGROUND_KINDS:
            raise ValueError(f"unknown background job kind {kind!r}")
        executor = self._pool()
        # the job's own connection: it holds the job's lock until the outcome is recorded
        stack = ExitStack()
        try:
            conn = stack.enter_context(
                admin_connection(self._tn.admin_url, timeout=self._tn.settings.connect_timeout, autocommit=True)
            )
            job = self._record(conn, kind, tenant, tenant_id, payload | {"tenant": tenant, "actor": actor})
            handle = Submitted(job)
            future = executor.submit(self._run, conn, handle, actor, work)
        except BaseException as err:
            stack.close()
            if isinstance(err, RuntimeError):  # the executor shut down meanwhile
                raise Conflict("the server is shutting down and starts no more jobs; send the request again") from err
            raise
        handle.future = future
        with self._lock:
            self._running.add(future)

        def ended(done: Future[None]) -> None:
            with self._lock:
                self._running.discard(done)
            if done.cancelled():  # queued when the runner closed: never ran
                self._finish(conn, job.id, "failed", {}, "not started: the server shut down; send the request again")
            stack.close()
            handle.started.set()

        future.add_done_callback(ended)
        return handle

    def _record(
        self,
        conn: psycopg.Connection[Any],
        kind: str,
        tenant: str,
        tenant_id: uuid.UUID | None,
        payload: dict[str, Any],
    ) -> Job:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_SUBMIT_LOCK, tenant))
            other = running_for(conn, tenant)
            if other is not None:
                raise Conflict(f"job {other.id} ({other.kind}) is running for tenant {tenant!r}; wait for it to end")
            row = conn.execute(
                "INSERT INTO tenantry.jobs (kind, tenant_id, payload) VALUES (%s, %s, %s) RETURNING id",
                (kind, tenant_id, Jsonb(payload)),
            ).fetchone()
            assert row is not None
            # a session lock taken in the transaction that records the job: nobody sees the
            # row without the lock; it goes when this connection closes
            conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (JOB_LOCK, str(row[0])))
        return get_job(conn, row[0])

    def _run(self, conn: psycopg.Connection[Any], handle: Submitted, actor: str, work: Work) -> None:
        job_id = handle.job.id
        status, error = "failed", None
        extra: dict[str, Any] = {}

        def started(step: str | None) -> None:
            handle.began = True
            if step is not None:  # (this thread's connection: the work runs here)
                try:
                    conn.execute(
                        "UPDATE tenantry.jobs SET payload = payload || %s, updated_at = now() WHERE id = %s",
                        (Jsonb({"step": step}), job_id),
                    )
                except psycopg.Error:  # progress is a nicety: never fail the work for it
                    log.warning("could not record step %s of job %s", step, job_id, exc_info=True)
            # after the step is written: whoever waited for the start reads it
            handle.started.set()

        try:
            with self._tn.acting_as(actor):
                result = work(started)
            status, extra = "done", {"result": result, "step": None}
        except TenantryError as err:
            handle.error = err
            error = str(err)
            extra = {"error_type": type(err).__name__, "error_status": err.http_status}
        except Exception as err:  # a bug: its text stays out of the job row, which clients read
            handle.error = err
            log.exception("job %s (%s) failed", job_id, handle.job.kind)
            error = f"internal error ({type(err).__name__}); the server log has the details"
            extra = {"error_type": "InternalError", "error_status": 500}
        finally:
            # recorded before the lock goes (the done callback closes the connection)
            self._finish(conn, job_id, status, extra, error)

    def _finish(
        self, conn: psycopg.Connection[Any], job_id: uuid.UUID, status: str, extra: dict[str, Any], error: str | None
    ) -> None:
        query = (
            "UPDATE tenantry.jobs SET status = %s, error = %s, payload = payload || %s, updated_at = now()"
            " WHERE id = %s AND status = 'running'"
        )
        params = (status, error, Jsonb(extra), job_id)
        try:
            conn.execute(query, params)
        except (psycopg.Error, TenantryError):
            # the lock's connection broke: record through the pool; if that fails too, the
            # row stays running without its lock and the next read marks it interrupted
            try:
                with self._tn.admin() as other:
                    other.execute(query, params)
            except (psycopg.Error, TenantryError):
                log.exception("could not record the outcome of job %s", job_id)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the jobs running now to end (for tests and an orderly shutdown)."""
        with self._lock:
            running = list(self._running)
        for future in running:
            try:
                future.result(timeout)
            except Exception:  # recorded in the job row already
                pass

    def close(self, *, wait: bool = True) -> None:
        """Start no more jobs; with ``wait``, let the running ones finish (a step cannot be
        interrupted halfway, and finishing beats leaving the work for a rerun)."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)
