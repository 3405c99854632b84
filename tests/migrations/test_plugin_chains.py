"""Plugins whose tables have their own Alembic branch (``AppTables.migrations``): new placements
are built at every head, ``tenantry migrate`` runs a plugin added later (or upgraded) in every
placement of every tier under RLS, with or without migrations of the app, and what cannot work
is refused with a message naming it."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tenantry import ConfigurationError, IsolationError, Settings, Tenant, Tenantry, TenantScoped
from tenantry.cli import main as cli_main
from tenantry.db import rls
from tenantry.migrations.scripts import load_scripts
from tenantry.plugins import AppTables
from tenantry.plugins.tables import deploy_everywhere
from tenantry.services import app_migrations, spare_keys, spares
from tenantry.testing import TIER_PLANS
from tests.migrations.ledger_plugin import L1, L2, LEDGER_VERSIONS, Ledger
from tests.migrations.support import FIXTURE, HEAD, OLD, World, add_revision, head_metadata, make_world
from tests.model_app import Base
from tests.support import Scratch

BOTH = f"{HEAD},{L2}"  # the composite head: the app's and the plugin's, sorted


def _app(scratch: Scratch, *plugins: AppTables, migrations: str | None = FIXTURE) -> Tenantry:
    return Tenantry(
        scratch.settings(migrations=migrations), metadata=Base.metadata, plugins=list(plugins), actor="pytest"
    )


def _versions(world: World, tenant: Tenant | None) -> set[str]:
    rows = world.query(tenant, f'SELECT version_num FROM "{world.schema(tenant)}".alembic_version')  # noqa: S608
    return {r[0] for r in rows}


def _world(tn: Tenantry, scratch: Scratch) -> World:
    """One tenant per tier on ``tn``'s catalog (created as the app was then)."""
    tenants = [tn.tenants.create(f"c{tier[0]}-{uuid.uuid4().hex[:8]}", plan=plan) for tier, plan in TIER_PLANS.items()]
    for tenant in tenants:
        with tn.tenant(tenant.id), tn.connection() as conn:
            conn.execute("INSERT INTO projects (name) VALUES (%s)", (tenant.slug,))
    return World(tn, scratch, tenants)


def _secured_everywhere(world: World) -> None:
    for target in world.targets():
        with psycopg.connect(world.url(target)) as conn:
            assert rls.unprotected_tables(conn) == []


def _isolated(tn: Tenantry, tenants: list[Tenant], *, with_note: bool = True) -> None:
    """Each tenant writes ledger rows, sees only its own, and cannot reach another's."""
    note = ", note" if with_note else ""
    for tenant in tenants:
        with tn.tenant(tenant.id), tn.connection() as conn:
            conn.execute(
                f"INSERT INTO ledger_items (body{note}) VALUES (%s{', %s' if with_note else ''})",  # noqa: S608
                (tenant.slug, "n") if with_note else (tenant.slug,),
            )
    for tenant in tenants:
        others = [t.id for t in tenants if t.id != tenant.id]
        with tn.tenant(tenant.id), tn.connection() as conn:
            assert conn.execute("SELECT tenant_id, body FROM ledger_items").fetchall() == [(tenant.id, tenant.slug)]
            assert conn.execute(
                "SELECT count(*) FROM ledger_items WHERE tenant_id = ANY (%s)", (others,)
            ).fetchone() == (0,)
            assert (
                conn.execute("UPDATE ledger_items SET body = 'x' WHERE tenant_id = ANY (%s)", (others,)).rowcount == 0
            )
        if others:
            with (
                pytest.raises(IsolationError, match="row-level security"),
                tn.tenant(tenant.id),
                tn.connection() as conn,
            ):
                conn.execute("INSERT INTO ledger_items (tenant_id, body) VALUES (%s, 'planted')", (others[0],))


def test_new_placements_get_the_plugins_tables_and_every_head(fresh_scratch: Scratch) -> None:
    tn = _app(fresh_scratch, Ledger())
    try:
        tn.schema.init()
        assert app_migrations.head_revision(tn.plane) == BOTH
        assert app_migrations.recorded_revision(tn.plane, app_migrations.POOLED) == BOTH
        assert spares.fill(tn.plane, 1).ready == 1  # built at the composite head, then claimed
        assert spare_keys.wanted(tn.plane).revision == BOTH
        world = _world(tn, fresh_scratch)
        assert spares.list_spares(tn.plane) == []
        for target in world.targets():
            assert _versions(world, target) == {HEAD, L2}
            assert world.has_column(target, "ledger_items", "note")
        assert set(world.catalog_revisions().values()) == {BOTH}
        _secured_everywhere(world)
        _isolated(tn, world.tenants)
        report = app_migrations.migrate(tn.plane)
        assert report.head == BOTH and report.from_catalog and report.up_to_date == report.total == 3
        # a deploy leaves the versioned tables to `tenantry migrate`
        assert tn.schema.deploy().created == []
        with pytest.raises(ConfigurationError, match="ledger ship their own migrations: `tenantry migrate`"):
            deploy_everywhere(tn, [Ledger()])
        assert tn.plugins.deploy() == []  # nothing without a chain to deploy
    finally:
        tn.close()


