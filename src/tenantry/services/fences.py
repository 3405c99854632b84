"""Fences: the databases a tenant left, or that hold a tenant no longer active, refuse the
bindings made before the change.

A binding carries the tenant's epoch, signed (see :mod:`tenantry.db.binding`). Every change of
a tenant's status or placement raises the epoch in the catalog; the changes that take a
binding's facts away also write a *fence* into the database that holds (or held) the tenant's
rows: ``tenantry.fences (tenant_id, epoch, reason)``. The context view every policy reads
refuses a binding whose epoch is below its tenant's fence, from the next statement on, in every
process and whatever the process's caches still say:

========== ============================================== ==================================
reason     written                                        the stale binding gets
========== ============================================== ==================================
moved      into the source database, right after the flip :class:`~tenantry.errors.TenantMoved`
suspended  with the suspension                            :class:`~tenantry.errors.TenantSuspended`
archived   with the archival                              :class:`~tenantry.errors.TenantSuspended`
deleted    before the tenant's rows are deleted           :class:`~tenantry.errors.TenantSuspended`
========== ============================================== ==================================

Writing a fence is idempotent (a fence never goes down), so every step that writes one can be
run again. Resuming a tenant writes none: it raises the epoch, and bindings made while it was
suspended (``allow_inactive``) stay good.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenantry.core.placement import Placement
from tenantry.db.connect import admin_connection, database_url
from tenantry.db.local import FenceReason as Reason
from tenantry.db.local import write_fence

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = ["Reason", "fence_placement"]


def fence_placement(tn: ControlPlane, placement: Placement, epoch: int, reason: Reason) -> None:
    """:func:`fence` in the database that holds ``placement`` (on its cell)."""
    url = database_url(tn.cell_admin_url(placement.cell), placement.database)
    with admin_connection(url, timeout=tn.settings.connect_timeout, autocommit=True) as conn:
        write_fence(conn, tn.settings.owner_role, placement.tenant_id, epoch, reason)
