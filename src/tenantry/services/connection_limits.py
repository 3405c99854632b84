"""The database tier's server-side cap: ``ALTER DATABASE … CONNECTION LIMIT`` from the plan.

A database-tier tenant's own database gets its plan's ``db_connections`` x
``Settings.database_connection_limit_factor`` (4) as its ``CONNECTION LIMIT`` (no cap: ``-1``),
so the server itself refuses the tenant's sessions beyond it, counted over every process and
every kind of pool; the data plane names the refusal
:class:`~tenantry.errors.TooManyConnections`. Each process caps the connections the tenant
*holds* at once in it at ``db_connections`` (:mod:`tenantry.db.connection_caps`); the server
counts sessions *open*, idle pooled ones too, so the backstop leaves room for them (a factor
of 1 makes the plan's figure the total over all processes).

:func:`apply_connection_limits` sets it from what the catalog says now, and is idempotent (a
database already at its limit is left alone). It runs when a database-tier tenant is created
(also from a spare) and after a move flips (a plan change); after a plan's limits change, run
``tn.plans.apply_connection_limits(name)``.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from psycopg import sql

from tenantry.core.limits import connection_cap
from tenantry.db.catalog.connection_limits import own_databases
from tenantry.db.connect import admin_connection

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = ["apply_connection_limits", "server_limit"]

_log = logging.getLogger("tenantry.limits")
#: the largest CONNECTION LIMIT (PostgreSQL's MAX_BACKENDS)
_MAX_LIMIT = 262143


def server_limit(limits: dict[str, object], factor: int = 1, overrides: dict[str, object] | None = None) -> int | None:
    """The ``CONNECTION LIMIT`` a plan's ``limits`` document (and the tenant's ``overrides``
    of it) asks for: ``db_connections`` x ``factor`` (``-1``: none), or ``None`` when
    ``db_connections`` is not valid (the database is then left as it is).

    >>> server_limit({"db_connections": 5}, 4), server_limit({}), server_limit({"db_connections": 0})
    (20, -1, None)
    >>> server_limit({"db_connections": 5}, 4, {"db_connections": None})
    -1
    """
    try:
        cap = connection_cap(limits, overrides)
    except ValueError:
        return None
    return -1 if cap is None else min(cap * factor, _MAX_LIMIT)


def apply_connection_limits(
    plane: ControlPlane, *, plan: str | None = None, tenant_id: uuid.UUID | None = None, new: bool = False
) -> dict[str, int]:
    """Set the ``CONNECTION LIMIT`` of the own databases of the tenants on ``plan`` (or of
    ``tenant_id``, or of every database-tier tenant) from their plan's ``db_connections``
    (:func:`server_limit`, with ``Settings.database_connection_limit_factor``);
    returns the databases changed and their new limit. Idempotent. ``new``: the databases
    were just created (with no limit), so those of plans without a cap are not visited."""
    with plane.admin() as conn:
        found = own_databases(conn, plan=plan, tenant_id=tenant_id)
    changed: dict[str, int] = {}
    by_cell: dict[str, list[tuple[str, int]]] = {}
    for own in found:
        limit = server_limit(own.limits, plane.settings.database_connection_limit_factor, own.overrides)
        if limit is None:
            _log.error(
                "the db_connections limit of tenant %s's plan is not valid: %s left as it is",
                own.tenant_id,
                own.database,
            )
            continue
        if not (new and limit == -1):
            by_cell.setdefault(own.cell, []).append((own.database, limit))
    for cell, databases in by_cell.items():
        url = plane.cell_admin_url(cell)
        with admin_connection(url, timeout=plane.settings.connect_timeout, autocommit=True) as conn:
            for database, limit in databases:
                row = conn.execute("SELECT datconnlimit FROM pg_database WHERE datname = %s", (database,)).fetchone()
                if row is None or row[0] == limit:
                    continue  # (dropped meanwhile, or at its limit already)
                conn.execute(
                    sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(
                        sql.Identifier(database), sql.Literal(limit)
                    )
                )
                _log.info("database %s on cell %s: CONNECTION LIMIT %d (was %d)", database, cell, limit, row[0])
                changed[database] = limit
    return changed
