"""Provisioning under faults: killed after every step and resumed, raced, deleted half-built.

A real process is killed (``TENANTRY_TEST_CRASH_AFTER`` makes it ``os._exit(70)`` right after a
step is recorded); the test then checks what the crash left, and that creating the same slug
again in this process finishes the job.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tenantry import Conflict, Isolation, Status, Tenant, TenantExists, TenantNotActive, Tenantry
from tenantry.core.placement import Placement, plan_steps
from tenantry.db.catalog.placements import read_placement
from tenantry.services import provisioning
from tenantry.testing import TIER_PLANS
from tests.db.test_tiers import fully_secured, holds, placement_of, secured_tables, superuser_in, tenantry_with
from tests.support import Scratch

ROOT = Path(__file__).resolve().parents[2]
CRASHED = 70  # the exit code TENANTRY_TEST_CRASH_AFTER makes
CREATE = (
    "import sys; from tenantry import Settings, Tenantry;"
    " Tenantry(Settings.from_env()).tenants.create(sys.argv[1], plan=sys.argv[2])"
)

#: every step after which provisioning can be killed: all but the last (activation)
CRASH_POINTS = [
    pytest.param(plan, step, id=f"{tier}-{step}")
    for tier, plan in TIER_PLANS.items()
    for step in plan_steps(Isolation(tier))[:-1]
]


def _slug(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def crash(tn: Tenantry, scratch: Scratch, slug: str, plan: str, step: str, *, cli: bool = False) -> None:
    """Create ``slug`` in another process (a script, or the ``tenantry`` CLI) killed after ``step``;
    return once its connections are gone (so is its advisory lock)."""
    app_name = f"crash-{slug}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_")} | {
        "TENANTRY_DATABASE_URL": scratch.url,
        "TENANTRY_OWNER_ROLE": scratch.owner,
        "TENANTRY_RUNTIME_ROLE": scratch.runtime,
        "TENANTRY_READER_ROLE": scratch.reader,
        "TENANTRY_APP": "tests.model_app:Base",
        "TENANTRY_TEST_CRASH_AFTER": step,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PGAPPNAME": app_name,
    }
    argv = ["-m", "tenantry.cli.main", "tenants", "create", slug, "--plan", plan] if cli else ["-c", CREATE, slug, plan]
    done = subprocess.run([sys.executable, *argv], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == CRASHED, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    deadline = time.monotonic() + 10
    with tn.admin() as conn:
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app_name,)).fetchone()[
            0
        ]:
            assert time.monotonic() < deadline, "the killed process's backends did not go away"
            time.sleep(0.02)


def job(tn: Tenantry, tenant: Tenant) -> tuple[str, list[str], int, str | None]:
    """``(status, steps_done, attempts, error)`` of the tenant's provisioning job."""
    with tn.admin() as conn:
        row = conn.execute(
            "SELECT status, steps_done, attempts, error FROM tenantry.jobs WHERE tenant_id = %s AND kind = 'provision'",
            (tenant.id,),
        ).fetchone()
    assert row is not None
    return row[0], list(row[1]), row[2], row[3]


def building(tn: Tenantry, tenant: Tenant) -> Placement:
    """The placement a half-built tenant is being built in."""
    with tn.admin() as conn:
        found = read_placement(conn, tenant.id, "building")
    assert found is not None
    return found


def assert_serves(tn: Tenantry, tenant: Tenant, isolation: Isolation) -> None:
    """Active on its tier, its tables secured where its placement says, a row written and read."""
    assert tn.tenants.get(tenant.id).status is Status.ACTIVE
    p = placement_of(tn, tenant)
    assert (p.isolation, p.status) == (isolation, "active")
    assert fully_secured(secured_tables(tn, p))
    if isolation is Isolation.DATABASE:
        with superuser_in(tn, p) as conn:
            assert conn.execute("SELECT tenant_id FROM tenantry.marker").fetchall() == [(tenant.id,)]
    with tn.tenant(tenant.slug), tn.connection() as conn:
        conn.execute("INSERT INTO projects (name) VALUES ('served')")
        assert conn.execute("SELECT tenant_id, name FROM projects").fetchall() == [(tenant.id, "served")]
    assert tn.schema.unprotected_tables() == []


def actions(tn: Tenantry, slug: str) -> list[str]:
    """The tenant's audited actions, oldest first."""
    return [e.action for e in reversed(tn.audit.list(target_type="tenant", target=slug))]


@pytest.mark.parametrize(("plan", "step"), CRASH_POINTS)
def test_killed_after_a_step_then_resumed(tn: Tenantry, scratch: Scratch, plan: str, step: str) -> None:
    isolation = tn.plans.get(plan).isolation
    steps = list(plan_steps(isolation))
    slug = _slug("crash")
    crash(tn, scratch, slug, plan, step)

    half = tn.tenants.get(slug)
    assert half.status is Status.PROVISIONING and tn.tenants.placement(slug) is None
    for allow_inactive in (False, True):
        with pytest.raises(TenantNotActive), tn.tenant(slug, allow_inactive=allow_inactive):
            pass
    assert job(tn, half) == ("running", steps[: steps.index(step) + 1], 1, None)
    assert holds(tn, building(tn, half))  # the first step made its schema or database
    with pytest.raises(Conflict, match=f"half-built on plan '{plan}'") as refused:
        tn.tenants.create(slug, plan=TIER_PLANS["pooled"])
    assert not isinstance(refused.value, TenantExists)

    done = tn.tenants.create(slug, plan=plan)
    assert (done.id, done.status, done.plan) == (half.id, Status.ACTIVE, plan)
    assert job(tn, half) == ("done", steps, 2, None)
    assert_serves(tn, done, isolation)
    assert actions(tn, slug) == ["tenant.create.start", "tenant.create.resume", "tenant.create"]
    with pytest.raises(TenantExists, match=slug):
        tn.tenants.create(slug, plan=plan)


