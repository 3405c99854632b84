"""What the catalog knows of each placement's app revision, and how runs are recorded.

Schema- and database-tier placements keep their revision in ``tenantry.placements.
app_revision``. The pooled schema is one placement shared by every pooled tenant: its revision
is kept once, in ``tenantry.shared_placements`` (created here on first use), rather than in
each pooled tenant's placement row, so a migration costs one write whatever the number of
pooled tenants. A placement whose last migration failed has a ``tenantry.jobs`` row of kind
``migrate`` with status ``failed`` and the error; it turns ``done`` when the placement
migrates. The catalog is a cache of the version tables in the placements: a run that dies
between a placement's commit and its catalog update leaves the placement "behind" in the
catalog, and the next run finds it at its revision and records it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg import sql

from tenantry.errors import TenantNotFound

__all__ = [
    "POOLED",
    "Failure",
    "Plan",
    "Tracked",
    "ensure_shared_table",
    "failures",
    "plan",
    "record_failure",
    "record_revision",
    "recorded",
    "revision_counts",
]

#: the key of the pooled schema among the placements
POOLED: Final = "pooled"

_LIVE = """
  FROM tenantry.placements p JOIN tenantry.tenants t ON t.id = p.tenant_id
 WHERE p.status = 'active' AND t.status <> 'deleted'
