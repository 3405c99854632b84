"""Plans of the user's own through ``tn.plans``: create, update, delete, several per tier,
every change audited; bad values refused naming the field, with nothing saved; a plan with
tenants cannot be deleted. And per-tenant overrides through ``tn.tenants.limits_*``."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tenantry import (
    Conflict,
    InvalidInput,
    Isolation,
    Plan,
    PlanExists,
    PlanInUse,
    PlanNotFound,
    Tenant,
    TenantNotFound,
    Tenantry,
)


def _name(prefix: str = "pl") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _audit(tn: Tenantry, target_type: str, target: str) -> list[tuple[str, Any, Any]]:
    """(action, before, after) of the target's audit entries, oldest first."""
    return [(e.action, e.before, e.after) for e in reversed(tn.audit.list(target_type=target_type, target=target))]


def test_create_update_delete_audited(tn: Tenantry) -> None:
    name = _name()
    plan = tn.plans.create(
        name, isolation="schema", description="Starter", limits={"requests_per_second": 20, "storage_mb": None}
    )
    assert plan == Plan(name, Isolation.SCHEMA, "Starter", {"requests_per_second": 20})  # null: no limit, not kept
    assert tn.plans.get(name) == plan and plan in tn.plans.list()
    # merged: the key given replaces its value, null lifts one, other keys stay
    tn.plans.update(name, limits={"statement_timeout_ms": 3000, "backup_every": "1d", "keep": 7})
    updated = tn.plans.update(name, limits={"requests_per_second": None}, description="Starter, monthly")
    assert updated.limits == {"statement_timeout_ms": 3000, "backup_every": "1d", "keep": 7}
    assert updated.description == "Starter, monthly"
    assert tn.plans.update(name, limits={"keep": 7}) == updated  # the same values: a no-op, not audited
    replaced = tn.plans.update(name, limits={"concurrency": 4}, replace_limits=True)
    assert replaced.limits == {"concurrency": 4}
    assert tn.plans.delete(name) == replaced
    with pytest.raises(PlanNotFound):
        tn.plans.get(name)
    entries = _audit(tn, "plan", name)
    assert [a for a, _, _ in entries] == ["plan.create", "plan.update", "plan.update", "plan.update", "plan.delete"]
    assert entries[0][2]["limits"] == {"requests_per_second": 20} and entries[0][1] is None
    assert entries[-1][1]["limits"] == {"concurrency": 4} and entries[-1][2] is None


def test_several_plans_per_tier_and_tenants_on_them(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    starter, team = _name("starter"), _name("team")
    tn.plans.create(starter, limits={"requests_per_second": 5})
    tn.plans.create(team, isolation=Isolation.POOLED, limits={"requests_per_second": 50})
    a, b = make_tenant("pt", plan=starter), make_tenant("pt", plan=team)
    assert (a.plan, b.plan) == (starter, team)
    assert tn.tenants.placement(a.slug) is not None and tn.tenants.placement(b.slug) is not None


def test_an_existing_name_is_refused_as_an_existing_tenant_is(tn: Tenantry) -> None:
    name = _name()
    tn.plans.create(name, limits={"concurrency": 3})
    with pytest.raises(PlanExists, match="exists already"):
        tn.plans.create(name, limits={"concurrency": 3})
    with pytest.raises(PlanExists):
        tn.plans.create("free")
    assert tn.plans.get("free").limits["requests_per_second"] == 10
    tn.plans.delete(name)


def test_a_plan_with_tenants_is_not_deleted(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    name = _name()
    tn.plans.create(name)
    t1, _t2 = make_tenant("pu", plan=name), make_tenant("pu", plan=name)
    with pytest.raises(PlanInUse, match="still has 2 tenant") as raised:
        tn.plans.delete(name)
    assert raised.value.tenants == 2 and raised.value.exit_code == 7 and raised.value.http_status == 409
    assert tn.plans.get(name).name == name
    assert [a for a, _, _ in _audit(tn, "plan", name)] == ["plan.create"]
    # nor its tier changed under them
    with pytest.raises(Conflict, match="cannot change under them"):
        tn.plans.update(name, isolation="schema")
    tn.tenants.delete(t1.slug)
    with pytest.raises(PlanInUse, match="still has 1 tenant"):
        tn.plans.delete(name)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"limits": {"rps": 5}}, "'rps'"),
        ({"limits": {"requests_per_second": -1}}, "limits.requests_per_second"),
        ({"limits": {"requests_per_second": "5"}}, "limits.requests_per_second"),
        ({"limits": {"burst": 1.5}}, "limits.burst"),
        ({"limits": {"concurrency": True}}, "limits.concurrency"),
        ({"limits": {"db_connections": 0}}, "limits.db_connections"),
        ({"limits": {"statement_timeout_ms": 2**31}}, "limits.statement_timeout_ms"),
        ({"limits": {"idle_in_transaction_timeout_ms": "1s"}}, "limits.idle_in_transaction_timeout_ms"),
        ({"limits": {"work_mem": "8 potatoes"}}, "limits.work_mem"),
        ({"limits": {"work_mem": 10}}, "limits.work_mem"),
        ({"limits": {"storage_mb": -5}}, "limits.storage_mb"),
        ({"limits": {"backup_every": "sometimes"}}, "limits.backup_every"),
        ({"limits": {"keep": 0}}, "limits.keep"),
        ({"limits": ["requests_per_second"]}, "limits"),
        ({"isolation": "shared"}, "isolation"),
        ({"description": "x" * 501}, "description"),
    ],
)
def test_bad_values_name_the_field_and_save_nothing(tn: Tenantry, kwargs: dict[str, Any], field: str) -> None:
    name = _name()
    with pytest.raises(InvalidInput, match=field.replace(".", r"\.")):
        tn.plans.create(name, **kwargs)
    with pytest.raises(PlanNotFound):
        tn.plans.get(name)
    before = tn.plans.get("free")
    with pytest.raises(InvalidInput, match=field.replace(".", r"\.")):
        tn.plans.update("free", **kwargs)
    assert tn.plans.get("free") == before
    assert _audit(tn, "plan", name) == []