@pytest.mark.parametrize("plan", [TIER_PLANS["schema"], TIER_PLANS["database"]])
def test_delete_a_half_built_tenant(tn: Tenantry, scratch: Scratch, plan: str) -> None:
    isolation = tn.plans.get(plan).isolation
    slug = _slug("half")
    crash(tn, scratch, slug, plan, plan_steps(isolation)[-2], cli=True)  # all built, not activated
    half = tn.tenants.get(slug)
    where = building(tn, half)
    assert holds(tn, where) and fully_secured(secured_tables(tn, where))

    removed = tn.tenants.delete(slug)
    assert removed == {f"{isolation.value} {where.database or where.schema}": 1}
    assert not holds(tn, where)
    assert tn.tenants.get(half.id).status is Status.DELETED
    assert job(tn, half) == ("failed", list(plan_steps(isolation)[:-1]), 1, "tenant deleted")
    with tn.admin() as conn:
        assert read_placement(conn, half.id, "building") is None
    assert tn.schema.unprotected_tables() == []  # the schema's tables left the registry with it
    again = tn.tenants.create(slug, plan=plan)
    assert again.id != half.id
    assert_serves(tn, again, isolation)


def _race(tn: Tenantry, slugs: list[str], plan: str) -> list[Any]:
    """One thread per slug creates it, all at once; what each got (a tenant or an error)."""
    barrier = threading.Barrier(len(slugs))
    outcomes: list[Any] = []

    def create(slug: str) -> None:
        barrier.wait(timeout=10)
        try:
            outcomes.append(tn.tenants.create(slug, plan=plan))
        except BaseException as err:  # noqa: BLE001 - whatever it is, the test judges it
            outcomes.append(err)

    threads = [threading.Thread(target=create, args=(slug,)) for slug in slugs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes


def _one_winner(tn: Tenantry, slug: str, outcomes: list[Any]) -> Tenant:
    """Exactly one create won; every other got a clear conflict; one active tenant is left."""
    winners = [o for o in outcomes if isinstance(o, Tenant)]
    losers = [o for o in outcomes if not isinstance(o, Tenant)]
    assert len(winners) == 1, outcomes
    for err in losers:
        assert isinstance(err, Conflict), repr(err)
        assert slug in str(err) and ("exists already" in str(err) or "being provisioned by another process" in str(err))
    live = tn.tenants.get(slug)  # the one tenant the slug names while it is not deleted
    assert (live.id, live.status) == (winners[0].id, Status.ACTIVE)
    return winners[0]


def test_concurrent_creates_of_one_slug(tn: Tenantry) -> None:
    slug = _slug("race")
    winner = _one_winner(tn, slug, _race(tn, [slug, slug], TIER_PLANS["schema"]))
    assert_serves(tn, winner, Isolation.SCHEMA)


@pytest.mark.usefixtures("tn")  # the catalog, initialised
def test_concurrent_creates_of_different_tenants(scratch: Scratch) -> None:
    with tenantry_with(scratch, connect_timeout=2) as quick:  # a stalled create fails in 2 s
        quick.plans.list()
        quick.plans.list()  # the admin pool is open from the second admin connection on
        outcomes = _race(quick, [_slug("many") for _ in range(4)], TIER_PLANS["schema"])
        assert [type(o) for o in outcomes] == [Tenant] * 4, outcomes


def test_create_that_finds_the_tenant_built_meanwhile(tn: Tenantry, monkeypatch: pytest.MonkeyPatch) -> None:
    """The interleaving the race above can hit: the late create reads the tenant while it is
    being built, then takes the lock only after the first create has finished."""
    slug, first = _slug("late"), threading.get_ident()
    first_started, late_started, first_done = threading.Event(), threading.Event(), threading.Event()
    real_start = provisioning._start

    def start(*args: Any) -> Any:
        found = real_start(*args)
        if threading.get_ident() == first:
            first_started.set()
            assert late_started.wait(10)
        else:
            late_started.set()
            assert first_done.wait(10)
        return found

    monkeypatch.setattr(provisioning, "_start", start)
    outcomes: list[Any] = []

    def late() -> None:
        assert first_started.wait(10)
        try:
            outcomes.append(tn.tenants.create(slug, plan=TIER_PLANS["schema"]))
        except BaseException as err:  # noqa: BLE001
            outcomes.append(err)

    thread = threading.Thread(target=late)
    thread.start()
    try:
        outcomes.append(tn.tenants.create(slug, plan=TIER_PLANS["schema"]))
    finally:
        first_done.set()
        thread.join(timeout=30)
    _one_winner(tn, slug, outcomes)