def test_a_plugin_added_later_is_migrated_into_every_tier(mtn: Tenantry, fresh_scratch: Scratch) -> None:
    world = make_world(mtn, fresh_scratch, {"pooled": 2, "schema": 2, "database": 2})
    assert not app_migrations.migrate(mtn.plane, directory=FIXTURE).failed  # the app at its head, no plugin yet
    tn = _app(fresh_scratch, Ledger())
    try:
        planned = app_migrations.migrate(tn.plane, dry_run=True)
        assert {(r.from_revision, r.to_revision, r.steps) for r in planned.results} == {(HEAD, BOTH, (L1, L2))}
        report = app_migrations.migrate(tn.plane, jobs=3)
        assert not report.failed and len(report.migrated) == 5
        assert all(r.steps == (L1, L2) and r.secured == ("ledger_items",) for r in report.migrated)
        for target in world.targets():
            assert _versions(world, target) == {HEAD, L2} and world.has_column(target, "ledger_items", "note")
        assert set(world.catalog_revisions().values()) == {BOTH}
        _secured_everywhere(world)
        _isolated(tn, world.tenants)
        # a tenant at the composite head can move (with models at the app's head: the move
        # refuses to leave the migrated column and table behind); its ledger rows go with it
        tn.metadata = head_metadata()
        mover = world.by_tier("schema")[0]
        assert tn.tenants.move(mover.slug, plan="enterprise").target["isolation"] == "database"
        assert app_migrations.recorded_revision(tn.plane, tn.tenants.placement(mover.id)) == BOTH  # type: ignore[arg-type]
        with tn.tenant(mover.id), tn.connection() as conn:
            assert conn.execute("SELECT body, note FROM ledger_items").fetchall() == [(mover.slug, "n")]
    finally:
        tn.close()


def test_a_new_plugin_revision_upgrades_only_its_branch(mtn: Tenantry, fresh_scratch: Scratch, tmp_path: Path) -> None:
    chain = tmp_path / "ledger"
    chain.mkdir()
    shutil.copy(LEDGER_VERSIONS / f"{L1}.py", chain)
    world = make_world(mtn, fresh_scratch, {"pooled": 1, "schema": 1, "database": 1})
    app_migrations.migrate(mtn.plane, directory=FIXTURE)
    v1 = _app(fresh_scratch, Ledger(chain, version=1))
    try:
        first = app_migrations.migrate(v1.plane)
        assert (
            first.head == f"{HEAD},{L1}" and {r.steps for r in first.migrated} == {(L1,)} and len(first.migrated) == 3
        )
        _isolated(v1, world.tenants, with_note=False)
    finally:
        v1.close()
    shutil.copy(LEDGER_VERSIONS / f"{L2}.py", chain)  # the plugin's next release
    v2 = _app(fresh_scratch, Ledger(chain, version=2))
    try:
        report = app_migrations.migrate(v2.plane)
        assert report.head == BOTH and not report.failed and len(report.migrated) == 3
        assert all(r.from_revision == f"{HEAD},{L1}" and r.steps == (L2,) and r.secured == () for r in report.migrated)
        for target in world.targets():
            assert _versions(world, target) == {HEAD, L2} and world.has_column(target, "ledger_items", "note")
        for tenant in world.tenants:  # the rows of v1 are still there, and still each tenant's own
            with v2.tenant(tenant.id), v2.connection() as conn:
                assert conn.execute("SELECT body, note FROM ledger_items").fetchall() == [(tenant.slug, None)]
    finally:
        v2.close()


def test_without_app_migrations_untracked_placements_take_the_plugin_branch(fresh_scratch: Scratch) -> None:
    plain = _app(fresh_scratch, migrations=None)
    try:
        plain.schema.init()
        world = _world(plain, fresh_scratch)  # app tables from the metadata, no revision anywhere
        assert app_migrations.head_revision(plain.plane) is None
    finally:
        plain.close()
    tn = _app(fresh_scratch, Ledger(), migrations=None)
    world.tn = tn
    try:
        assert app_migrations.status(tn.plane).revisions == {"untracked": 3}
        planned = app_migrations.migrate(tn.plane, dry_run=True)
        assert {(r.from_revision, r.to_revision, r.steps) for r in planned.results} == {(None, L2, (L1, L2))}
        report = app_migrations.migrate(tn.plane, jobs=2)
        assert not report.failed and report.head == L2
        assert {(r.from_revision, r.steps) for r in report.migrated} == {(None, (L1, L2))} and len(report.migrated) == 3
        for target in world.targets():
            assert _versions(world, target) == {L2}
        _secured_everywhere(world)
        _isolated(tn, world.tenants)
        # the app's tables stay unversioned: a deploy still deploys them, never the plugin's
        deployed = tn.schema.deploy()
        assert "projects" in deployed.secured and "ledger_items" not in deployed.secured
        newcomer = tn.tenants.create(f"cn-{uuid.uuid4().hex[:8]}", plan="business")
        assert app_migrations.recorded_revision(tn.plane, tn.tenants.placement(newcomer.id)) == L2  # type: ignore[arg-type]
        status = app_migrations.status(tn.plane)
        assert status.head == L2 and status.revisions == {L2: 4} and status.behind == []
    finally:
        tn.close()


