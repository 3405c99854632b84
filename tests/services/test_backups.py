"""Per-tenant backups: every tier, one snapshot while the tenant writes, the archive checked
against its manifest, restores as clones on any tier, and every bad archive refused with
nothing changed."""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import zstandard
from pydantic import BaseModel, SecretStr

from tenantry import (
    BackupInvalid,
    BackupNotFound,
    Conflict,
    IsolationError,
    Status,
    TenantNotFound,
    TenantRestoring,
    Tenantry,
)
from tenantry.core.secrets import new_key
from tenantry.db import tenant_copy
from tenantry.db.tenant_copy import TableSpec
from tenantry.services.backups import load
from tenantry.testing import TIER_PLANS, ScratchCatalog
from tests.model_app import Base
from tests.services.backup_support import archive_dir, read_table, rewrite, rows, seed


@pytest.fixture(scope="module")
def btn(tn: Tenantry, tenantry_catalog: ScratchCatalog, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenantry]:
    """A Tenantry on the session's catalog whose backups go to a folder of this module."""
    root = tmp_path_factory.mktemp("backups")
    with Tenantry(tenantry_catalog.settings(backup_url=root.as_uri()), metadata=Base.metadata, actor="pytest") as t:
        yield t


@pytest.fixture(scope="module")
def ktn(tn: Tenantry, tenantry_catalog: ScratchCatalog, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenantry]:
    """The same, with archives encrypted."""
    root = tmp_path_factory.mktemp("sealed")
    settings = tenantry_catalog.settings(backup_url=root.as_uri(), backup_key=new_key("b1"))
    with Tenantry(settings, metadata=Base.metadata, actor="pytest") as t:
        yield t


