"""The catalog's cells: the PostgreSQL servers that hold tenant data (``primary`` is the
catalog's own), with their placement counts (kept by triggers, catalog 0011)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tenantry.core.placement import CellLoad
from tenantry.db.connect import describe, with_user
from tenantry.errors import Conflict, NotFound

__all__ = [
    "Cell",
    "cell_loads",
    "find_cell_dsn",
    "get_cell",
    "insert_cell",
    "list_cells",
    "set_cell_status",
    "stored_runtime_password",
]

_COLUMNS = "name, dsn, runtime_password, capacity, labels, status, created_at"


@dataclass(frozen=True, slots=True)
class Cell:
    """A server in the catalog. ``dsn`` and ``runtime_password`` are secrets."""

    name: str
    dsn: str | None
    runtime_password: str | None = field(repr=False)
    capacity: int
    labels: dict[str, str]
    status: str
    created_at: datetime
    placements: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "server": "the catalog's server" if self.dsn is None else describe(self.dsn),
            "capacity": self.capacity,
            "labels": self.labels,
            "status": self.status,
            "placements": self.placements,
            "created_at": self.created_at.isoformat(),
        }

    def admin_url(self, primary_admin_url: str) -> str:
        return primary_admin_url if self.dsn is None else self.dsn

    def runtime_url(self, primary_runtime_url: str, runtime_role: str) -> str:
        if self.dsn is None:
            return primary_runtime_url
        return with_user(self.dsn, runtime_role, self.runtime_password)


def _count_sql(where: str) -> str:
    # the count is kept by triggers on tenantry.placements (catalog 0011): a few rows per
    # cell, whatever the number of tenants
    return f"""
        SELECT {_COLUMNS},
               coalesce((SELECT sum(k.placements) FROM tenantry.cell_counts k WHERE k.cell = c.name), 0)::bigint
          FROM tenantry.cells c {where} ORDER BY name
    """


def list_cells(conn: psycopg.Connection[Any]) -> list[Cell]:
    return [Cell(*row) for row in conn.execute(_count_sql("")).fetchall()]


def get_cell(conn: psycopg.Connection[Any], name: str) -> Cell:
    row = conn.execute(_count_sql("WHERE c.name = %s"), (name,)).fetchone()
    if row is None:
        known = ", ".join(c.name for c in list_cells(conn))
        raise NotFound(f"no cell named {name!r} (cells: {known})")
    return Cell(*row)


def cell_loads(conn: psycopg.Connection[Any]) -> list[CellLoad]:
    """What the placement policy needs to know of every cell; costs the same at any number of
    tenants."""
    return [CellLoad(c.name, c.status, c.capacity, c.labels, c.placements) for c in list_cells(conn)]


def find_cell_dsn(conn: psycopg.Connection[Any], name: str) -> tuple[bool, str | None]:
    """Whether cell ``name`` is recorded, and its connection string (``None``: the catalog's
    own server)."""
    row = conn.execute("SELECT dsn FROM tenantry.cells WHERE name = %s", (name,)).fetchone()
    return (False, None) if row is None else (True, row[0])


def stored_runtime_password(conn: psycopg.Connection[Any]) -> str | None:
    """The runtime role's password this catalog keeps (``None``: none kept)."""
    row = conn.execute(
        "SELECT convert_from(value, 'UTF8') FROM tenantry.secrets WHERE name = 'runtime_password'"
    ).fetchone()
    return None if row is None else row[0]


def insert_cell(
    conn: psycopg.Connection[Any],
    *,
    name: str,
    dsn: str,
    runtime_password: str | None,
    capacity: int,
    labels: dict[str, str],
) -> Cell:
    """Record a cell; a name taken meanwhile raises :class:`~tenantry.errors.Conflict`."""
    try:
        conn.execute(
            "INSERT INTO tenantry.cells (name, dsn, runtime_password, capacity, labels) VALUES (%s, %s, %s, %s, %s)",
            (name, dsn, runtime_password, capacity, Jsonb(labels)),
        )
    except psycopg.errors.UniqueViolation as err:
        raise Conflict(f"cell {name!r} was added concurrently") from err
    return get_cell(conn, name)


def set_cell_status(conn: psycopg.Connection[Any], name: str, status: str) -> Cell:
    conn.execute("UPDATE tenantry.cells SET status = %s WHERE name = %s", (status, name))
    return get_cell(conn, name)
