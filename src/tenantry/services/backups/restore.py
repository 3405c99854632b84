"""Restoring a backup as a new tenant (a clone), as recorded, resumable steps.

Before anything changes, the archive is checked: its manifest (for an encrypted archive, its
MAC and the key's check value), the size and SHA-256 of every file, the migration head it was
taken at (a head this app's migrations do not know, a newer one, is refused; an older one is
restored into the tables at the current head when every archived column still exists there)
and its tables against the tables the new tenant will have (another app's archive, or a
table or column since dropped, is refused). Then a durable job (``tenantry.jobs``, kind
``restore``) runs:

1. ``provision``: the new tenant is created on the chosen plan's tier (the ordinary
   provisioning) and at once suspended: it is never served until the last step.
2. ``load``: in one transaction on its placement, its rows are replaced with the archive's,
   each written with the new tenant's id, and every table's count and checksum is checked
   against the manifest (:func:`tenantry.services.backups.load.load_tables`).
3. ``catalog``: its config layer (secret values sealed again for it), plugin switches and
   brand are written from the archive.
4. ``activate``: the tenant becomes active, and the restore is audited (``tenant.restore``).

A restore interrupted at any step is finished by running it again (same backup, same
``--as``), or undone with :func:`abort_clone` (the half-made tenant is deleted). An archive
found faulty while loading undoes the restore at once: no half-restored tenant is ever served.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import psycopg

from tenantry.core.model import Isolation, Status
from tenantry.core.naming import validate_slug
from tenantry.db import tenant_copy
from tenantry.db.catalog import audit
from tenantry.db.catalog import backups as catalog
from tenantry.db.catalog import jobs as catalog_jobs
from tenantry.db.catalog.events import EventKind, notify, notify_config, notify_plugin, notify_tenant
from tenantry.db.catalog.placements import read_placement
from tenantry.db.catalog.plans import get_plan
from tenantry.db.catalog.tenants import get_tenant
from tenantry.db.connect import admin_connection, database_url
from tenantry.db.tenant_copy import TableSpec
from tenantry.errors import BackupInvalid, Conflict, TenantExists, TenantNotFound
from tenantry.services import placement_tables
from tenantry.services.backups import load
from tenantry.services.backups.archive import Manifest, open_stream, storage_for
from tenantry.services.backups.dump import TENANT_COLUMN, context, data_spec
from tenantry.services.backups.load import load_tables
from tenantry.services.backups.state import reseal
from tenantry.services.lifecycle import set_status
from tenantry.services.provisioning import deprovision, provision
from tenantry.services.steps import StepLog

if TYPE_CHECKING:
    from tenantry.services.backups.service import Backup, BackupService, Progress
    from tenantry.services.plane import ControlPlane

__all__ = ["STEPS", "abort_clone", "finish_restore", "restore_clone", "write_restored_state"]

STEPS = ("provision", "load", "catalog", "activate")
#: advisory lock class held while a restore into a slug runs: (this, hashtext(slug))
RESTORE_LOCK = 0x74727374


def check_head(plane: ControlPlane, manifest: Manifest) -> str:
    """``"same"``, ``"older"`` or ``"untracked"``: where the archive's migration head stands
    against this app's; :class:`BackupInvalid` for a head it does not know (a newer one)."""
    from tenantry.migrations.scripts import load_scripts
    from tenantry.services import app_migrations

    archived = manifest.app.get("migration_head")
    if not app_migrations.configured(plane):
        if archived:
            raise BackupInvalid(
                f"the archive's tables are at migration {archived}, and this app has no migrations"
                " (TENANTRY_MIGRATIONS): an archive of another app, or this process lacks the app's settings;"
                " nothing was restored"
            )
        return "same"
    head = app_migrations.head_revision(plane)
    if archived is None:
        return "untracked"
    if archived == head:
        return "same"
    scripts = load_scripts(app_migrations.migrations_directory(plane), app_migrations.plugin_locations(plane))
    unknown = scripts.unknown(archived)
    if unknown:
        raise BackupInvalid(
            f"the archive was taken at migration head {archived}, which this app's migrations do not know"
            f" ({', '.join(unknown)}): an archive from a newer version of the app (upgrade the app first), or"
            " of another app; nothing was restored"
        )
    return "older"


