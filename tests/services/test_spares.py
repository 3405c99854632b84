"""Spare placements: built ahead of time, claimed by new tenants, never reached before that.

The app tests of ``tests/db/test_tiers.py`` run here again on tenants claimed from spares (the
``make_tier_tenant`` and ``tier`` fixtures below replace the shared ones for this module), so a
claimed tenant must behave exactly like a freshly built one. Then: what a claim writes, that
concurrent creates never share a spare, that stale spares are never handed out, that nothing
reaches a spare before it is claimed, and that a fill or drop killed at any step is finished
by a rerun.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tenantry import (
    ConfigurationError,
    Conflict,
    InvalidInput,
    IsolationError,
    NotFound,
    Spare,
    Status,
    Tenant,
    TenantNotFound,
    Tenantry,
    TenantScoped,
)
from tenantry.core.model import Isolation
from tenantry.core.placement import Placement, plan_steps
from tenantry.services import app_migrations, spare_keys, spares
from tenantry.services.provisioning import database_url
from tenantry.testing import TIER_PLANS
from tests.db.test_tiers import (  # noqa: F401 - the tier tests, run again on claimed tenants
    fully_secured,
    holds,
    others,
    placement_of,
    secured_tables,
    seed,
    tenantry_with,
    test_asyncio_sessions_and_connections,
    test_copy_rows,
    test_delete_removes_the_tenant_on_its_tier,
    test_no_tenant_bound_sees_nothing,
    test_orm_session_crud_joins_and_upserts,
    test_placement_matches_where_transactions_run,
    test_raw_psycopg_crud_joins_and_upserts,
    test_tenants_on_other_tiers_stay_apart,
    test_two_tenants_on_one_tier_never_meet,
)
from tests.migrations.support import FIXTURE, add_revision
from tests.model_app import Base
from tests.services.test_provisioning import CRASHED, ROOT, _one_winner, _race, actions, assert_serves
from tests.support import Scratch

SPARE_TIERS = ["schema", "database"]


def _slug(prefix: str = "sp") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def pool(tn: Tenantry) -> Iterator[Tenantry]:
    """``tn`` with no spares at the start, and none left at the end (other modules' schema
    tenants must not claim this module's spares)."""
    tn.spares.drop()
    yield tn
    tn.spares.drop()


@pytest.fixture(params=SPARE_TIERS)
def tier(request: pytest.FixtureRequest) -> str:
    """The tiers spares exist for (replaces the shared fixture in this module)."""
    return str(request.param)


@pytest.fixture
def make_tier_tenant(pool: Tenantry, tier: str) -> Callable[..., Tenant]:
    """Create a tenant on the tier under test by claiming a spare built for it just before."""

    def make(prefix: str = "t", **kwargs: object) -> Tenant:
        pool.spares.fill(1, tier=tier)
        [spare] = ready(pool, tier)
        tenant = pool.tenants.create(f"{prefix}-{uuid.uuid4().hex[:10]}", plan=TIER_PLANS[tier], **kwargs)  # type: ignore[arg-type]
        assert tenant.id == spare.id and ready(pool, tier) == []
        return tenant

    return make


def ready(tn: Tenantry, tier: str) -> list[Spare]:
    return [s for s in tn.spares.list(tier=tier) if s.status == "ready"]


def spare_placement(spare: Spare) -> Placement:
    return Placement(spare.id, spare.cell, spare.tier, spare.database, spare.schema, "active")


def audit_after(tn: Tenantry, slug: str) -> dict[str, Any]:
    [entry] = [e for e in tn.audit.list(target_type="tenant", target=slug) if e.action == "tenant.create"]
    assert entry.after is not None
    return entry.after


# -- claiming ----------------------------------------------------------------------------------


def test_a_claim_makes_an_active_tenant_in_the_spare(pool: Tenantry, tier: str) -> None:
    report = pool.spares.fill(2, tier=tier)
    assert (report.built, report.resumed, report.dropped, report.ready) == (2, 0, 0, 2)
    oldest, newest = ready(pool, tier)
    assert oldest.current and oldest.steps_done == plan_steps(Isolation(tier))[:-1]
    slug = _slug()
    tenant = pool.tenants.create(slug, name="From a spare", plan=TIER_PLANS[tier])
    assert (tenant.id, tenant.status, tenant.name) == (oldest.id, Status.ACTIVE, "From a spare")
    p = placement_of(pool, tenant)
    assert (p.isolation, p.cell, p.schema, p.database) == (Isolation(tier), "primary", oldest.schema, oldest.database)
    assert [s.id for s in pool.spares.list(tier=tier)] == [newest.id]
    # one audited creation, saying where the tenant came from
    assert actions(pool, slug) == ["tenant.create"]
    after = audit_after(pool, slug)
    assert after["spare"] is True and after["placement"]["status"] == "active" and after["id"] == str(tenant.id)
    with pool.admin() as conn:
        assert conn.execute("SELECT count(*) FROM tenantry.jobs WHERE tenant_id = %s", (tenant.id,)).fetchone() == (0,)
    assert_serves(pool, tenant, Isolation(tier))


def test_an_empty_pool_falls_back_to_building(pool: Tenantry) -> None:
    pool.spares.fill(1, tier="database")  # a spare of another tier is no use to a schema tenant
    [database_spare] = ready(pool, "database")
    slug = _slug()
    tenant = pool.tenants.create(slug, plan=TIER_PLANS["schema"])
    assert tenant.id != database_spare.id
    assert actions(pool, slug) == ["tenant.create.start", "tenant.create"]
    assert "spare" not in audit_after(pool, slug)
    assert_serves(pool, tenant, Isolation.SCHEMA)
    assert [s.id for s in ready(pool, "database")] == [database_spare.id]
    # a pooled tenant never touches the pool either
    assert pool.tenants.create(_slug(), plan=TIER_PLANS["pooled"]).id != database_spare.id
    assert [s.id for s in ready(pool, "database")] == [database_spare.id]


def test_concurrent_creates_never_share_a_spare(pool: Tenantry, scratch: Scratch) -> None:
    pool.spares.fill(3)
    spare_ids = {s.id for s in ready(pool, "schema")}
    with tenantry_with(scratch, connect_timeout=5) as quick:
        quick.plans.list()
        quick.plans.list()  # the admin pool is open from the second admin connection on
        outcomes = _race(quick, [_slug("race") for _ in range(4)], TIER_PLANS["schema"])
    assert [type(o) for o in outcomes] == [Tenant] * 4, outcomes
    claimed = [t.id for t in outcomes if t.id in spare_ids]
    assert sorted(claimed) == sorted(spare_ids)  # three claims, each its own spare, one built
    assert ready(pool, "schema") == []
    for tenant in outcomes:
        assert_serves(pool, tenant, Isolation.SCHEMA)


def test_concurrent_creates_of_one_slug_claim_one_spare(pool: Tenantry) -> None:
    pool.spares.fill(2)
    spare_ids = {s.id for s in ready(pool, "schema")}
    slug = _slug("race")
    winner = _one_winner(pool, slug, _race(pool, [slug, slug], TIER_PLANS["schema"]))
    assert winner.id in spare_ids
    # the loser's claim rolled back: its spare is still in the pool, ready
    assert {s.id for s in ready(pool, "schema")} == spare_ids - {winner.id}
    assert_serves(pool, winner, Isolation.SCHEMA)


def test_a_taken_slug_leaves_the_pool_alone(pool: Tenantry) -> None:
    slug = _slug()
    pool.tenants.create(slug)
    pool.spares.fill(1)
    [spare] = ready(pool, "schema")
    with pytest.raises(Conflict, match="exists already"):
        pool.tenants.create(slug, plan=TIER_PLANS["schema"])
    assert ready(pool, "schema") == [spare]


# -- nothing reaches a spare --------------------------------------------------------------------


def runtime_in(tn: Tenantry, spare: Spare) -> psycopg.Connection[Any]:
    """A raw connection as the runtime role to the spare's database."""
    return psycopg.connect(database_url(tn.runtime_url, spare.database), autocommit=True)


def test_a_spare_is_reached_by_no_tenant(pool: Tenantry, tier: str, others: dict[str, Tenant]) -> None:
    pool.spares.fill(1, tier=tier)
    [spare] = ready(pool, tier)
    projects = sql.Identifier(spare.schema, "projects")
    for key in (spare.id, str(spare.id), spare.id.hex):
        with pytest.raises(TenantNotFound), pool.tenant(key):
            pass
    # no tenant of the shared database reads or writes it, even naming it
    if tier == "schema":
        for tenant in (others["pooled"], others["schema"]):
            with pool.tenant(tenant.slug), pool.connection() as conn:
                assert conn.execute(sql.SQL("SELECT * FROM {}").format(projects)).fetchall() == []
            with pytest.raises(IsolationError), pool.tenant(tenant.slug), pool.connection() as conn:
                conn.execute(sql.SQL("INSERT INTO {} (name) VALUES ('planted')").format(projects))
            with pytest.raises(IsolationError), pool.tenant(tenant.slug), pool.connection() as conn:
                conn.execute(
                    sql.SQL("INSERT INTO {} (tenant_id, name) VALUES (%s, 'planted')").format(projects), (spare.id,)
                )
    # the runtime role on its own: no tenant, a forged one, DDL
    with runtime_in(pool, spare) as conn:
        assert conn.execute(sql.SQL("SELECT * FROM {}").format(projects)).fetchall() == []
        with pytest.raises(psycopg.Error, match="no tenant is bound"):
            conn.execute(sql.SQL("INSERT INTO {} (name) VALUES ('planted')").format(projects))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not set by tenantry"):
            with conn.transaction():
                conn.execute(
                    "SELECT set_config('tenantry.tenant_id', %s, true), set_config('tenantry.tenant_schema', %s, true),"
                    " set_config('tenantry.tenant_sig', %s, true)",
                    (str(spare.id), spare.schema, "0" * 64),
                )
                conn.execute(sql.SQL("SELECT * FROM {}").format(projects)).fetchall()
        for ddl in (
            "ALTER TABLE {} DISABLE ROW LEVEL SECURITY",
            "ALTER TABLE {} NO FORCE ROW LEVEL SECURITY",
            "DROP POLICY tenant_isolation ON {}",
            "TRUNCATE {}",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL(ddl).format(projects))
    # the tenant that claims it finds it empty and secured
    claimed = pool.tenants.create(_slug(), plan=TIER_PLANS[tier])
    assert claimed.id == spare.id
    with pool.tenant(claimed.slug), pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM projects").fetchone() == (0,)
    assert fully_secured(secured_tables(pool, placement_of(pool, claimed)))


def test_check_covers_spares(pool: Tenantry, tier: str) -> None:
    pool.spares.fill(1, tier=tier)
    [spare] = ready(pool, tier)
    assert pool.schema.unprotected_tables() == []
    assert fully_secured(secured_tables(pool, spare_placement(spare)))
    url = database_url(pool.cells.admin_url(spare.cell), spare.database)
    comments = sql.Identifier(spare.schema, "comments")
    with psycopg.connect(url, autocommit=True) as su:
        su.execute(sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY").format(comments))
        try:
            found = pool.schema.unprotected_tables()
        finally:
            su.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(comments))
    where = f"{spare.schema}.comments" if tier == "schema" else f"{spare.database}:{spare.schema}.comments"
    assert found == [where]


# -- filling and dropping --------------------------------------------------------------------


def fills(tn: Tenantry) -> list[dict[str, Any]]:
    return [
        e.after or {} for e in tn.audit.list(target_type="spares", target="schema@primary") if e.action == "spare.fill"
    ]


def test_fill_is_idempotent_and_audited(pool: Tenantry) -> None:
    before = len(fills(pool))
    first = pool.spares.fill(2)
    assert (first.built, first.ready, first.target) == (2, 2, 2)
    assert fills(pool)[0]["built"] == 2 and len(fills(pool)) == before + 1
    again = pool.spares.fill(2)
    assert (again.built, again.resumed, again.dropped, again.ready) == (0, 0, 0, 2)
    fewer = pool.spares.fill(1)  # a lower target keeps what is ready
    assert (fewer.built, fewer.dropped, fewer.ready) == (0, 0, 2)
    assert len(fills(pool)) == before + 1  # runs that changed nothing are not audited
    dropped = pool.spares.drop()
    assert (dropped.dropped, dropped.ready) == (2, 0) and pool.spares.list() == []
    assert pool.audit.list(target_type="spares")[0].action == "spare.drop"
    assert pool.spares.drop().dropped == 0


def test_fill_uses_the_setting_by_default(pool: Tenantry, scratch: Scratch) -> None:
    with tenantry_with(scratch, spare_schemas=2) as configured:
        assert configured.spares.fill().ready == 2
    assert pool.spares.fill().ready == 2  # the default setting (0) removes nothing


def test_dropped_spares_leave_nothing(pool: Tenantry, tier: str) -> None:
    pool.spares.fill(2, tier=tier)
    made = ready(pool, tier)
    assert all(holds(pool, s.placement) for s in made)
    assert pool.spares.drop(tier=tier).dropped == 2
    assert not any(holds(pool, s.placement) for s in made)
    if tier == "schema":  # a database-tier spare's registry went with its database
        with pool.admin() as conn:
            registered = conn.execute(
                "SELECT count(*) FROM tenantry.app_tables WHERE schema_name = ANY(%s)", ([s.schema for s in made],)
            ).fetchone()
        assert registered == (0,)
    assert pool.schema.unprotected_tables() == []


@pytest.mark.parametrize(
    ("call", "kwargs", "error", "fragment"),
    [
        ("fill", {"tier": "pooled", "count": 1}, InvalidInput, "need no spares"),
        ("fill", {"tier": "gold", "count": 1}, InvalidInput, "no tier named"),
        ("fill", {"count": -1}, InvalidInput, "between 0 and"),
        ("fill", {"count": spares.MAX_SPARES + 1}, InvalidInput, "between 0 and"),
        ("fill", {"tier": "database"}, InvalidInput, "say how many"),
        ("fill", {"count": 1, "cell": "elsewhere"}, InvalidInput, "primary cell"),
        ("fill", {"tier": "database", "count": 1, "cell": "nowhere"}, NotFound, "no cell named"),
        ("drop", {"tier": 'schema"; drop'}, InvalidInput, "no tier named"),
        ("list", {"tier": "pooled"}, InvalidInput, "need no spares"),
    ],
)
def test_bad_requests_are_refused(
    pool: Tenantry, call: str, kwargs: dict[str, Any], error: type, fragment: str
) -> None:
    method = {"fill": pool.spares.fill, "drop": pool.spares.drop, "list": pool.spares.list}[call]
    with pytest.raises(error, match=fragment):
        method(**kwargs)
    assert pool.spares.list() == []


def test_a_draining_cell_gets_no_spares(pool: Tenantry) -> None:
    pool.cells.drain("primary")
    try:
        with pytest.raises(InvalidInput, match="draining"):
            pool.spares.fill(1, tier="database")
    finally:
        pool.cells.undrain("primary")


def test_one_fill_at_a_time(pool: Tenantry) -> None:
    with pool.admin() as conn:
        conn.execute("SELECT pg_advisory_lock(%s, 0)", (spares._LOCK_CLASS,))
        try:
            with pytest.raises(Conflict, match="running"):
                pool.spares.fill(1)
            with pytest.raises(Conflict, match="running"):
                pool.spares.drop()
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, 0)", (spares._LOCK_CLASS,))
    assert pool.spares.list() == []


