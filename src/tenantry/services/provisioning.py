"""Provisioning a tenant on its plan's tier, as recorded, idempotent, resumable steps.

A pooled tenant costs one catalog transaction: the tenant row and its active placement.
Schema- and database-tier tenants are built step by step (:func:`tenantry.core.placement.
plan_steps`); each finished step is recorded in a ``tenantry.jobs`` row, every step is safe to
run again, and the tenant stays ``provisioning`` (never served) until the last step activates
it. If the process dies midway, creating the same slug again resumes where it stopped. A
session advisory lock on the tenant keeps two processes from building it at once.

A schema- or database-tier tenant claims a spare instead when one is ready: a placement built
ahead of time for the current app tables and revision (:mod:`tenantry.services.spares`); the
tenant row, taking the spare's id, and its active placement are then written in the one
transaction that would otherwise record the start of the build.

``TENANTRY_TEST_CRASH_AFTER=<step>`` makes the process exit abruptly right after that step is
recorded (:mod:`tenantry.services.faults`), so the fault tests can kill provisioning at every
step.
"""

from __future__ import annotations

import functools
import uuid
from typing import TYPE_CHECKING, Any

import psycopg

from tenantry.core.model import Isolation, Plan, Status, Tenant, check_transition
from tenantry.core.naming import validate_slug
from tenantry.core.placement import PRIMARY_CELL, Placement, choose_cell, plan_steps
from tenantry.db.catalog import audit
from tenantry.db.catalog import hooks as plugin_hooks
from tenantry.db.catalog.cells import cell_loads
from tenantry.db.catalog.events import EventKind, notify_tenant
from tenantry.db.catalog.jobs import count_attempt, fail_running_jobs, finish_job, insert_job, running_job
from tenantry.db.catalog.placements import insert_placement, read_placement, set_placement_status
from tenantry.db.catalog.plans import get_plan
from tenantry.db.catalog.spares import SpareKey
from tenantry.db.catalog.tenants import find_tenant, get_tenant, insert_tenant, set_status
from tenantry.errors import Conflict, InvalidInput, TenantExists
from tenantry.services import placement_tables, spare_keys
from tenantry.services.connection_limits import apply_connection_limits
from tenantry.services.fences import fence_placement
from tenantry.services.placements import (
    build_step,
    database_url,
    drop_copy,
    local_outdated,
    placement_fields,
    refresh_local,
    tenant_lock,
)
from tenantry.services.steps import StepLog

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = [
    "build_step",
    "refresh_local",
    "database_url",
    "deprovision",
    "drop_copy",
    "local_outdated",
    "provision",
    "tenant_lock",
]


def provision(tn: ControlPlane, slug: str, *, name: str | None, plan: str, cell: str | None = None) -> Tenant:
    """Create (or finish creating) a tenant on ``plan`` (database tier: on ``cell`` if given);
    returns it active. This process's caches forget what they knew of the slug, and the
    plugins' ``created`` hooks are delivered (the catalog queued them with the change)."""
    tenant = _provision(tn, slug, name=name, plan=plan, cell=cell)
    tn.publish(EventKind.TENANT, str(tenant.id))
    tn.after_change(tenant.id)
    return tenant


def _provision(tn: ControlPlane, slug: str, *, name: str | None, plan: str, cell: str | None) -> Tenant:
    validate_slug(slug)
    display = (name if name is not None else slug).strip()
    if not 1 <= len(display) <= 200:
        raise InvalidInput("tenant name must be 1 to 200 characters")
    with tn.admin() as conn:
        chosen = get_plan(conn, plan)
    spare_key = None
    if chosen.isolation is not Isolation.POOLED:
        # fails before writing anything when the app's tables are unknown or unsafe, or
        # lack what the shared tables hold (the tenant would not get it)
        spare_key = spare_keys.wanted(tn)
        placement_tables.require_known(tn, f"tenant {slug!r}")
    with tn.admin() as conn:
        tenant, job_id, _ = _start(tn, conn, slug, display, chosen, cell, spare_key)
    if tenant.status is not Status.ACTIVE:
        with tenant_lock(tn, tenant.id, f"tenant {slug!r} is being provisioned by another process; try again shortly"):
            tenant = _build(tn, tenant, chosen, job_id)
    if chosen.isolation is Isolation.DATABASE:  # (built, or claimed from a spare)
        apply_connection_limits(tn, tenant_id=tenant.id, new=True)
    return tenant


