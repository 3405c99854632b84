"""The catalog's usage area: measured storage per tenant, who is over the plan's quota, and
the metering table (``tenantry.usage``, partitioned by day; ``0016_usage.sql``)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg import sql

from tenantry.core.metering import COUNTERS

__all__ = [
    "USAGE_COLUMNS",
    "active_placements",
    "drop_partitions_before",
    "make_partitions",
    "over_quota",
    "partitions",
    "plans_and_cells",
    "read_storage",
    "record_usage",
    "slugs_of",
    "store_storage",
    "usage_by_tenant",
]

#: the counters a usage row carries, summed when read: the meter's, in its order (a flush
#: writes a tenant's counts as they are)
USAGE_COLUMNS = COUNTERS
_PARTITION = re.compile(r"usage_(\d{8})")


def active_placements(conn: psycopg.Connection[Any]) -> list[tuple[uuid.UUID, str, str, str | None, str]]:
    """``(tenant_id, cell, isolation, database, schema)`` of every active placement."""
    return [
        (r[0], r[1], r[2], r[3], r[4])
        for r in conn.execute(
            "SELECT tenant_id, cell, isolation, database_name, schema_name FROM tenantry.placements"
            " WHERE status = 'active' ORDER BY cell, tenant_id"
        ).fetchall()
    ]


def store_storage(conn: psycopg.Connection[Any], measured: Iterable[tuple[uuid.UUID, int, str]]) -> int:
    """Keep each ``(tenant_id, bytes, method)`` as the tenant's storage now (one statement);
    returns how many rows were written. Tenants that are gone from the catalog are skipped."""
    items = list(measured)
    if not items:
        return 0
    cur = conn.execute(
        """
        INSERT INTO tenantry.storage (tenant_id, bytes, method, measured_at)
        SELECT m.tenant_id, m.bytes, m.method, now()
          FROM unnest(%s::uuid[], %s::bigint[], %s::text[]) AS m (tenant_id, bytes, method)
          JOIN tenantry.tenants t ON t.id = m.tenant_id
        ON CONFLICT (tenant_id) DO UPDATE
           SET bytes = excluded.bytes, method = excluded.method, measured_at = excluded.measured_at
        """,
        ([i[0] for i in items], [i[1] for i in items], [i[2] for i in items]),
    )
    return cur.rowcount


def over_quota(conn: psycopg.Connection[Any], *, source: str = "tenantry") -> frozenset[uuid.UUID]:
    """The tenants over their plan's ``storage_mb`` (``source="tenantry_routing"``: through
    the routing view, as a data-plane process reads it)."""
    query = sql.SQL("SELECT tenant_id FROM {}").format(sql.Identifier(source, "storage_over_quota"))
    return frozenset(r[0] for r in conn.execute(query).fetchall())


def slugs_of(conn: psycopg.Connection[Any], ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The slugs of the tenants ``ids``, by id (those that exist)."""
    rows = conn.execute("SELECT id, slug FROM tenantry.tenants WHERE id = ANY(%s)", (list(ids),)).fetchall()
    return {r[0]: r[1] for r in rows}


