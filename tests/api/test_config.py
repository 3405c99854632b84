"""``/v1/config``: tenants' and plans' layers through the API: read, set (one version for many
keys), temporary overrides, replace, unset, history by pages, diff, rollback; validation
problems listed, nothing half-saved, every change audited as the token."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tenantry import Tenant, Tenantry
from tests.api.support import Client, MakeToken
from tests.api.test_auth import _problem

DEFAULTS = {
    "limits": {"max_projects": 10, "max_users": 5},
    "branding": {"theme": "light", "title": "Tracker"},
    "welcome": "hello",
    "tags": [],
}


def test_a_fresh_tenant_resolves_to_the_defaults(capi: Client, plan_tenant: Callable[..., Tenant]) -> None:
    tenant = plan_tenant()
    for key in (tenant.slug, str(tenant.id)):
        got = capi.get(f"/v1/config/tenants/{key}")
        assert got.status_code == 200, got.text
        assert got.json() == {
            "scope": "tenant",
            "target": tenant.slug,
            "plan": tenant.plan,
            "tenant_id": str(tenant.id),
            "version": 0,
            "document": {},
            "overrides": {},
            "effective": DEFAULTS,
        }
    plan = capi.get(f"/v1/config/plans/{tenant.plan}").json()
    assert plan == {
        "scope": "plan",
        "target": tenant.plan,
        "plan": tenant.plan,
        "version": 0,
        "document": {},
        "overrides": {},
        "effective": DEFAULTS,
    }
    key = capi.get(f"/v1/config/tenants/{tenant.slug}/keys/limits.max_projects").json()
    assert key["value"] == 10 and key["source"] == "default" and key["version"] == 0


def test_set_several_keys_in_one_version(
    capi: Client, ctn: Tenantry, plan_tenant: Callable[..., Tenant], make_ctoken: MakeToken
) -> None:
    tenant = plan_tenant()
    neighbour = plan_tenant(tenant.plan)  # same plan: must not see the tenant's values
    token, secret = make_ctoken("config:write", prefix="configurer")
    body = {"values": {"limits.max_projects": 50, "welcome": "hi there"}, "message": "bigger customer"}
    changed = capi.as_token(secret).patch(f"/v1/config/tenants/{tenant.slug}", json=body)
    assert changed.status_code == 200, changed.text
    result = changed.json()
    assert result["version"] == 1 and result["changed"] is True
    assert sorted((c["path"], c["change"], c.get("before", "-"), c["after"]) for c in result["changes"]) == [
        ("limits.max_projects", "added", "-", 50),
        ("welcome", "added", "-", "hi there"),
    ]
    layer = capi.get(f"/v1/config/tenants/{tenant.slug}").json()
    assert layer["document"] == {"limits": {"max_projects": 50}, "welcome": "hi there"}
    assert layer["effective"]["limits"] == {"max_projects": 50, "max_users": 5}
    key = capi.get(f"/v1/config/tenants/{tenant.slug}/keys/limits.max_projects").json()
    assert key == {
        "scope": "tenant",
        "target": tenant.slug,
        "plan": tenant.plan,
        "tenant_id": str(tenant.id),
        "version": 1,
        "key": "limits.max_projects",
        "value": 50,
        "source": "tenant",
    }
    # the same again: no version, no audit entry
    same = capi.patch(f"/v1/config/tenants/{tenant.slug}", json=body).json()
    assert same["changed"] is False and same["version"] == 1 and same["changes"] == []
    [entry] = ctn.audit_log(target_type="tenant", target=tenant.slug)[:1]
    assert entry.action == "config.set" and entry.actor == f"token:{token.name}"
    assert entry.after is not None and entry.after["message"] == "bigger customer"
    [version] = capi.get(f"/v1/config/tenants/{tenant.slug}/history").json()["items"]
    assert version["actor"] == f"token:{token.name}" and version["message"] == "bigger customer"
    # and the running app sees it; the neighbour's config is untouched
    with ctn.tenant(tenant.slug):
        assert ctn.config.current().limits.max_projects == 50  # type: ignore[attr-defined]
    with ctn.tenant(neighbour.slug):
        assert ctn.config.current().limits.max_projects == 10  # type: ignore[attr-defined]
    untouched = capi.get(f"/v1/config/tenants/{neighbour.slug}").json()
    assert untouched["version"] == 0 and untouched["effective"] == DEFAULTS
    assert capi.get(f"/v1/config/plans/{tenant.plan}").json()["version"] == 0


def test_invalid_values_are_422_with_problems_and_save_nothing(
    capi: Client, plan_tenant: Callable[..., Tenant]
) -> None:
    tenant = plan_tenant()
    capi.patch(f"/v1/config/tenants/{tenant.slug}", json={"values": {"welcome": "kept"}}).raise_for_status()
    refused = _problem(
        capi.patch(
            f"/v1/config/tenants/{tenant.slug}",
            json={"values": {"limits.max_users": 0, "limits.max_projects": "many", "welcome": "lost"}},
        ),
        422,
    )
    assert refused["type"] == "urn:tenantry:problem:config-invalid"
    assert any(p.startswith("limits.max_users:") for p in refused["problems"])
    assert any(p.startswith("limits.max_projects:") for p in refused["problems"])
    layer = capi.get(f"/v1/config/tenants/{tenant.slug}").json()
    assert layer["version"] == 1 and layer["document"] == {"welcome": "kept"}  # all or nothing
    refused = _problem(
        capi.put(f"/v1/config/plans/{tenant.plan}", json={"document": {"branding": {"theme": "neon"}}}), 422
    )
    assert refused["problems"] and refused["problems"][0].startswith("branding.theme:")
    for body in (
        {"values": {}},
        {"values": {"a..b": 1}},
        {"values": {"welcome": "nul\x00"}},
        {"values": {"welcome\x00": "x"}},
        {"values": {"welcome": "x"}, "extra": 1},
        {"values": {"welcome": "x"}, "expires_in": 0},
        {"values": {"welcome": "x"}, "expires_at": "2030-01-01T00:00:00"},  # no time zone
        {"values": {"welcome": "x"}, "message": "m" * 1001},
    ):
        _problem(capi.patch(f"/v1/config/tenants/{tenant.slug}", json=body), 422)
    nan = capi.patch(
        f"/v1/config/tenants/{tenant.slug}",
        content=b'{"values": {"welcome": NaN}}',
        headers={"content-type": "application/json"},
    )
    _problem(nan, 422)
    assert capi.get(f"/v1/config/tenants/{tenant.slug}").json()["version"] == 1


def test_temporary_overrides(capi: Client, ctn: Tenantry, plan_tenant: Callable[..., Tenant]) -> None:
    tenant = plan_tenant()
    url = f"/v1/config/tenants/{tenant.slug}"
    changed = capi.patch(url, json={"values": {"limits.max_projects": 99}, "expires_in": 3600}).json()
    assert [c["layer"] for c in changed["changes"]] == ["override"]
    layer = capi.get(url).json()
    assert layer["document"] == {} and layer["effective"]["limits"]["max_projects"] == 99
    until = datetime.fromisoformat(layer["overrides"]["limits.max_projects"]["expires_at"])
    assert timedelta(minutes=59) < until - datetime.now(UTC) <= timedelta(hours=1)
    assert capi.get(f"{url}/keys/limits.max_projects").json()["source"] == "override"
    at = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    capi.patch(url, json={"values": {"welcome": "promo"}, "expires_at": at}).raise_for_status()
    assert ctn.audit_log(target_type="tenant", target=tenant.slug)[0].action == "config.override"
    ended = capi.delete(f"{url}/keys/limits.max_projects", params={"override": "true", "message": "promo over"}).json()
    assert ended["changed"] and ended["changes"][0]["layer"] == "override"
    got = capi.get(f"{url}/keys/limits.max_projects").json()
    assert got["value"] == 10 and got["source"] == "default"
    assert capi.get(f"{url}/keys/welcome").json()["source"] == "override"  # the other override stays
    _problem(capi.patch(url, json={"values": {"welcome": "x"}, "expires_in": 60, "expires_at": at}), 422)
    # plans take no temporary overrides: not in their schema
    _problem(capi.patch(f"/v1/config/plans/{tenant.plan}", json={"values": {"welcome": "x"}, "expires_in": 60}), 422)
    _problem(capi.delete(f"/v1/config/plans/{tenant.plan}/keys/welcome", params={"override": "true"}), 422)


def test_plan_values_show_through_and_unset(capi: Client, plan_tenant: Callable[..., Tenant]) -> None:
    tenant = plan_tenant()
    plan_url, tenant_url = f"/v1/config/plans/{tenant.plan}", f"/v1/config/tenants/{tenant.slug}"
    capi.patch(plan_url, json={"values": {"limits.max_projects": 20}}).raise_for_status()
    assert capi.get(f"{tenant_url}/keys/limits.max_projects").json()["source"] == "plan"
    capi.patch(tenant_url, json={"values": {"limits.max_projects": 30}}).raise_for_status()
    assert capi.get(f"{tenant_url}/keys/limits.max_projects").json()["value"] == 30
    unset = capi.delete(f"{tenant_url}/keys/limits.max_projects", params={"message": "back to the plan's"}).json()
    assert unset["changed"] and unset["changes"] == [
        {"path": "limits.max_projects", "layer": "value", "change": "removed", "before": 30}
    ]
    got = capi.get(f"{tenant_url}/keys/limits.max_projects").json()
    assert got["value"] == 20 and got["source"] == "plan"
    again = capi.delete(f"{tenant_url}/keys/limits.max_projects").json()
    assert again["changed"] is False and again["version"] == unset["version"]
    plan_unset = capi.delete(f"{plan_url}/keys/limits.max_projects").json()
    assert plan_unset["changed"] and "tenant_id" not in plan_unset
    assert capi.get(f"{tenant_url}/keys/limits.max_projects").json()["source"] == "default"


def test_replace_history_diff_and_rollback(capi: Client, ctn: Tenantry, plan_tenant: Callable[..., Tenant]) -> None:
    tenant = plan_tenant()
    url = f"/v1/config/tenants/{tenant.slug}"
    for n in range(1, 6):
        capi.patch(url, json={"values": {"limits.max_projects": n * 10}, "message": f"step {n}"}).raise_for_status()
    replaced = capi.put(url, json={"document": {"welcome": "fresh"}, "message": "start over"}).json()
    assert replaced["version"] == 6 and capi.get(url).json()["document"] == {"welcome": "fresh"}
    first = capi.get(f"{url}/history", params={"limit": 4})
    body = first.json()
    assert [v["version"] for v in body["items"]] == [6, 5, 4, 3] and first.headers["link"].endswith('rel="next"')
    rest = capi.get(body["next"]).json()
    assert [v["version"] for v in rest["items"]] == [2, 1] and rest["next"] is None
    assert body["items"][0]["message"] == "start over" and rest["items"][-1]["message"] == "step 1"
    diff = capi.get(f"{url}/diff", params={"from": 2, "to": 6}).json()
    assert diff["from_version"] == 2 and diff["to_version"] == 6
    assert sorted((c["path"], c["change"]) for c in diff["changes"]) == [
        ("limits.max_projects", "removed"),
        ("welcome", "added"),
    ]
    assert capi.get(f"{url}/diff", params={"from": 0, "to": 1}).json()["changes"] == [
        {"path": "limits.max_projects", "layer": "value", "change": "added", "after": 10}
    ]
    rolled = capi.post(f"{url}/rollback", json={"version": 3, "message": "undo"}).json()
    assert rolled["version"] == 7 and rolled["changed"]
    assert capi.get(url).json()["document"] == {"limits": {"max_projects": 30}}
    entries = [e for e in ctn.audit_log(target_type="tenant", target=tenant.slug) if e.action.startswith("config.")]
    assert [e.action for e in entries] == ["config.rollback", "config.replace"] + ["config.set"] * 5
    assert len({e.actor for e in entries}) == 1 and entries[0].actor.startswith("token:admin-")
    assert capi.post(f"{url}/rollback", json={"version": 3}).json()["changed"] is False
    _problem(capi.post(f"{url}/rollback", json={"version": 99}), 404)
    _problem(capi.get(f"{url}/diff", params={"from": 1, "to": 99}), 404)
    for query in ("from=1", "to=1", "from=-1&to=1", "from=a&to=1", "from=1&to=2&extra=1", "from=1&from=2&to=3"):
        _problem(capi.get(f"{url}/diff?{query}"), 422)
    for query in ("limit=0", "cursor=abc", "cursor=WyJ4Il0", "cursor=Wzk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5XQ"):
        _problem(capi.get(f"{url}/history?{query}"), 422)
    _problem(capi.post(f"{url}/rollback", json={"version": -1}), 422)


def test_plan_history_and_rollback(capi: Client, make_plan: Callable[[], str]) -> None:
    plan = make_plan()
    url = f"/v1/config/plans/{plan}"
    capi.patch(url, json={"values": {"welcome": "one"}}).raise_for_status()
    capi.patch(url, json={"values": {"welcome": "two"}}).raise_for_status()
    assert [v["version"] for v in capi.get(f"{url}/history").json()["items"]] == [2, 1]
    assert capi.get(f"{url}/diff", params={"from": 1, "to": 2}).json()["changes"] == [
        {"path": "welcome", "layer": "value", "change": "changed", "before": "one", "after": "two"}
    ]
    capi.post(f"{url}/rollback", json={"version": 1}).raise_for_status()
    assert capi.get(f"{url}/keys/welcome").json() == {
        "scope": "plan",
        "target": plan,
        "plan": plan,
        "version": 3,
        "key": "welcome",
        "value": "one",
        "source": "plan",
    }


def test_unknown_layers_and_keys(capi: Client, ctn: Tenantry, plan_tenant: Callable[..., Tenant]) -> None:
    tenant = plan_tenant()
    for path in (
        "/v1/config/tenants/no-such-tenant",
        f"/v1/config/tenants/{uuid.uuid4()}",
        "/v1/config/plans/gold",
        "/v1/config/tenants/no-such-tenant/history",
        "/v1/config/plans/gold/keys/welcome",
    ):
        _problem(capi.get(path), 404)
    _problem(capi.patch("/v1/config/plans/gold", json={"values": {"welcome": "x"}}), 404)
    _problem(capi.post("/v1/config/tenants/no-such-tenant/rollback", json={"version": 0}), 404)
    problem = _problem(capi.get(f"/v1/config/tenants/{tenant.slug}/keys/limits.nothing"), 404)
    assert "limits.nothing" in problem["detail"]
    _problem(capi.get(f"/v1/config/tenants/{tenant.slug}/keys/a..b"), 422)
    ctn.delete_tenant(tenant.slug)
    _problem(capi.get(f"/v1/config/tenants/{tenant.id}"), 404)
    _problem(capi.patch(f"/v1/config/tenants/{tenant.id}", json={"values": {"welcome": "x"}}), 404)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/v1/config/tenants/{t}", {"values": {"welcome": "x"}}),
        ("PUT", "/v1/config/tenants/{t}", {"document": {}}),
        ("DELETE", "/v1/config/tenants/{t}/keys/welcome", None),
        ("POST", "/v1/config/tenants/{t}/rollback", {"version": 0}),
        ("PATCH", "/v1/config/plans/{p}", {"values": {"welcome": "x"}}),
        ("PUT", "/v1/config/plans/{p}", {"document": {}}),
        ("DELETE", "/v1/config/plans/{p}/keys/welcome", None),
        ("POST", "/v1/config/plans/{p}/rollback", {"version": 0}),
    ],
)
def test_writes_need_config_write(
    capi: Client, make_ctoken: MakeToken, plan_tenant: Callable[..., Tenant], method: str, path: str, body: dict | None
) -> None:
    tenant = plan_tenant()
    url = path.format(t=tenant.slug, p=tenant.plan)
    _, reader = make_ctoken("config:read")
    _, others = make_ctoken("tenants:write", "plans:write", "flags:write")
    assert _problem(capi.as_token(reader).request(method, url, json=body), 403)["scope"] == "config:write"
    assert _problem(capi.as_token(others).request(method, url, json=body), 403)["scope"] == "config:write"
    assert capi.get(f"/v1/config/tenants/{tenant.slug}").json()["version"] == 0
    assert capi.get(f"/v1/config/plans/{tenant.plan}").json()["version"] == 0


def test_reads_need_config_read(capi: Client, make_ctoken: MakeToken, plan_tenant: Callable[..., Tenant]) -> None:
    tenant = plan_tenant()
    _, reader = make_ctoken("config:read")
    _, writer = make_ctoken("config:write")
    _, others = make_ctoken("tenants:write", "plans:write", "flags:write")
    for layer in (f"tenants/{tenant.slug}", f"plans/{tenant.plan}"):
        for suffix in ("", "/keys/welcome", "/history", "/diff?from=0&to=0"):
            url = f"/v1/config/{layer}{suffix}"
            assert capi.as_token(reader).get(url).status_code == 200, url
            assert capi.as_token(writer).get(url).status_code == 200, url  # a write implies the read
            assert _problem(capi.as_token(others).get(url), 403)["scope"] == "config:read"
            _problem(capi.as_token(None).get(url), 401)
