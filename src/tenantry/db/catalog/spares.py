"""The catalog's spares: schema- and database-tier placements built ahead of time for the
app's current tables (``tenantry.spares``), and claimed by new tenants."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from tenantry.core.model import Isolation
from tenantry.core.placement import Placement

__all__ = [
    "Spare",
    "SpareKey",
    "count_ready",
    "delete_spare",
    "insert_spare",
    "mark_dropping",
    "mark_ready",
    "oldest_ready",
    "select_spares",
]

_COLUMNS = sql.SQL(
    "id, isolation, cell, schema_name, database_name, status, fingerprint, app_revision, steps_done, created_at"
)


@dataclass(frozen=True, slots=True)
class SpareKey:
    """What a spare must have been built for to be claimed: the app's tables and revision."""

    fingerprint: str
    revision: str | None


@dataclass(frozen=True, slots=True)
class Spare:
    """A spare placement as the catalog records it."""

    id: uuid.UUID
    tier: Isolation
    cell: str
    schema: str
    database: str | None
    status: str
    """``building``, ``ready`` (claimable) or ``dropping``."""
    fingerprint: str
    app_revision: str | None
    steps_done: tuple[str, ...]
    created_at: datetime
    current: bool | None = None
    """Built for this process's app tables and migrations head (only such spares are claimed);
    ``None`` when the app's tables are unknown here."""

    @property
    def placement(self) -> Placement:
        return Placement(self.id, self.cell, self.tier, self.database, self.schema, "building")

    def matches(self, key: SpareKey) -> bool:
        return self.fingerprint == key.fingerprint and self.app_revision == key.revision

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "tier": self.tier.value,
            "cell": self.cell,
            "schema": self.schema,
            "database": self.database,
            "status": self.status,
            "fingerprint": self.fingerprint,
            "app_revision": self.app_revision,
            "steps_done": list(self.steps_done),
            "created_at": self.created_at.isoformat(),
            "current": self.current,
        }


def _spare(row: tuple[Any, ...], key: SpareKey | None = None) -> Spare:
    spare = Spare(
        id=row[0],
        tier=Isolation(row[1]),
        cell=row[2],
        schema=row[3],
        database=row[4],
        status=row[5],
        fingerprint=row[6],
        app_revision=row[7],
        steps_done=tuple(row[8]),
        created_at=row[9],
    )
    if key is None:
        return spare
    return Spare(**{**{f: getattr(spare, f) for f in Spare.__slots__}, "current": spare.matches(key)})


def select_spares(
    conn: psycopg.Connection[Any], tier: Isolation | None, cell: str | None, key: SpareKey | None = None
) -> list[Spare]:
    rows = conn.execute(
        sql.SQL(
            "SELECT {} FROM tenantry.spares"
            " WHERE (%(tier)s::text IS NULL OR isolation = %(tier)s) AND (%(cell)s::text IS NULL OR cell = %(cell)s)"
            " ORDER BY isolation, cell, created_at, id"
        ).format(_COLUMNS),
        {"tier": None if tier is None else tier.value, "cell": cell},
    ).fetchall()
    return [_spare(r, key) for r in rows]


def count_ready(conn: psycopg.Connection[Any], isolation: Isolation, cell: str, key: SpareKey) -> int:
    """How many claimable spares of ``isolation`` on ``cell`` were built for ``key``."""
    row = conn.execute(
        "SELECT count(*) FROM tenantry.spares WHERE status = 'ready' AND isolation = %s AND cell = %s"
        " AND fingerprint = %s AND app_revision IS NOT DISTINCT FROM %s::text",
        (isolation.value, cell, key.fingerprint, key.revision),
    ).fetchone()
    return int(row[0]) if row else 0


def insert_spare(conn: psycopg.Connection[Any], where: Placement, key: SpareKey) -> Spare | None:
    """Record a new spare, ``building``, at ``where`` (its id is ``where.tenant_id``);
    ``None`` when a tenant has that id already (pick another)."""
    row = conn.execute(
        sql.SQL(
            """
            INSERT INTO tenantry.spares
                (id, cell, isolation, database_name, schema_name, fingerprint, app_revision)
            SELECT %s, %s, %s, %s, %s, %s, %s
             WHERE NOT EXISTS (SELECT 1 FROM tenantry.tenants WHERE id = %s)
            RETURNING {}
            """
        ).format(_COLUMNS),
        (
            where.tenant_id,
            where.cell,
            where.isolation.value,
            where.database,
            where.schema,
            key.fingerprint,
            key.revision,
            where.tenant_id,
        ),
    ).fetchone()
    return None if row is None else _spare(row)


def mark_ready(conn: psycopg.Connection[Any], spare_id: uuid.UUID) -> None:
    conn.execute(
        "UPDATE tenantry.spares SET status = 'ready', updated_at = now() WHERE id = %s AND status = 'building'",
        (spare_id,),
    )


def mark_dropping(conn: psycopg.Connection[Any], ids: list[uuid.UUID]) -> list[Spare]:
    """Mark the spares of ``ids`` as being dropped and return them, skipping those a
    concurrent create is claiming right now."""
    rows = conn.execute(
        sql.SQL(
            "UPDATE tenantry.spares SET status = 'dropping', updated_at = now()"
            " WHERE id IN (SELECT id FROM tenantry.spares WHERE id = ANY(%s) FOR UPDATE SKIP LOCKED)"
            " RETURNING {}"
        ).format(_COLUMNS),
        (ids,),
    ).fetchall()
    return [_spare(r) for r in rows]


def delete_spare(conn: psycopg.Connection[Any], spare_id: uuid.UUID) -> None:
    conn.execute("DELETE FROM tenantry.spares WHERE id = %s", (spare_id,))


def oldest_ready(
    conn: psycopg.Connection[Any], isolation: Isolation, cell: str, key: SpareKey
) -> tuple[uuid.UUID, datetime, str | None] | None:
    """``(id, built at, app revision)`` of the oldest claimable spare of ``isolation`` on
    ``cell`` built for ``key``, locked for the caller's transaction (``None``: none free)."""
    row = conn.execute(
        """
        SELECT id, created_at, app_revision FROM tenantry.spares
         WHERE status = 'ready' AND isolation = %s AND cell = %s AND fingerprint = %s
           AND app_revision IS NOT DISTINCT FROM %s::text
         ORDER BY created_at, id
         LIMIT 1
           FOR UPDATE SKIP LOCKED
        """,
        (isolation.value, cell, key.fingerprint, key.revision),
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2])
