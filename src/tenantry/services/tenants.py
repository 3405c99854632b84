"""Tenants and plans in the catalog: reads, and status changes along the lifecycle.

Each change is one audited transaction; creating and deleting tenants, which touch their
placements too, live in :mod:`tenantry.services.provisioning`.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from tenantry.core.model import Isolation, Plan, Status, Tenant, check_transition
from tenantry.core.naming import is_slug
from tenantry.errors import InvalidInput, PlanNotFound, TenantNotFound
from tenantry.services import audit, plugin_hooks
from tenantry.services.events import notify_tenant

__all__ = [
    "TENANT_COLUMNS",
    "change_status",
    "get_plan",
    "get_tenant",
    "list_plans",
    "list_tenants",
    "pin_plan",
    "row_to_tenant",
    "tenant_key",
    "transition",
]

TENANT_COLUMNS = sql.SQL("id, slug, name, plan, status, created_at, updated_at, epoch")


def row_to_tenant(row: tuple[Any, ...]) -> Tenant:
    return Tenant(
        id=row[0],
        slug=row[1],
        name=row[2],
        plan=row[3],
        status=Status(row[4]),
        created_at=row[5],
        updated_at=row[6],
        epoch=row[7],
    )


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


def tenant_key(key: str | uuid.UUID) -> uuid.UUID | str:
    """The canonical form of a tenant reference: a UUID, or a slug.

    Anything that is neither (a NUL byte, a reserved or malformed slug) names no tenant, and
    is refused here without asking the database.
    """
    if isinstance(key, uuid.UUID):
        return key
    if isinstance(key, str):
        try:
            return uuid.UUID(key)
        except ValueError:
            if is_slug(key):
                return key
    shown = str(key)[:70]
    raise TenantNotFound(f"no tenant {shown!r}")


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


def _lookup_clause(key: str | uuid.UUID) -> tuple[sql.Composable, Any]:
    canonical = tenant_key(key)
    if isinstance(canonical, uuid.UUID):
        return sql.SQL("id = %s"), canonical
    return sql.SQL("slug = %s AND status <> 'deleted'"), canonical


def get_tenant(
    conn: psycopg.Connection[Any], key: str | uuid.UUID, *, for_update: bool = False, source: str = "tenantry"
) -> Tenant:
    """The tenant with this slug or id; deleted tenants are found by id only. ``source``
    ``"tenantry_routing"`` reads the routing view (what the reader role may read)."""
    where, value = _lookup_clause(key)
    query = sql.SQL("SELECT {} FROM {} WHERE {}{}").format(
        TENANT_COLUMNS, sql.Identifier(source, "tenants"), where, sql.SQL(" FOR UPDATE" if for_update else "")
    )
    row = conn.execute(query, (value,)).fetchone()
    if row is None:
        raise TenantNotFound(f"no tenant {str(key)!r}")
    return row_to_tenant(row)


#: a slug prefix to search by: what a slug may start with (so LIKE needs no escaping)
_SLUG_PREFIX = re.compile(r"[a-z0-9-]{1,63}")
_LIVE = sql.SQL("status <> 'deleted'")


def list_tenants(
    conn: psycopg.Connection[Any],
    *,
    status: Status | None = None,
    plan: str | None = None,
    include_deleted: bool = False,
    prefix: str | None = None,
    after: tuple[str, uuid.UUID] | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[Tenant]:
    """Tenants by (slug, id) in byte order, optionally those with ``status``, on ``plan``,
    whose slug starts with ``prefix``, and after ``after`` (the (slug, id) of the previous
    page's last tenant: keyset paging, a page costs the same wherever it is).

    Each filter has an index in that order (catalog 0011), so a page reads about ``limit``
    index entries at any number of tenants; only ``offset`` reads the rows it skips.
    """
    where: list[sql.Composable] = []
    if plan is not None:
        where.append(sql.SQL("plan = %(plan)s"))
    if prefix:
        if not _SLUG_PREFIX.fullmatch(prefix):
            raise InvalidInput(f"{prefix[:70]!r} cannot start a slug (a-z, 0-9 and '-')")
        where.append(sql.SQL('slug COLLATE "C" LIKE %(pattern)s'))
    if after is not None:
        where.append(sql.SQL('(slug COLLATE "C", id) > (%(slug)s, %(id)s::uuid)'))
    # the live tenants and the tombstones have an index each: with both, each side gives its
    # first limit + offset in order and only those are merged, never the whole table sorted
    if status is not None:
        sides = [[sql.SQL("status = %(status)s"), *([] if include_deleted else [_LIVE])]]
    else:
        sides = [[_LIVE], [sql.SQL("status = 'deleted'")]] if include_deleted else [[_LIVE]]
    queries = [
        sql.SQL('(SELECT {} FROM tenantry.tenants WHERE {} ORDER BY slug COLLATE "C", id LIMIT %(window)s)').format(
            TENANT_COLUMNS, sql.SQL(" AND ").join([*side, *where])
        )
        for side in sides
    ]
    rows = conn.execute(
        sql.SQL('SELECT {} FROM ({}) AS listed ORDER BY slug COLLATE "C", id LIMIT %(limit)s OFFSET %(offset)s').format(
            TENANT_COLUMNS, sql.SQL(" UNION ALL ").join(queries)
        ),
        {
            "status": None if status is None else status.value,
            "plan": plan,
            "pattern": f"{prefix}%",
            "slug": None if after is None else after[0],
            "id": None if after is None else after[1],
            "limit": limit,
            "offset": offset,
            "window": limit + offset,
        },
    ).fetchall()
    return [row_to_tenant(r) for r in rows]


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
        row = conn.execute(
            sql.SQL(
                "UPDATE tenantry.tenants SET status = %s, epoch = epoch + 1, updated_at = now()"
                " WHERE id = %s RETURNING {}"
            ).format(TENANT_COLUMNS),
            (target.value, before.id),
        ).fetchone()
        assert row is not None
        after = row_to_tenant(row)
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
