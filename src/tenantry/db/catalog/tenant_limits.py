"""Per-tenant overrides of the plan's limits (catalog 0015): ``tenantry.tenant_limits``, and
its routing view ``tenantry_routing.tenant_limits`` that data-plane processes read.

Every change fires the ``tenant_limits_notify`` trigger: each process drops what it cached of
the tenant's limits when the transaction commits.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

__all__ = ["delete_overrides", "read_overrides", "write_overrides"]


def read_overrides(
    conn: psycopg.Connection[Any], tenant_id: uuid.UUID, *, source: str = "tenantry", for_update: bool = False
) -> dict[str, Any] | None:
    """The tenant's overrides document, or ``None`` when it has none. ``source``
    ``"tenantry_routing"`` reads the routing view (what the reader role may read)."""
    query = sql.SQL("SELECT limits FROM {} WHERE tenant_id = %s{}").format(
        sql.Identifier(source, "tenant_limits"), sql.SQL(" FOR UPDATE" if for_update else "")
    )
    row = conn.execute(query, (tenant_id,)).fetchone()
    return dict(row[0]) if row is not None and isinstance(row[0], dict) else None


def write_overrides(conn: psycopg.Connection[Any], tenant_id: uuid.UUID, limits: dict[str, Any]) -> None:
    """Store the tenant's overrides document (replacing the one it had)."""
    conn.execute(
        "INSERT INTO tenantry.tenant_limits (tenant_id, limits) VALUES (%s, %s)"
        " ON CONFLICT (tenant_id) DO UPDATE SET limits = excluded.limits, updated_at = now()",
        (tenant_id, Jsonb(limits)),
    )


def delete_overrides(conn: psycopg.Connection[Any], tenant_id: uuid.UUID) -> None:
    """Remove the tenant's overrides: its plan's limits apply again."""
    conn.execute("DELETE FROM tenantry.tenant_limits WHERE tenant_id = %s", (tenant_id,))
