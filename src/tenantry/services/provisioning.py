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
from psycopg import sql

from tenantry.core.model import Isolation, Plan, Status, Tenant, check_transition
from tenantry.core.naming import validate_slug
from tenantry.core.placement import PRIMARY_CELL, Placement, choose_cell, plan_steps
from tenantry.errors import Conflict, InvalidInput, TenantExists
from tenantry.services import audit, placement_tables, plugin_hooks, spare_keys
from tenantry.services.cells import cell_loads
from tenantry.services.connection_limits import apply_connection_limits
from tenantry.services.events import EventKind, notify_tenant
from tenantry.services.fences import fence_placement
from tenantry.services.placements import (
    build_step,
    database_url,
    drop_copy,
    insert_placement,
    local_outdated,
    placement_fields,
    read_placement,
    refresh_local,
    tenant_lock,
)
from tenantry.services.steps import StepLog
from tenantry.services.tenants import TENANT_COLUMNS, get_plan, get_tenant, row_to_tenant

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = [
    "build_step",
    "refresh_local",
    "database_url",
    "deprovision",
    "drop_copy",
    "insert_placement",
    "local_outdated",
    "provision",
    "read_placement",
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
        job = conn.execute(
            "UPDATE tenantry.jobs SET attempts = attempts + 1, updated_at = now()"
            " WHERE id = %s RETURNING steps_done, attempts",
            (job_id,),
        ).fetchone()
        assert job is not None
        steps_done, attempts = list(job[0]), job[1]
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
    spare_key: spare_keys.SpareKey | None = None,
) -> tuple[Tenant, uuid.UUID | None, set[str]]:
    """Record the tenant (or find the half-built one); return it, its job and the steps done.
    A new schema- or database-tier tenant claims a spare built for ``spare_key`` if there is
    one, and is returned active."""
    plan, isolation = chosen.name, chosen.isolation
    with conn.transaction():
        row = conn.execute(
            sql.SQL("SELECT {} FROM tenantry.tenants WHERE slug = %s AND status <> 'deleted' FOR UPDATE").format(
                TENANT_COLUMNS
            ),
            (slug,),
        ).fetchone()
        if row is not None:
            existing = row_to_tenant(row)
            if existing.status is not Status.PROVISIONING:
                raise TenantExists(f"a tenant with slug {slug!r} exists already")
            if existing.plan != plan:
                raise Conflict(
                    f"tenant {slug!r} is half-built on plan {existing.plan!r}; create it again on that plan to finish"
                )
            job = conn.execute(
                "SELECT id, steps_done FROM tenantry.jobs"
                " WHERE tenant_id = %s AND kind = 'provision' AND status = 'running'",
                (existing.id,),
            ).fetchone()
            assert job is not None
            return existing, job[0], set(job[1])
        target_cell = choose_cell(chosen, cell_loads(conn), requested=cell)
        if spare_key is not None and isolation is not Isolation.POOLED:
            claimed = spare_keys.claim(tn, conn, slug=slug, name=name, plan=chosen, cell=target_cell, key=spare_key)
            if claimed is not None:
                plugin_hooks.enqueue(conn, "created", claimed, origin=tn.origin())
                return claimed, None, set()
        status = "active" if isolation is Isolation.POOLED else "provisioning"
        try:
            with conn.transaction():
                inserted = conn.execute(
                    sql.SQL(
                        "INSERT INTO tenantry.tenants (slug, name, plan, status) VALUES (%s, %s, %s, %s) RETURNING {}"
                    ).format(TENANT_COLUMNS),
                    (slug, name, plan, status),
                ).fetchone()
        except psycopg.errors.UniqueViolation as err:
            raise TenantExists(f"a tenant with slug {slug!r} exists already") from err
        assert inserted is not None
        tenant = row_to_tenant(inserted)
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
        job = conn.execute(
            "INSERT INTO tenantry.jobs (kind, tenant_id, attempts) VALUES ('provision', %s, 0) RETURNING id",
            (tenant.id,),
        ).fetchone()
        assert job is not None
        audit.record(
            conn,
            actor=tn.actor,
            action="tenant.create.start",
            target_type="tenant",
            target=slug,
            after=tenant.to_dict() | {"placement": placement.to_dict()},
        )
        return tenant, job[0], set()


def _activate(
    tn: ControlPlane, conn: psycopg.Connection[Any], tenant: Tenant, placement: Placement, log: StepLog
) -> Tenant:
    with conn.transaction():
        conn.execute(
            "UPDATE tenantry.placements SET status = 'active', updated_at = now()"
            " WHERE tenant_id = %s AND status = 'building'",
            (tenant.id,),
        )
        row = conn.execute(
            sql.SQL(
                "UPDATE tenantry.tenants SET status = 'active', updated_at = now() WHERE id = %s RETURNING {}"
            ).format(TENANT_COLUMNS),
            (tenant.id,),
        ).fetchone()
        assert row is not None
        log.record(conn, "activate")
        conn.execute("UPDATE tenantry.jobs SET status = 'done' WHERE id = %s", (log.id,))
        active = row_to_tenant(row)
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
            conn.execute(
                "UPDATE tenantry.placements SET status = 'retired', updated_at = now()"
                " WHERE tenant_id = %s AND status <> 'retired'",
                (tenant.id,),
            )
            conn.execute(
                "UPDATE tenantry.jobs SET status = 'failed', error = 'tenant deleted', updated_at = now()"
                " WHERE tenant_id = %s AND status = 'running'",
                (tenant.id,),
            )
            conn.execute(
                "UPDATE tenantry.tenants SET status = 'deleted', epoch = epoch + 1, updated_at = now() WHERE id = %s",
                (tenant.id,),
            )
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
