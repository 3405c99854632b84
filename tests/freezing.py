"""Freeze a pooled tenant's writes as a move's cutover does (the move's own trigger, from
:func:`tenantry.db.tenant_copy.freeze_writes`), for tests of what writers see meanwhile."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tenantry import Tenant, Tenantry
from tenantry.db import tenant_copy


@contextmanager
def frozen(tn: Tenantry, tenant: Tenant, table: str = "projects") -> Iterator[None]:
    """Within the block, ``tenant``'s writes to the pooled ``table`` are refused (TenantMoving)."""
    schema, owner = tn.settings.pooled_schema, tn.settings.owner_role
    with tn.admin() as conn:  # autocommit: each table's trigger in a transaction of its own
        spec = next(s for s in tenant_copy.placement_specs(conn, schema) if s.name == table)
        tenant_copy.freeze_writes(conn, schema, [spec], str(tenant.id), owner=owner)
    try:
        yield
    finally:
        with tn.admin() as conn:
            tenant_copy.drop_move_triggers(conn, schema, [table], str(tenant.id), owner=owner, capture=False)
