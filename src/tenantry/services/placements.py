"""One placement's copy of the app's tables: read and record placements, build one step by
step, drop one, and keep the local functions of every database current.

Provisioning (:mod:`tenantry.services.provisioning`), spares and moves all build and drop
placements with these; the tenant's lock (:func:`tenant_lock`) serialises the control-plane
work on one tenant across processes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from tenantry.core.model import Isolation
from tenantry.core.placement import Placement
from tenantry.db.catalog.placements import local_digest_of, record_local_digest, stale_local_placements
from tenantry.db.change_capture import delete_rows, drop_move_triggers, drop_tenant_triggers, forget_moves
from tenantry.db.connect import admin_connection, control_plane_url, database_url
from tenantry.db.deploy import deploy_tables
from tenantry.db.local import install_local, local_digest, record_marker
from tenantry.db.rls import table_order, unregister_tables
from tenantry.errors import Conflict

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = [
    "build_step",
    "database_url",
    "drop_copy",
    "local_outdated",
    "placement_fields",
    "refresh_local",
    "tenant_lock",
]

_LOCK_CLASS = 0x746E  # advisory lock namespace of per-tenant control-plane work


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


def placement_fields(placement: Placement) -> dict[str, Any]:
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
            record_marker(conn, placement.tenant_id)
        with tn.admin() as conn:
            record_local_digest(conn, placement.tenant_id, str(placement.database), local_digest())
    elif step == "deploy_tables":
        from tenantry.services import app_migrations  # (lazy: alembic loads only when needed)

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


def local_outdated(tn: ControlPlane, placement: Placement) -> bool:
    """Whether ``placement``'s own database holds other local objects than this tenantry
    installs (or none recorded): its ``install_local`` step would change something."""
    if placement.database is None:
        return False
    with tn.admin() as conn:
        recorded = local_digest_of(conn, placement.tenant_id, placement.database)
    return recorded != local_digest()


def refresh_local(tn: ControlPlane) -> list[str]:
    """Install this tenantry's local objects into every database-tier placement whose own
    database holds older ones (after an upgrade); returns the databases refreshed.

    Idempotent; each database is recorded as it is done, so an interrupted refresh resumes.
    """
    with tn.admin() as conn:
        stale = stale_local_placements(conn, local_digest())
    refreshed = []
    for placement in stale:
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
            unregister_tables(conn, placement.schema)
        counts[f"schema {placement.schema}"] = 1
    else:
        # a tenant leaving the shared tables: never one long transaction over them (see
        # change_capture.drop_move_triggers and delete_rows); conn is autocommit here
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
            forget_moves(conn, tenant_id)
    return counts