def test_fill_needs_the_apps_tables(pool: Tenantry, scratch: Scratch) -> None:
    pool.spares.fill(1)
    with Tenantry(scratch.settings(), actor="pytest") as bare:
        with pytest.raises(ConfigurationError, match="no app metadata"):
            bare.spares.fill(1)
        assert [s.current for s in bare.spares.list()] == [None]  # listed; current or not is unknown here


# -- stale spares ------------------------------------------------------------------------------


class _Other(DeclarativeBase):
    pass


class _Note(TenantScoped, _Other):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    body: Mapped[str] = mapped_column(sa.Text)


def _model(
    extra_column: bool = False, extra_index: bool = False, enum_values: tuple[str, ...] = ("low", "high")
) -> sa.MetaData:
    metadata = sa.MetaData()
    projects = sa.Table(
        "projects",
        metadata,
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("priority", sa.Enum(*enum_values, name="priority")),
        *([sa.Column("extra", sa.Text)] if extra_column else []),
    )
    if extra_index:
        sa.Index("projects_by_priority", projects.c.tenant_id, projects.c.priority)
    return metadata


def test_fingerprint_follows_the_tables() -> None:
    base = spare_keys.fingerprint(_model())
    assert spare_keys.fingerprint(_model()) == base  # another object with the same tables
    assert spare_keys.fingerprint(Base.metadata) == spare_keys.fingerprint(Base.metadata) != base
    changed = [
        _model(extra_column=True),
        _model(extra_index=True),
        _model(enum_values=("low", "mid", "high")),
        _Other.metadata,
    ]
    prints = {spare_keys.fingerprint(m) for m in changed}
    assert len(prints) == len(changed) and base not in prints


