"""The catalog's plans: what tenants are on (tier, limits, defaults, placement policy), read,
made, changed and deleted. Every change fires the catalog's ``plans_notify`` trigger (catalog
0014): each process drops what it cached of the plan when the transaction commits."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from tenantry.core.model import Isolation, Plan
from tenantry.errors import PlanNotFound

__all__ = [
    "delete_plan",
    "get_plan",
    "insert_plan",
    "list_plans",
    "lock_plan",
    "plan_limits",
    "plan_users",
    "set_pin",
    "update_plan",
]

_PLAN_COLUMNS = "name, isolation, description, limits, defaults, cell, cell_labels"


def _plan(row: tuple[Any, ...]) -> Plan:
    return Plan(
        name=row[0],
        isolation=Isolation(row[1]),
        description=row[2],
        limits=row[3],
        defaults=row[4],
        cell=row[5],
        cell_labels=row[6],
    )


def list_plans(conn: psycopg.Connection[Any]) -> list[Plan]:
    rows = conn.execute(f"SELECT {_PLAN_COLUMNS} FROM tenantry.plans ORDER BY name").fetchall()
    return [_plan(r) for r in rows]


def get_plan(conn: psycopg.Connection[Any], name: str) -> Plan:
    row = conn.execute(
        f"SELECT {_PLAN_COLUMNS} FROM tenantry.plans WHERE name = %s",
        (name,),
    ).fetchone()
    if row is None:
        known = ", ".join(p.name for p in list_plans(conn)) or "none"
        raise PlanNotFound(f"no plan named {name!r} (plans: {known})")
    return _plan(row)


def set_pin(conn: psycopg.Connection[Any], name: str, *, cell: str | None, labels: dict[str, str]) -> Plan:
    """Set a plan's placement policy: a pinned cell (or ``None``) and required cell labels.
    A cell that is not recorded raises :class:`~tenantry.errors.PlanNotFound`."""
    if cell is not None and conn.execute("SELECT 1 FROM tenantry.cells WHERE name = %s", (cell,)).fetchone() is None:
        raise PlanNotFound(f"no cell named {cell!r} to pin plan {name!r} to")
    conn.execute(
        "UPDATE tenantry.plans SET cell = %s, cell_labels = %s, updated_at = now() WHERE name = %s",
        (cell, Jsonb(labels), name),
    )
    return get_plan(conn, name)


def plan_limits(conn: psycopg.Connection[Any], plan: str, *, source: str = "tenantry_routing") -> dict[str, Any]:
    """The plan's ``limits`` document (``{}``: no such plan, or none), read through the
    routing view by default (what a data-plane process may read)."""
    row = conn.execute(
        sql.SQL("SELECT limits FROM {} WHERE name = %s").format(sql.Identifier(source, "plans")), (plan,)
    ).fetchone()
    return dict(row[0]) if row is not None and isinstance(row[0], dict) else {}


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