@pytest.mark.parametrize("name", ["", "Pro", "1pro", "pro plan", "a" * 64, "pro;drop", "../x", "prо"])
def test_plan_names_are_slug_like(tn: Tenantry, name: str) -> None:
    with pytest.raises(InvalidInput):
        tn.plans.create(name)


def test_unknown_plans(tn: Tenantry) -> None:
    for call in (lambda: tn.plans.update("no-such-plan", description="x"), lambda: tn.plans.delete("no-such-plan")):
        with pytest.raises(PlanNotFound, match="free"):
            call()


def test_tenant_overrides_set_unset_audited(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    plan = _name()
    tn.plans.create(plan, limits={"requests_per_second": 10, "statement_timeout_ms": 5000})
    t, other = make_tenant("ov", plan=plan), make_tenant("ov", plan=plan)
    found = tn.tenants.limits_set(t.slug, requests_per_second=50, concurrency=None)
    assert found.overrides == {"requests_per_second": 50, "concurrency": None}
    assert found.effective == {"requests_per_second": 50, "statement_timeout_ms": 5000, "concurrency": None}
    assert found.to_dict()["sources"] == {
        "requests_per_second": "tenant",
        "concurrency": "tenant",
        "statement_timeout_ms": "plan",
    }
    assert tn.tenants.limits(other.slug).overrides == {}  # the other tenant of the plan: untouched
    assert tn.tenants.limits_set(t.slug, requests_per_second=50).overrides == found.overrides  # a no-op
    assert tn.tenants.limits_unset(t.slug, "concurrency").overrides == {"requests_per_second": 50}
    assert tn.tenants.limits_unset(t.slug).overrides == {}
    entries = _audit(tn, "tenant", t.slug)
    assert [(a, b, c) for a, b, c in entries if a.startswith("tenant.limits")] == [
        ("tenant.limits.set", {"overrides": {}}, {"overrides": {"requests_per_second": 50, "concurrency": None}}),
        ("tenant.limits.unset", {"overrides": found.overrides}, {"overrides": {"requests_per_second": 50}}),
        ("tenant.limits.unset", {"overrides": {"requests_per_second": 50}}, {"overrides": {}}),
    ]


def test_bad_overrides_save_nothing(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    t = make_tenant("ov")
    tn.tenants.limits_set(t.slug, concurrency=3)
    for bad in ({"rps": 5}, {"requests_per_second": 0}, {"work_mem": "lots"}, {}):
        with pytest.raises(InvalidInput):
            tn.tenants.limits_set(t.slug, **bad)
    with pytest.raises(InvalidInput, match="'rps'"):
        tn.tenants.limits_unset(t.slug, "rps")
    with pytest.raises(TenantNotFound):
        tn.tenants.limits_set("no-such-tenant", concurrency=3)
    assert tn.tenants.limits(t.slug).overrides == {"concurrency": 3}