def _build(tn: ControlPlane, tenant: Tenant, chosen: Plan, job_id: uuid.UUID | None) -> Tenant:
    """Run the steps not done yet, under the tenant's lock. What another process did before we
    got the lock is read again here: it may have finished the tenant meanwhile."""
    with tn.admin() as conn, conn.transaction():
        current = get_tenant(conn, tenant.id)
        if current.status is not Status.PROVISIONING:
            raise TenantExists(f"a tenant with slug {tenant.slug!r} exists already")
        assert job_id is not None
        steps_done, attempts = count_attempt(conn, job_id)
        if attempts > 1:
            audit.record(
                conn,
                actor=tn.actor,
                action="tenant.create.resume",
                target_type="tenant",
                target=tenant.slug,
                after={"steps_done": sorted(steps_done)},
            )
        placement = read_placement(conn, tenant.id, "building")
    assert placement is not None and job_id is not None
    log = StepLog("jobs", job_id, steps_done)
    building = plan_steps(chosen.isolation)[:-1]  # the last, activation, ends the job
    log.run(tn, [(step, functools.partial(build_step, tn, step, placement)) for step in building])
    with tn.admin() as conn:
        return _activate(tn, conn, tenant, placement, log)


def _start(
    tn: ControlPlane,
    conn: psycopg.Connection[Any],
    slug: str,
    name: str,
    chosen: Plan,
    cell: str | None,
    spare_key: SpareKey | None = None,
) -> tuple[Tenant, uuid.UUID | None, set[str]]:
    """Record the tenant (or find the half-built one); return it, its job and the steps done.
    A new schema- or database-tier tenant claims a spare built for ``spare_key`` if there is
    one, and is returned active."""
    plan, isolation = chosen.name, chosen.isolation
    with conn.transaction():
        existing = find_tenant(conn, slug, for_update=True)
        if existing is not None:
            if existing.status is not Status.PROVISIONING:
                raise TenantExists(f"a tenant with slug {slug!r} exists already")
            if existing.plan != plan:
                raise Conflict(
                    f"tenant {slug!r} is half-built on plan {existing.plan!r}; create it again on that plan to finish"
                )
            running = running_job(conn, existing.id, "provision")
            assert running is not None
            return existing, running[0], set(running[1])
        target_cell = choose_cell(chosen, cell_loads(conn), requested=cell)
        if spare_key is not None and isolation is not Isolation.POOLED:
            claimed = spare_keys.claim(tn, conn, slug=slug, name=name, plan=chosen, cell=target_cell, key=spare_key)
            if claimed is not None:
                plugin_hooks.enqueue(conn, "created", claimed, origin=tn.origin())
                return claimed, None, set()
        status = Status.ACTIVE if isolation is Isolation.POOLED else Status.PROVISIONING
        with conn.transaction():  # a savepoint: a taken slug leaves the transaction usable
            tenant = insert_tenant(conn, slug=slug, name=name, plan=plan, status=status)
        # processes that were asked for this slug before remember it as missing, briefly
        notify_tenant(conn, tenant.id)
        placement = Placement.plan_for(
            tenant.id,
            isolation,
            cell=target_cell,
            pooled_schema=tn.settings.pooled_schema,
        )
        if isolation is Isolation.POOLED:
            insert_placement(conn, Placement(**{**placement_fields(placement), "status": "active"}))
            audit.record(
                conn,
                actor=tn.actor,
                action="tenant.create",
                target_type="tenant",
                target=slug,
                after=tenant.to_dict() | {"placement": placement.to_dict() | {"status": "active"}},
            )
            plugin_hooks.enqueue(conn, "created", tenant, origin=tn.origin())
            return tenant, None, set()
        insert_placement(conn, placement)
        job_id = insert_job(conn, "provision", tenant.id, attempts=0)
        audit.record(
            conn,
            actor=tn.actor,
            action="tenant.create.start",
            target_type="tenant",
            target=slug,
            after=tenant.to_dict() | {"placement": placement.to_dict()},
        )
        return tenant, job_id, set()