def check_files(backup: Backup, manifest: Manifest, keys: Any) -> None:
    """Every file of the archive read once: its size, SHA-256 and (sealed) every chunk."""
    storage = storage_for(backup.storage)
    files = [(e.file, e.bytes, e.sha256, f"table {e.name}'s data") for e in manifest.tables]
    if manifest.catalog:
        c = manifest.catalog
        files.append((str(c["file"]), int(c["bytes"]), str(c["sha256"]), "the archive's catalog state"))
    for name, size, sha, what in files:
        if storage.size(backup.location, name) != size:
            raise BackupInvalid(f"{what} is missing or has another size than the manifest says (truncated?)")
        for _ in open_stream(
            storage,
            backup.location,
            name,
            keys,
            encrypted=manifest.encryption is not None,
            context=context(manifest.backup_id, name),
            what=what,
            expect=(size, sha),
        ):
            pass


def _will_have(plane: ControlPlane, isolation: Isolation) -> list[TableSpec]:
    if isolation is Isolation.POOLED:
        return placement_tables.pooled_held(plane)
    return tenant_copy.specs(plane.app_metadata())


def refuse_tables(
    plane: ControlPlane, manifest: Manifest, isolation: Isolation, held: list[TableSpec] | None = None
) -> None:
    """Refuse an archive whose tables the target (``held``, or what a new placement of the
    tier will have) cannot take, or that carries ``tenant_id``."""
    for entry in manifest.tables:
        if TENANT_COLUMN in entry.columns and not load.TRUST_ARCHIVE_TENANT:
            raise BackupInvalid(
                f"table {entry.name} of the archive carries a {TENANT_COLUMN} column: archives never do (a tampered"
                " archive?); nothing was restored"
            )
    archived = [data_spec(TableSpec(e.name, tuple(e.columns), tuple(e.key), tuple(e.types))) for e in manifest.tables]
    will_have = [data_spec(spec) for spec in (held if held is not None else _will_have(plane, isolation))]
    problems = tenant_copy.differences(archived, will_have, "in this app's tables")
    if problems:
        raise BackupInvalid(
            "the archive holds tables or columns this app's tables lack (another app's archive, or a table or"
            " column dropped since): " + "; ".join(problems) + "; nothing was restored"
        )


def running_job(conn: psycopg.Connection[Any], slug: str, *, in_place: bool | None = None) -> StepLog | None:
    """The running restore into (or over) ``slug``, as a step log (see
    :func:`tenantry.db.catalog.backups.running_restore`)."""
    found = catalog.running_restore(conn, slug, in_place=in_place)
    return None if found is None else StepLog("jobs", found[0], found[1], found[2], crash_prefix="restore:")


