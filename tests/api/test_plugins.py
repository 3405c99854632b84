"""``/v1/plugins``, ``/v1/tenants/{tenant}/plugins`` and ``/v1/plugin-errors``: list and read
plugins (registered, installed, only set in the catalog), switch them on, off and back for
plans and tenants (idempotent, audited as the token, nothing saved by a refused request),
resolve them for one tenant without answering for another, and read what they raised.

The app runs over a catalog of these tests' own, whose Tenantry registers :class:`Fragile`; the
``webhooks`` plugin that ships with tenantry is installed (an entry point) but not registered.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from anyio.from_thread import BlockingPortal
from fastapi import FastAPI

from tenantry import Tenant, Tenantry
from tenantry.api import create_admin_app
from tenantry.core.scopes import SCOPES, allows
from tenantry.plugins import LifecycleHooks
from tests.api.support import Client, MakeToken
from tests.api.test_auth import _problem
from tests.model_app import Base
from tests.support import Scratch

PLUGIN = "api-fragile"
GONE = "api-gone"  # set in the catalog, neither registered nor installed


class Fragile(LifecycleHooks):
    """Raises when a tenant it is on for is suspended, naming the tenant."""

    name = PLUGIN
    description = "raises on suspension (tests)"
    hook_retries = 0  # a call that raises is failed at once (held for a retry by hand)

    def on_tenant_suspended(self, tenant: Any) -> None:
        raise RuntimeError(f"fragile on {tenant.slug}")


@pytest.fixture(scope="module")
def plugin_catalog(server_url: str) -> Iterator[tuple[Scratch, Tenantry, FastAPI, str]]:
    db = Scratch(server_url)
    tn = Tenantry(db.settings(), metadata=Base.metadata, actor="pytest-api-plugins", plugins=[Fragile()])
    try:
        tn.schema.init()
        app = create_admin_app(tn)
        _, secret = tn.tokens.create(f"admin-{uuid.uuid4().hex[:10]}", ["admin"])
        yield db, tn, app, secret
        app.state.jobs.close()
    finally:
        tn.close()
        db.drop()


@pytest.fixture
def ptn(plugin_catalog: tuple[Scratch, Tenantry, FastAPI, str]) -> Tenantry:
    return plugin_catalog[1]


@pytest.fixture
def papi(portal: BlockingPortal, plugin_catalog: tuple[Scratch, Tenantry, FastAPI, str]) -> Client:
    """An admin client of the plugin catalog's app."""
    return Client(portal, plugin_catalog[2], plugin_catalog[3])


@pytest.fixture
def make_ptoken(ptn: Tenantry) -> MakeToken:
    def make(*scopes: str, prefix: str = "test", expires_in: Any = None) -> Any:
        return ptn.tokens.create(f"{prefix}-{uuid.uuid4().hex[:10]}", list(scopes), expires_in=expires_in)

    return make


@pytest.fixture
def make_plan(plugin_catalog: tuple[Scratch, Tenantry, FastAPI, str]) -> Callable[[], str]:
    """A pooled plan of the test's own: plan-wide settings reach no other test's tenants."""

    def make() -> str:
        name = f"p-{uuid.uuid4().hex[:10]}"
        with psycopg.connect(plugin_catalog[0].url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO tenantry.plans (name, isolation, description) VALUES (%s, 'pooled', 'test')", (name,)
            )
        return name

    return make


@pytest.fixture
def ptenant(ptn: Tenantry, make_plan: Callable[[], str]) -> Callable[..., Tenant]:
    def make(plan: str | None = None) -> Tenant:
        return ptn.tenants.create(f"pl-{uuid.uuid4().hex[:10]}", plan=plan or make_plan())

    return make


def _rows(db: Scratch, plugin: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db.url) as conn:
        return conn.execute(
            "SELECT plan, tenant_id, enabled, updated_by FROM tenantry.plugin_enablement WHERE plugin = %s ORDER BY 1, 2",
            (plugin,),
        ).fetchall()


def _resolved(client: Client, tenant: str) -> dict[str, dict[str, Any]]:
    response = client.get(f"/v1/tenants/{tenant}/plugins")
    assert response.status_code == 200, response.text
    return {item["plugin"]: item for item in response.json()["items"]}


