"""Plans in the catalog, and tenants' status changes along the lifecycle.

Each change is one audited transaction; creating and deleting tenants, which touch their
placements too, live in :mod:`tenantry.services.provisioning`. The tenants' rows are read and
written by :mod:`tenantry.db.catalog.tenants`.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tenantry.core.model import Isolation, Plan, Status, Tenant, check_transition
from tenantry.db.catalog import audit
from tenantry.db.catalog.events import notify_tenant
from tenantry.db.catalog.tenants import get_tenant, set_status
from tenantry.errors import PlanNotFound
from tenantry.services import plugin_hooks

__all__ = ["change_status", "get_plan", "list_plans", "pin_plan", "transition"]

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


def pin_plan(conn: psycopg.Connection[Any], name: str, *, cell: str | None, labels: dict[str, str], actor: str) -> Plan:
    """Set a plan's placement policy: a pinned cell (or ``None``) and required cell labels."""
    with conn.transaction():
        before = get_plan(conn, name)
        if (
            cell is not None
            and conn.execute("SELECT 1 FROM tenantry.cells WHERE name = %s", (cell,)).fetchone() is None
        ):
            raise PlanNotFound(f"no cell named {cell!r} to pin plan {name!r} to")
        conn.execute(
            "UPDATE tenantry.plans SET cell = %s, cell_labels = %s, updated_at = now() WHERE name = %s",
            (cell, Jsonb(labels), name),
        )
        after = get_plan(conn, name)
        audit.record(
            conn,
            actor=actor,
            action="plan.pin",
            target_type="plan",
            target=name,
            before=before.to_dict(),
            after=after.to_dict(),
        )
    return after


def change_status(conn: psycopg.Connection[Any], key: str | uuid.UUID, target: Status, *, actor: str) -> Tenant:
    """Move a tenant along its lifecycle; asking for the status it has is a no-op."""
    return transition(conn, key, target, actor=actor)[0]


#: the lifecycle event a change to each status is, for plugins' hooks
_EVENTS: dict[Status, str] = {Status.SUSPENDED: "suspended", Status.ACTIVE: "resumed", Status.ARCHIVED: "archived"}


def transition(
    conn: psycopg.Connection[Any],
    key: str | uuid.UUID,
    target: Status,
    *,
    actor: str,
    origin: plugin_hooks.Origin | None = None,
) -> tuple[Tenant, bool]:
    """:func:`change_status`, also saying whether the status changed (``False``: it was
    ``target`` already). The change queues its plugins' hook calls in the same transaction
    (reserved for ``origin``, the process making it)."""
    with conn.transaction():
        before = get_tenant(conn, key, for_update=True)
        if before.status is target:
            return before, False
        check_transition(before.slug, before.status, target)
        after = set_status(conn, before.id, target, new_epoch=True)
        notify_tenant(conn, after.id)
        audit.record(
            conn,
            actor=actor,
            action=f"tenant.{target.value}",
            target_type="tenant",
            target=before.slug,
            before=before.to_dict(),
            after=after.to_dict(),
        )
        if target in _EVENTS:
            plugin_hooks.enqueue(conn, _EVENTS[target], after, origin=origin)
    return after, True