def test_spares_built_for_other_tables_are_never_claimed(pool: Tenantry) -> None:
    pool.spares.fill(2)
    stale, fresh = ready(pool, "schema")
    with pool.admin() as conn:
        conn.execute("UPDATE tenantry.spares SET fingerprint = 'built-for-older-tables' WHERE id = %s", (stale.id,))
    assert [s.current for s in pool.spares.list()] == [False, True]
    first = pool.tenants.create(_slug(), plan=TIER_PLANS["schema"])
    assert first.id == fresh.id  # the older spare is stale: skipped
    second = pool.tenants.create(_slug(), plan=TIER_PLANS["schema"])
    assert second.id not in (stale.id, fresh.id)  # only the stale one left: built instead
    assert [s.id for s in pool.spares.list()] == [stale.id]
    refilled = pool.spares.fill(1)
    assert (refilled.dropped, refilled.built, refilled.ready) == (1, 1, 1)
    assert not holds(pool, stale.placement) and stale.id not in {s.id for s in pool.spares.list()}
    # `drop --stale` keeps current spares
    with pool.admin() as conn:
        conn.execute(
            "INSERT INTO tenantry.spares (id, cell, isolation, schema_name, fingerprint, status)"
            " VALUES (%s, 'primary', 'schema', %s, 'old', 'ready')",
            (uuid.UUID(int=1), "tenant_" + uuid.UUID(int=1).hex),
        )
    assert pool.spares.drop(stale_only=True).dropped == 1
    assert [s.current for s in pool.spares.list()] == [True]


