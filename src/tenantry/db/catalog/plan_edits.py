"""Plans made, changed and deleted: the statements on ``tenantry.plans`` that change rows, and
what names a plan (so that deleting one can say what still does).

Reads of plans (``get_plan``, ``list_plans``) are with the tenants' area. Every change fires
the catalog's ``plans_notify`` trigger (catalog 0014): each process drops what it cached of
the plan when the transaction commits.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

__all__ = ["delete_plan", "insert_plan", "lock_plan", "plan_users", "update_plan"]


def lock_plan(conn: psycopg.Connection[Any], name: str) -> bool:
    """Lock the plan's row until the transaction ends (a tenant being put on it waits);
    whether it exists."""
    return conn.execute("SELECT 1 FROM tenantry.plans WHERE name = %s FOR UPDATE", (name,)).fetchone() is not None


def insert_plan(
    conn: psycopg.Connection[Any], name: str, *, isolation: str, description: str, limits: dict[str, Any]
) -> bool:
    """Add a plan; ``False`` (and nothing written) when one of that name exists."""
    row = conn.execute(
        "INSERT INTO tenantry.plans (name, isolation, description, limits) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (name) DO NOTHING RETURNING name",
        (name, isolation, description, Jsonb(limits)),
    ).fetchone()
    return row is not None


def update_plan(
    conn: psycopg.Connection[Any], name: str, *, isolation: str, description: str, limits: dict[str, Any]
) -> None:
    """Set the plan's tier, description and limits document."""
    conn.execute(
        "UPDATE tenantry.plans SET isolation = %s, description = %s, limits = %s, updated_at = now() WHERE name = %s",
        (isolation, description, Jsonb(limits), name),
    )


def plan_users(conn: psycopg.Connection[Any], name: str) -> dict[str, int]:
    """What names the plan, by kind: ``tenants`` (not deleted), ``deleted_tenants`` (their
    tombstones), ``config_versions`` (the plan's configuration layer and its history)."""
    row = conn.execute(
        """
        SELECT (SELECT count(*) FROM tenantry.tenants WHERE plan = %(plan)s AND status <> 'deleted'),
               (SELECT count(*) FROM tenantry.tenants WHERE plan = %(plan)s AND status = 'deleted'),
               (SELECT count(*) FROM tenantry.config_layers WHERE plan = %(plan)s)
             + (SELECT count(*) FROM tenantry.config_versions WHERE plan = %(plan)s)
        """,
        {"plan": name},
    ).fetchone()
    assert row is not None
    return {"tenants": int(row[0]), "deleted_tenants": int(row[1]), "config_versions": int(row[2])}


def delete_plan(conn: psycopg.Connection[Any], name: str) -> None:
    """Remove the plan's row (its plugin settings go with it: ON DELETE CASCADE)."""
    conn.execute("DELETE FROM tenantry.plans WHERE name = %s", (name,))
