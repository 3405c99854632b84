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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from tenantry.core.model import Isolation, Plan, Status, Tenant, check_transition
from tenantry.core.naming import validate_slug
from tenantry.core.placement import PRIMARY_CELL, Placement, choose_cell, plan_steps
from tenantry.db.connect import admin_connection, control_plane_url, database_url
from tenantry.db.deploy import deploy_tables
from tenantry.db.local import install_local, local_digest
from tenantry.db.rls import table_order
from tenantry.db.tenant_copy import delete_rows, drop_move_triggers, drop_tenant_triggers
from tenantry.errors import Conflict, InvalidInput, TenantExists
from tenantry.services import audit, placement_tables, plugin_hooks, spares
from tenantry.services.cells import cell_loads
from tenantry.services.events import EventKind, notify_tenant
from tenantry.services.fences import fence_placement
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

_LOCK_CLASS = 0x746E  # advisory lock namespace of per-tenant control-plane work
_PLACEMENT_COLUMNS = sql.SQL("tenant_id, cell, isolation, database_name, schema_name, status")


def read_placement(
    conn: psycopg.Connection[Any], tenant_id: uuid.UUID, status: str = "active", *, source: str = "tenantry"
) -> Placement | None:
    """The tenant's placement in ``status``; ``source`` ``"tenantry_routing"`` reads the
    routing view (active placements only: what the reader role may read)."""
    row = conn.execute(
        sql.SQL("SELECT {} FROM {} WHERE tenant_id = %s AND status = %s").format(
            _PLACEMENT_COLUMNS, sql.Identifier(source, "placements")
        ),
        (tenant_id, status),
    ).fetchone()
    if row is None:
        return None
    return Placement(row[0], row[1], Isolation(row[2]), row[3], row[4], row[5])


def insert_placement(conn: psycopg.Connection[Any], placement: Placement) -> None:
    conn.execute(
        """
        INSERT INTO tenantry.placements (tenant_id, cell, isolation, database_name, schema_name, status)
        VALUES (%s, %s, %s, %s, %s, %s)
        """,
        (
            placement.tenant_id,
            placement.cell,
            placement.isolation.value,
            placement.database,
            placement.schema,
            placement.status,
        ),
    )


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
        spare_key = spares.wanted(tn)
        placement_tables.require_known(tn, f"tenant {slug!r}")
    with tn.admin() as conn:
        tenant, job_id, _ = _start(tn, conn, slug, display, chosen, cell, spare_key)
    if tenant.status is Status.ACTIVE:
        return tenant
    with tenant_lock(tn, tenant.id, f"tenant {slug!r} is being provisioned by another process; try again shortly"):
        return _build(tn, tenant, chosen, job_id)


@contextmanager
def tenant_lock(tn: ControlPlane, tenant_id: uuid.UUID, busy: str) -> Iterator[None]:
    """Hold the tenant's control-plane lock (building, moving) or raise :class:`Conflict`
    with the message ``busy``.

    The lock lives on a connection of its own, held throughout; the work takes pooled admin
    connections as it needs them, so concurrent builds cannot starve the pool.
    """
    with admin_connection(tn.admin_url, timeout=tn.settings.connect_timeout, autocommit=True) as lock:
        locked = lock.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_LOCK_CLASS, str(tenant_id))).fetchone()
        if locked is None or not locked[0]:
            raise Conflict(busy)
        try:
            yield
        finally:
            lock.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (_LOCK_CLASS, str(tenant_id)))


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
    spare_key: spares.SpareKey | None = None,
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
            claimed = spares.claim(tn, conn, slug=slug, name=name, plan=chosen, cell=target_cell, key=spare_key)
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
            insert_placement(conn, Placement(**{**_fields(placement), "status": "active"}))
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


def _fields(placement: Placement) -> dict[str, Any]:
    return {name: getattr(placement, name) for name in Placement.__slots__}


def build_step(tn: ControlPlane, step: str, placement: Placement) -> None:
    s = tn.settings
    ids = {
        "owner": sql.Identifier(s.owner_role),
        "runtime": sql.Identifier(s.runtime_role),
        "schema": sql.Identifier(placement.schema),
    }
    if step == "create_schema":
        with tn.admin() as conn, conn.transaction():
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {owner}").format(**ids))
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {schema} TO {runtime}").format(**ids))
    elif step == "create_database":
        assert placement.database is not None
        with admin_connection(tn.cell_admin_url(placement.cell), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (placement.database,)).fetchone()
            if exists is None:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(placement.database), ids["owner"])
                )
    elif step == "install_local":
        url = database_url(tn.cell_admin_url(placement.cell), placement.database)
        with psycopg.connect(control_plane_url(url), autocommit=True) as conn:
            install_local(
                conn,
                owner=s.owner_role,
                runtime=s.runtime_role,
                data_schema=placement.schema,
                keys=tn.binder().keys,
            )
            conn.execute(
                "INSERT INTO tenantry.marker (tenant_id) VALUES (%s) ON CONFLICT DO NOTHING",
                (placement.tenant_id,),
            )
        with tn.admin() as conn:
            conn.execute(
                "UPDATE tenantry.placements SET local_digest = %s WHERE tenant_id = %s AND database_name = %s"
                " AND status <> 'retired'",
                (local_digest(), placement.tenant_id, placement.database),
            )
    elif step == "deploy_tables":
        from tenantry.services import app_migrations  # (imports this module)

        deploy_tables(
            database_url(tn.cell_admin_url(placement.cell), placement.database),
            tn.app_metadata(),
            schema=placement.schema,
            owner=s.owner_role,
            runtime=s.runtime_role,
        )
        # built from the metadata, the tables are at the migrations' head: record it
        app_migrations.stamp(tn, placement)
    else:  # pragma: no cover - plan_steps and this function change together
        raise AssertionError(f"unknown provisioning step {step!r}")


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