def _write(
    directory: Path, revision: str, down: str | None, labels: tuple[str, ...] | None = None, depends: str | None = None
) -> None:
    directory.mkdir(exist_ok=True)
    (directory / f"{revision}.py").write_text(
        f"revision = {revision!r}\ndown_revision = {down!r}\nbranch_labels = {labels!r}\ndepends_on = {depends!r}\n\n\n"
        "def upgrade() -> None:\n    pass\n\n\ndef downgrade() -> None:\n    pass\n"
    )


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "migrations directory '.*missing' does not exist"),
        ("two_heads", r"has 2 heads \(x002_a, x002_b\); merge them"),
        ("no_label", r"the base revision 'x001' must have branch_labels = \('ledger',\)"),
        ("other_label", r"revision 'x001' has branch label\(s\) \['audit'\]"),
        ("outside", "revision 'x002' depends on '0002_labels', which is not in the directory"),
        ("broken", "the revisions do not load: division by zero"),
        ("empty", "has no revisions"),
    ],
)
def test_a_bad_migrations_directory_is_refused_at_registration(tmp_path: Path, layout: str, message: str) -> None:
    chain = tmp_path / layout
    if layout == "two_heads":
        _write(chain, "x001", None, ("ledger",))
        _write(chain, "x002_a", "x001")
        _write(chain, "x002_b", "x001")
    elif layout == "no_label":
        _write(chain, "x001", None)
    elif layout == "other_label":
        _write(chain, "x001", None, ("ledger", "audit"))
    elif layout == "outside":
        _write(chain, "x001", None, ("ledger",))
        _write(chain, "x002", "x001", depends="0002_labels")
    elif layout == "broken":
        _write(chain, "x001", None, ("ledger",))
        (chain / "x002.py").write_text("revision = 'x002'\ndown_revision = 'x001'\n1 / 0\n")
    elif layout == "empty":
        chain.mkdir()
    tn = Tenantry(Settings(database_url="postgresql://nobody@127.0.0.1:1/none"))  # registering connects to nothing
    with pytest.raises(ConfigurationError, match=f"plugin 'ledger': .*{message}"):
        tn.plugins.register(Ledger(chain))
    assert "ledger" not in tn.plugins and tn.plugins.migrations() == {}


class OtherBase(DeclarativeBase):
    pass


class OtherItem(TenantScoped, OtherBase):
    __tablename__ = "other_items"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)


class Other(AppTables):
    name = "other"
    metadata = OtherBase.metadata

    def __init__(self, migrations: Path) -> None:
        self.migrations = migrations


