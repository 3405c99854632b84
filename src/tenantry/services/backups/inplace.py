"""Restoring a backup over the tenant it was taken of (in place), with a short write block.

The tenant keeps serving from its placement throughout; only its writes are refused for a
moment, with the retryable :class:`~tenantry.errors.TenantRestoring`:

1. Checks, before anything changes: the manifest, every file, the migration head, and the
   archive's tables against those the placement holds (as for a clone).
2. ``stage``: on one session of the placement's database, the archive's rows are loaded into
   temporary tables typed like the tenant's, and each one's count and checksum is checked
   against the manifest: the restore is verified before anything is switched. The tenant
   reads and writes on meanwhile.
3. ``swap``: the freeze's triggers go in (one table at a time), the tenant's writes are frozen
   (:func:`tenantry.db.change_capture.freeze_writes`: it waits for the tenant's writes in
   flight), then **one transaction** replaces the tenant's rows with the staged ones and
   advances its sequences; the freeze is then lifted and its triggers dropped. Readers see
   the old rows until that transaction commits and the new ones after: never a mix. The
   write block (from the freeze to the commit) is recorded in the job and the audit log.
4. ``catalog``: the tenant's config layer, plugin switches and brand are written from the
   archive (new versions of their histories; its domains stay as they are).

The job (``tenantry.jobs``, kind ``restore``, ``in_place``) records ``swap`` and ``catalog``;
a restore killed before the swap committed changed no row (its staging tables went with its
session) and a rerun starts it again, lifting a freeze the killed process left; one killed
after is finished by a rerun. Writes made between the backup and the swap are replaced: that
is what restoring means.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from importlib import resources
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from tenantry.core.model import Isolation, Status
from tenantry.db import change_capture, tenant_copy
from tenantry.db.catalog import audit
from tenantry.db.catalog import jobs as catalog_jobs
from tenantry.db.catalog.events import EventKind
from tenantry.db.catalog.placements import read_placement
from tenantry.db.catalog.tenants import get_tenant
from tenantry.db.connect import admin_connection, database_url
from tenantry.db.tenant_copy import TableSpec
from tenantry.errors import BackupInvalid, Conflict, InvalidInput
from tenantry.services import placement_tables
from tenantry.services.backups.archive import Manifest, storage_for
from tenantry.services.backups.load import copy_in, table_stream
from tenantry.services.backups.restore import (
    check_files,
    check_head,
    finish_restore,
    refuse_tables,
    running_job,
    write_restored_state,
)
from tenantry.services.faults import crash_point
from tenantry.services.placements import tenant_lock
from tenantry.services.steps import StepLog

if TYPE_CHECKING:
    from tenantry.core.placement import Placement
    from tenantry.services.backups.service import Backup, BackupService, Progress
    from tenantry.services.plane import ControlPlane

__all__ = ["abort_in_place", "restore_in_place"]

FUNCTION = "refuse_write_while_restoring"


def _unfreeze(conn: psycopg.Connection[Any], tenant_id: str, owner: str) -> None:
    """Lift a freeze (its record, its triggers) this or a killed restore left."""
    change_capture.thaw(conn, tenant_id, owner=owner)
    change_capture.drop_tenant_triggers(conn, tenant_id, owner=owner)
    conn.execute("DELETE FROM tenantry.move_changes WHERE tenant_id = %s", (tenant_id,))


def restore_in_place(
    service: BackupService, plane: ControlPlane, backup: Backup, *, progress: Progress | None
) -> dict[str, Any]:
    started = time.monotonic()
    manifest = service.manifest(backup)
    with plane.admin() as conn:
        tenant = get_tenant(conn, backup.tenant_id)
    if tenant.status is Status.MOVING:
        raise Conflict(f"tenant {tenant.slug!r} is being moved; restore it once the move ends (nothing was changed)")
    if tenant.status not in (Status.ACTIVE, Status.SUSPENDED):
        raise Conflict(
            f"tenant {tenant.slug!r} is {tenant.status.value}; only an active or suspended tenant is restored"
        )
    busy = f"tenant {tenant.slug!r} is being moved, restored or backed up by another process; try again shortly"
    with tenant_lock(plane, tenant.id, busy):
        with plane.admin() as conn:
            tenant = get_tenant(conn, tenant.id)
            if tenant.status is Status.MOVING:
                raise Conflict(f"tenant {tenant.slug!r} is being moved; restore it once the move ends")
            place = read_placement(conn, tenant.id)
            if place is None:
                raise InvalidInput(f"tenant {tenant.slug!r} has no active placement to restore into")
            with conn.transaction():
                job = running_job(conn, tenant.slug, in_place=True)
        if job is not None and job.payload["backup"] != str(backup.id):
            raise Conflict(
                f"a restore of backup {job.payload['backup']} over {tenant.slug!r} was interrupted; run that one again"
                " to finish it"
            )
        specs = placement_tables.held(plane, place)
        if job is None:
            check_head(plane, manifest)
            refuse_tables(plane, manifest, place.isolation, specs)
            check_files(backup, manifest, service.keys())
            payload = {"backup": str(backup.id), "as": tenant.slug, "tenant": tenant.slug, "in_place": True}
            with plane.admin() as conn, conn.transaction():
                job_id = catalog_jobs.insert_job(conn, "restore", None, payload=payload)
                catalog_jobs.set_job_tenant(conn, job_id, tenant.id)
                audit.record(
                    conn,
                    actor=plane.actor,
                    action="tenant.restore.start",
                    target_type="tenant",
                    target=tenant.slug,
                    after=payload,
                )
            job = StepLog("jobs", job_id, [], payload, crash_prefix="restore:")
        run = _InPlace(service, plane, backup, manifest, job, place, specs, str(tenant.id), progress)
        job.run(plane, [("swap", run.swap), ("catalog", run.catalog), ("done", run.done)])
    plane.publish(EventKind.TENANT, str(tenant.id))
    return {
        "tenant": tenant.slug,
        "tenant_id": str(tenant.id),
        "backup": str(backup.id),
        "in_place": True,
        "rows": job.payload.get("rows", {}),
        "write_block_seconds": round(float(job.payload.get("write_block_seconds", 0.0)), 3),
        "seconds": round(time.monotonic() - started, 3),
    }


def _replace(
    conn: psycopg.Connection[Any],
    specs: list[TableSpec],
    staged: list[tuple[sql.Identifier, list[str]]],
    manifest: Manifest,
    tenant_id: str,
) -> None:
    """Make the tenant's rows those staged, touching only the rows that differ: delete those
    whose key the archive lacks (children first), insert those it adds, then update those
    whose values differ (parents first). A backup restored soon after it was taken changes
    few rows, so the write block stays short however big the tenant; foreign keys hold at
    every statement (the archive's rows satisfy them, as the snapshot they came from did)."""
    entries = {e.name: (e, temp, cols) for e, (temp, cols) in zip(manifest.tables, staged)}
    order = [spec for spec in specs if spec.name in entries]

    def same_key(left: str, right: str, key: list[str]) -> sql.Composable:
        return sql.SQL(" AND ").join(
            sql.SQL("{}.{} = {}.{}").format(
                sql.Identifier(left), sql.Identifier(k), sql.Identifier(right), sql.Identifier(k)
            )
            for k in key
        )

    def row(alias: str, cols: list[str]) -> sql.Composable:
        return sql.SQL("ROW({})::text").format(sql.SQL(", ").join(sql.Identifier(alias, c) for c in cols))

    for spec in reversed(specs):
        if spec.name not in entries:  # a table the archive lacks: it is left empty
            conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(spec.name)))
            continue
        entry, temp, _cols = entries[spec.name]
        if not entry.key:
            conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(spec.name)))
            continue
        conn.execute(
            sql.SQL("DELETE FROM {} t WHERE NOT EXISTS (SELECT 1 FROM {} s WHERE {})").format(
                sql.Identifier(spec.name), temp, same_key("s", "t", entry.key)
            )
        )
    for spec in order:
        entry, temp, cols = entries[spec.name]
        names = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
        query = sql.SQL("INSERT INTO {} (tenant_id, {}) OVERRIDING SYSTEM VALUE SELECT %s, {} FROM {} s").format(
            sql.Identifier(spec.name), names, sql.SQL(", ").join(sql.Identifier("s", c) for c in cols), temp
        )
        if entry.key:
            query = sql.SQL("{} WHERE NOT EXISTS (SELECT 1 FROM {} t WHERE {})").format(
                query, sql.Identifier(spec.name), same_key("s", "t", entry.key)
            )
        conn.execute(query, (tenant_id,))
    for spec in order:
        entry, temp, cols = entries[spec.name]
        others = [c for c in cols if c not in entry.key]
        if not entry.key or not others:
            continue
        conn.execute(
            sql.SQL("UPDATE {} t SET {} FROM {} s WHERE {} AND {} IS DISTINCT FROM {}").format(
                sql.Identifier(spec.name),
                sql.SQL(", ").join(sql.SQL("{} = s.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in others),
                temp,
                same_key("t", "s", entry.key),
                row("t", cols),
                row("s", cols),
            )
        )


class _InPlace:
    def __init__(
        self,
        service: BackupService,
        plane: ControlPlane,
        backup: Backup,
        manifest: Manifest,
        job: StepLog,
        place: Placement,
        specs: list[TableSpec],
        tenant_id: str,
        progress: Progress | None,
    ) -> None:
        self.service, self.plane, self.backup, self.manifest, self.job = service, plane, backup, manifest, job
        self.place, self.specs, self.tid, self.progress = place, specs, tenant_id, progress
        self.owner = plane.settings.owner_role

    def _bind(self, conn: psycopg.Connection[Any]) -> None:
        signed = self.plane.binder().signed(self.job_tenant, self.place.schema)
        tenant_copy.act_as_tenant(conn, owner=self.owner, signed=signed)

    @property
    def job_tenant(self) -> Any:
        import uuid

        return uuid.UUID(self.tid)

    def _tell(self, what: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(what, done, total)

    def swap(self) -> dict[str, Any]:
        plane, place, manifest = self.plane, self.place, self.manifest
        url = database_url(plane.cell_admin_url(place.cell), place.database)
        storage, keys = storage_for(self.backup.storage), self.service.keys()
        by_name = {spec.name: spec for spec in self.specs}
        with ExitStack() as stack:
            lock = stack.enter_context(admin_connection(url, autocommit=True))
            stage = stack.enter_context(admin_connection(url, autocommit=True))
            _unfreeze(lock, self.tid, self.owner)  # what a killed restore left
            with lock.transaction():
                lock.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(self.owner)))
                text = resources.files("tenantry.db").joinpath("sql/restore_freeze.sql").read_text(encoding="utf-8")
                lock.execute(text.encode())
            # stage and check every table while the tenant serves on (session temporary tables)
            staged: list[tuple[sql.Identifier, list[str]]] = []
            with stage.transaction():
                self._bind(stage)
                for index, entry in enumerate(manifest.tables):
                    temp = sql.Identifier(f"tenantry_stage_{index}")
                    cols = sql.SQL(", ").join(sql.Identifier(c) for c in entry.columns)
                    stage.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(temp))
                    stage.execute(
                        sql.SQL("CREATE TEMPORARY TABLE {} AS SELECT {} FROM {} WITH NO DATA").format(
                            temp, cols, sql.Identifier(entry.name)
                        )
                    )
                    copy_in(
                        stage,
                        temp,
                        entry.columns,
                        table_stream(storage, self.backup.location, manifest, entry, keys),
                        f"table {entry.name}",
                    )
                    rows, checksum = tenant_copy.checksum(
                        stage, TableSpec(f"tenantry_stage_{index}", tuple(entry.columns), ()), like=entry.checksum
                    )
                    if (rows, checksum) != (entry.rows, entry.checksum):
                        raise BackupInvalid(
                            f"table {entry.name} in the archive does not match the manifest ({rows} rows, the manifest"
                            f" says {entry.rows}, or another checksum): nothing was restored"
                        )
                    stage.execute(sql.SQL("ANALYZE {}").format(temp))  # (the swap's joins plan on it)
                    staged.append((temp, entry.columns))
                    self._tell(f"stage {entry.name}", index + 1, len(manifest.tables))
            try:
                change_capture.install_freeze(
                    lock, place.schema, self.specs, self.tid, owner=self.owner, function=FUNCTION
                )
                frozen = time.monotonic()
                change_capture.freeze_writes(lock, self.tid, owner=self.owner)
                crash_point("restore:frozen")  # (the fault tests: a freeze left by a killed restore)
                self._tell("swap", 0, 1)
                with stage.transaction():
                    self._bind(stage)
                    _replace(stage, self.specs, staged, manifest, self.tid)
                    for entry in manifest.tables:
                        tenant_copy.sync_sequences(
                            stage, place.schema, by_name[entry.name], shared=place.isolation is Isolation.POOLED
                        )
                    counted = tenant_copy.counts(stage, [by_name[e.name] for e in manifest.tables])
                    if counted != [e.rows for e in manifest.tables]:
                        raise BackupInvalid(
                            "the restored tables' counts differ from the manifest's; nothing was restored"
                        )
                block = time.monotonic() - frozen
            finally:
                change_capture.thaw(lock, self.tid, owner=self.owner)
                lock.close()  # the freeze's advisory lock goes with its session
                with admin_connection(url, autocommit=True) as after:
                    change_capture.drop_tenant_triggers(after, self.tid, owner=self.owner)
        self._tell("swap", 1, 1)
        return {"rows": {e.name: e.rows for e in manifest.tables}, "write_block_seconds": block}

    def catalog(self) -> None:
        from tenantry.services.backups.service import read_catalog_state

        plane = self.plane
        state = read_catalog_state(
            storage_for(self.backup.storage), self.backup.location, self.manifest, self.service.keys()
        )
        write_restored_state(plane, self.job, self.job_tenant, state, self.backup.id)

    def done(self) -> None:
        job = self.job
        block = round(float(job.payload.get("write_block_seconds", 0.0)), 3)
        finish_restore(self.plane, job, "done", self.job_tenant, {"in_place": True, "write_block_seconds": block})


def abort_in_place(plane: ControlPlane, job: StepLog) -> None:
    """Undo an interrupted restore in place that has not swapped: lift its freeze."""
    if "swap" in job.done:
        raise Conflict(
            f"the restore over {job.payload['as']!r} has swapped the rows already; run it again to finish it"
        )
    with plane.admin() as conn:
        tenant = get_tenant(conn, job.payload["as"])
        place = read_placement(conn, tenant.id)
    if place is not None:
        url = database_url(plane.cell_admin_url(place.cell), place.database)
        with admin_connection(url, autocommit=True) as conn:
            _unfreeze(conn, str(tenant.id), plane.settings.owner_role)
