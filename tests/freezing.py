"""Freeze a pooled tenant's writes as a move's cutover does (the move's own triggers and
:func:`tenantry.db.change_capture.freeze_writes`), for tests of what writers see meanwhile."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tenantry import Tenant, Tenantry
from tenantry.db import change_capture, tenant_copy
from tenantry.db.connect import admin_connection


@contextmanager
def frozen(tn: Tenantry, tenant: Tenant, table: str = "projects") -> Iterator[None]:
    """Within the block, ``tenant``'s writes to the pooled ``table`` are refused (TenantMoving)."""
    schema, owner, tid = tn.settings.pooled_schema, tn.settings.owner_role, str(tenant.id)
    # autocommit: each table's triggers in a transaction of their own; the freeze's lock is
    # held by this connection until it closes
    with admin_connection(tn.admin_url, autocommit=True) as conn:
        spec = next(s for s in tenant_copy.placement_specs(conn, schema) if s.name == table)
        change_capture.capture_changes(conn, schema, [spec], tid, owner=owner)
        try:
            change_capture.freeze_writes(conn, tid, owner=owner)
            yield
        finally:
            change_capture.thaw(conn, tid, owner=owner)
            change_capture.drop_move_triggers(conn, schema, [table], tid, owner=owner)
            conn.execute("DELETE FROM tenantry.move_changes WHERE tenant_id = %s", (tenant.id,))