@pytest.fixture
def versioned(fresh_scratch: Scratch, tmp_path: Path) -> Iterator[tuple[Tenantry, Path]]:
    """A catalog of its own whose placements are versioned by a copy of the fixture migrations."""
    scripts = tmp_path / "migrations"
    shutil.copytree(FIXTURE, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    tn = Tenantry(fresh_scratch.settings(migrations=str(scripts)), metadata=Base.metadata, actor="pytest")
    tn.schema.init()
    yield tn, scripts
    tn.close()


def test_spares_built_before_a_migration_are_never_claimed(versioned: tuple[Tenantry, Path]) -> None:
    tn, scripts = versioned
    head = app_migrations.head_revision(tn.plane)
    tn.spares.fill(2)
    assert {(s.app_revision, s.current) for s in tn.spares.list()} == {(head, True)}
    built = {s.id for s in tn.spares.list()}
    early = tn.tenants.create(_slug(), plan=TIER_PLANS["schema"])
    early_placement = tn.tenants.placement(early.id)
    assert early.id in built
    assert early_placement is not None and app_migrations.recorded_revision(tn.plane, early_placement) == head
    [left] = tn.spares.list()
    add_revision(scripts, "0003_spares", str(head), '    op.add_column("projects", sa.Column("budget", sa.Integer()))')
    assert app_migrations.head_revision(tn.plane) == "0003_spares"
    assert [s.current for s in tn.spares.list()] == [False]
    late = tn.tenants.create(_slug(), plan=TIER_PLANS["schema"])
    assert late.id != left.id  # built, at the new head
    late_placement = tn.tenants.placement(late.id)
    assert late_placement is not None and app_migrations.recorded_revision(tn.plane, late_placement) == "0003_spares"
    # migrate leaves spares alone (they are replaced, not migrated)
    report = app_migrations.migrate(tn.plane, jobs=1)
    assert not report.failed and report.total == 3  # the pooled schema and the two tenants
    assert [s.id for s in tn.spares.list()] == [left.id]
    refilled = tn.spares.fill(1)
    assert (refilled.dropped, refilled.built, refilled.ready) == (1, 1, 1)
    [fresh] = tn.spares.list()
    assert (fresh.app_revision, fresh.current) == ("0003_spares", True)
    claimed = tn.tenants.create(_slug(), plan=TIER_PLANS["schema"])
    assert claimed.id == fresh.id
    claimed_placement = tn.tenants.placement(claimed.id)
    assert (
        claimed_placement is not None and app_migrations.recorded_revision(tn.plane, claimed_placement) == "0003_spares"
    )
    with tn.tenant(claimed.slug), tn.connection() as conn:
        conn.execute("INSERT INTO projects (name) VALUES ('served')")
    assert tn.schema.unprotected_tables() == []


# -- killed midway, then run again ----------------------------------------------------------------


def killed(tn: Tenantry, scratch: Scratch, point: str, *args: str) -> None:
    """Run ``tenantry spares <args>`` in another process, killed at ``point``; return once its
    connections (and so its advisory lock) are gone."""
    app_name = f"crash-spares-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_")} | {
        "TENANTRY_DATABASE_URL": scratch.url,
        "TENANTRY_OWNER_ROLE": scratch.owner,
        "TENANTRY_RUNTIME_ROLE": scratch.runtime,
        "TENANTRY_READER_ROLE": scratch.reader,
        "TENANTRY_APP": "tests.model_app:Base",
        "TENANTRY_TEST_CRASH_AFTER": point,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PGAPPNAME": app_name,
    }
    done = subprocess.run(
        [sys.executable, "-m", "tenantry.cli.main", "spares", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == CRASHED, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    deadline = time.monotonic() + 10
    with tn.admin() as conn:
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app_name,)).fetchone()[
            0
        ]:
            assert time.monotonic() < deadline, "the killed process's backends did not go away"
            time.sleep(0.02)


