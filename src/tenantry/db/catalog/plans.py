"""The catalog's plans: what tenants are on (tier, limits, defaults, placement policy)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tenantry.core.model import Isolation, Plan
from tenantry.errors import PlanNotFound

__all__ = ["get_plan", "list_plans", "set_pin"]

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
