"""Plans in the catalog, and tenants' status changes along the lifecycle.

Each change is one audited transaction; creating and deleting tenants, which touch their
placements too, live in :mod:`tenantry.services.provisioning`. The tenants' rows are read and
written by :mod:`tenantry.db.catalog.tenants`.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from tenantry.core.model import Plan, Status, Tenant, check_transition
from tenantry.db.catalog import audit
from tenantry.db.catalog import hooks as plugin_hooks
from tenantry.db.catalog.events import notify_tenant
from tenantry.db.catalog.plans import get_plan, set_pin
from tenantry.db.catalog.tenants import get_tenant, set_status

__all__ = ["change_status", "pin_plan", "transition"]


def pin_plan(conn: psycopg.Connection[Any], name: str, *, cell: str | None, labels: dict[str, str], actor: str) -> Plan:
    """Set a plan's placement policy: a pinned cell (or ``None``) and required cell labels."""
    with conn.transaction():
        before = get_plan(conn, name)
        after = set_pin(conn, name, cell=cell, labels=labels)
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
