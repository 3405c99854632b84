"""The catalog's placements: where each tenant's data lives (cell, tier, database, schema),
one row per copy along its life (``building`` → ``active`` → ``retired``), and what each
copy's own database holds (its local functions' digest, its app revision).
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg import sql

from tenantry.core.model import Isolation
from tenantry.core.placement import Placement

__all__ = [
    "insert_placement",
    "live_placements",
    "local_digest_of",
    "own_databases",
    "read_placement",
    "record_local_digest",
    "set_placement_status",
    "stale_local_placements",
]

_COLUMNS = sql.SQL("tenant_id, cell, isolation, database_name, schema_name, status")


def _placement(row: tuple[Any, ...]) -> Placement:
    return Placement(row[0], row[1], Isolation(row[2]), row[3], row[4], row[5])


def read_placement(
    conn: psycopg.Connection[Any], tenant_id: uuid.UUID, status: str = "active", *, source: str = "tenantry"
) -> Placement | None:
    """The tenant's placement in ``status``; ``source`` ``"tenantry_routing"`` reads the
    routing view (active placements only: what the reader role may read)."""
    row = conn.execute(
        sql.SQL("SELECT {} FROM {} WHERE tenant_id = %s AND status = %s").format(
            _COLUMNS, sql.Identifier(source, "placements")
        ),
        (tenant_id, status),
    ).fetchone()
    return None if row is None else _placement(row)


def insert_placement(conn: psycopg.Connection[Any], placement: Placement, *, app_revision: str | None = None) -> None:
    """Record ``placement`` (with the app revision its tables are at, if known)."""
    conn.execute(
        """
        INSERT INTO tenantry.placements (tenant_id, cell, isolation, database_name, schema_name, status, app_revision)
        VALUES (%s, %s, %s, %s, %s, %s, %s)
        """,
        (
            placement.tenant_id,
            placement.cell,
            placement.isolation.value,
            placement.database,
            placement.schema,
            placement.status,
            app_revision,
        ),
    )


def set_placement_status(conn: psycopg.Connection[Any], tenant_id: uuid.UUID, *, old: str, new: str) -> None:
    """Move the tenant's placements in status ``old`` (``"live"``: every one not retired) to
    ``new``."""
    where = sql.SQL("status <> 'retired'") if old == "live" else sql.SQL("status = {}").format(sql.Literal(old))
    conn.execute(
        sql.SQL("UPDATE tenantry.placements SET status = %s, updated_at = now() WHERE tenant_id = %s AND {}").format(
            where
        ),
        (new, tenant_id),
    )


def live_placements(conn: psycopg.Connection[Any]) -> list[tuple[str, Placement]]:
    """``(slug, placement)`` of every active schema- or database-tier placement, by slug:
    the copies of the app's tables that tenants hold of their own."""
    rows = conn.execute(
        "SELECT t.slug, p.tenant_id, p.cell, p.isolation, p.database_name, p.schema_name, p.status"
        " FROM tenantry.placements p JOIN tenantry.tenants t ON t.id = p.tenant_id"
        " WHERE p.status = 'active' AND p.isolation <> 'pooled' ORDER BY t.slug"
    ).fetchall()
    return [(str(row[0]), _placement(row[1:])) for row in rows]


def own_databases(conn: psycopg.Connection[Any], *, spares: bool = True) -> list[tuple[str, str]]:
    """``(cell, database)`` of every active database-tier placement (and, with ``spares``,
    every ready spare), which hold app tables of their own; by database."""
    query = "SELECT cell, database_name FROM tenantry.placements WHERE database_name IS NOT NULL AND status = 'active'"
    if spares:
        query += " UNION SELECT cell, database_name FROM tenantry.spares WHERE database_name IS NOT NULL AND status = 'ready'"
    rows = conn.execute(query + " ORDER BY 2").fetchall()
    return [(str(cell), str(database)) for cell, database in rows]


def local_digest_of(conn: psycopg.Connection[Any], tenant_id: uuid.UUID, database: str) -> str | None:
    """The digest of the local objects recorded as installed in the tenant's own database
    (``None``: none recorded, or no such live placement)."""
    row = conn.execute(
        "SELECT local_digest FROM tenantry.placements WHERE tenant_id = %s AND database_name = %s"
        " AND status <> 'retired'",
        (tenant_id, database),
    ).fetchone()
    return None if row is None else row[0]


def record_local_digest(conn: psycopg.Connection[Any], tenant_id: uuid.UUID, database: str, digest: str) -> None:
    conn.execute(
        "UPDATE tenantry.placements SET local_digest = %s WHERE tenant_id = %s AND database_name = %s"
        " AND status <> 'retired'",
        (digest, tenant_id, database),
    )


def stale_local_placements(conn: psycopg.Connection[Any], digest: str) -> list[Placement]:
    """Live database-tier placements whose recorded local objects are not ``digest``."""
    rows = conn.execute(
        sql.SQL(
            "SELECT {} FROM tenantry.placements WHERE database_name IS NOT NULL AND status <> 'retired'"
            " AND local_digest IS DISTINCT FROM %s ORDER BY database_name"
        ).format(_COLUMNS),
        (digest,),
    ).fetchall()
    return [_placement(row) for row in rows]
