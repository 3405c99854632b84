"""Moving a tenant between tiers and cells: capture, copy, catch up, freeze, verify, flip.

A move is a durable job (``tenantry.jobs``, kind ``move``) whose steps are recorded as they
finish (:mod:`tenantry.services.steps`), so a move interrupted at any step is finished by
running it again (or undone with :func:`abort` before the flip):

1. ``build``: the target placement, built like a new tenant's (schema or database, tables at
   the current head, RLS, grants).
2. ``capture``: triggers on the source log the keys of the rows the tenant writes from now on
   (other tenants of shared tables are not logged). The freeze's triggers go in with them,
   refusing nothing yet.
3. ``bulk_copy``: every row, from one consistent snapshot of the source. Reads and writes go
   on meanwhile.
4. ``catch_up``: the rows written since are copied again, round after round, while the tenant
   keeps writing, until a round finds little left. A last round seals the copy: the target
   then equals the source as of that round's snapshot, and their per-table checksums (row
   count and a sum of row hashes) must agree.
5. ``freeze``: first, while the tenant writes on, more rounds copy the rows written since
   the seal and compare those rows' checksums, until a round finds only a few. Then the
   tenant's writes to the source are refused, every table at once: one short transaction
   records the freeze and waits for the tenant's transactions in flight
   (:func:`change_capture.freeze_writes`); other tenants of shared tables write on. From here
   the source no longer changes.
6. ``delta``: the rows changed since the last round (every one is logged) are copied, and
   their checksums must agree on both sides.
7. ``verify``: the row counts of the tables changed since the seal must be equal on both
   sides (both sides are read at once; the others are as the seal counted them).
8. ``flip``: one catalog transaction makes the target placement active and the tenant's plan
   the target plan; every process learns it within a second (NOTIFY). Writes resume there.
9. ``fence``: the source's database refuses bindings made before the flip (they name the
   source), in every process, from their next statement on (:class:`TenantMoved`).
10. ``cleanup``: once every process's cache has moved on, the source copy is removed (from
    shared tables: in batches of rows, a short transaction each).

The write block lasts from the freeze's transaction to ``flip``: the last few changes and the
counts of the tables they touched, on connections opened before it, so it stays short
however big the tenant. Its length is recorded in the job and the audit log. The mover holds
the freeze's lock from the freeze to the cleanup; a move resumed before the flip takes it
again.

The tables are those the source placement holds (:mod:`tenantry.services.placement_tables`),
not those of the mover's metadata. Other tenants of shared tables write on throughout: move
triggers are created and dropped one table per short transaction, each waiting for the
table's lock only a moment before it gives way and tries again, so the mover never holds one
table while it waits for another (app transactions that lock tables in another order would
otherwise wait for it, and it for them). A step that fails removes the triggers it put in.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import psycopg

from tenantry.core.model import Isolation, Plan, Status, Tenant
from tenantry.core.placement import Placement, choose_cell
from tenantry.db import change_capture, tenant_copy
from tenantry.db.catalog import audit
from tenantry.db.catalog.cells import cell_loads
from tenantry.db.catalog.events import EventKind, notify_tenant
from tenantry.db.catalog.jobs import count_attempt, finish_job, insert_job, running_job
from tenantry.db.catalog.placements import insert_placement, read_placement, set_placement_status
from tenantry.db.catalog.plans import get_plan
from tenantry.db.catalog.tenants import get_tenant, set_status
from tenantry.errors import Conflict, InvalidInput
from tenantry.services import placement_tables
from tenantry.services.connection_limits import apply_connection_limits
from tenantry.services.move_steps import (
    Move,
    MoveReport,
    autocommit_on,
    placement_data,
    placement_from,
    refuse_differences,
    report_of,
)
from tenantry.services.placements import drop_copy, tenant_lock
from tenantry.services.steps import StepLog

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = ["MoveReport", "abort", "move"]

STEPS = ("build", "capture", "bulk_copy", "catch_up", "freeze", "delta", "verify", "flip", "fence", "cleanup")


def _running_job(conn: psycopg.Connection[Any], tenant_id: uuid.UUID) -> StepLog | None:
    found = running_job(conn, tenant_id, "move", for_update=True)
    return None if found is None else StepLog("jobs", *found, crash_prefix="move:")


def _start(tn: ControlPlane, conn: psycopg.Connection[Any], tenant: Tenant, plan: Plan, cell: str | None) -> StepLog:
    """Find the tenant's running move (it must go where this call asks) or begin one."""
    with conn.transaction():
        job = _running_job(conn, tenant.id)
        if job is not None:
            if job.payload["plan"] != plan.name or (cell is not None and job.payload["target"]["cell"] != cell):
                raise Conflict(
                    f"tenant {tenant.slug!r} is being moved to plan {job.payload['plan']!r}"
                    f" (cell {job.payload['target']['cell']!r}); run that move again to finish it, or abort it"
                )
            count_attempt(conn, job.id)
            audit.record(
                conn,
                actor=tn.actor,
                action="tenant.move.resume",
                target_type="tenant",
                target=tenant.slug,
                after={"steps_done": job.done},
            )
            return job
        if tenant.status is not Status.ACTIVE:
            raise InvalidInput(f"tenant {tenant.slug!r} is {tenant.status.value}; only active tenants move")
        source = read_placement(conn, tenant.id)
        if source is None:
            raise InvalidInput(f"tenant {tenant.slug!r} has no active placement to move from")
        target = Placement.plan_for(
            tenant.id,
            plan.isolation,
            cell=choose_cell(plan, cell_loads(conn), requested=cell),
            pooled_schema=tn.settings.pooled_schema,
        )
        _require_current_tables(tn, tenant, source)
        if target.route == source.route:
            raise InvalidInput(
                f"tenant {tenant.slug!r} already lives there ({source.isolation.value} on cell {source.cell!r})"
            )
        # the target is built from this process's tables (the shared ones exist already)
        if target.isolation is Isolation.POOLED:
            will_have, where = placement_tables.held(tn, target), "at the target"
        else:
            will_have, where = tenant_copy.specs(tn.app_metadata()), "in this process's app tables"
        problems = tenant_copy.differences(placement_tables.held(tn, source), will_have, where)
        refuse_differences(tenant, problems, started=False)
        insert_placement(conn, target)
        payload = {
            "plan": plan.name,
            "from_plan": tenant.plan,
            "source": placement_data(source),
            "target": placement_data(target),
        }
        job_id = insert_job(conn, "move", tenant.id, payload=payload)
        set_status(conn, tenant.id, Status.MOVING)
        notify_tenant(conn, tenant.id)
        audit.record(
            conn, actor=tn.actor, action="tenant.move.start", target_type="tenant", target=tenant.slug, after=payload
        )
        return StepLog("jobs", job_id, [], payload, crash_prefix="move:")


