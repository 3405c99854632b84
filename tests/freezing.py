"""Freeze a pooled tenant's writes as a move's cutover does (the move's own trigger, from
:func:`tenantry.db.tenant_copy.freeze_writes`), for tests of what writers see meanwhile."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from psycopg import sql

from tenantry import Tenant, Tenantry
from tenantry.db import tenant_copy


@contextmanager
def frozen(tn: Tenantry, tenant: Tenant, table: str = "projects") -> Iterator[None]:
    """Within the block, ``tenant``'s writes to the pooled ``table`` are refused (TenantMoving)."""
    schema, owner = tn.settings.pooled_schema, tn.settings.owner_role
    as_owner = sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner))
    with tn.admin() as conn, conn.transaction():
        conn.execute(as_owner)
        tenant_copy.freeze_writes(conn, schema, table, str(tenant.id), owner=owner)
    try:
        yield
    finally:
        with tn.admin() as conn, conn.transaction():
            conn.execute(as_owner)
            tenant_copy.drop_move_triggers(conn, schema, table, str(tenant.id), capture=False)
