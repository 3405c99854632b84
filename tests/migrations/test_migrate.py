"""``migrate``: every tier migrated in worker processes, failures isolated, reruns from the catalog."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tenantry import ConfigurationError, Tenant, TenantNotFound, Tenantry
from tenantry.db import rls
from tenantry.services import app_migrations
from tenantry.services.app_migrations import MigrationFailed
from tests.migrations.support import FIXTURE, HEAD, OLD, World, add_revision, make_world
from tests.model_app import Base
from tests.support import Scratch


def _forced_with_policy(world: World, tenant: Tenant | None, table: str) -> bool:
    rows = world.query(
        tenant,
        "SELECT c.relrowsecurity AND c.relforcerowsecurity, EXISTS (SELECT 1 FROM pg_policy p"
        " WHERE p.polrelid = c.oid AND p.polname = %s)"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        (rls.POLICY, world.schema(tenant), table),
    )
    return rows == [(True, True)]


@pytest.mark.parametrize("jobs", [1, 3])
def test_every_tier_migrates_to_head_and_stays_isolated(world: World, jobs: int) -> None:
    seen: list[tuple[int, int]] = []
    report = app_migrations.migrate(
        world.tn.plane, jobs=jobs, directory=FIXTURE, progress=lambda done, total, _r: seen.append((done, total))
    )
    assert not report.failed and not report.from_catalog
    assert report.total == 5 and report.up_to_date == 0
    assert sorted(r.label for r in report.migrated) == sorted(
        ["pooled", *(t.slug for t in world.tenants if t.plan != "free")]
    )
    assert all(r.from_revision == OLD and r.to_revision == HEAD and r.steps == (HEAD,) for r in report.migrated)
    assert all(r.secured == ("labels",) for r in report.migrated)  # the tables it did not create keep their policies
    assert seen[0] == (0, 5) and seen[-1] == (5, 5) and len(seen) == 6
    for target in world.targets():
        assert world.version(target) == HEAD
        assert world.has_column(target, "tasks", "estimate")
        assert _forced_with_policy(world, target, "labels")
        with psycopg.connect(world.url(target)) as conn:
            assert rls.unprotected_tables(conn) == []
    assert set(world.catalog_revisions().values()) == {HEAD}
    # the new table and column serve every tenant, and each sees only its own rows
    for tenant in world.tenants:
        with world.tn.tenant(tenant.id), world.tn.connection() as conn:
            conn.execute("INSERT INTO labels (name) VALUES (%s)", (tenant.slug,))
            conn.execute("UPDATE tasks SET estimate = 3")
    for tenant in world.tenants:
        with world.tn.tenant(tenant.id), world.tn.connection() as conn:
            assert conn.execute("SELECT tenant_id, name FROM labels").fetchall() == [(tenant.id, tenant.slug)]
            assert conn.execute("SELECT title, estimate FROM tasks").fetchall() == [(tenant.slug, 3)]
    # a rerun is answered from the catalog
    again = app_migrations.migrate(world.tn.plane, jobs=jobs, directory=FIXTURE)
    assert again.from_catalog and again.results == [] and again.up_to_date == again.total == 5
    status = app_migrations.status(world.tn.plane, directory=FIXTURE)
    assert status.head == HEAD and status.revisions == {HEAD: 5} and status.behind == [] and status.failed == []
    entry = world.tn.audit.list(target_type="app")[0]
    assert entry.action == "app.migrate" and entry.after is not None and entry.after["migrated"] == 5


def test_dry_run_lists_and_changes_nothing(world: World) -> None:
    report = app_migrations.migrate(world.tn.plane, dry_run=True, directory=FIXTURE)
    assert report.dry_run and report.from_catalog
    assert [(r.result, r.from_revision, r.to_revision, r.steps) for r in report.results] == [
        ("planned", OLD, HEAD, (HEAD,))
    ] * 5
    assert report.results[0].label == "pooled"
    for target in world.targets():
        assert world.version(target) == OLD and not world.has_column(target, "tasks", "estimate")
    assert set(world.catalog_revisions().values()) == {OLD}
    assert app_migrations.status(world.tn.plane, directory=FIXTURE).revisions == {OLD: 5}


def test_a_failing_placement_is_rolled_back_alone_then_retried(world: World) -> None:
    broken = world.by_tier("schema")[0]
    # a table in the way: the migration's CREATE TABLE labels fails there (after ADD COLUMN)
    world.execute(
        broken, f'CREATE TABLE "{world.schema(broken)}".labels (tenant_id uuid, id int, PRIMARY KEY (tenant_id, id))'
    )
    report = app_migrations.migrate(world.tn.plane, jobs=2, directory=FIXTURE)
    assert [(r.label, r.failed_revision) for r in report.failed] == [(broken.slug, HEAD)]
    assert 'relation "labels" already exists' in (report.failed[0].error or "")
    assert len(report.migrated) == 4
    assert world.version(broken) == OLD and not world.has_column(broken, "tasks", "estimate")  # rolled back whole
    assert all(world.version(t) == HEAD for t in world.targets() if t is not broken)
    assert world.catalog_revisions()[broken.slug] == OLD
    with pytest.raises(MigrationFailed, match=broken.slug):
        report.raise_for_failures()
    status = app_migrations.status(world.tn.plane, directory=FIXTURE)
    assert status.revisions == {OLD: 1, HEAD: 4}
    assert [r.slug for r in status.behind] == [broken.slug]
    assert [f.slug for f in status.failed] == [broken.slug] and "already exists" in status.failed[0].error
    # fixed: the rerun migrates only the one behind
    world.execute(broken, f'DROP TABLE "{world.schema(broken)}".labels')
    rerun = app_migrations.migrate(world.tn.plane, jobs=2, directory=FIXTURE)
    assert [r.label for r in rerun.results] == [broken.slug] and rerun.up_to_date == 4 and not rerun.failed
    assert world.version(broken) == HEAD and world.has_column(broken, "tasks", "estimate")
    status = app_migrations.status(world.tn.plane, directory=FIXTURE)
    assert status.revisions == {HEAD: 5} and status.failed == []


def test_a_table_without_tenant_id_fails_its_placement(
    mtn: Tenantry, fresh_scratch: Scratch, scripts_copy: Path
) -> None:
    world = make_world(mtn, fresh_scratch, {"schema": 1})
    add_revision(
        scripts_copy,
        "0003_notes",
        HEAD,
        "    op.create_table('notes', sa.Column('id', sa.BigInteger(), primary_key=True))",
    )
    report = app_migrations.migrate(mtn.plane, directory=str(scripts_copy))
    assert len(report.failed) == 2 and not report.migrated
    for result in report.failed:
        assert result.error == "tables are not tenant-safe: notes: the primary key must start with tenant_id"
    for target in world.targets():  # the whole upgrade, 0002 included, was rolled back
        assert world.version(target) == OLD and not world.has_column(target, "tasks", "estimate")
        assert world.query(target, "SELECT to_regclass(%s)", (f'"{world.schema(target)}".notes',)) == [(None,)]


def test_a_unique_index_without_tenant_id_fails_its_placement(
    mtn: Tenantry, fresh_scratch: Scratch, scripts_copy: Path
) -> None:
    world = make_world(mtn, fresh_scratch, {"schema": 1})
    add_revision(
        scripts_copy, "0003_unique", HEAD, "    op.create_index('projects_name_key', 'projects', ['name'], unique=True)"
    )
    report = app_migrations.migrate(mtn.plane, directory=str(scripts_copy))
    assert len(report.failed) == 2 and not report.migrated
    for result in report.failed:
        assert (result.error or "").startswith(
            "tables are not tenant-safe: projects: unique index projects_name_key must include tenant_id (CREATE UNIQUE INDEX"
        )
    for target in world.targets():  # rolled back whole
        assert world.version(target) == OLD
        assert world.query(target, "SELECT to_regclass(%s)", (f'"{world.schema(target)}".projects_name_key',)) == [
            (None,)
        ]


def test_untracked_placements_are_refused_until_stamped(mtn: Tenantry, fresh_scratch: Scratch) -> None:
    tenant = mtn.tenants.create("untracked-one", plan="business")  # deployed, never stamped
    world = World(mtn, fresh_scratch, [tenant])
    report = app_migrations.migrate(mtn.plane, directory=FIXTURE)
    assert [r.label for r in report.failed] == [tenant.slug] and len(report.migrated) == 1
    assert "has tables but no recorded revision" in (report.failed[0].error or "")
    assert app_migrations.status(mtn.plane, directory=FIXTURE).revisions == {HEAD: 1, "untracked": 1}
    adopted = app_migrations.stamp_placements(mtn.plane, OLD, directory=FIXTURE)
    assert [(r.label, r.result, r.to_revision) for r in adopted.results] == [(tenant.slug, "stamped", OLD)]
    assert not app_migrations.migrate(mtn.plane, directory=FIXTURE).failed
    assert world.version(tenant) == HEAD and world.catalog_revisions()[tenant.slug] == HEAD


def test_stamp_records_the_head_only_on_fresh_placements(mtn: Tenantry, fresh_scratch: Scratch) -> None:
    tenant = mtn.tenants.create("fresh-one", plan="enterprise")
    placement = mtn.tenants.placement(tenant.id)
    assert placement is not None
    world = World(mtn, fresh_scratch, [tenant])
    assert app_migrations.stamp(mtn.plane, placement) is None  # no migrations directory configured: no-op
    assert world.catalog_revisions()[tenant.slug] is None
    assert app_migrations.stamp(mtn.plane, placement, directory=FIXTURE) == HEAD
    assert world.version(tenant) == HEAD and world.catalog_revisions()[tenant.slug] == HEAD
    assert app_migrations.recorded_revision(mtn.plane, placement) == HEAD
    # a placement with a revision keeps it: a redeploy never hides pending migrations
    assert app_migrations.stamp(mtn.plane, app_migrations.POOLED, directory=FIXTURE) == OLD
    assert world.catalog_revisions()[None] == OLD == app_migrations.recorded_revision(mtn.plane, app_migrations.POOLED)
    with pytest.raises(ConfigurationError, match="does not exist"):
        app_migrations.migrate(mtn.plane, directory="/nonexistent/migrations")
    with pytest.raises(ConfigurationError, match="TENANTRY_MIGRATIONS"):
        app_migrations.migrate(mtn.plane)
    with pytest.raises(TenantNotFound, match="nobody"):
        app_migrations.migrate(mtn.plane, directory=FIXTURE, tenants=["nobody"])


def test_only_the_named_tenants_migrate(world: World) -> None:
    schema_tenant, pooled_tenant = world.by_tier("schema")[0], world.by_tier("pooled")[0]
    report = app_migrations.migrate(world.tn.plane, directory=FIXTURE, tenants=[schema_tenant.slug, pooled_tenant.slug])
    assert sorted(r.label for r in report.migrated) == sorted(["pooled", schema_tenant.slug])
    assert world.version(schema_tenant) == HEAD and world.version(None) == HEAD
    assert world.version(world.by_tier("schema")[1]) == OLD


def test_database_tier_on_another_cell(fresh_scratch: Scratch, second_cell: Scratch) -> None:
    tn = Tenantry(fresh_scratch.settings(), metadata=Base.metadata, actor="pytest")
    tn.schema.init()
    second_cell.owner, second_cell.runtime = fresh_scratch.owner, fresh_scratch.runtime
    tn.cells.add("second", second_cell.server_url, capacity=10)
    app_migrations.stamp(tn.plane, app_migrations.POOLED, revision=OLD, directory=FIXTURE)
    world = make_world(tn, fresh_scratch, {"database": 1}, cell="second")
    (tenant,) = world.tenants
    try:
        assert world.placement(tenant).cell == "second"
        report = app_migrations.migrate(tn.plane, directory=FIXTURE)
        assert [r.cell for r in report.migrated] == ["primary", "second"] and not report.failed
        assert world.version(tenant) == HEAD and world.has_column(tenant, "tasks", "estimate")
        assert _forced_with_policy(world, tenant, "labels")
    finally:
        database = world.placement(tenant).database
        tn.close()
        with psycopg.connect(second_cell.server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
