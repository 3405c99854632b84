"""``tn.backups``: take, list, show, verify, delete and restore per-tenant backups.

A backup (:meth:`BackupService.create`) reads every table of the tenant's placement from one
snapshot (:mod:`.dump`) into an archive (:mod:`.archive`) in the storage of
``TENANTRY_BACKUP_URL``, with the tenant's catalog state (:mod:`.state`), and records it in
``tenantry.backups``. The tenant reads and writes on meanwhile. While it runs, the taking
process holds an advisory lock on the backup: a backup found ``running`` without its lock
was interrupted (the process died), and is recorded as failed the next time anyone looks;
its half-written files are removed. Only a backup whose manifest is in place and whose row
says ``complete`` is listed as complete.
"""

from __future__ import annotations

import builtins
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from tenantry.core.model import Isolation, Status
from tenantry.db.catalog import audit
from tenantry.db.catalog import backups as catalog
from tenantry.db.catalog.placements import read_placement
from tenantry.db.catalog.tenants import get_tenant
from tenantry.db.connect import admin_connection
from tenantry.errors import BackupInvalid, BackupNotFound, Conflict, InvalidInput
from tenantry.services import placement_tables
from tenantry.services.backups.archive import Manifest, Storage, storage_for
from tenantry.services.backups.crypto import BackupKeys
from tenantry.services.backups.dump import dump_tables, fingerprint, write_json
from tenantry.services.backups.load import check_tables
from tenantry.services.faults import crash_point
from tenantry.services.placements import tenant_lock

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = ["Backup", "BackupService", "Progress", "VerifyReport"]

#: ``progress(step or table, done, total)``, for progress displays
Progress = Callable[[str, int, int], None]
#: advisory lock class held (on a connection of its own) while a backup is being taken
BACKUP_LOCK = 0x74626B70
INTERRUPTED = "interrupted: the process taking this backup stopped before it finished; take it again"


@dataclass(frozen=True, slots=True)
class Backup:
    """One backup, as ``tenantry.backups`` records it."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    tenant: str
    plan: str
    isolation: str
    status: str
    storage: str
    location: str
    encrypted: bool
    rows: int | None
    size: int | None
    manifest: dict[str, Any] | None
    error: str | None
    created_by: str
    created_at: dt.datetime
    completed_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Backup:
        return cls(*row)

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    def to_dict(self, *, manifest: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "tenant": self.tenant,
            "tenant_id": str(self.tenant_id),
            "plan": self.plan,
            "isolation": self.isolation,
            "status": self.status,
            "storage": self.storage,
            "location": self.location,
            "encrypted": self.encrypted,
            "rows": self.rows,
            "size": self.size,
            "error": self.error,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "completed_at": None if self.completed_at is None else self.completed_at.isoformat(),
        }
        if manifest:
            data["manifest"] = self.manifest
        return data


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What :meth:`BackupService.verify` checked."""

    id: uuid.UUID
    tables: dict[str, int]
    catalog: bool

    def to_dict(self) -> dict[str, Any]:
        return {"id": str(self.id), "ok": True, "tables": self.tables, "catalog": self.catalog}


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("tenantry")
    except metadata.PackageNotFoundError:
        return "unknown"


def default_url() -> str:
    import platformdirs

    return (Path(platformdirs.user_data_dir("tenantry", appauthor=False)) / "backups").as_uri()


def _backup_id(key: str | uuid.UUID) -> uuid.UUID:
    try:
        return key if isinstance(key, uuid.UUID) else uuid.UUID(str(key))
    except ValueError:
        raise InvalidInput(f"backup id: {key!r} is not a backup id (a UUID)") from None