def _slug(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(("source", "target"), [("pooled", "schema"), ("schema", "database"), ("database", "pooled")])
def test_backup_and_restore_as_a_clone_on_another_tier(btn: Tenantry, source: str, target: str) -> None:
    tenant = btn.tenants.create(_slug("src"), plan=TIER_PLANS[source])
    neighbour = btn.tenants.create(_slug("nb"))
    seed(btn, tenant)
    seed(btn, neighbour, projects=2)
    before, theirs = rows(btn, tenant.slug), rows(btn, neighbour.slug)
    backup = btn.backups.create(tenant.slug)
    assert backup.complete and backup.rows == 15 and backup.isolation == source
    manifest = btn.backups.get(backup.id).manifest
    assert manifest is not None
    assert [t["name"] for t in manifest["tables"]] == ["projects", "tasks", "comments"]
    assert all(t["rows"] == 5 and "tenant_id" not in t["columns"] for t in manifest["tables"])
    assert manifest["tenant"]["slug"] == tenant.slug and manifest["tenant"]["isolation"] == source
    assert manifest["app"]["fingerprint"] and manifest["format_version"] == 1
    assert btn.backups.verify(backup.id).tables == {"projects": 5, "tasks": 5, "comments": 5}

    clone = _slug("copy")
    report = btn.backups.restore(backup.id, as_slug=clone, plan=TIER_PLANS[target])
    assert report["rows"] == {"projects": 5, "tasks": 5, "comments": 5}
    restored = btn.tenants.get(clone)
    assert restored.status is Status.ACTIVE and restored.id != tenant.id
    assert btn.tenants.placement(clone).isolation.value == target  # type: ignore[union-attr]
    assert rows(btn, clone) == before
    assert rows(btn, tenant.slug) == before and rows(btn, neighbour.slug) == theirs
    # the clone writes on, with fresh keys
    with btn.tenant(clone), btn.connection() as conn:
        conn.execute("INSERT INTO projects (name) VALUES ('after')")
    assert btn.audit.list(target_type="tenant", target=clone)[0].action == "tenant.restore"


def test_the_tenant_writes_on_during_a_backup_and_the_archive_is_one_snapshot(btn: Tenantry) -> None:
    tenant = btn.tenants.create(_slug("live"))
    seed(btn, tenant, projects=4)
    wrote: list[object] = []

    def write() -> None:
        try:
            with btn.tenant(tenant.slug), btn.connection() as conn:
                pid = conn.execute("INSERT INTO projects (name) VALUES ('during') RETURNING id").fetchone()[0]
                conn.execute("UPDATE tasks SET points = points + 100")
                conn.execute(
                    "INSERT INTO tasks (project_id, title, points, priority, done) VALUES (%s, 'd', 1, 'low', false)",
                    (pid,),
                )
            wrote.append("ok")
        except Exception as err:  # noqa: BLE001 - reported by the assert below
            wrote.append(err)

    def after_table(name: str, done: int, total: int) -> None:
        if done == 1:  # projects is in the archive; tasks is not yet: write to both, and wait
            worker = threading.Thread(target=write)
            worker.start()
            worker.join(10)

    backup = btn.backups.create(tenant.slug, progress=after_table)
    assert wrote == ["ok"]
    manifest = backup.manifest
    assert manifest is not None
    # the snapshot was taken before the writes: neither the new rows nor the update are in it
    assert {t["name"]: t["rows"] for t in manifest["tables"]} == {"projects": 4, "tasks": 4, "comments": 4}
    tasks = read_table(btn, backup.id, 1).decode()
    assert "\t100\t" not in tasks and "\td\t" not in tasks
    btn.backups.verify(backup.id)


def test_an_encrypted_archive_streams_sealed_and_refuses_a_wrong_key(
    ktn: Tenantry, tenantry_catalog: ScratchCatalog
) -> None:
    tenant = ktn.tenants.create(_slug("enc"), plan="business")
    seed(ktn, tenant, projects=3)
    backup = ktn.backups.create(tenant.slug)
    assert backup.encrypted
    files = sorted(p.name for p in (archive_dir(ktn, backup.id) / "tables").iterdir())
    assert files == ["000.copy.zst.enc", "001.copy.zst.enc", "002.copy.zst.enc"]
    assert ktn.backups.verify(backup.id).tables["tasks"] == 3
    clone = _slug("encc")
    ktn.backups.restore(backup.id, as_slug=clone)
    assert rows(ktn, clone) == rows(ktn, tenant.slug)
    for key in (new_key("b1"), None):  # another key of the same id; no key at all
        settings = tenantry_catalog.settings(backup_url=ktn.settings.backup_url, backup_key=key)
        with Tenantry(settings, metadata=Base.metadata) as other:
            with pytest.raises(BackupInvalid, match="wrong key|set TENANTRY_BACKUP_KEY"):
                other.backups.verify(backup.id)
            with pytest.raises(BackupInvalid):
                other.backups.restore(backup.id, as_slug=_slug("nokey"))


def _no_tenant(tn: Tenantry, slug: str) -> None:
    with pytest.raises(TenantNotFound):
        tn.tenants.get(slug)


@pytest.fixture(scope="module")
def archived(btn: Tenantry) -> tuple[str, str]:
    tenant = btn.tenants.create(_slug("arc"))
    seed(btn, tenant, projects=3)
    return tenant.slug, str(btn.backups.create(tenant.slug).id)


def _fresh_copy(btn: Tenantry, archived: tuple[str, str]) -> str:
    """A new backup of the archived tenant (each test of a fault spoils its own)."""
    return str(btn.backups.create(archived[0]).id)


@pytest.mark.parametrize("fault", ["flipped byte", "truncated", "missing file"])
def test_a_corrupted_archive_is_refused_and_nothing_changes(
    btn: Tenantry, archived: tuple[str, str], fault: str
) -> None:
    backup_id = _fresh_copy(btn, archived)
    path = archive_dir(btn, backup_id) / "tables/001.copy.zst"
    data = path.read_bytes()
    if fault == "flipped byte":
        path.write_bytes(data[:20] + bytes([data[20] ^ 0x40]) + data[21:])
    elif fault == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:
        path.unlink()
    with pytest.raises(BackupInvalid):
        btn.backups.verify(backup_id)
    clone = _slug("bad")
    with pytest.raises(BackupInvalid):
        btn.backups.restore(backup_id, as_slug=clone)
    _no_tenant(btn, clone)


@pytest.mark.parametrize("form", ["v2:12345", "1/2"])
def test_a_manifest_whose_checksums_lie_is_refused_at_the_load(
    btn: Tenantry, archived: tuple[str, str], form: str
) -> None:
    """A checksum of the current form, or of the older md5 form, that the rows do not match."""
    backup_id = _fresh_copy(btn, archived)

    def lie(manifest: dict) -> None:
        manifest["tables"][2]["checksum"] = form

    rewrite(btn, backup_id, lie)
    with pytest.raises(BackupInvalid, match="does not match the manifest"):
        btn.backups.verify(backup_id)
    clone = _slug("lie")
    with pytest.raises(BackupInvalid, match="does not match the manifest"):
        btn.backups.restore(backup_id, as_slug=clone)
    # the half-made tenant was undone: it is deleted, and was never served
    assert btn.tenants.list(prefix=clone) == []


@pytest.mark.parametrize(
    ("column", "kind"),
    [(1, "text(5)"), (1, "integer"), (0, "bigint; DROP TABLE projects")],
    ids=["bad", "other", "sql"],
)
def test_a_manifest_whose_column_types_lie_is_refused_by_verify(
    btn: Tenantry, archived: tuple[str, str], column: int, kind: str
) -> None:
    """``verify`` types its columns from the manifest: a changed type does not load or does not
    match; one that is not a plain type name is read as text (never as SQL), and the bigint
    ``id`` hashed as text does not match."""
    backup_id = _fresh_copy(btn, archived)

    def lie(manifest: dict) -> None:
        assert manifest["tables"][0]["columns"][:2] == ["id", "name"]
        manifest["tables"][0]["types"][column] = kind

    rewrite(btn, backup_id, lie)
    with pytest.raises(BackupInvalid):
        btn.backups.verify(backup_id)
    assert rows(btn, archived[0])["projects"]  # (the table is there)


def test_an_archive_with_the_older_md5_checksums_still_verifies_and_restores(
    btn: Tenantry, archived: tuple[str, str]
) -> None:
    """Archives written before the checksum changed carry md5 sums: they are checked that way."""
    slug, _ = archived
    backup_id = _fresh_copy(btn, archived)
    manifest = btn.backups.get(backup_id).manifest
    assert manifest is not None and all(t["checksum"].startswith(tenant_copy.CHECKSUM_V2) for t in manifest["tables"])
    older = {}
    with btn.tenant(slug), btn.connection() as conn:
        for table in manifest["tables"]:
            spec = TableSpec(table["name"], tuple(table["columns"]), ())
            rows_, older[table["name"]] = tenant_copy.checksum(conn, spec, like="0/0")
            assert rows_ == table["rows"] and "/" in older[table["name"]]

    def md5_sums(manifest: dict) -> None:
        for table in manifest["tables"]:
            table["checksum"] = older[table["name"]]

    rewrite(btn, backup_id, md5_sums)
    assert btn.backups.verify(backup_id).tables == {t["name"]: t["rows"] for t in manifest["tables"]}
    clone = _slug("old")
    btn.backups.restore(backup_id, as_slug=clone)
    assert rows(btn, clone) == rows(btn, slug)


def test_an_archive_of_another_app_or_a_newer_head_is_refused(btn: Tenantry, archived: tuple[str, str]) -> None:
    for change, match in (
        (lambda m: m["tables"][0].update(name="invoices"), "invoices: no such table"),
        (lambda m: m["tables"][1]["columns"].__setitem__(1, "amount"), "no column amount"),
        (lambda m: m["app"].update(migration_head="f00dfeed"), "migration"),
        (lambda m: m["tables"][0].update(file="../../../../etc/hostname"), "outside it"),
    ):
        backup_id = _fresh_copy(btn, archived)
        rewrite(btn, backup_id, change)
        clone = _slug("other")
        with pytest.raises(BackupInvalid, match=match):
            btn.backups.restore(backup_id, as_slug=clone)
        _no_tenant(btn, clone)


def test_a_tampered_archive_never_brings_rows_into_another_tenant(
    btn: Tenantry, archived: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = btn.tenants.create(_slug("victim"))
    seed(btn, victim, projects=1)
    theirs = rows(btn, victim.slug)
    backup_id = _fresh_copy(btn, archived)
    # every project row now carries the victim's tenant_id, in a tenant_id column of its own
    projects = read_table(btn, backup_id, 0)
    forged = b"".join(f"{victim.id}\t".encode() + line + b"\n" for line in projects.splitlines())

    def forge(manifest: dict) -> None:
        manifest["tables"][0]["columns"].insert(0, "tenant_id")
        manifest["tables"][0]["types"].insert(0, "uuid")

    rewrite(btn, backup_id, forge, {0: forged})
    clone = _slug("forged")
    with pytest.raises(BackupInvalid, match="carries a tenant_id column"):
        btn.backups.restore(backup_id, as_slug=clone)
    _no_tenant(btn, clone)
    assert rows(btn, victim.slug) == theirs
    # negative control: loaded as the archive says, the forged rows do aim at the victim, and
    # row-level security refuses them (the defence in depth under the loader's own refusal)
    monkeypatch.setattr(load, "TRUST_ARCHIVE_TENANT", True)
    control = _slug("forged")
    with pytest.raises(IsolationError):
        btn.backups.restore(backup_id, as_slug=control)
    assert rows(btn, victim.slug) == theirs
    assert btn.backups.abort_restore(control) is True


def test_list_show_delete(btn: Tenantry, archived: tuple[str, str]) -> None:
    slug, backup_id = archived
    listed = btn.backups.list(slug)
    assert str(listed[-1].id) == backup_id and all(b.tenant == slug for b in listed)
    extra = _fresh_copy(btn, archived)
    where = archive_dir(btn, extra)
    assert btn.backups.delete(extra) is True
    assert not Path(where).exists()
    assert btn.backups.delete(extra) is False
    assert extra not in [str(b.id) for b in btn.backups.list(slug)]


@pytest.mark.parametrize("plan", ["free", "business", "enterprise"])
def test_a_restore_in_place_refuses_writes_only_for_the_swap(btn: Tenantry, plan: str) -> None:
    tenant = btn.tenants.create(_slug("inpl"), plan=plan)
    neighbour = btn.tenants.create(_slug("nbr"))
    seed(btn, tenant, projects=4)
    seed(btn, neighbour, projects=2)
    theirs = rows(btn, neighbour.slug)
    backed_up = rows(btn, tenant.slug)
    backup = btn.backups.create(tenant.slug)
    with btn.tenant(tenant.slug), btn.connection() as conn:  # the mistake the restore undoes
        conn.execute("DELETE FROM projects WHERE id IN (SELECT min(id) FROM projects)")
        conn.execute("INSERT INTO projects (name) VALUES ('after the backup')")
    mistaken = rows(btn, tenant.slug)
    seen: dict[str, object] = {}

    def during(step: str, done: int, total: int) -> None:
        if step == "swap" and done == 0:  # frozen, not swapped yet: from another thread

            def probe() -> None:
                seen["read"] = rows(btn, tenant.slug)
                try:
                    with btn.tenant(tenant.slug), btn.connection() as conn:
                        conn.execute("INSERT INTO projects (name) VALUES ('refused')")
                    seen["write"] = "accepted"
                except Exception as err:  # noqa: BLE001 - the assert names it
                    seen["write"] = err
                with btn.tenant(neighbour.slug), btn.connection() as conn:  # others write on
                    conn.execute("INSERT INTO projects (name) VALUES ('neighbour')")

            worker = threading.Thread(target=probe)
            worker.start()
            worker.join(10)

    report = btn.backups.restore(backup.id, progress=during)
    assert isinstance(seen["write"], TenantRestoring), seen
    assert seen["read"] == mistaken  # the old rows, whole, until the swap commits
    assert rows(btn, tenant.slug) == backed_up  # then the backup's, whole
    assert 0 < report["write_block_seconds"] < 1
    with btn.tenant(tenant.slug), btn.connection() as conn:  # writes resume, with fresh keys
        conn.execute("INSERT INTO projects (name) VALUES ('resumed')")
    assert len(rows(btn, neighbour.slug)["projects"]) == len(theirs["projects"]) + 1
    with btn.admin() as conn:
        name = f"tenantry_%_{tenant.id.hex}"
        assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE %s", (name,)).fetchone() == (0,)
    entry = btn.audit.list(target_type="tenant", target=tenant.slug)[0]
    assert entry.action == "tenant.restore" and entry.after["in_place"] is True


def test_a_restore_in_place_that_fails_after_the_freeze_lifts_it_and_can_be_aborted(
    btn: Tenantry, archived: tuple[str, str]
) -> None:
    slug, _ = archived
    backup_id = _fresh_copy(btn, archived)
    before = rows(btn, slug)

    def fail(step: str, done: int, total: int) -> None:
        if step == "swap" and done == 0:
            raise RuntimeError("killed in the write block")

    with pytest.raises(RuntimeError):
        btn.backups.restore(backup_id, progress=fail)
    with btn.tenant(slug), btn.connection() as conn:  # not frozen: writes go on
        conn.execute("UPDATE projects SET name = name")
    assert rows(btn, slug) == before
    assert btn.backups.abort_restore(slug) is True
    assert btn.backups.abort_restore(slug) is False


class _Config(BaseModel):
    welcome: str = "hello"
    api_key: SecretStr | None = None


def test_the_catalog_state_travels_with_the_archive(tn: Tenantry, tenantry_catalog: ScratchCatalog, tmp_path) -> None:
    from tests.branding.images import png

    settings = tenantry_catalog.settings(backup_url=tmp_path.as_uri())
    with Tenantry(settings, metadata=Base.metadata, actor="pytest", config=_Config) as ctn:
        tenant = ctn.tenants.create(_slug("state"))
        ctn.config.set_many({"welcome": "hej", "api_key": "s3cret"}, tenant=tenant.slug)
        ctn.branding.set(tenant.slug, {"colors": {"primary": "#123456"}, "product_name": "Roadrunner"}, logo=png())
        backup = ctn.backups.create(tenant.slug)
        state = backup.manifest
        assert state is not None and state["catalog"]["file"] == "catalog.json.zst"
        raw = (archive_dir(ctn, backup.id) / "catalog.json.zst").read_bytes()
        assert b"s3cret" not in zstandard.ZstdDecompressor().stream_reader(raw).read()  # sealed in the archive
        clone = _slug("stc")
        ctn.backups.restore(backup.id, as_slug=clone)
        assert ctn.config.get(tenant=clone).effective["welcome"] == "hej"
        with ctn.tenant(clone):  # sealed again for the clone: it opens there
            assert ctn.config.current(_Config).api_key.get_secret_value() == "s3cret"  # type: ignore[union-attr]
        brand = ctn.branding.get(clone)
        assert brand.product_name == "Roadrunner" and brand.theme.colors.primary == "#123456"
        assert ctn.branding.image(brand, "logo") == ctn.branding.image(ctn.branding.get(tenant.slug), "logo")
        # in place: the tenant's config and brand come back as they were backed up
        ctn.config.set("welcome", "changed", tenant=tenant.slug)
        ctn.branding.reset(tenant.slug)
        ctn.backups.restore(backup.id)
        assert ctn.config.get(tenant=tenant.slug).effective["welcome"] == "hej"
        assert ctn.branding.get(tenant.slug).product_name == "Roadrunner"


def test_a_restore_over_a_tenant_being_moved_is_refused(btn: Tenantry, archived: tuple[str, str]) -> None:
    slug, backup_id = archived
    tenant = btn.tenants.get(slug)
    with btn.admin() as conn:  # as a move leaves it while it runs
        conn.execute("UPDATE tenantry.tenants SET status = 'moving' WHERE id = %s", (tenant.id,))
    try:
        with pytest.raises(Conflict, match="being moved"):
            btn.backups.restore(backup_id)
        with pytest.raises(Conflict, match="being moved"):
            btn.backups.create(slug)
    finally:
        with btn.admin() as conn:
            conn.execute("UPDATE tenantry.tenants SET status = 'active' WHERE id = %s", (tenant.id,))


def _forget(tn: Tenantry, backup_id: str) -> None:
    """The catalog loses a backup's record (the archive stays in storage)."""
    with psycopg.connect(tn.admin_url, autocommit=True) as conn:
        conn.execute("DELETE FROM tenantry.backups WHERE id = %s", (backup_id,))


def test_an_archive_whose_record_and_tenant_the_catalog_lost_is_imported_and_restores(
    btn: Tenantry, archived: tuple[str, str]
) -> None:
    """After the catalog lost a backup's record, and even its tenant (an archive of another
    installation), the archive is recorded from storage, verified and restored as a clone;
    importing it again changes nothing, and a second copy of it is refused."""
    slug, _ = archived
    backup_id = _fresh_copy(btn, archived)
    backup = btn.backups.get(backup_id)
    stranger = str(uuid.uuid4())

    def of_another_tenant(manifest: dict) -> None:
        manifest["tenant"]["id"] = stranger

    rewrite(btn, backup_id, of_another_tenant)
    _forget(btn, backup_id)
    with pytest.raises(BackupNotFound):
        btn.backups.get(backup_id)
    imported = btn.backups.import_archive(backup.location)
    assert imported.complete and (imported.id, imported.rows, imported.tenant) == (backup.id, backup.rows, slug)
    assert str(imported.tenant_id) == stranger
    assert backup.manifest is not None and imported.created_at.isoformat() == backup.manifest["created_at"]
    assert btn.backups.import_archive(backup.location) == imported  # again: the same record
    assert sum(btn.backups.verify(backup_id).tables.values()) == backup.rows
    clone = _slug("found")
    btn.backups.restore(backup_id, as_slug=clone)
    assert rows(btn, clone) == rows(btn, slug)
    copy = archive_dir(btn, backup_id).parent.parent / "elsewhere" / str(backup_id)
    shutil.copytree(archive_dir(btn, backup_id), copy)
    with pytest.raises(Conflict, match="recorded already"):
        btn.backups.import_archive(f"elsewhere/{backup_id}")


def test_an_archive_that_is_not_whole_or_not_there_is_not_imported(btn: Tenantry, archived: tuple[str, str]) -> None:
    backup_id = _fresh_copy(btn, archived)
    location = btn.backups.get(backup_id).location
    (archive_dir(btn, backup_id) / "tables/001.copy.zst").unlink()
    _forget(btn, backup_id)
    with pytest.raises(BackupInvalid, match="lacks tables/001.copy.zst"):
        btn.backups.import_archive(location)
    with pytest.raises(BackupNotFound):
        btn.backups.import_archive(f"{archived[0]}/{uuid.uuid4()}")
    with pytest.raises(BackupNotFound):  # nothing was recorded
        btn.backups.get(backup_id)


def test_an_encrypted_archive_is_imported_only_with_its_key_and_unchanged(ktn: Tenantry) -> None:
    tenant = ktn.tenants.create(_slug("enc"))
    seed(ktn, tenant, projects=1)
    backup = ktn.backups.create(tenant.slug)
    manifest_file = archive_dir(ktn, backup.id) / "manifest.json"
    honest = manifest_file.read_text()
    _forget(ktn, str(backup.id))
    manifest_file.write_text(honest.replace(f'"slug": "{tenant.slug}"', '"slug": "someone-else"'))
    with pytest.raises(BackupInvalid, match="MAC"):
        ktn.backups.import_archive(backup.location)
    manifest_file.write_text(honest)  # the negative control: the same archive, unchanged, imports
    assert ktn.backups.import_archive(backup.location).encrypted
