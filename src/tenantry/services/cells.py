"""Cells: the PostgreSQL servers that hold tenant data, registered in the catalog.

The catalog's own server is the cell ``primary``. Adding a cell connects to it with an admin
connection string, creates (or corrects) the owner and runtime roles there, and records it;
database-tier tenants can then be placed on it. A draining cell takes no new tenants.
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from tenantry.core.placement import PRIMARY_CELL, CellLoad
from tenantry.db.catalog import audit, require_catalog
from tenantry.db.catalog.events import notify_cell
from tenantry.db.connect import admin_connection, describe, with_user
from tenantry.db.roles import ensure_roles
from tenantry.errors import Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = ["CellService", "Cell", "add_cell", "cell_loads", "get_cell", "list_cells", "set_cell_status"]

_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")
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


def add_cell(
    tn: ControlPlane, name: str, dsn: str, *, capacity: int = 1000, labels: dict[str, str] | None = None
) -> Cell:
    """Register a server as a cell; adding the same name and server again is a no-op."""
    if not _NAME.fullmatch(name) or name == PRIMARY_CELL:
        raise InvalidInput(f"cell name {name!r} must be a-z, 0-9 and '-', start with a letter, and not be 'primary'")
    if capacity < 1:
        raise InvalidInput("cell capacity must be at least 1")
    labels = labels or {}
    with tn.admin() as conn:
        existing = conn.execute("SELECT dsn FROM tenantry.cells WHERE name = %s", (name,)).fetchone()
        if existing is not None:
            if existing[0] != dsn:
                raise Conflict(f"cell {name!r} exists already with another server")
            return get_cell(conn, name)
    s = tn.settings
    with admin_connection(dsn, timeout=s.connect_timeout, autocommit=True) as remote:
        password = ensure_roles(remote, s.owner_role, s.runtime_role)
        if password is None:
            # the roles existed on that server: reuse the password this catalog knows for them
            with tn.admin() as conn:
                known = conn.execute(
                    "SELECT convert_from(value, 'UTF8') FROM tenantry.secrets WHERE name = 'runtime_password'"
                ).fetchone()
                password = None if known is None else known[0]
    with tn.admin() as conn, conn.transaction():
        try:
            conn.execute(
                "INSERT INTO tenantry.cells (name, dsn, runtime_password, capacity, labels) VALUES (%s, %s, %s, %s, %s)",
                (name, dsn, password, capacity, Jsonb(labels)),
            )
        except psycopg.errors.UniqueViolation as err:
            raise Conflict(f"cell {name!r} was added concurrently") from err
        cell = get_cell(conn, name)
        audit.record(conn, actor=tn.actor, action="cell.add", target_type="cell", target=name, after=cell.to_dict())
    return cell


def set_cell_status(tn: ControlPlane, name: str, status: str) -> Cell:
    """``draining`` (no new tenants) or ``active``; the same status again is a no-op."""
    with tn.admin() as conn, conn.transaction():
        before = get_cell(conn, name)
        if before.status == status:
            return before
        conn.execute("UPDATE tenantry.cells SET status = %s WHERE name = %s", (status, name))
        notify_cell(conn, name)
        after = get_cell(conn, name)
        audit.record(
            conn,
            actor=tn.actor,
            action=f"cell.{'drain' if status == 'draining' else 'activate'}",
            target_type="cell",
            target=name,
            before=before.to_dict(),
            after=after.to_dict(),
        )
    return after


class CellService:
    """``tn.cells``: the servers that hold tenant data."""

    def __init__(self, plane: ControlPlane) -> None:
        self._plane = plane

    def list(self) -> builtins.list[Cell]:
        """The cells, with how many placements each has."""
        with self._plane.admin() as conn:
            require_catalog(conn)
            return list_cells(conn)

    def get(self, name: str) -> Cell:
        with self._plane.admin() as conn:
            return get_cell(conn, name)

    def add(self, name: str, dsn: str, *, capacity: int = 1000, labels: dict[str, str] | None = None) -> Cell:
        """Register a PostgreSQL server (admin connection string ``dsn``) as a cell."""
        with self._plane.admin() as conn:
            require_catalog(conn)
        return add_cell(self._plane, name, dsn, capacity=capacity, labels=labels)

    def drain(self, name: str) -> Cell:
        """Stop placing new tenants on a cell (its tenants stay until moved)."""
        return set_cell_status(self._plane, name, "draining")

    def undrain(self, name: str) -> Cell:
        """Let a drained cell take new tenants again."""
        return set_cell_status(self._plane, name, "active")

    def admin_url(self, name: str) -> str:
        """Admin connection string of a cell (the catalog's for ``primary``)."""
        return self._plane.cell_admin_url(name)