def test_list_and_read_every_kind_of_plugin(
    papi: Client, plugin_catalog: tuple[Scratch, Tenantry, FastAPI, str], make_plan: Callable[[], str]
) -> None:
    plan = make_plan()
    with psycopg.connect(plugin_catalog[0].url, autocommit=True) as conn:  # a plugin uninstalled since
        conn.execute(
            "INSERT INTO tenantry.plugin_enablement (plugin, plan, enabled, updated_by) VALUES (%s, %s, true, 'old')",
            (GONE, plan),
        )
    response = papi.get("/v1/plugins")
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    names = [p["name"] for p in items]
    assert names == sorted(names) and {PLUGIN, GONE, "webhooks"} <= set(names)
    found = {p["name"]: p for p in items}
    assert found[PLUGIN] | {"settings": []} == {
        "name": PLUGIN,
        "source": "explicit",
        "registered": True,
        "capabilities": ["lifecycle"],
        "description": "raises on suspension (tests)",
        "error": None,
        "settings": [],
    }
    webhooks = found["webhooks"]
    assert webhooks["source"].startswith("entry point of tenantry") and webhooks["registered"] is False
    assert webhooks["capabilities"] == ["lifecycle", "config", "tables", "routes", "flags"]
    gone = found[GONE]
    assert gone["source"] == "unknown (not installed here)" and gone["registered"] is False
    assert [(s["scope"], s["target"], s["enabled"], s["updated_by"]) for s in gone["settings"]] == [
        ("plan", plan, True, "old")
    ]
    for name in (PLUGIN, GONE, "webhooks"):
        one = papi.get(f"/v1/plugins/{name}")
        assert one.status_code == 200 and one.json() == found[name]
    settings = papi.get(f"/v1/plugins/{GONE}/settings").json()
    assert settings["plugin"] == GONE and settings["items"] == gone["settings"]
    assert papi.get("/v1/plugins/webhooks/settings").json() == {
        "plugin": "webhooks",
        "items": found["webhooks"]["settings"],
    }
    for path in ("/v1/plugins/no-such-plugin", "/v1/plugins/no-such-plugin/settings"):
        assert _problem(papi.get(path), 404)["type"] == "urn:tenantry:problem:plugin-not-found"
    for bad in ("Webhooks", "web_hooks", "-x", "9lives", "x" * 41, "a%20b", "%C3%A9"):
        _problem(papi.get(f"/v1/plugins/{bad}"), 422)
        _problem(papi.get(f"/v1/plugins/{bad}/settings"), 422)
    _problem(papi.get("/v1/plugins?tenant=acme"), 422)  # lists take no filter they do not know


