"""Cells: the PostgreSQL servers that hold tenant data, registered in the catalog.

The catalog's own server is the cell ``primary``. Adding a cell connects to it with an admin
connection string, creates (or corrects) the owner and runtime roles there, and records it;
database-tier tenants can then be placed on it. A draining cell takes no new tenants.
"""

from __future__ import annotations

import builtins
import re
from typing import TYPE_CHECKING

from tenantry.core.placement import PRIMARY_CELL
from tenantry.db.catalog import audit, require_catalog
from tenantry.db.catalog import cells as catalog_cells
from tenantry.db.catalog.cells import Cell, find_cell_dsn, get_cell, insert_cell, list_cells, stored_runtime_password
from tenantry.db.catalog.events import notify_cell
from tenantry.db.connect import admin_connection
from tenantry.db.roles import ensure_roles
from tenantry.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = ["CellService", "add_cell", "change_cell_status"]

_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")


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
        recorded, recorded_dsn = find_cell_dsn(conn, name)
        if recorded:
            if recorded_dsn != dsn:
                raise Conflict(f"cell {name!r} exists already with another server")
            return get_cell(conn, name)
    s = tn.settings
    with admin_connection(dsn, timeout=s.connect_timeout, autocommit=True) as remote:
        password = ensure_roles(remote, s.owner_role, s.runtime_role)
        if password is None:
            # the roles existed on that server: reuse the password this catalog knows for them
            with tn.admin() as conn:
                password = stored_runtime_password(conn)
    with tn.admin() as conn, conn.transaction():
        cell = insert_cell(conn, name=name, dsn=dsn, runtime_password=password, capacity=capacity, labels=labels)
        audit.record(conn, actor=tn.actor, action="cell.add", target_type="cell", target=name, after=cell.to_dict())
    return cell


def change_cell_status(tn: ControlPlane, name: str, status: str) -> Cell:
    """``draining`` (no new tenants) or ``active``; the same status again is a no-op."""
    with tn.admin() as conn, conn.transaction():
        before = get_cell(conn, name)
        if before.status == status:
            return before
        after = catalog_cells.set_cell_status(conn, name, status)
        notify_cell(conn, name)
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
        return change_cell_status(self._plane, name, "draining")

    def undrain(self, name: str) -> Cell:
        """Let a drained cell take new tenants again."""
        return change_cell_status(self._plane, name, "active")

    def admin_url(self, name: str) -> str:
        """Admin connection string of a cell (the catalog's for ``primary``)."""
        return self._plane.cell_admin_url(name)
