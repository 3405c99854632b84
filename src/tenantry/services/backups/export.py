"""Exporting one tenant's rows for data portability: one file per table, JSON Lines or CSV.

Every table the tenant's placement holds, read from one repeatable-read snapshot as the
owner with the tenant bound (row-level security confines it), streamed to
``<directory>/<table>.jsonl`` (one JSON object per row, ``row_to_json``) or
``<directory>/<table>.csv`` (a header, then PostgreSQL's CSV), without ``tenant_id``.
Memory stays flat: rows come through a server-side cursor, or ``COPY``. Audited
(``tenant.export``).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import psycopg
from psycopg import sql

from tenantry.db import tenant_copy
from tenantry.db.catalog import audit
from tenantry.db.catalog.placements import read_placement
from tenantry.db.catalog.tenants import get_tenant
from tenantry.db.connect import admin_connection, database_url
from tenantry.errors import InvalidInput
from tenantry.services import placement_tables
from tenantry.services.backups.dump import data_spec

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = ["export_tenant"]

Format = Literal["jsonl", "csv"]


def export_tenant(plane: ControlPlane, key: str | uuid.UUID, directory: Path, fmt: str) -> dict[str, Any]:
    """Write the tenant's tables into ``directory`` (made if missing); returns the rows per
    file."""
    if fmt not in ("jsonl", "csv"):
        raise InvalidInput(f"format: {fmt!r} is not jsonl or csv")
    with plane.admin() as conn:
        tenant = get_tenant(conn, key)
        place = read_placement(conn, tenant.id)
    if place is None:
        raise InvalidInput(f"tenant {tenant.slug!r} has no active placement to export")
    specs = placement_tables.held(plane, place)
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, int] = {}
    url = database_url(plane.cell_admin_url(place.cell), place.database)
    with admin_connection(url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with conn.transaction():
            signed = plane.binder().signed(tenant.id, place.schema)
            tenant_copy.act_as_tenant(conn, owner=plane.settings.owner_role, signed=signed)
            for spec in specs:
                data = data_spec(spec)
                select = sql.SQL("SELECT {} FROM {}").format(data.cols(), sql.Identifier(spec.name))
                path = directory / f"{spec.name}.{fmt}"
                written[path.name] = (_jsonl if fmt == "jsonl" else _csv)(conn, select, path)
    with plane.admin() as conn, conn.transaction():
        audit.record(
            conn,
            actor=plane.actor,
            action="tenant.export",
            target_type="tenant",
            target=tenant.slug,
            after={"format": fmt, "directory": str(directory), "rows": written},
        )
    return {"tenant": tenant.slug, "format": fmt, "directory": str(directory), "files": written}


def _jsonl(conn: psycopg.Connection[Any], select: sql.Composable, path: Path) -> int:
    rows = 0
    with path.open("w", encoding="utf-8") as out, conn.cursor(name=f"tenantry_export_{uuid.uuid4().hex[:8]}") as cur:
        cur.itersize = 2000
        cur.execute(sql.SQL("SELECT row_to_json(r)::text FROM ({}) r").format(select))
        for (line,) in cur:
            out.write(line)
            out.write("\n")
            rows += 1
    return rows


def _csv(conn: psycopg.Connection[Any], select: sql.Composable, path: Path) -> int:
    cursor = conn.cursor()
    with path.open("wb") as out:
        with cursor.copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT csv, HEADER)").format(select)) as copy:
            for block in copy:
                out.write(block)
    return max(cursor.rowcount, 0)