def test_switch_on_off_and_reset_for_a_tenant(
    papi: Client,
    ptn: Tenantry,
    plugin_catalog: tuple[Scratch, Tenantry, FastAPI, str],
    make_ptoken: MakeToken,
    ptenant: Callable[..., Tenant],
) -> None:
    token, secret = make_ptoken("plugins:write", prefix="switcher")
    client = papi.as_token(secret)
    tenant, neighbour = ptenant(), ptenant()
    path = f"/v1/plugins/{PLUGIN}/tenants/{tenant.slug}"
    on = client.put(path, json={"enabled": True})
    assert on.status_code == 200, on.text
    assert on.json() == {
        "plugin": PLUGIN,
        "scope": "tenant",
        "target": tenant.slug,
        "plan": tenant.plan,
        "tenant_id": str(tenant.id),
        "before": None,
        "after": True,
        "changed": True,
    }
    again = client.put(f"/v1/plugins/{PLUGIN}/tenants/{tenant.id}", json={"enabled": True})  # by id: the same setting
    assert again.status_code == 200 and again.json() == on.json() | {"before": True, "changed": False}
    assert _resolved(client, tenant.slug)[PLUGIN] == {
        "plugin": PLUGIN,
        "enabled": True,
        "source": "tenant",
        "registered": True,
    }
    assert _resolved(client, str(tenant.id))[PLUGIN]["enabled"] is True
    # the neighbour (same kind of plan, created alongside) is not switched on
    assert _resolved(client, neighbour.slug)[PLUGIN] == {
        "plugin": PLUGIN,
        "enabled": False,
        "source": "default",
        "registered": True,
    }
    with ptn.tenant(tenant.slug):  # the app process sees it too
        assert ptn.plugins.is_enabled(PLUGIN)
    with ptn.tenant(neighbour.slug):
        assert not ptn.plugins.is_enabled(PLUGIN)
    settings = client.get(f"/v1/plugins/{PLUGIN}/settings").json()["items"]
    mine = [s for s in settings if s["tenant_id"] == str(tenant.id)]
    assert [(s["scope"], s["target"], s["enabled"], s["updated_by"]) for s in mine] == [
        ("tenant", tenant.slug, True, f"token:{token.name}")
    ]
    assert not [s for s in settings if s["tenant_id"] == str(neighbour.id)]

    off = client.put(path, json={"enabled": False})
    assert off.status_code == 200 and (off.json()["before"], off.json()["after"], off.json()["changed"]) == (
        True,
        False,
        True,
    )
    assert _resolved(client, tenant.slug)[PLUGIN] == {
        "plugin": PLUGIN,
        "enabled": False,
        "source": "tenant",
        "registered": True,
    }
    reset = client.delete(path)
    assert reset.status_code == 200 and (reset.json()["before"], reset.json()["after"], reset.json()["changed"]) == (
        False,
        None,
        True,
    )
    assert _resolved(client, tenant.slug)[PLUGIN]["source"] == "default"
    idle = client.delete(path)  # idempotent: nothing to reset
    assert idle.status_code == 200 and (idle.json()["before"], idle.json()["after"], idle.json()["changed"]) == (
        None,
        None,
        False,
    )
    assert [r for r in _rows(plugin_catalog[0], PLUGIN) if r[1] in (tenant.id, neighbour.id)] == []

    entries = [
        e
        for e in ptn.audit.list(target_type="plugin", target=PLUGIN, limit=1000)
        if (e.after or e.before or {}).get("tenant_id") == str(tenant.id)
    ]
    assert [e.action for e in entries] == ["plugin.reset", "plugin.disable", "plugin.enable"]  # no-ops wrote nothing
    assert {e.actor for e in entries} == {f"token:{token.name}"}


def test_plan_settings_and_a_tenant_override(
    papi: Client, ptn: Tenantry, make_plan: Callable[[], str], ptenant: Callable[..., Tenant]
) -> None:
    plan, other_plan = make_plan(), make_plan()
    first, second, elsewhere = ptenant(plan), ptenant(plan), ptenant(other_plan)
    on = papi.put(f"/v1/plugins/{PLUGIN}/plans/{plan}", json={"enabled": True})
    assert on.status_code == 200, on.text
    assert on.json() == {
        "plugin": PLUGIN,
        "scope": "plan",
        "target": plan,
        "plan": plan,
        "tenant_id": None,
        "before": None,
        "after": True,
        "changed": True,
    }
    assert _resolved(papi, first.slug)[PLUGIN]["source"] == "plan" and _resolved(papi, second.slug)[PLUGIN]["enabled"]
    assert _resolved(papi, elsewhere.slug)[PLUGIN] == {
        "plugin": PLUGIN,
        "enabled": False,
        "source": "default",
        "registered": True,
    }
    papi.put(f"/v1/plugins/{PLUGIN}/tenants/{second.slug}", json={"enabled": False}).raise_for_status()
    assert (_resolved(papi, second.slug)[PLUGIN]["enabled"], _resolved(papi, second.slug)[PLUGIN]["source"]) == (
        False,
        "tenant",
    )
    assert _resolved(papi, first.slug)[PLUGIN]["enabled"] is True
    assert (first.id, first.slug) in ptn.plugins.tenants(PLUGIN)  # what the plugin's background work visits
    assert (second.id, second.slug) not in ptn.plugins.tenants(PLUGIN)
    settings = papi.get(f"/v1/plugins/{PLUGIN}/settings").json()["items"]
    ours = [(s["scope"], s["target"], s["enabled"]) for s in settings if s["target"] in (plan, second.slug)]
    assert ours == [("plan", plan, True), ("tenant", second.slug, False)]  # plans first
    reset = papi.delete(f"/v1/plugins/{PLUGIN}/plans/{plan}")
    assert reset.status_code == 200 and reset.json()["after"] is None and reset.json()["changed"] is True
    assert _resolved(papi, first.slug)[PLUGIN]["source"] == "default"
    assert _resolved(papi, second.slug)[PLUGIN]["source"] == "tenant"  # its own setting stays
    assert papi.delete(f"/v1/plugins/{PLUGIN}/plans/{plan}").json()["changed"] is False
    # a plugin that is only installed can be switched on (the apps that register it run it)
    webhooks = papi.put(f"/v1/plugins/webhooks/plans/{other_plan}", json={"enabled": True})
    assert webhooks.status_code == 200 and webhooks.json()["changed"] is True
    assert _resolved(papi, elsewhere.slug)["webhooks"] == {
        "plugin": "webhooks",
        "enabled": True,
        "source": "plan",
        "registered": False,
    }
    assert _resolved(papi, first.slug)["webhooks"]["enabled"] is False