FILL_CRASH_POINTS = [
    pytest.param(tier, step, id=f"{tier}-{step}") for tier in SPARE_TIERS for step in plan_steps(Isolation(tier))[:-1]
]


@pytest.mark.parametrize(("tier", "step"), FILL_CRASH_POINTS)
def test_fill_killed_after_a_step_then_finished(pool: Tenantry, scratch: Scratch, tier: str, step: str) -> None:
    steps = plan_steps(Isolation(tier))[:-1]
    killed(pool, scratch, f"spare:{step}", "fill", "--tier", tier, "--count", "2")
    [half] = pool.spares.list(tier=tier)
    assert (half.status, half.steps_done, half.current) == ("building", steps[: steps.index(step) + 1], True)
    assert holds(pool, half.placement)
    # a half-built spare is never claimed, and reaches no one
    tenant = pool.tenants.create(_slug(), plan=TIER_PLANS[tier])
    assert tenant.id != half.id
    with pytest.raises(TenantNotFound), pool.tenant(half.id):
        pass
    finished = pool.spares.fill(2, tier=tier)
    assert (finished.resumed, finished.built, finished.dropped, finished.ready) == (1, 1, 0, 2)
    done = {s.id: s for s in pool.spares.list(tier=tier)}
    assert done[half.id].status == "ready" and done[half.id].steps_done == steps
    claimed = pool.tenants.create(_slug(), plan=TIER_PLANS[tier])
    assert claimed.id == half.id  # the oldest: the one the killed fill began
    assert_serves(pool, claimed, Isolation(tier))


