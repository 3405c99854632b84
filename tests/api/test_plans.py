"""``/v1/plans`` create, change, replace limits, delete, and ``/v1/tenants/{t}/limits``: the
scopes they need, 409 for a plan with tenants, and a 422 problem document for every bad value,
with nothing saved."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tenantry import PlanNotFound, Tenantry
from tests.api.support import Client, MakeToken
from tests.api.test_auth import _problem


def _name() -> str:
    return f"api-{uuid.uuid4().hex[:8]}"


def test_create_change_replace_delete(api: Client, tn: Tenantry) -> None:
    name = _name()
    made = api.post(
        "/v1/plans",
        json={"name": name, "isolation": "schema", "description": "Team", "limits": {"requests_per_second": 20}},
    )
    assert made.status_code == 201, made.text
    assert made.json()["limits"] == {"requests_per_second": 20} and made.json()["isolation"] == "schema"
    _problem(api.post("/v1/plans", json={"name": name}), 409)
    changed = api.patch(f"/v1/plans/{name}", json={"limits": {"burst": 40, "requests_per_second": None}})
    assert changed.status_code == 200 and changed.json()["limits"] == {"burst": 40}
    changed = api.patch(f"/v1/plans/{name}", json={"description": "Team, yearly", "cell_labels": {"region": "eu"}})
    assert changed.json()["description"] == "Team, yearly" and changed.json()["cell_labels"] == {"region": "eu"}
    assert changed.json()["limits"] == {"burst": 40}
    replaced = api.put(f"/v1/plans/{name}/limits", json={"concurrency": 3, "keep": 2, "backup_every": "12h"})
    assert replaced.json()["limits"] == {"concurrency": 3, "keep": 2, "backup_every": "12h"}
    assert api.get(f"/v1/plans/{name}").json() == replaced.json()
    gone = api.delete(f"/v1/plans/{name}")
    assert gone.status_code == 200 and gone.json()["name"] == name
    _problem(api.get(f"/v1/plans/{name}"), 404)
    actions = [e.action for e in tn.audit.list(target_type="plan", target=name)]
    assert actions == ["plan.delete", "plan.update", "plan.pin", "plan.update", "plan.update", "plan.create"]


def test_a_plan_with_tenants_is_409(api: Client, tn: Tenantry, make_tenant: Any) -> None:
    name = _name()
    tn.plans.create(name)
    make_tenant("apip", plan=name)
    body = _problem(api.delete(f"/v1/plans/{name}"), 409)
    assert "still has 1 tenant(s)" in body["detail"] and body["type"].endswith("plan-in-use")
    assert tn.plans.get(name).name == name


@pytest.mark.parametrize(
    "limits",
    [
        {"rps": 5},
        {"requests_per_second": 0},
        {"requests_per_second": "5"},
        {"requests_per_second": 10**400},
        {"burst": 2.5},
        {"concurrency": True},
        {"db_connections": -1},
        {"statement_timeout_ms": 2**31},
        {"idle_in_transaction_timeout_ms": "1s"},
        {"work_mem": "8 potatoes"},
        {"storage_mb": 0},
        {"backup_every": "9999999999999999999999w"},
        {"keep": 0},
        [1, 2],
    ],
)
def test_bad_limits_are_422_and_save_nothing(api: Client, tn: Tenantry, make_tenant: Any, limits: Any) -> None:
    name = _name()
    body = _problem(api.post("/v1/plans", json={"name": name, "limits": limits}), 422)
    assert body["status"] == 422
    with pytest.raises(PlanNotFound):
        tn.plans.get(name)
    before = tn.plans.get("free")
    _problem(api.patch("/v1/plans/free", json={"limits": limits}), 422)
    _problem(api.put("/v1/plans/free/limits", json=limits), 422)
    assert tn.plans.get("free") == before
    t = make_tenant("apib")
    _problem(api.patch(f"/v1/tenants/{t.slug}/limits", json=limits), 422)
    _problem(api.put(f"/v1/tenants/{t.slug}/limits", json=limits), 422)
    assert tn.tenants.limits(t.slug).overrides == {}


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Pro"},
        {"name": "a;drop"},
        {"name": "x" * 64},
        {"name": "ok", "isolation": "shared"},
        {"name": "ok", "description": "x" * 501},
        {"name": "ok", "surprise": 1},
    ],
)
def test_bad_plans_are_422(api: Client, body: dict[str, Any]) -> None:
    _problem(api.post("/v1/plans", json=body), 422)


def test_tenant_limits(api: Client, tn: Tenantry, make_tenant: Any) -> None:
    plan = _name()
    tn.plans.create(plan, limits={"requests_per_second": 10, "statement_timeout_ms": 5000})
    t = make_tenant("apil", plan=plan)
    shown = api.get(f"/v1/tenants/{t.slug}/limits").json()
    assert shown["overrides"] == {} and shown["effective"] == shown["plan_limits"]
    got = api.patch(f"/v1/tenants/{t.slug}/limits", json={"requests_per_second": 50, "concurrency": None})
    assert got.status_code == 200, got.text
    assert got.json()["effective"] == {"requests_per_second": 50, "statement_timeout_ms": 5000, "concurrency": None}
    assert got.json()["sources"]["requests_per_second"] == "tenant"
    got = api.put(f"/v1/tenants/{t.id}/limits", json={"work_mem": "4MB"})
    assert got.json()["overrides"] == {"work_mem": "4MB"}
    api.patch(f"/v1/tenants/{t.slug}/limits", json={"keep": 3})
    got = api.delete(f"/v1/tenants/{t.slug}/limits", params={"limit": "work_mem"})
    assert got.json()["overrides"] == {"keep": 3}
    _problem(api.delete(f"/v1/tenants/{t.slug}/limits", params={"limit": "rps"}), 422)
    assert api.delete(f"/v1/tenants/{t.slug}/limits").json()["overrides"] == {}
    _problem(api.get("/v1/tenants/no-such-tenant/limits"), 404)
    actions = [e.action for e in tn.audit.list(target_type="tenant", target=t.slug)][:5]
    assert actions == [
        "tenant.limits.unset",
        "tenant.limits.unset",
        "tenant.limits.set",
        "tenant.limits.replace",
        "tenant.limits.set",
    ]


def test_scopes(api: Client, make_token: MakeToken, make_tenant: Any) -> None:
    t = make_tenant("apis")
    _, reader = make_token("plans:read")
    _, tenants = make_token("tenants:write")
    _, writer = make_token("plans:write")
    assert api.as_token(reader).get(f"/v1/tenants/{t.slug}/limits").status_code == 200
    for token in (reader, tenants):
        body = _problem(api.as_token(token).post("/v1/plans", json={"name": _name()}), 403)
        assert "plans:write" in body["detail"]
        _problem(api.as_token(token).patch(f"/v1/tenants/{t.slug}/limits", json={"concurrency": 2}), 403)
    assert api.as_token(writer).patch(f"/v1/tenants/{t.slug}/limits", json={"concurrency": 2}).status_code == 200
    assert api.as_token(writer).post("/v1/plans", json={"name": _name()}).status_code == 201