def local_outdated(tn: ControlPlane, placement: Placement) -> bool:
    """Whether ``placement``'s own database holds other local objects than this tenantry
    installs (or none recorded): its ``install_local`` step would change something."""
    if placement.database is None:
        return False
    with tn.admin() as conn:
        row = conn.execute(
            "SELECT local_digest FROM tenantry.placements WHERE tenant_id = %s AND database_name = %s"
            " AND status <> 'retired'",
            (placement.tenant_id, placement.database),
        ).fetchone()
    return row is None or row[0] != local_digest()


def refresh_local(tn: ControlPlane) -> list[str]:
    """Install this tenantry's local objects into every database-tier placement whose own
    database holds older ones (after an upgrade); returns the databases refreshed.

    Idempotent; each database is recorded as it is done, so an interrupted refresh resumes.
    """
    with tn.admin() as conn:
        rows = conn.execute(
            "SELECT tenant_id, cell, isolation, database_name, schema_name, status FROM tenantry.placements"
            " WHERE database_name IS NOT NULL AND status <> 'retired'"
            " AND local_digest IS DISTINCT FROM %s ORDER BY database_name",
            (local_digest(),),
        ).fetchall()
    refreshed = []
    for row in rows:
        placement = Placement(row[0], row[1], Isolation(row[2]), row[3], row[4], row[5])
        url = database_url(tn.cell_admin_url(placement.cell), placement.database)
        try:
            with psycopg.connect(control_plane_url(url), autocommit=True, connect_timeout=10) as db:
                installed = db.execute("SELECT to_regclass('tenantry.context_key')").fetchone() != (None,)
        except psycopg.OperationalError:
            installed = False  # not created yet
        if installed:  # (otherwise its build has not reached its own install step yet)
            build_step(tn, "install_local", placement)
            refreshed.append(str(placement.database))
    return refreshed


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


def drop_copy(
    tn: ControlPlane, conn: psycopg.Connection[Any], tenant_id: uuid.UUID, placement: Placement
) -> dict[str, int]:
    """Remove one placement's copy of a tenant: its rows in the shared tables, its schema, or
    its database. Idempotent. ``conn`` is a catalog admin connection; the schema tier's drop
    joins its open transaction (if any); the pooled tier's needs it autocommit and idle (rows
    go in short batches, a table's lock at a time).
    """
    s = tn.settings
    counts: dict[str, int] = {}
    if placement.database is not None:
        tn.forget_route(placement.route.pool_key)
        with admin_connection(tn.cell_admin_url(placement.cell), autocommit=True) as cell_conn:
            cell_conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(placement.database))
            )
        counts[f"database {placement.database}"] = 1
    elif placement.isolation is Isolation.SCHEMA:
        with conn.transaction():
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(placement.schema)))
            conn.execute("DELETE FROM tenantry.app_tables WHERE schema_name = %s", (placement.schema,))
        counts[f"schema {placement.schema}"] = 1
    else:
        # a tenant leaving the shared tables: never one long transaction over them (see
        # tenant_copy.drop_move_triggers and delete_rows); conn is autocommit here
        tid = str(tenant_id)
        tables = [table for _schema, table in table_order(conn, placement.schema)]
        # a move left triggers here: stop logging the rows about to go; the freeze stays
        # until they are gone (the owner's deletes pass it), so no stale write lands meanwhile
        drop_move_triggers(conn, placement.schema, tables, tid, owner=s.owner_role, freeze=False)
        signed = tn.binder().signed(tenant_id, placement.schema)
        for table in tables:  # children first
            counts[f"{placement.schema}.{table}"] = delete_rows(
                conn, placement.schema, table, owner=s.owner_role, signed=signed
            )
        drop_tenant_triggers(conn, tid, owner=s.owner_role, schema=placement.schema)
    if placement.database is None:
        with conn.transaction():
            conn.execute("DELETE FROM tenantry.move_changes WHERE tenant_id = %s", (tenant_id,))
            conn.execute("DELETE FROM tenantry.move_freezes WHERE tenant_id = %s", (tenant_id,))
    return counts
