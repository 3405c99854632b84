"""``tenantry check``'s look at the roles: can the runtime and reader roles do more than their part?

Judged from the admin connection of every cell (the catalog's, then the others), by asking
PostgreSQL what each role may do (:func:`tenantry.db.roles.role_problems`): attributes,
memberships (``SET ROLE``), CREATE on schemas and databases, ownership, and the catalog
relations each may read or change. The runtime role must also be able to connect to every
database-tier tenant's database; the reader needs the catalog's database only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenantry.core.placement import PRIMARY_CELL
from tenantry.db import catalog
from tenantry.db.catalog import cells as cells_service
from tenantry.db.catalog.placements import own_databases
from tenantry.db.connect import admin_connection
from tenantry.db.roles import role_problems
from tenantry.errors import DatabaseUnavailable

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = ["check_roles"]

_UNREACHABLE_SQL = """
SELECT d FROM unnest(%(databases)s::text[]) d
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = d)
    OR NOT has_database_privilege(%(role)s, d, 'CONNECT')
 ORDER BY 1
"""


def check_roles(tn: ControlPlane) -> dict[str, list[str]]:
    """What each role can do beyond its part, by ``role`` (``cell:role`` on the other cells);
    empty when nothing."""
    s = tn.settings
    found: dict[str, list[str]] = {}
    with tn.admin() as conn:
        catalog.require_catalog(conn)
        for role, kind in ((s.runtime_role, "runtime"), (s.reader_role, "reader")):
            problems = role_problems(conn, role, kind=kind, pooled_schema=s.pooled_schema)
            if problems:
                found[role] = problems
        cells = cells_service.list_cells(conn)
        owned = own_databases(conn, spares=False)
    databases: dict[str, list[str]] = {}
    for cell_name, database in owned:
        databases.setdefault(cell_name, []).append(database)
    for cell in cells:
        label = s.runtime_role if cell.name == PRIMARY_CELL else f"{cell.name}:{s.runtime_role}"
        try:
            with admin_connection(cell.admin_url(tn.admin_url), timeout=s.connect_timeout, autocommit=True) as conn:
                problems = (
                    []
                    if cell.name == PRIMARY_CELL
                    else role_problems(conn, s.runtime_role, kind="runtime", pooled_schema=s.pooled_schema)
                )
                shut = conn.execute(
                    _UNREACHABLE_SQL, {"databases": databases.get(cell.name, []), "role": s.runtime_role}
                ).fetchall()
        except DatabaseUnavailable as err:
            problems, shut = [f"cannot be checked: {err}"], []
        problems += [f"cannot connect to database {row[0]!r} (a database-tier tenant's)" for row in shut]
        if problems:
            found.setdefault(label, []).extend(problems)
    return found