def read_storage(conn: psycopg.Connection[Any], tenant_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    """The last measurement of each tenant (or of one), with its plan's quota and whether it
    is over it, largest first."""
    rows = conn.execute(
        """
        SELECT t.slug, s.tenant_id, s.bytes, s.method, s.measured_at,
               CASE WHEN jsonb_typeof(p.limits -> 'storage_mb') = 'number'
                    THEN (p.limits ->> 'storage_mb')::float8 END,
               q.tenant_id IS NOT NULL
          FROM tenantry.storage s
          JOIN tenantry.tenants t ON t.id = s.tenant_id
          JOIN tenantry.plans p ON p.name = t.plan
          LEFT JOIN tenantry.storage_over_quota q ON q.tenant_id = s.tenant_id
         WHERE %(tenant)s::uuid IS NULL OR s.tenant_id = %(tenant)s::uuid
         ORDER BY s.bytes DESC, t.slug
        """,
        {"tenant": tenant_id},
    ).fetchall()
    return [
        {
            "tenant": r[0],
            "tenant_id": str(r[1]),
            "bytes": int(r[2]),
            "method": r[3],
            "measured_at": r[4].isoformat(),
            "storage_mb": r[5],
            "over_quota": bool(r[6]),
        }
        for r in rows
    ]


# -- metering -------------------------------------------------------------------------------
def record_usage(
    conn: psycopg.Connection[Any],
    *,
    process: str,
    at: datetime,
    seconds: float,
    rows: Mapping[uuid.UUID, Mapping[str, float]],
) -> int:
    """Write one interval's counts of every tenant in one statement (through the routing
    schema's function, which a data-plane process's reader role may call); returns the rows
    written."""
    document = [{"tenant_id": str(tenant), **counts} for tenant, counts in rows.items()]
    found = conn.execute(
        "SELECT tenantry_routing.record_usage(%s, %s, %s, %s::jsonb)",
        (process, at, seconds, json.dumps(document)),
    ).fetchone()
    return int(found[0]) if found else 0


def make_partitions(conn: psycopg.Connection[Any], first: date, days: int) -> int:
    """Make the daily partitions of ``days`` days from ``first`` (UTC) that are missing."""
    found = conn.execute("SELECT tenantry.usage_partitions(%s, %s)", (first, days)).fetchone()
    return int(found[0]) if found else 0


def partitions(conn: psycopg.Connection[Any]) -> list[date]:
    """The days the usage table has partitions for, oldest first."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'tenantry.usage'::regclass"
    ).fetchall()
    days = []
    for (name,) in rows:
        match = _PARTITION.fullmatch(name)
        if match:
            days.append(datetime.strptime(match.group(1), "%Y%m%d").date())
    return sorted(days)


def drop_partitions_before(conn: psycopg.Connection[Any], day: date) -> list[date]:
    """Drop the partitions of the days before ``day`` (retention); returns their days."""
    gone = [d for d in partitions(conn) if d < day]
    for d in gone:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("tenantry", f"usage_{d:%Y%m%d}")))
    return gone


def plans_and_cells(conn: psycopg.Connection[Any]) -> tuple[dict[str, str], list[str]]:
    """Every plan's isolation by name, and the names of the active cells."""
    plans = {r[0]: r[1] for r in conn.execute("SELECT name, isolation FROM tenantry.plans ORDER BY name").fetchall()}
    cells = [r[0] for r in conn.execute("SELECT name FROM tenantry.cells WHERE status = 'active' ORDER BY name")]
    return plans, cells


def usage_by_tenant(
    conn: psycopg.Connection[Any],
    *,
    since: datetime,
    tenant_id: uuid.UUID | None = None,
    top: int | None = None,
    order: str = "requests",
) -> list[dict[str, Any]]:
    """Each tenant's usage since ``since`` (summed over processes and intervals), with its
    slug, plan, cell and last measured storage; the ``top`` by ``order`` (a usage column)."""
    if order not in USAGE_COLUMNS:
        raise ValueError(f"order must be one of {', '.join(USAGE_COLUMNS)}, not {order!r}")
    sums = sql.SQL(", ").join(sql.SQL("sum(u.{0}) AS {0}").format(sql.Identifier(c)) for c in USAGE_COLUMNS)
    query = sql.SQL(
        """
        WITH u AS (
            SELECT u.tenant_id, {sums}, min(u.at) AS first_at, max(u.at) AS last_at
              FROM tenantry.usage u
             WHERE u.at >= %(since)s AND (%(tenant)s::uuid IS NULL OR u.tenant_id = %(tenant)s::uuid)
             GROUP BY u.tenant_id
        )
        SELECT t.slug, t.id, t.plan, p.cell, s.bytes, u.*
          FROM u JOIN tenantry.tenants t ON t.id = u.tenant_id
          LEFT JOIN tenantry.placements p ON p.tenant_id = t.id AND p.status = 'active'
          LEFT JOIN tenantry.storage s ON s.tenant_id = t.id
         ORDER BY u.{order} DESC, t.slug
         LIMIT %(top)s
        """
    ).format(sums=sums, order=sql.Identifier(order))
    cur = conn.execute(query, {"since": since, "tenant": tenant_id, "top": top})
    names = [d.name for d in cur.description or ()]
    found = []
    for row in cur.fetchall():
        item = dict(zip(names, row, strict=True))
        entry: dict[str, Any] = {
            "tenant": item["slug"],
            "tenant_id": str(item["id"]),
            "plan": item["plan"],
            "cell": item["cell"],
            "storage_bytes": None if item["bytes"] is None else int(item["bytes"]),
        }
        for column in USAGE_COLUMNS:
            value = item[column] or 0
            entry[column] = round(float(value), 3) if column.endswith("_ms") else int(value)
        entry["first_at"] = item["first_at"].isoformat()
        entry["last_at"] = item["last_at"].isoformat()
        found.append(entry)
    return found