def restore_clone(
    service: BackupService,
    plane: ControlPlane,
    backup: Backup,
    *,
    as_slug: str,
    plan: str | None,
    name: str | None,
    progress: Progress | None,
    cell: str | None = None,
) -> dict[str, Any]:
    validate_slug(as_slug)
    started = time.monotonic()
    manifest = service.manifest(backup)
    keys = service.keys()
    with admin_connection(plane.admin_url, timeout=plane.settings.connect_timeout, autocommit=True) as lock:
        got = lock.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (RESTORE_LOCK, as_slug)).fetchone()
        if got is None or not got[0]:
            raise Conflict(f"a restore into {as_slug!r} is running in another process; try again shortly")
        with plane.admin() as conn:
            with conn.transaction():
                job = running_job(conn, as_slug, in_place=False)
            chosen = get_plan(conn, (job.payload["plan"] if job else None) or plan or backup.plan)
            if job is None:
                if catalog.slug_taken(conn, as_slug):
                    raise TenantExists(f"a tenant with slug {as_slug!r} exists already; restore as another slug")
        if job is not None and (job.payload["backup"] != str(backup.id) or (plan and plan != job.payload["plan"])):
            raise Conflict(
                f"a restore of backup {job.payload['backup']} into {as_slug!r} (plan {job.payload['plan']!r}) was"
                f" interrupted; run that one again to finish it, or abort it (`tenantry backups restore --abort --as"
                f" {as_slug}`)"
            )
        if job is None:
            how = check_head(plane, manifest)
            refuse_tables(plane, manifest, chosen.isolation)
            check_files(backup, manifest, keys)
            payload = {
                "backup": str(backup.id),
                "as": as_slug,
                "tenant": as_slug,
                "plan": chosen.name,
                "name": name or manifest.tenant.get("name") or as_slug,
                "source": manifest.tenant.get("slug"),
                "cell": cell,
                "head": how,
            }
            with plane.admin() as conn, conn.transaction():
                job_id = catalog_jobs.insert_job(conn, "restore", None, payload=payload)
                audit.record(
                    conn,
                    actor=plane.actor,
                    action="tenant.restore.start",
                    target_type="tenant",
                    target=as_slug,
                    after=payload,
                )
            job = StepLog("jobs", job_id, [], payload, crash_prefix="restore:")
        run = _Restore(service, plane, backup, manifest, job, progress)
        job.on_step = (lambda step: progress(step, STEPS.index(step), len(STEPS))) if progress else None
        try:
            job.run(plane, run.steps())
        except BackupInvalid:
            abort_clone(plane, as_slug, locked=True)
            raise
        lock.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (RESTORE_LOCK, as_slug))
    return {
        "tenant": as_slug,
        "tenant_id": job.payload["tenant_id"],
        "plan": job.payload["plan"],
        "backup": str(backup.id),
        "from": manifest.tenant.get("slug"),
        "rows": job.payload.get("rows", {}),
        "cell": job.payload.get("cell"),
        "migration_head": job.payload.get("head"),
        "seconds": round(time.monotonic() - started, 3),
    }


class _Restore:
    """The steps of one restore (see the module's docstring)."""

    def __init__(
        self,
        service: BackupService,
        plane: ControlPlane,
        backup: Backup,
        manifest: Manifest,
        job: StepLog,
        progress: Progress | None,
    ) -> None:
        self.service, self.plane, self.backup, self.manifest, self.job = service, plane, backup, manifest, job
        self.progress = progress

    def steps(self) -> list[tuple[str, Any]]:
        return [
            ("provision", self.provision),
            ("load", self.load),
            ("catalog", self.catalog),
            ("activate", self.activate),
        ]

    @property
    def tenant_id(self) -> uuid.UUID:
        return uuid.UUID(self.job.payload["tenant_id"])

    def provision(self) -> dict[str, Any]:
        plane, payload = self.plane, self.job.payload
        try:
            tenant = provision(
                plane, payload["as"], name=payload["name"], plan=payload["plan"], cell=payload.get("cell")
            )
        except TenantExists:
            # a rerun after the tenant was made: it is ours if it was made since the job began
            with plane.admin() as conn:
                tenant = get_tenant(conn, payload["as"])
                ours = catalog.made_since(conn, tenant.id, self.job.id)
            if not ours:
                raise
        set_status(plane, tenant.id, Status.SUSPENDED)  # never served until activated
        with plane.admin() as conn, conn.transaction():
            catalog_jobs.set_job_tenant(conn, self.job.id, tenant.id)
        return {"tenant_id": str(tenant.id)}

    def load(self) -> dict[str, Any]:
        plane, progress = self.plane, self.progress
        with plane.admin() as conn:
            place = read_placement(conn, self.tenant_id)
        assert place is not None
        specs = placement_tables.held(plane, place)
        refuse_tables(plane, self.manifest, place.isolation)
        url = database_url(plane.cell_admin_url(place.cell), place.database)
        with admin_connection(url) as conn, conn.transaction():
            signed = plane.binder().signed(self.tenant_id, place.schema)
            tenant_copy.act_as_tenant(conn, owner=plane.settings.owner_role, signed=signed)
            rows = load_tables(
                conn,
                tenant_id=self.tenant_id,
                place=place,
                target_specs=specs,
                manifest=self.manifest,
                storage=storage_for(self.backup.storage),
                location=self.backup.location,
                keys=self.service.keys(),
                on_table=(lambda t, i, n: progress(f"load {t}", i, n)) if progress is not None else None,
            )
        return {"rows": rows}

    def catalog(self) -> None:
        from tenantry.services.backups.service import read_catalog_state

        plane, manifest = self.plane, self.manifest
        state = read_catalog_state(
            storage_for(self.backup.storage), self.backup.location, manifest, self.service.keys()
        )
        old, new = f"tenant:{manifest.tenant['id']}", f"tenant:{self.tenant_id}"
        state["config"] = reseal(state.get("config"), plane.secret_keyring(), old, new)
        write_restored_state(plane, self.job, self.tenant_id, state, self.backup.id)

    def activate(self) -> None:
        plane, job = self.plane, self.job
        set_status(plane, self.tenant_id, Status.ACTIVE)
        finish_restore(
            plane, job, "activate", self.tenant_id, {"from": job.payload["source"], "plan": job.payload["plan"]}
        )


