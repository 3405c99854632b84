"""``/v1/flags``: create (idempotent), read, list by pages, change, kill and unkill, delete, and
evaluate for a tenant; definitions validated whole (problems listed, nothing saved), every
change audited as the token."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from tenantry import Tenant, Tenantry
from tests.api.support import Client, MakeToken
from tests.api.test_auth import _problem


def _key(prefix: str = "f") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_create_read_and_create_again(capi: Client, ctn: Tenantry, make_ctoken: MakeToken) -> None:
    token, secret = make_ctoken("flags:write", prefix="flagger")
    key = _key()
    created = capi.as_token(secret).post("/v1/flags", json={"key": key, "description": "the new dashboard"})
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/v1/flags/{key}"
    flag = created.json()
    assert flag["kind"] == "boolean" and flag["variants"] == {"on": True, "off": False}
    assert flag["default"] == "off" and flag["off"] == "off" and flag["killed"] is False and flag["rollout"] is None
    assert flag["updated_by"] == f"token:{token.name}"
    assert capi.get(f"/v1/flags/{key}").json() == flag
    again = capi.post("/v1/flags", json={"key": key, "description": "the new dashboard"})
    assert again.status_code == 200 and again.json() == flag
    clash = _problem(capi.post("/v1/flags", json={"key": key, "rollout": 50}), 409)
    assert clash["type"] == "urn:tenantry:problem:flag-exists"
    [entry] = ctn.audit.list(target_type="flag", target=key)
    assert entry.action == "flag.create" and entry.actor == f"token:{token.name}"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"key": "f-x", "rollout": 120}, "rollout"),
        ({"key": "f-x", "rollout": {"on": 30, "off": 30}}, "add up to 100"),
        ({"key": "f-x", "kind": "multivariate", "variants": {"a": 1}}, "default variant"),
        ({"key": "f-x", "kind": "multivariate", "variants": {"a": 1}, "default": "b"}, "not a variant"),
        (
            {"key": "f-x", "rules": [{"when": [{"attribute": "plan", "op": "near", "value": 1}], "variant": "on"}]},
            "rules[0].when[0].op:",
        ),
        ({"key": "f-x", "rules": [{"when": [], "variant": "on", "rollout": 5}]}, "either"),
        ({"key": "f-x", "enable_at": "2030-01-01T00:00:00"}, "enable_at"),
        ({"key": "f-x", "enable_at": "2030-01-02T00:00:00Z", "disable_at": "2030-01-01T00:00:00Z"}, "before"),
        ({"key": "Bad Key"}, "key"),
    ],
)
def test_invalid_definitions_are_422_with_problems(capi: Client, body: dict, fragment: str) -> None:
    problem = _problem(capi.post("/v1/flags", json=body), 422)
    assert problem["type"] == "urn:tenantry:problem:config-invalid"
    assert problem["problems"] and fragment in " ".join(problem["problems"]) + problem["detail"], problem
    _problem(capi.get(f"/v1/flags/{body['key'].replace(' ', '-').lower()}"), 404)  # nothing saved


def test_refused_request_bodies(capi: Client) -> None:
    for body in (
        {},
        {"key": "f-x", "unknown": 1},
        {"key": "f-x", "kind": "ternary"},
        {"key": "f-x", "description": "x" * 501},
        {"key": "f-x\x00"},
        {"key": "f-x", "kind": "multivariate", "variants": {"a": "nul\x00"}, "default": "a"},
    ):
        _problem(capi.post("/v1/flags", json=body), 422)
    nan = capi.post(
        "/v1/flags", content=b'{"key": "f-x", "rollout": NaN}', headers={"content-type": "application/json"}
    )
    _problem(nan, 422)


def test_change_kill_unkill_delete(
    capi: Client, ctn: Tenantry, make_ctoken: MakeToken, plan_tenant: Callable[..., Tenant]
) -> None:
    token, secret = make_ctoken("flags:write", prefix="flagger")
    client = capi.as_token(secret)
    tenant = plan_tenant()
    key = _key()
    client.post("/v1/flags", json={"key": key}).raise_for_status()

    def served() -> dict:
        response = client.get(f"/v1/flags/{key}/evaluate", params={"tenant": tenant.slug})
        assert response.status_code == 200, response.text
        return response.json()

    assert served()["value"] is False and served()["reason"] == "DEFAULT"
    rolled = client.patch(f"/v1/flags/{key}", json={"rollout": 100, "description": "everyone"})
    assert rolled.status_code == 200 and rolled.json()["rollout"] == {"on": 100, "off": 0}
    assert served() == {
        "key": key,
        "tenant": tenant.slug,
        "user": None,
        "value": True,
        "variant": "on",
        "reason": "SPLIT",
        "rule": None,
    }
    killed = client.post(f"/v1/flags/{key}/kill")
    assert killed.status_code == 200 and killed.json()["killed"] is True
    assert served()["value"] is False and served()["reason"] == "DISABLED"
    assert client.post(f"/v1/flags/{key}/kill").json()["updated_at"] == killed.json()["updated_at"]  # a no-op
    assert client.post(f"/v1/flags/{key}/unkill").json()["killed"] is False
    assert served()["value"] is True
    cleared = client.patch(f"/v1/flags/{key}", json={"rollout": None}).json()
    assert cleared["rollout"] is None and cleared["description"] == "everyone"  # other fields kept
    _problem(client.patch(f"/v1/flags/{key}", json={"rollout": 150}), 422)
    assert client.get(f"/v1/flags/{key}").json()["rollout"] is None  # nothing saved
    _problem(client.patch(f"/v1/flags/{key}", json={"key": "renamed"}), 422)
    deleted = client.delete(f"/v1/flags/{key}")
    assert deleted.status_code == 200 and deleted.json() == {"key": key, "deleted": True}
    assert _problem(client.delete(f"/v1/flags/{key}"), 404)["type"] == "urn:tenantry:problem:flag-not-found"
    _problem(client.get(f"/v1/flags/{key}"), 404)
    _problem(client.get(f"/v1/flags/{key}/evaluate", params={"tenant": tenant.slug}), 404)
    for method, path in (
        ("PATCH", f"/v1/flags/{key}"),
        ("POST", f"/v1/flags/{key}/kill"),
        ("POST", f"/v1/flags/{key}/unkill"),
    ):
        _problem(client.request(method, path, json={} if method == "PATCH" else None), 404)
    actions = [(e.action, e.actor) for e in ctn.audit.list(target_type="flag", target=key)]
    assert [a for a, _ in actions] == [
        "flag.delete",
        "flag.update",
        "flag.unkill",
        "flag.kill",
        "flag.update",
        "flag.create",
    ]
    assert {actor for _, actor in actions} == {f"token:{token.name}"}


def test_evaluate_by_tenant_rules_and_users(
    capi: Client, ctn: Tenantry, plan_tenant: Callable[..., Tenant], make_plan: Callable[[], str]
) -> None:
    plan = make_plan()
    targeted, other = plan_tenant(plan), plan_tenant()
    key = _key()
    capi.post(
        "/v1/flags",
        json={
            "key": key,
            "kind": "multivariate",
            "variants": {"blue": "#00f", "green": "#0f0", "red": "#f00"},
            "default": "blue",
            "rules": [
                {"when": [{"attribute": "plan", "op": "eq", "value": plan}], "variant": "green"},
                {"when": [{"attribute": "user", "op": "starts_with", "value": "beta-"}], "variant": "red"},
            ],
        },
    ).raise_for_status()
    hit = capi.get(f"/v1/flags/{key}/evaluate", params={"tenant": str(targeted.id)}).json()
    assert hit == {
        "key": key,
        "tenant": targeted.slug,
        "user": None,
        "value": "#0f0",
        "variant": "green",
        "reason": "TARGETING_MATCH",
        "rule": 0,
    }
    miss = capi.get(f"/v1/flags/{key}/evaluate", params={"tenant": other.slug}).json()
    assert miss["variant"] == "blue" and miss["reason"] == "DEFAULT" and miss["rule"] is None
    beta = capi.get(f"/v1/flags/{key}/evaluate", params={"tenant": other.slug, "user": "beta-ann"}).json()
    assert beta["variant"] == "red" and beta["rule"] == 1 and beta["user"] == "beta-ann"
    # what the running app sees is the same
    with ctn.tenant(targeted.slug):
        assert ctn.flags.evaluate(key).variant == "green"
    problem = _problem(capi.get(f"/v1/flags/{key}/evaluate", params={"tenant": "no-such-tenant"}), 404)
    assert problem["type"] == "urn:tenantry:problem:tenant-not-found"
    _problem(capi.get(f"/v1/flags/{key}/evaluate"), 422)  # which tenant?
    _problem(capi.get(f"/v1/flags/{key}/evaluate", params={"tenant": other.slug, "attribute": "x"}), 422)
    ctn.tenants.delete(other.slug)
    _problem(capi.get(f"/v1/flags/{key}/evaluate", params={"tenant": str(other.id)}), 404)


def test_list_pages_by_key(capi: Client) -> None:
    prefix = f"pg{uuid.uuid4().hex[:6]}"
    keys = sorted(f"{prefix}-{i}" for i in range(5))
    for key in keys:
        capi.post("/v1/flags", json={"key": key}).raise_for_status()
    seen: list[str] = []
    body = capi.get("/v1/flags", params={"limit": 2}).json()
    while True:
        seen += [f["key"] for f in body["items"]]
        assert len(body["items"]) <= 2
        if not body["next"]:
            break
        body = capi.get(body["next"]).json()
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    assert [k for k in seen if k.startswith(prefix)] == keys
    for query in ("limit=0", "limit=501", "cursor=abc", "cursor=WzFd", "kind=boolean"):
        _problem(capi.get(f"/v1/flags?{query}"), 422)


def test_scopes(capi: Client, make_ctoken: MakeToken, plan_tenant: Callable[..., Tenant]) -> None:
    tenant = plan_tenant()
    key = _key()
    capi.post("/v1/flags", json={"key": key}).raise_for_status()
    _, reader = make_ctoken("flags:read")
    _, others = make_ctoken("tenants:write", "config:write", "domains:write")
    for path in ("/v1/flags", f"/v1/flags/{key}", f"/v1/flags/{key}/evaluate?tenant={tenant.slug}"):
        assert capi.as_token(reader).get(path).status_code == 200
        assert _problem(capi.as_token(others).get(path), 403)["scope"] == "flags:read"
        _problem(capi.as_token(None).get(path), 401)
    for method, path, body in (
        ("POST", "/v1/flags", {"key": _key()}),
        ("PATCH", f"/v1/flags/{key}", {"rollout": 100}),
        ("POST", f"/v1/flags/{key}/kill", None),
        ("POST", f"/v1/flags/{key}/unkill", None),
        ("DELETE", f"/v1/flags/{key}", None),
    ):
        assert _problem(capi.as_token(reader).request(method, path, json=body), 403)["scope"] == "flags:write"
        assert _problem(capi.as_token(others).request(method, path, json=body), 403)["scope"] == "flags:write"
    flag = capi.get(f"/v1/flags/{key}").json()
    assert flag["rollout"] is None and flag["killed"] is False  # nothing changed