def _activate(
    tn: ControlPlane, conn: psycopg.Connection[Any], tenant: Tenant, placement: Placement, log: StepLog
) -> Tenant:
    with conn.transaction():
        set_placement_status(conn, tenant.id, old="building", new="active")
        active = set_status(conn, tenant.id, Status.ACTIVE)
        log.record(conn, "activate")
        finish_job(conn, log.id, "done")
        notify_tenant(conn, active.id)
        audit.record(
            conn,
            actor=tn.actor,
            action="tenant.create",
            target_type="tenant",
            target=tenant.slug,
            after=active.to_dict() | {"placement": placement.to_dict() | {"status": "active"}},
        )
        plugin_hooks.enqueue(conn, "created", active, origin=tn.origin())
    return active


def deprovision(tn: ControlPlane, key: str | uuid.UUID) -> dict[str, int]:
    """Delete every row of the tenant and mark it deleted; returns what was removed.

    Schema tier: one transaction drops the schema and marks the tenant deleted. Pooled and
    database tiers: the rows (in short batches) or the database go first (idempotent), then
    the catalog is updated, so a crash in between is finished by a rerun. This process's
    caches forget the tenant, and the plugins' ``deleted`` hooks are delivered.
    """
    with tn.admin() as conn:
        tenant = get_tenant(conn, key)
    counts = _deprovision(tn, tenant.id)
    tn.publish(EventKind.TENANT, str(tenant.id))
    if tenant.status is not Status.DELETED:
        tn.after_change(tenant.id)
    return counts


def _deprovision(tn: ControlPlane, key: str | uuid.UUID) -> dict[str, int]:
    with tn.admin() as conn:
        tenant = get_tenant(conn, key)
        if tenant.status is Status.DELETED:
            return {}
        check_transition(tenant.slug, tenant.status, Status.DELETED)
        placement = read_placement(conn, tenant.id) or read_placement(conn, tenant.id, "building")
        placement = placement or Placement.plan_for(
            tenant.id, Isolation.POOLED, cell=PRIMARY_CELL, pooled_schema=tn.settings.pooled_schema
        )
        counts: dict[str, int] = {}
        if placement.database is None:
            # bindings open elsewhere must not write rows after these are deleted (a dropped
            # database refuses them by itself)
            fence_placement(tn, placement, tenant.epoch + 1, "deleted")
        if placement.isolation is not Isolation.SCHEMA:
            # a database, or the tenant's rows in the shared tables (in batches): before the
            # catalog, so a crash in between is finished by a rerun
            counts = drop_copy(tn, conn, tenant.id, placement)
        with conn.transaction():
            locked = get_tenant(conn, tenant.id, for_update=True)
            if locked.status is Status.DELETED:
                return {}
            if placement.isolation is Isolation.SCHEMA:
                counts = drop_copy(tn, conn, tenant.id, placement)
            set_placement_status(conn, tenant.id, old="live", new="retired")
            fail_running_jobs(conn, tenant.id, "tenant deleted")
            set_status(conn, tenant.id, Status.DELETED, new_epoch=True)
            notify_tenant(conn, tenant.id)
            audit.record(
                conn,
                actor=tn.actor,
                action="tenant.delete",
                target_type="tenant",
                target=tenant.slug,
                before=tenant.to_dict(),
                after={"rows_deleted": counts},
            )
            # the hooks get the tenant as it was just before (its data is gone)
            plugin_hooks.enqueue(conn, "deleted", locked, origin=tn.origin())
    return counts
