"""The catalog's tenants: their rows, found by slug or id, listed by keyset pages, and their
status (and epoch) changed. Callers hold the transaction and do the after-effects (NOTIFY,
audit, plugin hooks): :mod:`tenantry.services.tenants`, provisioning, moves, spares.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import psycopg
from psycopg import sql

from tenantry.core.model import Status, Tenant
from tenantry.core.naming import is_slug
from tenantry.errors import InvalidInput, TenantExists, TenantNotFound

__all__ = [
    "TENANT_COLUMNS",
    "find_tenant",
    "get_tenant",
    "insert_tenant",
    "list_tenants",
    "row_to_tenant",
    "set_status",
    "tenant_key",
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


def find_tenant(
    conn: psycopg.Connection[Any], key: str | uuid.UUID, *, for_update: bool = False, source: str = "tenantry"
) -> Tenant | None:
    """The tenant with this slug or id, or ``None``; deleted tenants are found by id only.
    ``source`` ``"tenantry_routing"`` reads the routing view (what the reader role may read)."""
    where, value = _lookup_clause(key)
    query = sql.SQL("SELECT {} FROM {} WHERE {}{}").format(
        TENANT_COLUMNS, sql.Identifier(source, "tenants"), where, sql.SQL(" FOR UPDATE" if for_update else "")
    )
    row = conn.execute(query, (value,)).fetchone()
    return None if row is None else row_to_tenant(row)


def get_tenant(
    conn: psycopg.Connection[Any], key: str | uuid.UUID, *, for_update: bool = False, source: str = "tenantry"
) -> Tenant:
    """:func:`find_tenant`, raising :class:`~tenantry.errors.TenantNotFound` for none."""
    found = find_tenant(conn, key, for_update=for_update, source=source)
    if found is None:
        raise TenantNotFound(f"no tenant {str(key)!r}")
    return found


def insert_tenant(
    conn: psycopg.Connection[Any], *, slug: str, name: str, plan: str, status: Status, id: uuid.UUID | None = None
) -> Tenant:
    """Record a new tenant (with ``id``, or a new one). A taken slug raises
    :class:`~tenantry.errors.TenantExists` and leaves ``conn``'s transaction failed: callers
    that go on wrap this in a savepoint."""
    try:
        row = conn.execute(
            sql.SQL(
                "INSERT INTO tenantry.tenants (id, slug, name, plan, status)"
                " VALUES (coalesce(%s, gen_random_uuid()), %s, %s, %s, %s) RETURNING {}"
            ).format(TENANT_COLUMNS),
            (id, slug, name, plan, status.value),
        ).fetchone()
    except psycopg.errors.UniqueViolation as err:
        raise TenantExists(f"a tenant with slug {slug!r} exists already") from err
    assert row is not None
    return row_to_tenant(row)


def set_status(
    conn: psycopg.Connection[Any],
    tenant_id: uuid.UUID,
    status: Status,
    *,
    new_epoch: bool = False,
    plan: str | None = None,
) -> Tenant:
    """Set a tenant's status (and its plan, given ``plan``); ``new_epoch`` retires every
    binding made before (the policy refuses a binding of an older epoch). Returns the row."""
    row = conn.execute(
        sql.SQL(
            "UPDATE tenantry.tenants SET status = %s, plan = coalesce(%s, plan),"
            " epoch = epoch + CASE WHEN %s THEN 1 ELSE 0 END, updated_at = now() WHERE id = %s RETURNING {}"
        ).format(TENANT_COLUMNS),
        (status.value, plan, new_epoch, tenant_id),
    ).fetchone()
    if row is None:
        raise TenantNotFound(f"no tenant {tenant_id}")
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