def _require_current_tables(tn: ControlPlane, tenant: Tenant, source: Placement) -> None:
    """The target is built at the migrations' head: the source must be there too."""
    from tenantry.services import app_migrations  # alembic loads only when needed

    head = app_migrations.head_revision(tn)
    if head is None:
        return
    at = app_migrations.recorded_revision(tn, source)
    if at != head:
        raise InvalidInput(
            f"tenant {tenant.slug!r} is at app revision {at or 'untracked'}, not {head}:"
            " run `tenantry migrate` before moving it"
        )


def move(
    tn: ControlPlane,
    key: str | uuid.UUID,
    *,
    plan: str | None = None,
    cell: str | None = None,
    on_step: Callable[[str], None] | None = None,
) -> MoveReport:
    """Move a tenant to ``plan``'s tier (and ``cell``), or resume its interrupted move.

    The rows moved are those of every table the source placement holds (its registry of app
    tables, with the columns the system catalogs give), whatever metadata this process has
    loaded; a table or column the target would not have is refused (:class:`TablesDiffer`)
    before anything changes. ``on_step(step)`` is called as each step starts (for progress
    displays).
    """
    started = time.monotonic()
    with tn.admin() as conn:
        tenant = get_tenant(conn, key)
        chosen = get_plan(conn, plan or tenant.plan)
    with (
        tenant_lock(tn, tenant.id, f"tenant {tenant.slug!r} is being moved by another process; try again shortly"),
        ExitStack() as held,  # the freeze's lock, from the freeze to the cleanup
    ):
        report = _move(tn, tenant, chosen, cell, on_step, started, held)
    if chosen.isolation is Isolation.DATABASE:  # its new database gets its plan's CONNECTION LIMIT
        apply_connection_limits(tn, tenant_id=tenant.id, new=True)
    tn.after_change(tenant.id)  # the flip told this process's caches; the hooks run now
    return report


def _move(
    tn: ControlPlane,
    tenant: Tenant,
    chosen: Plan,
    cell: str | None,
    on_step: Callable[[str], None] | None,
    started: float,
    held: ExitStack,
) -> MoveReport:
    with tn.admin() as conn:
        tenant = get_tenant(conn, tenant.id)  # as it is now we hold the lock
        job = _start(tn, conn, tenant, chosen, cell)
    job.on_step = on_step
    run = Move(tn, tenant, chosen, job, held, started)
    job.run(tn, run.steps())
    return report_of(tenant, job, run.rows, started)


def abort(tn: ControlPlane, key: str | uuid.UUID) -> bool:
    """Undo a move that has not flipped yet: thaw the source, drop the target copy.

    Returns ``False`` when there is no move to abort. After the flip, move back instead.
    """
    with tn.admin() as conn:
        tenant = get_tenant(conn, key)
    with tenant_lock(tn, tenant.id, f"tenant {tenant.slug!r} is being moved by another process; try again shortly"):
        return _abort(tn, tenant)


def _abort(tn: ControlPlane, tenant: Tenant) -> bool:
    with tn.admin() as conn:
        with conn.transaction():
            job = _running_job(conn, tenant.id)
        if job is None:
            return False
        if "flip" in job.done:
            raise Conflict(f"the move of {tenant.slug!r} has flipped already; move it back instead")
        source = placement_from(job.payload["source"])
        target = placement_from(job.payload["target"])
        with autocommit_on(tn, source) as src:
            change_capture.drop_tenant_triggers(src, str(tenant.id), owner=tn.settings.owner_role)
            change_capture.thaw(src, str(tenant.id), owner=tn.settings.owner_role)
            change_capture.forget_moves(src, tenant.id, freezes=False)
        drop_copy(tn, conn, tenant.id, target)  # idempotent, whatever was built of it
        with conn.transaction():
            set_placement_status(conn, tenant.id, old="building", new="retired")
            finish_job(conn, job.id, "failed", error="aborted")
            set_status(conn, tenant.id, Status.ACTIVE)
            notify_tenant(conn, tenant.id)
            audit.record(
                conn,
                actor=tn.actor,
                action="tenant.move.abort",
                target_type="tenant",
                target=tenant.slug,
                after={"steps_done": job.done},
            )
    tn.publish(EventKind.TENANT, str(tenant.id))
    return True
