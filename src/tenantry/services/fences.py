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

import uuid
from typing import TYPE_CHECKING, Any, Literal

import psycopg
from psycopg import sql

from tenantry.core.placement import Placement
from tenantry.db.connect import admin_connection, database_url

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = ["Reason", "fence", "fence_placement"]

Reason = Literal["moved", "suspended", "archived", "deleted"]


def fence(conn: psycopg.Connection[Any], owner: str, tenant_id: uuid.UUID, epoch: int, reason: Reason) -> None:
    """Refuse, in ``conn``'s database, every binding of the tenant made below ``epoch``.

    ``conn`` is an admin connection to that database; the fence is written as ``owner`` in a
    transaction of its own (or a savepoint of the caller's).
    """
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
        conn.execute(
            """
            INSERT INTO tenantry.fences (tenant_id, epoch, reason) VALUES (%s, %s, %s)
            ON CONFLICT (tenant_id) DO UPDATE
               SET epoch = greatest(tenantry.fences.epoch, excluded.epoch),
                   reason = CASE WHEN excluded.epoch >= tenantry.fences.epoch
                                 THEN excluded.reason ELSE tenantry.fences.reason END,
                   fenced_at = now()
            """,
            (tenant_id, epoch, reason),
        )
        # statements of transactions open now look at the fences again (see the context view)
        conn.execute("UPDATE tenantry.context_key SET fenced_at = clock_timestamp()")
        conn.execute("RESET ROLE")  # SET LOCAL outlives a savepoint: the caller's may be open


def fence_placement(tn: ControlPlane, placement: Placement, epoch: int, reason: Reason) -> None:
    """:func:`fence` in the database that holds ``placement`` (on its cell)."""
    url = database_url(tn.cell_admin_url(placement.cell), placement.database)
    with admin_connection(url, timeout=tn.settings.connect_timeout, autocommit=True) as conn:
        fence(conn, tn.settings.owner_role, placement.tenant_id, epoch, reason)
