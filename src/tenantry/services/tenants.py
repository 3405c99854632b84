"""Tenant lifecycle: create, read, change status, delete. Every change is audited.

Each operation is one transaction on the catalog (and, for delete, the tenant's rows), so a
failure midway leaves nothing half-done, and each is idempotent where a rerun makes sense.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg import sql

from tenantry.core.model import Isolation, Plan, Status, Tenant, check_transition
from tenantry.core.naming import is_slug, validate_slug
from tenantry.db.binding import Binder
from tenantry.db.rls import table_order
from tenantry.errors import InvalidInput, PlanNotFound, TenantExists, TenantNotFound
from tenantry.services import audit

__all__ = [
    "change_status",
    "create_tenant",
    "delete_tenant",
    "get_plan",
    "get_tenant",
    "list_plans",
    "list_tenants",
    "tenant_key",
]

_TENANT_COLUMNS = sql.SQL("id, slug, name, plan, status, created_at, updated_at")
#: isolation tiers this release can place tenants on
AVAILABLE_ISOLATION = frozenset({Isolation.POOLED})


def _tenant(row: tuple[Any, ...]) -> Tenant:
    return Tenant(
        id=row[0], slug=row[1], name=row[2], plan=row[3], status=Status(row[4]),
        created_at=row[5], updated_at=row[6],
    )


def _plan(row: tuple[Any, ...]) -> Plan:
    return Plan(name=row[0], isolation=Isolation(row[1]), description=row[2], limits=row[3], defaults=row[4])


def list_plans(conn: psycopg.Connection[Any]) -> list[Plan]:
    rows = conn.execute(
        "SELECT name, isolation, description, limits, defaults FROM tenantry.plans ORDER BY name"
    ).fetchall()
    return [_plan(r) for r in rows]


def get_plan(conn: psycopg.Connection[Any], name: str) -> Plan:
    row = conn.execute(
        "SELECT name, isolation, description, limits, defaults FROM tenantry.plans WHERE name = %s",
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


def _lookup_clause(key: str | uuid.UUID) -> tuple[sql.Composable, Any]:
    canonical = tenant_key(key)
    if isinstance(canonical, uuid.UUID):
        return sql.SQL("id = %s"), canonical
    return sql.SQL("slug = %s AND status <> 'deleted'"), canonical


def get_tenant(
    conn: psycopg.Connection[Any], key: str | uuid.UUID, *, for_update: bool = False
) -> Tenant:
    """The tenant with this slug or id; deleted tenants are found by id only."""
    where, value = _lookup_clause(key)
    query = sql.SQL("SELECT {} FROM tenantry.tenants WHERE {}{}").format(
        _TENANT_COLUMNS, where, sql.SQL(" FOR UPDATE" if for_update else "")
    )
    row = conn.execute(query, (value,)).fetchone()
    if row is None:
        raise TenantNotFound(f"no tenant {str(key)!r}")
    return _tenant(row)


def list_tenants(
    conn: psycopg.Connection[Any],
    *,
    status: Status | None = None,
    plan: str | None = None,
    include_deleted: bool = False,
    limit: int = 1000,
    offset: int = 0,
) -> list[Tenant]:
    rows = conn.execute(
        sql.SQL(
            """
            SELECT {} FROM tenantry.tenants
             WHERE (%(status)s::text IS NULL OR status = %(status)s)
               AND (%(plan)s::text IS NULL OR plan = %(plan)s)
               AND (%(deleted)s OR status <> 'deleted')
             ORDER BY slug, created_at
             LIMIT %(limit)s OFFSET %(offset)s
            """
        ).format(_TENANT_COLUMNS),
        {
            "status": None if status is None else status.value,
            "plan": plan,
            "deleted": include_deleted,
            "limit": limit,
            "offset": offset,
        },
    ).fetchall()
    return [_tenant(r) for r in rows]


def create_tenant(
    conn: psycopg.Connection[Any],
    slug: str,
    *,
    name: str | None = None,
    plan: str = "free",
    actor: str,
) -> Tenant:
    """Create an active tenant; a live tenant with the slug already is :class:`TenantExists`."""
    validate_slug(slug)
    display = (name if name is not None else slug).strip()
    if not 1 <= len(display) <= 200:
        raise InvalidInput("tenant name must be 1 to 200 characters")
    with conn.transaction():
        chosen = get_plan(conn, plan)
        if chosen.isolation not in AVAILABLE_ISOLATION:
            raise InvalidInput(
                f"plan {plan!r} needs {chosen.isolation.value} isolation, which this release cannot"
                " place yet; use a pooled plan such as 'free'"
            )
        try:
            with conn.transaction():
                row = conn.execute(
                    sql.SQL(
                        "INSERT INTO tenantry.tenants (slug, name, plan, status)"
                        " VALUES (%s, %s, %s, 'active') RETURNING {}"
                    ).format(_TENANT_COLUMNS),
                    (slug, display, plan),
                ).fetchone()
        except psycopg.errors.UniqueViolation as err:
            raise TenantExists(f"a tenant with slug {slug!r} exists already") from err
        assert row is not None
        tenant = _tenant(row)
        audit.record(
            conn, actor=actor, action="tenant.create", target_type="tenant",
            target=slug, after=tenant.to_dict(),
        )
    return tenant


def change_status(
    conn: psycopg.Connection[Any], key: str | uuid.UUID, target: Status, *, actor: str
) -> Tenant:
    """Move a tenant along its lifecycle; asking for the status it has is a no-op."""
    with conn.transaction():
        before = get_tenant(conn, key, for_update=True)
        if before.status is target:
            return before
        check_transition(before.slug, before.status, target)
        row = conn.execute(
            sql.SQL(
                "UPDATE tenantry.tenants SET status = %s, updated_at = now() WHERE id = %s RETURNING {}"
            ).format(_TENANT_COLUMNS),
            (target.value, before.id),
        ).fetchone()
        assert row is not None
        after = _tenant(row)
        audit.record(
            conn, actor=actor, action=f"tenant.{target.value}", target_type="tenant",
            target=before.slug, before=before.to_dict(), after=after.to_dict(),
        )
    return after


def delete_tenant(
    conn: psycopg.Connection[Any],
    key: str | uuid.UUID,
    *,
    owner: str,
    binder: Binder,
    actor: str,
) -> dict[str, int]:
    """Delete every row of the tenant in the app tables and mark it deleted, atomically.

    Returns rows deleted per table. Runs as the owner with the tenant bound, so row-level
    security itself confines the deletes to this tenant's rows.
    """
    with conn.transaction():
        tenant = get_tenant(conn, key, for_update=True)
        if tenant.status is Status.DELETED:
            return {}
        check_transition(tenant.slug, tenant.status, Status.DELETED)
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
        conn.execute(
            "SELECT set_config('tenantry.tenant_id', %s, true), set_config('tenantry.tenant_sig', %s, true)",
            binder.signed(tenant.id),
        )
        counts: dict[str, int] = {}
        for schema, table in table_order(conn):
            cur = conn.execute(
                sql.SQL("DELETE FROM {} WHERE tenant_id = %s").format(sql.Identifier(schema, table)),
                (tenant.id,),
            )
            counts[f"{schema}.{table}"] = cur.rowcount
        conn.execute("RESET ROLE")
        conn.execute(
            "UPDATE tenantry.tenants SET status = 'deleted', updated_at = now() WHERE id = %s",
            (tenant.id,),
        )
        audit.record(
            conn, actor=actor, action="tenant.delete", target_type="tenant",
            target=tenant.slug, before=tenant.to_dict(), after={"rows_deleted": counts},
        )
    return counts
