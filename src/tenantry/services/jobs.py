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
from typing import TYPE_CHECKING, Any, Literal

import psycopg

from tenantry.db.catalog.jobs import (
    BACKGROUND_KINDS,
    JOB_LOCK,
    Job,
    finish_job,
    get_job,
    insert_job,
    job_alive,
    latest_job,
    merge_payload,
    running_background,
)
from tenantry.db.connect import admin_connection
from tenantry.errors import Conflict, TenantryError

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = ["INTERRUPTED", "JobRunner", "Started", "Submitted", "reconcile", "running_for", "underlying"]

log = logging.getLogger("tenantry.jobs")

#: serialises submissions for one tenant, so two cannot both find none running
_SUBMIT_LOCK = 0x746A7375
INTERRUPTED = (
    "interrupted: the process running this job stopped before it finished; the steps done are"
    " kept, and sending the same request again resumes the operation"
)


def reconcile(conn: psycopg.Connection[Any], job: Job) -> Job:
    """``job``, recorded as failed (interrupted) if it is a background job still marked
    running whose process holds its lock no more."""
    if job.status != "running" or not job.background or job_alive(conn, job.id):
        return job
    with conn.transaction():
        locked = get_job(conn, job.id, for_update=True)
        # the runner records the outcome before it lets go of the lock: a running row
        # without its lock is a job whose process died
        if locked.status != "running" or job_alive(conn, job.id):
            return locked
        finish_job(conn, job.id, "failed", error=INTERRUPTED)
    return get_job(conn, job.id)


def running_for(conn: psycopg.Connection[Any], tenant: str) -> Job | None:
    """The background job running for the tenant (slug), if any (a dead one is recorded as
    interrupted and not returned)."""
    for recorded in running_background(conn, tenant):
        job = reconcile(conn, recorded)
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
    return latest_job(conn, kind, tenant_id=job.tenant_id, tenant=job.tenant, since=job.created_at)


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
            job_id = insert_job(conn, kind, tenant_id, payload=payload)
            # a session lock taken in the transaction that records the job: nobody sees the
            # row without the lock; it goes when this connection closes
            conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (JOB_LOCK, str(job_id)))
        return get_job(conn, job_id)

    def _run(self, conn: psycopg.Connection[Any], handle: Submitted, actor: str, work: Work) -> None:
        job_id = handle.job.id
        status: Literal["done", "failed"] = "failed"
        error: str | None = None
        extra: dict[str, Any] = {}

        def started(step: str | None) -> None:
            handle.began = True
            if step is not None:  # (this thread's connection: the work runs here)
                try:
                    merge_payload(conn, job_id, {"step": step})
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
        self,
        conn: psycopg.Connection[Any],
        job_id: uuid.UUID,
        status: Literal["done", "failed"],
        extra: dict[str, Any],
        error: str | None,
    ) -> None:
        try:
            finish_job(conn, job_id, status, error=error, payload=extra, only_running=True)
        except (psycopg.Error, TenantryError):
            # the lock's connection broke: record through the pool; if that fails too, the
            # row stays running without its lock and the next read marks it interrupted
            try:
                with self._tn.admin() as other:
                    finish_job(other, job_id, status, error=error, payload=extra, only_running=True)
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
