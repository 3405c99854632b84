"""Backup schedules and retention per plan: ``run-due`` and ``prune``.

A plan's schedule (``tenantry.backup_schedules``) says every how long each of its active
tenants is backed up and how many complete backups are kept. :func:`run_due` takes the
backups that are due and prunes: safe to run from cron every minute on several machines at
once. Each tenant's check and backup happen under an advisory lock of its own, taken without
waiting (a machine that finds it held leaves that tenant to the one holding it), and the check
is made again under the lock, so two runs never take the same backup.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from tenantry.db.catalog import audit
from tenantry.db.catalog import backups as catalog
from tenantry.db.catalog.plans import get_plan
from tenantry.db.catalog.tenants import get_tenant
from tenantry.db.connect import admin_connection
from tenantry.errors import Conflict, InvalidInput, TenantryError

if TYPE_CHECKING:
    from tenantry.services.backups.service import BackupService
    from tenantry.services.plane import ControlPlane

__all__ = ["prune", "run_due", "schedule", "schedules"]

#: advisory lock class of a tenant's scheduled backup: (this, hashtext(tenant id))
SCHEDULE_LOCK = 0x74627364


def schedule(plane: ControlPlane, plan: str, *, every: dt.timedelta | None, keep: int | None = None) -> None:
    """Back up ``plan``'s tenants every ``every``, keeping the newest ``keep``; ``every=None``
    removes the schedule."""
    if every is not None:
        if every <= dt.timedelta(0):
            raise InvalidInput("every: the interval must be positive")
        if keep is None or keep < 1:
            raise InvalidInput("keep: keep at least 1 backup")
    with plane.admin() as conn, conn.transaction():
        get_plan(conn, plan)
        catalog.set_schedule(conn, plan, every, keep, actor=plane.actor)
        audit.record(
            conn,
            actor=plane.actor,
            action="plan.backup_schedule",
            target_type="plan",
            target=plan,
            after=None if every is None else {"every_seconds": every.total_seconds(), "keep": keep},
        )


def schedules(plane: ControlPlane) -> list[dict[str, Any]]:
    with plane.admin() as conn:
        return [{"plan": p, "every_seconds": e.total_seconds(), "keep": k} for p, e, k in catalog.read_schedules(conn)]


def run_due(service: BackupService, plane: ControlPlane) -> dict[str, Any]:
    """Take the backups that are due, then prune; returns what was done."""
    with plane.admin() as conn:
        due = catalog.due_tenants(conn)
    taken: list[str] = []
    skipped: list[str] = []
    failed: dict[str, str] = {}
    with admin_connection(plane.admin_url, timeout=plane.settings.connect_timeout, autocommit=True) as locks:
        for tenant_id, slug in due:
            got = locks.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (SCHEDULE_LOCK, str(tenant_id))
            ).fetchone()
            if got is None or not got[0]:
                skipped.append(slug)  # another run has it
                continue
            try:
                with plane.admin() as conn:
                    still = catalog.due_tenants(conn, tenant_id)
                if not still:
                    skipped.append(slug)  # another run took it meanwhile
                    continue
                service.create(tenant_id)
                taken.append(slug)
            except Conflict:
                skipped.append(slug)  # being moved, restored or backed up by hand
            except TenantryError as err:
                failed[slug] = str(err)
            finally:
                locks.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (SCHEDULE_LOCK, str(tenant_id)))
    pruned = prune(service, plane)
    return {"taken": taken, "skipped": skipped, "failed": failed, "pruned": pruned}


def prune(service: BackupService, plane: ControlPlane, tenant: str | uuid.UUID | None = None) -> list[str]:
    """Delete what falls outside the schedules' ``keep`` (of ``tenant`` only, if given): the
    complete backups past the newest ``keep``, and failed ones older than the newest complete
    one. Returns their ids."""
    with plane.admin() as conn:
        tenant_id = None if tenant is None else get_tenant(conn, tenant).id
        ids = catalog.prunable(conn, tenant_id)
    removed = []
    for backup_id in ids:
        if service.delete(backup_id):
            removed.append(str(backup_id))
    return removed