def test_a_half_built_spare_of_older_tables_is_dropped(pool: Tenantry, scratch: Scratch) -> None:
    killed(pool, scratch, "spare:create_schema", "fill", "--count", "1")
    [half] = pool.spares.list()
    with pool.admin() as conn:
        conn.execute("UPDATE tenantry.spares SET fingerprint = 'older' WHERE id = %s", (half.id,))
    report = pool.spares.fill(1)
    assert (report.resumed, report.dropped, report.built) == (0, 1, 1)
    assert not holds(pool, half.placement) and half.id not in {s.id for s in pool.spares.list()}


@pytest.mark.parametrize("tier", SPARE_TIERS)
def test_drop_killed_midway_then_finished(pool: Tenantry, scratch: Scratch, tier: str) -> None:
    pool.spares.fill(1, tier=tier)
    [spare] = pool.spares.list(tier=tier)
    killed(pool, scratch, "spare:dropping", "drop", "--tier", tier)
    [dropping] = pool.spares.list(tier=tier)
    assert (dropping.id, dropping.status) == (spare.id, "dropping") and holds(pool, spare.placement)
    assert pool.tenants.create(_slug(), plan=TIER_PLANS[tier]).id != spare.id  # not claimable
    # a fill finishes the drop, like `drop` does
    report = pool.spares.fill(0, tier=tier)
    assert (report.dropped, report.ready) == (1, 0)
    assert not holds(pool, spare.placement) and pool.spares.list(tier=tier) == []