def test_two_plugins_cannot_share_revision_ids(tmp_path: Path) -> None:
    tn = Tenantry(Settings(database_url="postgresql://nobody@127.0.0.1:1/none"))
    tn.plugins.register(Ledger())
    assert tn.plugins.migrations() == {"ledger": str(LEDGER_VERSIONS.resolve())}
    copy = tmp_path / "other"
    shutil.copytree(LEDGER_VERSIONS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for path in copy.glob("*.py"):
        path.write_text(path.read_text().replace('("ledger",)', '("other",)'))
    with pytest.raises(ConfigurationError, match=r"revision\(s\) \['l001_items', 'l002_note'\] are 'ledger''s too"):
        tn.plugins.register(Other(copy))
    assert "other" not in tn.plugins


def test_a_placement_at_an_unregistered_plugins_revision_fails_clearly(mtn: Tenantry, fresh_scratch: Scratch) -> None:
    world = make_world(mtn, fresh_scratch, {"schema": 1})
    with_ledger = _app(fresh_scratch, Ledger())
    try:
        assert not app_migrations.migrate(with_ledger.plane).failed
    finally:
        with_ledger.close()
    without = _app(fresh_scratch)  # the plugin is no longer registered
    try:
        status = app_migrations.status(without.plane)
        assert status.head == HEAD and len(status.behind) == 2
        report = app_migrations.migrate(without.plane)
        assert len(report.failed) == 2 and not report.migrated
        for result in report.failed:
            assert f"is at revision '{L2}', which none of the migrations directories has" in (result.error or "")
            assert "a plugin whose migrations ran there is no longer registered" in (result.error or "")
        assert all(_versions(world, t) == {HEAD, L2} for t in world.targets())  # nothing changed
        # the way out, short of registering the plugin again: record where the tables are
        (tenant,) = world.tenants
        stamped = app_migrations.stamp_placements(without.plane, HEAD, tenants=[tenant.slug])
        assert [(r.from_revision, r.to_revision) for r in stamped.results] == [(BOTH, HEAD)]
        assert _versions(world, tenant) == {HEAD} and [
            r.label for r in app_migrations.status(without.plane).behind
        ] == ["pooled"]
    finally:
        without.close()


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(
    mtn: Tenantry, fresh_scratch: Scratch, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    """``tenantry`` in-process on the test's catalog, with the fixture migrations and the
    ledger plugin named in TENANTRY_PLUGINS."""
    monkeypatch.setenv("TENANTRY_DATABASE_URL", fresh_scratch.url)
    monkeypatch.setenv("TENANTRY_OWNER_ROLE", fresh_scratch.owner)
    monkeypatch.setenv("TENANTRY_RUNTIME_ROLE", fresh_scratch.runtime)
    monkeypatch.setenv("TENANTRY_READER_ROLE", fresh_scratch.reader)
    monkeypatch.setenv("TENANTRY_MIGRATIONS", FIXTURE)
    monkeypatch.setenv("TENANTRY_PLUGINS", "tests.migrations.ledger_plugin:Ledger")

    def run(*args: str) -> tuple[int, str, str]:
        code = cli_main.main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_cli_shows_the_composite_head(cli: Run, mtn: Tenantry, fresh_scratch: Scratch) -> None:
    world = make_world(mtn, fresh_scratch, {"schema": 1, "database": 1})
    code, out, err = cli("migrate", "status", "--json")
    assert code == 0, err
    status = json.loads(out)
    assert status["head"] == BOTH and len(status["behind"]) == 3
    code, out, err = cli("migrate", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["head"] == BOTH and report["counts"]["migrated"] == 3
    assert {tuple(p["steps"]) for p in report["placements"]} == {(L1, L2, "0002_labels")}  # Alembic's order
    assert all(_versions(world, t) == {HEAD, L2} for t in world.targets())
    code, out, _ = cli("migrate", "status")
    assert code == 0 and f"head: {BOTH}" in out and "every placement is at the head" in out
    code, out, _ = cli("migrate")
    assert code == 0 and f"are at {BOTH} (from the catalog)" in out
    code, out, _ = cli("plugins", "deploy")
    assert code == 0 and "ledger ship their own migrations: `tenantry migrate` deploys their tables" in " ".join(
        out.split()
    )
    # an explicit revision per branch
    tenant = world.by_tier("schema")[0]
    code, out, err = cli("migrate", "stamp", f"{HEAD},{L1}", "--tenant", tenant.slug, "--json")
    assert code == 0, err + out
    assert [p["to"] for p in json.loads(out)["placements"]] == [f"{HEAD},{L1}"]
    assert _versions(world, tenant) == {HEAD, L1}
    code, out, _ = cli("migrate", "--dry-run", "--json")
    assert code == 0 and [(p["slug"], tuple(p["steps"])) for p in json.loads(out)["placements"]] == [
        (tenant.slug, (L2,))
    ]
    code, out, err = cli("migrate", "stamp", BOTH, "--tenant", tenant.slug)  # (its tables are at L2 still)
    assert code == 0, err
    assert _versions(world, tenant) == {HEAD, L2} and app_migrations.status(mtn.plane).revisions == {BOTH: 3}
    code, _, err = cli("migrate", "stamp", f"{HEAD},nope")
    assert code == 2 and "no revision 'nope'" in err


def test_loading_refuses_clashing_ids_and_unmerged_app_branches(tmp_path: Path, scripts_copy: Path) -> None:
    clash = tmp_path / "clash"
    _write(clash, "0001_model", None, ("ledger",))
    with pytest.raises(ConfigurationError, match="revision '0001_model' is in both"):
        load_scripts(FIXTURE, [str(clash)])
    scripts = load_scripts(FIXTURE, [str(LEDGER_VERSIONS)])
    assert scripts.head == BOTH and scripts.heads == (HEAD, L2)  # two branches, one head each: fine
    assert sorted(scripts.steps(f"{OLD},{L1}")) == [HEAD, L2]
    add_revision(scripts_copy, "0002_other", OLD, "    pass")  # the app's own branches, unmerged
    with pytest.raises(ConfigurationError, match=r"have 2 heads \(0002_labels, 0002_other\); merge them"):
        load_scripts(str(scripts_copy), [str(LEDGER_VERSIONS)])