"""


@dataclass(frozen=True, slots=True)
class Tracked:
    """A placement as the catalog records it, with its app revision (``None``: untracked)."""

    key: str
    slug: str | None
    tenant_id: uuid.UUID | None
    tier: str
    cell: str
    database: str | None
    schema: str
    revision: str | None
    placement_status: str = "active"
    moving: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """The placements a run considers: how many, and those whose revision is not the head."""

    total: int
    behind: list[Tracked]


@dataclass(frozen=True, slots=True)
class Failure:
    """A placement whose last migration failed."""

    slug: str | None
    error: str
    attempts: int
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"slug": self.slug, "error": self.error, "attempts": self.attempts, "at": self.at.isoformat()}


def ensure_shared_table(conn: psycopg.Connection[Any], owner: str) -> None:
    """Create ``tenantry.shared_placements`` unless it exists (as the owner, like the catalog)."""
    if _shared_exists(conn):
        return
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
        conn.execute(
            """
            CREATE TABLE IF NOT EXISTS tenantry.shared_placements (
                schema_name   text PRIMARY KEY,
                app_revision  text,
                updated_at    timestamptz NOT NULL DEFAULT now()
            )
            """
        )


def _shared_exists(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass('tenantry.shared_placements') IS NOT NULL").fetchone()
    return bool(row and row[0])


def _shared_revision(conn: psycopg.Connection[Any], schema: str) -> str | None:
    if not _shared_exists(conn):
        return None
    row = conn.execute(
        "SELECT app_revision FROM tenantry.shared_placements WHERE schema_name = %s", (schema,)
    ).fetchone()
    return None if row is None else row[0]


def _pooled(conn: psycopg.Connection[Any], schema: str) -> Tracked:
    return Tracked(POOLED, None, None, "pooled", "primary", None, schema, _shared_revision(conn, schema))


def plan(
    conn: psycopg.Connection[Any],
    *,
    head: str | None,
    pooled_schema: str,
    slugs: list[str] | None,
    only_behind: bool = True,
) -> Plan:
    """The live placements (the pooled schema once, every active schema- and database-tier
    placement; or those of ``slugs``) and those not recorded at ``head`` (or all of them)."""
    include_pooled = slugs is None
    if slugs is not None:
        found = dict(conn.execute("SELECT t.slug, p.isolation" + _LIVE + " AND t.slug = ANY (%s)", (slugs,)).fetchall())
        missing = [s for s in slugs if s not in found]
        if missing:
            raise TenantNotFound(f"no live tenant with slug {', '.join(map(repr, missing))}")
        include_pooled = "pooled" in found.values()
    where = sql.SQL(_LIVE + " AND p.isolation <> 'pooled' AND (%(slugs)s::text[] IS NULL OR t.slug = ANY (%(slugs)s))")
    total_row = conn.execute(sql.SQL("SELECT count(*) {}").format(where), {"slugs": slugs}).fetchone()
    rows = conn.execute(
        sql.SQL(
            "SELECT p.tenant_id, t.slug, p.isolation, p.cell, p.database_name, p.schema_name, p.app_revision,"
            " t.status = 'moving' {} AND (NOT %(only_behind)s OR p.app_revision IS DISTINCT FROM %(head)s)"
            " ORDER BY t.slug"
        ).format(where),
        {"slugs": slugs, "head": head, "only_behind": only_behind},
    ).fetchall()
    behind = [Tracked(str(r[0]), r[1], r[0], r[2], r[3], r[4], r[5], r[6], moving=r[7]) for r in rows]
    total = int(total_row[0]) if total_row else 0
    if include_pooled:
        pooled = _pooled(conn, pooled_schema)
        total += 1
        if pooled.revision != head or not only_behind:
            behind.insert(0, pooled)
    return Plan(total, behind)


def recorded(conn: psycopg.Connection[Any], placement: Tracked) -> str | None:
    """The revision the catalog records for ``placement`` (``None``: untracked)."""
    if placement.key == POOLED:
        return _shared_revision(conn, placement.schema)
    row = conn.execute(
        "SELECT app_revision FROM tenantry.placements WHERE tenant_id = %s AND status = %s",
        (placement.tenant_id, placement.placement_status),
    ).fetchone()
    return None if row is None else row[0]


def _job_filter(tenant_id: uuid.UUID | None) -> sql.Composable:
    if tenant_id is None:
        return sql.SQL("kind = 'migrate' AND tenant_id IS NULL")
    return sql.SQL("kind = 'migrate' AND tenant_id = {}").format(sql.Literal(tenant_id))


def record_revision(conn: psycopg.Connection[Any], placement: Tracked, revision: str | None) -> None:
    """Record that ``placement`` is at ``revision`` and clear its failure, if any."""
    if placement.key == POOLED:
        conn.execute(
            """
            INSERT INTO tenantry.shared_placements (schema_name, app_revision) VALUES (%s, %s)
            ON CONFLICT (schema_name) DO UPDATE SET app_revision = excluded.app_revision, updated_at = now()
            """,
            (placement.schema, revision),
        )
    else:
        conn.execute(
            "UPDATE tenantry.placements SET app_revision = %s, updated_at = now() WHERE tenant_id = %s AND status = %s",
            (revision, placement.tenant_id, placement.placement_status),
        )
    conn.execute(
        sql.SQL(
            "UPDATE tenantry.jobs SET status = 'done', error = NULL, steps_done = ARRAY[{}]::text[],"
            " updated_at = now() WHERE {} AND status = 'failed'"
        ).format(sql.Literal(revision or "base"), _job_filter(placement.tenant_id))
    )


def record_failure(conn: psycopg.Connection[Any], placement: Tracked, error: str) -> None:
    """Record that the last migration of ``placement`` failed with ``error``."""
    updated = conn.execute(
        sql.SQL(
            "UPDATE tenantry.jobs SET status = 'failed', error = %s, attempts = attempts + 1,"
            " updated_at = now() WHERE {} RETURNING id"
        ).format(_job_filter(placement.tenant_id)),
        (error,),
    ).fetchone()
    if updated is None:
        conn.execute(
            "INSERT INTO tenantry.jobs (kind, tenant_id, status, error) VALUES ('migrate', %s, 'failed', %s)",
            (placement.tenant_id, error),
        )


def revision_counts(conn: psycopg.Connection[Any], pooled_schema: str) -> Counter[str | None]:
    """How many live placements are at each revision (``None``: untracked)."""
    counts: Counter[str | None] = Counter()
    for revision, count in conn.execute(
        "SELECT p.app_revision, count(*)" + _LIVE + " AND p.isolation <> 'pooled' GROUP BY 1"
    ).fetchall():
        counts[revision] += int(count)
    counts[_shared_revision(conn, pooled_schema)] += 1
    return counts


def failures(conn: psycopg.Connection[Any]) -> list[Failure]:
    """Placements whose last migration failed (tenants since deleted left out)."""
    rows = conn.execute(
        """
        SELECT t.slug, j.error, j.attempts, j.updated_at
          FROM tenantry.jobs j LEFT JOIN tenantry.tenants t ON t.id = j.tenant_id
         WHERE j.kind = 'migrate' AND j.status = 'failed' AND (j.tenant_id IS NULL OR t.status <> 'deleted')
         ORDER BY t.slug NULLS FIRST
        """
    ).fetchall()
    return [Failure(r[0], r[1] or "", r[2], r[3]) for r in rows]
