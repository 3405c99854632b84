"""A tenant's overrides of its plan's database limits (``tn.tenants.limits_set``) travel with
its bindings on every tier: a running process (a data-plane one, reading the routing views)
applies them from the tenant's next transaction within a second of the change, and takes them
off as fast when they are unset. An override of tenant A never reaches tenant B on the same
plan (with the negative control: a settings cache that answered for another tenant is caught)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tenantry import StatementTimeout, Tenant, Tenantry
from tests.db.support import make_tier_plan

SHOW = "SELECT current_setting('statement_timeout'), current_setting('work_mem') WHERE %s::int = 1"


def _settings(tn: Tenantry, tenant: Tenant) -> tuple[str, str]:
    with tn.tenant(tenant.slug), tn.connection() as conn:
        row = conn.execute(SHOW, [1]).fetchone()
    assert row is not None
    return row[0], row[1]


def _within(seconds: float, tn: Tenantry, tenant: Tenant, expected: str) -> None:
    deadline = time.monotonic() + seconds
    while (seen := _settings(tn, tenant)[0]) != expected:
        assert time.monotonic() < deadline, f"{tenant.slug}: statement_timeout {seen}, not {expected}"
        time.sleep(0.02)


@pytest.fixture
def data_plane(tn: Tenantry) -> Iterator[Tenantry]:
    """Another running process: a data plane (runtime and reader roles only)."""
    with Tenantry(tn.data_plane_settings(), metadata=tn.metadata) as plane:
        yield plane


def test_an_override_reaches_a_running_process_within_a_second(
    tn: Tenantry, data_plane: Tenantry, make_tenant: Callable[..., Tenant], tier: str
) -> None:
    plan = make_tier_plan(tn, tier, {"statement_timeout_ms": 5000, "work_mem": "5MB"})
    a, b = make_tenant("ovr", plan=plan), make_tenant("ovr", plan=plan)
    assert _settings(data_plane, a) == _settings(data_plane, b) == ("5s", "5MB")  # warm: cached there
    tn.tenants.limits_set(a.slug, statement_timeout_ms=150, work_mem="3MB")
    _within(1.0, data_plane, a, "150ms")
    assert _settings(data_plane, a) == ("150ms", "3MB")
    with data_plane.tenant(a.slug), pytest.raises(StatementTimeout), data_plane.connection() as conn:
        conn.execute("SELECT pg_sleep(%s)", [1])
    # B, on the same plan, keeps the plan's limits: the same statement runs to its end
    assert _settings(data_plane, b) == ("5s", "5MB")
    with data_plane.tenant(b.slug), data_plane.connection() as conn:
        assert conn.execute("SELECT pg_sleep(%s), 1", [0.3]).fetchone() == ("", 1)
    # a plan change reaches A's other limits; A's own still wins
    tn.plans.update(plan, limits={"work_mem": "6MB", "statement_timeout_ms": 4000})
    _within(1.0, data_plane, b, "4s")
    assert _settings(data_plane, a) == ("150ms", "3MB") and _settings(data_plane, b) == ("4s", "6MB")
    tn.tenants.limits_unset(a.slug, "statement_timeout_ms")
    _within(1.0, data_plane, a, "4s")
    assert _settings(data_plane, a) == ("4s", "3MB")


def test_an_override_lifts_a_plan_limit_for_one_tenant(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    plan = make_tier_plan(tn, "pooled", {"statement_timeout_ms": 150})
    lifted, kept = make_tenant("ovr", plan=plan), make_tenant("ovr", plan=plan)
    tn.tenants.limits_set(lifted.slug, statement_timeout_ms=None)  # this process: at once
    assert _settings(tn, lifted)[0] != "150ms" and _settings(tn, kept)[0] == "150ms"
    with tn.tenant(lifted.slug), tn.connection() as conn:
        assert conn.execute("SELECT pg_sleep(%s), 1", [0.3]).fetchone() == ("", 1)
    with tn.tenant(kept.slug), pytest.raises(StatementTimeout), tn.connection() as conn:
        conn.execute("SELECT pg_sleep(%s)", [0.5])


def test_an_override_of_a_never_reaches_b(
    tn: Tenantry, make_tenant: Callable[..., Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two tenants on one plan, bound in turn on one process (and one pooled connection's
    worth of pool): A's override stays A's. The negative control makes the overrides kept
    with the lookups answer A's for any tenant (a cache that answers for another tenant): B
    then gets A's timeout, so the check would see such a leak."""
    plan = make_tier_plan(tn, "pooled", {"statement_timeout_ms": 5000})
    a, b = make_tenant("ovr", plan=plan), make_tenant("ovr", plan=plan)
    one = Tenantry(tn.settings.with_changes(pool_min_size=1, pool_max_size=1), metadata=tn.metadata)
    try:
        tn.tenants.limits_set(a.slug, statement_timeout_ms=777)
        _within(1.0, one, a, "777ms")
        for _ in range(3):
            assert _settings(one, a)[0] == "777ms" and _settings(one, b)[0] == "5s"
        # the control: the overrides kept with the lookups answer A's for any tenant
        directory: Any = one.directory
        leaked = directory.overrides(one.tenants.lookup(a.slug))
        assert leaked is not None and leaked["statement_timeout_ms"] == 777
        monkeypatch.setattr(directory, "overrides", lambda tenant: leaked)
        directory._bounds.clear()  # (bindings made before the leak would hide it)
        assert _settings(one, b)[0] == "777ms"
    finally:
        one.close()