class BackupService:
    """Per-tenant backups (use ``tn.backups``)::

    backup = tn.backups.create("acme")
    tn.backups.verify(backup.id)
    tn.backups.restore(backup.id, as_slug="acme-copy", plan="business")
    """

    def __init__(self, plane: ControlPlane) -> None:
        self._plane = plane

    # -- settings -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The storage new backups go to (``TENANTRY_BACKUP_URL``, or the default folder)."""
        return self._plane.settings.backup_url or default_url()

    def storage(self, url: str | None = None) -> Storage:
        return storage_for(url or self.url)

    def keys(self) -> BackupKeys | None:
        """The keys of ``TENANTRY_BACKUP_KEY`` (``None``: archives are not encrypted)."""
        secret = self._plane.settings.backup_key
        return None if secret is None else BackupKeys.parse(secret.get_secret_value())

    # -- taking one -----------------------------------------------------------------------
    def create(self, tenant: str | uuid.UUID, *, progress: Progress | None = None) -> Backup:
        """Back up ``tenant`` (slug or id) on whatever tier it lives; returns the complete
        backup. The tenant reads and writes on meanwhile."""
        plane = self._plane
        from tenantry.services import app_migrations  # alembic loads only when needed

        with plane.admin() as conn:
            found = get_tenant(conn, tenant)
        if found.status in (Status.DELETED, Status.PROVISIONING):
            raise InvalidInput(f"tenant {found.slug!r} is {found.status.value}: there is nothing to back up")
        storage, keys = self.storage(), self.keys()
        backup_id = uuid.uuid4()
        location = storage.location(found.slug, str(backup_id))
        busy = f"tenant {found.slug!r} is being moved, restored or backed up by another process; try again shortly"
        with tenant_lock(plane, found.id, busy), self._running(backup_id):
            with plane.admin() as conn:
                found = get_tenant(conn, found.id)
                if found.status is Status.MOVING:
                    raise Conflict(f"tenant {found.slug!r} is being moved; back it up once the move ends")
                place = read_placement(conn, found.id)
                if place is None:
                    raise InvalidInput(f"tenant {found.slug!r} has no active placement to back up")
                with conn.transaction():
                    catalog.insert_backup(
                        conn,
                        backup_id=backup_id,
                        tenant_id=found.id,
                        slug=found.slug,
                        plan=found.plan,
                        isolation=place.isolation.value,
                        storage=storage.url(),
                        location=location,
                        encrypted=keys is not None,
                        actor=plane.actor,
                    )
            try:
                specs = placement_tables.held(plane, place)
                head = app_migrations.head_revision(plane) if app_migrations.configured(plane) else None
                recorded = app_migrations.recorded_revision(plane, place) if head is not None else None
                with plane.admin() as conn:
                    row = conn.execute("SHOW server_version_num").fetchone()
                manifest = Manifest(
                    backup_id=str(backup_id),
                    created_at=dt.datetime.now(dt.UTC).isoformat(),
                    tenantry_version=_version(),
                    tenant={
                        "id": str(found.id),
                        "slug": found.slug,
                        "name": found.name,
                        "plan": found.plan,
                        "isolation": place.isolation.value,
                        "status": found.status.value,
                    },
                    app={"migration_head": recorded, "fingerprint": fingerprint(specs)},
                    server_version=int(row[0]) if row else 0,
                )
                if keys is not None:
                    manifest.encryption = {
                        "cipher": "AES-256-GCM, chunked (STREAM)",
                        "key_id": keys.current,
                        "key_check": keys.check_value(keys.current, str(backup_id)),
                    }
                storage.begin(location)
                dump_tables(plane, found.id, place, specs, storage, location, keys, manifest, progress)
                crash_point("backup:tables")
                with plane.admin() as conn, conn.transaction():
                    state = catalog.read_state(conn, found.id)
                manifest.catalog = write_json(storage, location, "catalog.json.zst", state, keys, str(backup_id))
                if keys is not None:
                    manifest.mac = keys.mac(keys.current, manifest.signed_bytes())
                storage.write_manifest(location, manifest)
                storage.commit(location)
                crash_point("backup:archive")
                with plane.admin() as conn, conn.transaction():
                    done = catalog.complete_backup(
                        conn, backup_id, rows=manifest.rows, size=manifest.size, manifest=manifest.to_dict()
                    )
                    assert done is not None
                    audit.record(
                        conn,
                        actor=plane.actor,
                        action="tenant.backup",
                        target_type="tenant",
                        target=found.slug,
                        after={"backup": str(backup_id), "rows": manifest.rows, "size": manifest.size},
                    )
            except BaseException as err:
                storage.delete(location)  # no archive of a failed backup is left to be mistaken for one
                with plane.admin() as conn, conn.transaction():
                    catalog.fail_backup(conn, backup_id, f"{type(err).__name__}: {err}")
                raise
        return Backup.from_row(done)

    @contextmanager
    def _running(self, backup_id: uuid.UUID) -> Iterator[psycopg.Connection[Any]]:
        """Hold the backup's advisory lock while it is taken (see the module's docstring)."""
        plane = self._plane
        with admin_connection(plane.admin_url, timeout=plane.settings.connect_timeout, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (BACKUP_LOCK, str(backup_id)))
            yield conn

    def _reconcile(self, conn: psycopg.Connection[Any], row: tuple[Any, ...]) -> Backup:
        """A ``running`` backup whose process is gone: recorded as failed, its files removed."""
        backup = Backup.from_row(row)
        if backup.status != "running":
            return backup
        took = conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (BACKUP_LOCK, str(backup.id))).fetchone()
        if took is None or not took[0]:
            return backup  # still being taken
        try:
            with conn.transaction():
                catalog.fail_backup(conn, backup.id, INTERRUPTED)
            try:
                storage_for(backup.storage).delete(backup.location)
            except Exception:  # noqa: BLE001 - the record says failed; the files go with `delete`
                pass
            fresh = catalog.get_backup(conn, backup.id)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (BACKUP_LOCK, str(backup.id)))
        return Backup.from_row(fresh) if fresh is not None else backup

    # -- reading --------------------------------------------------------------------------
    def list(self, tenant: str | uuid.UUID | None = None, *, limit: int = 100) -> builtins.list[Backup]:
        """The backups (of ``tenant``), newest first."""
        with self._plane.admin() as conn:
            tenant_id = None if tenant is None else get_tenant(conn, tenant).id
            return [self._reconcile(conn, row) for row in catalog.list_backups(conn, tenant_id, limit=limit)]

    def get(self, backup_id: str | uuid.UUID) -> Backup:
        """One backup, with its manifest; :class:`BackupNotFound` if there is none."""
        key = _backup_id(backup_id)
        with self._plane.admin() as conn:
            row = catalog.get_backup(conn, key)
            if row is None:
                raise BackupNotFound(f"no backup has id {key}")
            return self._reconcile(conn, row)

    def manifest(self, backup: Backup) -> Manifest:
        """The archive's manifest as stored (checked against the catalog's copy and, for an
        encrypted archive, its MAC and the key's check value)."""
        if not backup.complete:
            raise BackupInvalid(f"backup {backup.id} is {backup.status}, not complete: it cannot be used")
        storage = storage_for(backup.storage)
        manifest = Manifest.from_dict(storage.read_manifest(backup.location))
        if manifest.backup_id != str(backup.id):
            raise BackupInvalid(
                f"the archive at {backup.location} belongs to backup {manifest.backup_id}, not {backup.id}"
            )
        self._authentic(manifest)
        if (
            manifest.encryption is None
            and backup.manifest is not None
            and Manifest.from_dict(backup.manifest).signed_bytes() != manifest.signed_bytes()
        ):
            raise BackupInvalid("the archive's manifest differs from the catalog's copy (changed or corrupted)")
        return manifest

    def _authentic(self, manifest: Manifest) -> None:
        """An encrypted archive's manifest: made with a key of ``TENANTRY_BACKUP_KEY`` (its
        check value) and unchanged since (its MAC)."""
        if manifest.encryption is not None:
            keys = self.keys()
            if keys is None:
                raise BackupInvalid("the archive is encrypted: set TENANTRY_BACKUP_KEY to the key that made it")
            kid = str(manifest.encryption.get("key_id"))
            if keys.check_value(kid, manifest.backup_id) != manifest.encryption.get("key_check"):
                raise BackupInvalid(
                    f"TENANTRY_BACKUP_KEY's key {kid!r} is not the key that encrypted the archive (wrong key)"
                )
            if manifest.mac != keys.mac(kid, manifest.signed_bytes()):
                raise BackupInvalid("the archive's manifest was changed since it was written (its MAC does not match)")

    def import_archive(self, location: str, *, storage: str | None = None) -> Backup:
        """Record a complete archive found in storage (``location`` inside ``storage``, by
        default ``TENANTRY_BACKUP_URL``) whose record this catalog lacks: after the catalog
        was lost or rebuilt, or for an archive copied from another installation. It can then
        be listed, verified and restored like any other (as a clone when its tenant is not
        here). Checked first: the manifest (an encrypted one against the key: its check
        value and MAC) and every file's size; ``verify`` reads the rest. Importing the same
        archive again returns its record; another archive with a recorded id is a
        :class:`Conflict`."""
        url = storage or self.url
        store = storage_for(url)
        try:
            manifest = Manifest.from_dict(store.read_manifest(location))
            key = uuid.UUID(manifest.backup_id)
            tenant_id = uuid.UUID(str(manifest.tenant["id"]))
            isolation = Isolation(str(manifest.tenant["isolation"])).value
            slug, plan = str(manifest.tenant["slug"]), str(manifest.tenant["plan"])
            dt.datetime.fromisoformat(manifest.created_at)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise BackupInvalid(f"the manifest at {location} is not a tenantry backup's ({err!r} is wrong)") from None
        self._authentic(manifest)
        files = [(entry.file, entry.bytes) for entry in manifest.tables]
        if manifest.catalog:
            files.append((str(manifest.catalog.get("file")), int(manifest.catalog.get("bytes", -1))))
        for name, size in files:
            if store.size(location, name) != size:
                raise BackupInvalid(
                    f"the archive at {location} lacks {name}, or it has another size than its manifest says"
                )
        plane = self._plane
        with plane.admin() as conn, conn.transaction():
            row = catalog.insert_imported(
                conn,
                backup_id=key,
                tenant_id=tenant_id,
                slug=slug,
                plan=plan,
                isolation=isolation,
                storage=store.url(),
                location=location,
                encrypted=manifest.encryption is not None,
                rows=manifest.rows,
                size=manifest.size,
                manifest=manifest.to_dict(),
                created_at=manifest.created_at,
                actor=plane.actor,
            )
            if row is None:
                known = catalog.get_backup(conn, key)
                assert known is not None
                existing = Backup.from_row(known)
                if (existing.storage, existing.location) != (store.url(), location):
                    raise Conflict(
                        f"backup {key} is recorded already, at {existing.storage} {existing.location}: this is"
                        " another copy of it; import one copy only"
                    )
                return existing
            audit.record(
                conn,
                actor=plane.actor,
                action="tenant.backup.import",
                target_type="tenant",
                target=slug,
                after={"backup": str(key), "storage": store.url(), "location": location, "rows": manifest.rows},
            )
        return Backup.from_row(row)

    def verify(self, backup_id: str | uuid.UUID, *, progress: Progress | None = None) -> VerifyReport:
        """Read the whole archive back and check it against its manifest: every file's size and
        SHA-256, every table's row count and checksum, the catalog state. Raises
        :class:`BackupInvalid` naming the first fault."""
        backup = self.get(backup_id)
        manifest = self.manifest(backup)
        storage, keys = storage_for(backup.storage), self.keys()
        with self._plane.admin() as conn, conn.transaction():
            tables = check_tables(conn, manifest, storage, backup.location, keys, progress)
        read_catalog_state(storage, backup.location, manifest, keys)
        return VerifyReport(backup.id, tables, True)

    # -- deleting -------------------------------------------------------------------------
    def delete(self, backup_id: str | uuid.UUID) -> bool:
        """Delete a backup: its archive, then its record. ``False`` when there was none."""
        key = _backup_id(backup_id)
        with self._plane.admin() as conn:
            row = catalog.get_backup(conn, key)
            if row is None:
                return False
            backup = self._reconcile(conn, row)
            if backup.status == "running":
                raise Conflict(f"backup {key} is being taken; delete it once it ends")
            storage_for(backup.storage).delete(backup.location)
            with conn.transaction():
                catalog.delete_backup(conn, key)
                audit.record(
                    conn,
                    actor=self._plane.actor,
                    action="tenant.backup.delete",
                    target_type="tenant",
                    target=backup.tenant,
                    before=backup.to_dict(),
                )
        return True

    # -- exports and purges ---------------------------------------------------------------
    def export(self, tenant: str | uuid.UUID, directory: str | Path, *, format: str = "jsonl") -> dict[str, Any]:  # noqa: A002
        """Write the tenant's rows to ``directory``, one file per table (``jsonl`` or
        ``csv``), for data portability; audited. See :mod:`tenantry.services.backups.export`."""
        from tenantry.services.backups.export import export_tenant

        return export_tenant(self._plane, tenant, Path(directory), format)

    def purge(self, tenant: str | uuid.UUID) -> builtins.list[str]:
        """Delete every backup of ``tenant`` (with their archives); returns their ids."""
        removed: builtins.list[str] = []
        while True:
            batch = [b for b in self.list(tenant, limit=1000) if b.status != "running"]
            if not batch:
                return removed
            for backup in batch:
                if self.delete(backup.id):
                    removed.append(str(backup.id))

    # -- schedules and retention ----------------------------------------------------------
    def schedule(self, plan: str, *, every: dt.timedelta | None, keep: int | None = None) -> None:
        """Back up ``plan``'s active tenants every ``every`` (by :meth:`run_due`), keeping the
        newest ``keep``; ``every=None`` removes the schedule::

            tn.backups.schedule("business", every=timedelta(days=1), keep=7)
        """
        from tenantry.services.backups.schedule import schedule

        schedule(self._plane, plan, every=every, keep=keep)

    def schedules(self) -> builtins.list[dict[str, Any]]:
        """Every plan's schedule: ``{"plan", "every_seconds", "keep"}``."""
        from tenantry.services.backups.schedule import schedules

        return schedules(self._plane)

    def run_due(self) -> dict[str, Any]:
        """Take the backups that are due and prune (see
        :mod:`tenantry.services.backups.schedule`): safe from cron on several machines."""
        from tenantry.services.backups.schedule import run_due

        return run_due(self, self._plane)

    def prune(self, tenant: str | uuid.UUID | None = None) -> builtins.list[str]:
        """Delete the backups outside their plan's ``keep``; returns their ids."""
        from tenantry.services.backups.schedule import prune

        return prune(self, self._plane, tenant)

    # -- restoring ------------------------------------------------------------------------
    def restore(
        self,
        backup_id: str | uuid.UUID,
        *,
        as_slug: str | None = None,
        plan: str | None = None,
        name: str | None = None,
        cell: str | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Restore a backup as a new tenant ``as_slug`` (on ``plan``, by default the backed-up
        tenant's plan; a database-tier one on ``cell`` if given: another server, of another
        PostgreSQL version too), or finish an interrupted restore into it (see
        :mod:`tenantry.services.backups.restore`); without ``as_slug``, over the tenant it was
        taken of, its writes refused only for the swap (see
        :mod:`tenantry.services.backups.inplace`). Returns a report."""
        from tenantry.services.backups.restore import restore_clone

        backup = self.get(backup_id)
        if as_slug is None:
            from tenantry.services.backups.inplace import restore_in_place

            if plan is not None or cell is not None:
                raise InvalidInput(
                    "plan, cell: a restore in place keeps the tenant's plan and cell (move it after, or restore --as)"
                )
            return restore_in_place(self, self._plane, backup, progress=progress)
        return restore_clone(
            self, self._plane, backup, as_slug=as_slug, plan=plan, name=name, cell=cell, progress=progress
        )

    def abort_restore(self, as_slug: str) -> bool:
        """Undo an interrupted restore into ``as_slug``: the half-made tenant is deleted.
        ``False`` when there is no restore to abort."""
        from tenantry.services.backups.restore import abort_clone

        return abort_clone(self._plane, as_slug)


def read_catalog_state(storage: Storage, location: str, manifest: Manifest, keys: BackupKeys | None) -> dict[str, Any]:
    """The archive's catalog state (``catalog.json``), checked against the manifest."""
    import json

    from tenantry.services.backups.archive import open_stream
    from tenantry.services.backups.dump import context

    entry = manifest.catalog
    if not entry:
        return {}
    data = b"".join(
        open_stream(
            storage,
            location,
            str(entry["file"]),
            keys,
            encrypted=manifest.encryption is not None,
            context=context(manifest.backup_id, str(entry["file"])),
            what="the archive's catalog state",
            expect=(int(entry["bytes"]), str(entry["sha256"])),
        )
    )
    try:
        state = json.loads(data)
    except ValueError:
        raise BackupInvalid("the archive's catalog state is not JSON (corrupted)") from None
    if not isinstance(state, dict):
        raise BackupInvalid("the archive's catalog state is not a JSON object")
    return state