def test_refused_writes_are_problems_and_save_nothing(
    papi: Client,
    ptn: Tenantry,
    plugin_catalog: tuple[Scratch, Tenantry, FastAPI, str],
    make_plan: Callable[[], str],
    ptenant: Callable[..., Tenant],
) -> None:
    db = plugin_catalog[0]
    plan = make_plan()
    tenant = ptenant(plan)
    before_rows = _rows(db, PLUGIN) + _rows(db, "no-such-plugin")
    audit_before = len(ptn.audit.list(target_type="plugin", limit=1000))
    tenant_path = f"/v1/plugins/{PLUGIN}/tenants/{tenant.slug}"
    for body in (
        {},
        {"enabled": "yes"},
        {"enabled": "true"},
        {"enabled": 1},
        {"enabled": None},
        {"enabled": True, "plan": plan},
        [True],
    ):
        _problem(papi.put(tenant_path, json=body), 422)
        _problem(papi.put(f"/v1/plugins/{PLUGIN}/plans/{plan}", json=body), 422)
    _problem(papi.put(tenant_path), 422)  # no body
    _problem(papi.put(tenant_path, content=b"{enabled", headers={"content-type": "application/json"}), 422)
    for method in ("PUT", "DELETE"):
        body = {"enabled": True} if method == "PUT" else None
        unknown = _problem(papi.request(method, f"/v1/plugins/no-such-plugin/tenants/{tenant.slug}", json=body), 404)
        assert unknown["type"] == "urn:tenantry:problem:plugin-not-found"
        _problem(papi.request(method, f"/v1/plugins/no-such-plugin/plans/{plan}", json=body), 404)
        for bad in ("Fragile", "a_b", "x" * 41, "-x"):
            _problem(papi.request(method, f"/v1/plugins/{bad}/tenants/{tenant.slug}", json=body), 422)
        missing_plan = _problem(papi.request(method, f"/v1/plugins/{PLUGIN}/plans/no-such-plan", json=body), 404)
        assert missing_plan["type"] == "urn:tenantry:problem:plan-not-found"
        for key in ("no-such-tenant", str(uuid.uuid4()), "Upper", "a%22%3B%20drop", "pg_catalog", "x" * 64, "tenantry"):
            refused = _problem(papi.request(method, f"/v1/plugins/{PLUGIN}/tenants/{key}", json=body), 404)
            assert refused["type"] == "urn:tenantry:problem:tenant-not-found"
    # switching on or off needs a plugin that is registered or installed: one only set in the
    # catalog can be reset, not switched
    _problem(papi.put(f"/v1/plugins/{GONE}/tenants/{tenant.slug}", json={"enabled": False}), 404)
    assert _rows(db, PLUGIN) + _rows(db, "no-such-plugin") == before_rows
    assert len(ptn.audit.list(target_type="plugin", limit=1000)) == audit_before
    # a deleted tenant takes no settings, by slug or by id
    ptn.tenants.delete(tenant.slug)
    for key in (tenant.slug, str(tenant.id)):
        _problem(papi.put(f"/v1/plugins/{PLUGIN}/tenants/{key}", json={"enabled": True}), 404)
        _problem(papi.get(f"/v1/tenants/{key}/plugins"), 404)
    assert _rows(db, PLUGIN) == [r for r in before_rows if r[1] != tenant.id]