def test_a_spare_being_built_is_not_claimed(pool: Tenantry, monkeypatch: pytest.MonkeyPatch) -> None:
    started, release = threading.Event(), threading.Event()
    real = spares.placements.build_step

    def slow(tn: Tenantry, step: str, placement: Placement) -> None:
        real(tn, step, placement)
        if step == "create_schema" and not started.is_set():  # the fill's spare, not the create
            started.set()
            assert release.wait(20)

    errors: list[BaseException] = []

    def fill() -> None:
        try:
            pool.spares.fill(1)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    monkeypatch.setattr(spares.placements, "build_step", slow)
    thread = threading.Thread(target=fill)
    thread.start()
    try:
        assert started.wait(20)
        [building] = pool.spares.list()
        assert building.status == "building"
        tenant = pool.tenants.create(_slug(), plan=TIER_PLANS["schema"])
        assert tenant.id != building.id
    finally:
        release.set()
        thread.join(30)
    assert errors == [] and [s.status for s in pool.spares.list()] == ["ready"]


def test_a_failed_fill_audits_what_it_did(pool: Tenantry, monkeypatch: pytest.MonkeyPatch) -> None:
    real = spares.placements.build_step
    calls: list[str] = []

    def failing(tn: Tenantry, step: str, placement: Placement) -> None:
        calls.append(step)
        if len(calls) > len(plan_steps(Isolation.SCHEMA)) - 1:  # the second spare's first step
            raise InvalidInput("the disk is full (simulated)")
        real(tn, step, placement)

    monkeypatch.setattr(spares.placements, "build_step", failing)
    with pytest.raises(InvalidInput, match="simulated"):
        pool.spares.fill(3)
    after = fills(pool)[0]
    assert (after["built"], after["error"]) == (1, "the disk is full (simulated)")
    assert sorted(s.status for s in pool.spares.list()) == ["building", "ready"]
    monkeypatch.setattr(spares.placements, "build_step", real)
    again = pool.spares.fill(3)
    assert (again.resumed, again.built, again.ready) == (1, 1, 3)