def write_restored_state(
    plane: ControlPlane, job: StepLog, tenant_id: uuid.UUID, state: dict[str, Any], backup_id: uuid.UUID
) -> None:
    """A restore's ``catalog`` step: the archive's catalog state written as the tenant's new
    versions (config layer, plugin switches, brand), every process told, the step recorded."""
    key = str(tenant_id)
    with plane.admin() as conn, conn.transaction():
        changed = catalog.write_state(
            conn, tenant_id, state, actor=plane.actor, message=f"restored from backup {backup_id}"
        )
        if "config" in changed:
            notify_config(conn, "tenant", key)
        notify_plugin(conn, "tenant", key)
        if "brand" in changed:
            notify(conn, EventKind.BRAND, key)
        job.record(conn, "catalog")


def finish_restore(plane: ControlPlane, job: StepLog, step: str, tenant_id: uuid.UUID, audited: dict[str, Any]) -> None:
    """A restore's last step: recorded, the job done, every process told, audited
    (``tenant.restore``: the backup, the rows and ``audited``)."""
    with plane.admin() as conn, conn.transaction():
        job.record(conn, step)
        catalog_jobs.finish_job(conn, job.id, "done")
        notify_tenant(conn, tenant_id)
        audit.record(
            conn,
            actor=plane.actor,
            action="tenant.restore",
            target_type="tenant",
            target=job.payload["as"],
            after={"backup": job.payload["backup"], **audited, "rows": job.payload.get("rows", {})},
        )


def abort_clone(plane: ControlPlane, as_slug: str, *, locked: bool = False) -> bool:
    """Undo an unfinished restore into ``as_slug``: delete the half-made tenant (a restore in
    place: lift its freeze; the tenant keeps its rows), fail the job."""
    del locked  # (the caller holds the slug's lock, or the job's row lock serialises aborts)
    with plane.admin() as conn:
        with conn.transaction():
            job = running_job(conn, as_slug)
        if job is None:
            return False
        if "activate" in job.done:
            raise Conflict(f"the restore into {as_slug!r} has finished; delete the tenant instead")
        tenant_id = job.payload.get("tenant_id")
    if job.payload.get("in_place"):
        from tenantry.services.backups.inplace import abort_in_place

        abort_in_place(plane, job)
        tenant_id = None  # the tenant stays, as it was
    if tenant_id is not None:
        try:
            deprovision(plane, uuid.UUID(tenant_id))
        except TenantNotFound:
            pass
    with plane.admin() as conn, conn.transaction():
        catalog_jobs.finish_job(conn, job.id, "failed", error="aborted")
        audit.record(
            conn,
            actor=plane.actor,
            action="tenant.restore.abort",
            target_type="tenant",
            target=as_slug,
            after={"steps_done": job.done, "backup": job.payload.get("backup")},
        )
    if tenant_id is not None:
        plane.publish(EventKind.TENANT, tenant_id)
    return True