def test_a_tenant_lookup_answers_for_that_tenant_only(
    papi: Client, ptn: Tenantry, make_plan: Callable[[], str], ptenant: Callable[..., Tenant]
) -> None:
    plan = make_plan()
    on, off = ptenant(plan), ptenant(plan)
    papi.put(f"/v1/plugins/{PLUGIN}/tenants/{on.slug}", json={"enabled": True}).raise_for_status()
    for _ in range(3):  # warm caches must not answer for the other tenant either
        for tenant, expected in ((on, True), (off, False), (on, True)):
            for key in (tenant.slug, str(tenant.id)):
                body = papi.get(f"/v1/tenants/{key}/plugins").json()
                assert (body["tenant"], body["tenant_id"], body["plan"]) == (tenant.slug, str(tenant.id), plan)
                assert {i["plugin"]: i["enabled"] for i in body["items"]}[PLUGIN] is expected
    assert ptn.plugins.enabled_for(off.slug) == [] and PLUGIN in ptn.plugins.enabled_for(on.slug)
    for key in ("no-such-tenant", str(uuid.uuid4()), "Upper", "pg_catalog", "x" * 64):
        assert _problem(papi.get(f"/v1/tenants/{key}/plugins"), 404)["type"] == "urn:tenantry:problem:tenant-not-found"
    _problem(papi.get(f"/v1/tenants/{'x' * 101}/plugins"), 422)
    _problem(papi.get(f"/v1/tenants/{on.slug}/plugins?plugin={PLUGIN}"), 422)


def test_errors_of_plugins_by_plugin_and_tenant(
    papi: Client, make_plan: Callable[[], str], ptenant: Callable[..., Tenant]
) -> None:
    plan = make_plan()
    hit, spared = ptenant(plan), ptenant(plan)
    papi.put(f"/v1/plugins/{PLUGIN}/tenants/{hit.slug}", json={"enabled": True}).raise_for_status()
    for tenant in (hit, spared):  # its hook raises for the tenant it is on for; the suspension stands
        suspended = papi.patch(f"/v1/tenants/{tenant.slug}", json={"status": "suspended"})
        assert suspended.status_code == 200 and suspended.json()["status"] == "suspended", suspended.text
    response = papi.get("/v1/plugin-errors", params={"plugin": PLUGIN, "tenant": hit.slug})
    assert response.status_code == 200, response.text
    [error] = response.json()["items"]
    assert (error["plugin"], error["hook"], error["tenant"], error["tenant_id"], error["count"]) == (
        PLUGIN,
        "on_tenant_suspended",
        hit.slug,
        str(hit.id),
        1,
    )
    assert f"RuntimeError: fragile on {hit.slug}" in error["last_error"]
    assert papi.get("/v1/plugin-errors", params={"tenant": str(hit.id)}).json()["items"] == [error]
    assert papi.get("/v1/plugin-errors", params={"tenant": spared.slug}).json()["items"] == []
    assert papi.get("/v1/plugin-errors", params={"plugin": "webhooks", "tenant": hit.slug}).json()["items"] == []
    everything = papi.get("/v1/plugin-errors").json()["items"]
    assert error in everything and not [e for e in everything if e["tenant_id"] == str(spared.id)]
    assert not [e for e in everything if spared.slug in e["last_error"]]
    assert len(papi.get("/v1/plugin-errors", params={"limit": 1}).json()["items"]) == 1
    for query in (
        "limit=0",
        "limit=501",
        "plugin=Bad_Name",
        "plugin=" + "x" * 41,
        "tenant=" + "x" * 101,
        "hook=x",
        "limit=1&limit=2",
    ):
        _problem(papi.get(f"/v1/plugin-errors?{query}"), 422)
    _problem(papi.get("/v1/plugin-errors", params={"tenant": "no-such-tenant"}), 404)


def test_scopes(
    papi: Client, make_ptoken: MakeToken, ptenant: Callable[..., Tenant], make_plan: Callable[[], str]
) -> None:
    plan = make_plan()
    tenant = ptenant(plan)
    _, reader = make_ptoken("plugins:read")
    _, others = make_ptoken(*[s for s in SCOPES if s != "admin" and not allows([s], "plugins:read")])
    reads = [
        "/v1/plugins",
        f"/v1/plugins/{PLUGIN}",
        f"/v1/plugins/{PLUGIN}/settings",
        f"/v1/tenants/{tenant.slug}/plugins",
        "/v1/plugin-errors",
    ]
    for path in reads:
        assert papi.as_token(reader).get(path).status_code == 200, path
        assert _problem(papi.as_token(others).get(path), 403)["scope"] == "plugins:read"
        _problem(papi.as_token(None).get(path), 401)
    for method, path in (
        ("PUT", f"/v1/plugins/{PLUGIN}/tenants/{tenant.slug}"),
        ("DELETE", f"/v1/plugins/{PLUGIN}/tenants/{tenant.slug}"),
        ("PUT", f"/v1/plugins/{PLUGIN}/plans/{plan}"),
        ("DELETE", f"/v1/plugins/{PLUGIN}/plans/{plan}"),
    ):
        body = {"enabled": True} if method == "PUT" else None
        for secret in (reader, others):
            assert _problem(papi.as_token(secret).request(method, path, json=body), 403)["scope"] == "plugins:write"
        _problem(papi.as_token(None).request(method, path, json=body), 401)
    assert _resolved(papi, tenant.slug)[PLUGIN]["source"] == "default"  # nothing changed
    settings = papi.get(f"/v1/plugins/{PLUGIN}/settings").json()["items"]
    assert not [s for s in settings if s["target"] in (plan, tenant.slug)]


def test_hook_queue_lists_and_retries_failed_calls(
    papi: Client, ptn: Tenantry, make_plan: Callable[[], str], ptenant: Callable[..., Tenant], make_ptoken: MakeToken
) -> None:
    plan = make_plan()
    hit, spared = ptenant(plan), ptenant(plan)
    papi.put(f"/v1/plugins/{PLUGIN}/tenants/{hit.slug}", json={"enabled": True}).raise_for_status()
    for tenant in (hit, spared):
        papi.patch(f"/v1/tenants/{tenant.slug}", json={"status": "suspended"}).raise_for_status()
    response = papi.get("/v1/plugin-hooks", params={"plugin": PLUGIN, "tenant": hit.slug})
    assert response.status_code == 200, response.text
    page = response.json()
    [call] = page["items"]
    assert (call["event"], call["tenant"], call["status"], call["attempts"]) == ("suspended", hit.slug, "failed", 1)
    assert f"fragile on {hit.slug}" in call["last_error"] and page["counts"][PLUGIN]["failed"] >= 1
    assert papi.get("/v1/plugin-hooks", params={"tenant": spared.slug}).json()["items"] == []  # off for it
    assert [
        c["id"]
        for c in papi.get("/v1/plugin-hooks", params={"status": "failed", "limit": 500}).json()["items"]
        if c["tenant_id"] == str(spared.id)
    ] == []

    _, writer = make_ptoken("plugins:write", prefix="hooks")
    retried = papi.as_token(writer).post("/v1/plugin-hooks/retry", json={"ids": [call["id"]]})
    assert retried.status_code == 200 and retried.json() == {"retried": [call["id"]]}, retried.text
    [entry] = [
        e for e in ptn.audit.list(target_type="plugin", target=PLUGIN, limit=20) if e.action == "plugin.hooks.retry"
    ][:1]
    assert entry.actor.startswith("token:hooks-")
    deadline = time.monotonic() + 5
    while True:  # delivered again (by the app's hook runner, or here): it still raises
        ptn.plugins.deliver(hit.slug)
        again = papi.get("/v1/plugin-hooks", params={"plugin": PLUGIN, "tenant": hit.slug}).json()["items"]
        if [(c["status"], c["attempts"]) for c in again] == [("failed", 1)] or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert [(c["status"], c["attempts"]) for c in again] == [("failed", 1)]
    assert ptn.plugins.errors(plugin=PLUGIN, tenant=hit.slug)[0].count >= 2

    for body in ({}, {"ids": [0]}, {"ids": "1"}, {"plugin": "Bad_Name"}, {"ids": [1], "extra": True}):
        _problem(papi.post("/v1/plugin-hooks/retry", json=body), 422)
    _problem(papi.post("/v1/plugin-hooks/retry", json={"tenant": "no-such-tenant"}), 404)
    for query in ("status=bogus", "limit=0", "plugin=Bad_Name"):
        _problem(papi.get(f"/v1/plugin-hooks?{query}"), 422)
    _problem(papi.get("/v1/plugin-hooks", params={"tenant": "no-such-tenant"}), 404)
    _, reader = make_ptoken("plugins:read")
    assert papi.as_token(reader).get("/v1/plugin-hooks").status_code == 200
    assert (
        _problem(papi.as_token(reader).post("/v1/plugin-hooks/retry", json={"ids": [call["id"]]}), 403)["scope"]
        == "plugins:write"
    )
