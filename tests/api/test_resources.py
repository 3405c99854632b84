"""Plans, cells, migration status and the audit log through the API."""

from __future__ import annotations

import uuid

from tenantry import Tenantry
from tests.api.support import Client, MakeToken
from tests.api.test_auth import _problem


def test_plans(api: Client) -> None:
    plans = api.get("/v1/plans").json()["items"]
    assert [p["name"] for p in plans] == sorted(p["name"] for p in plans)
    assert {"free", "business", "enterprise"} <= {p["name"] for p in plans}
    free = api.get("/v1/plans/free").json()
    assert free["isolation"] == "pooled" and free["limits"]["requests_per_second"] == 10
    assert _problem(api.get("/v1/plans/gold"), 404)["type"] == "urn:tenantry:problem:plan-not-found"
    _problem(api.get("/v1/plans/nul%00"), 422)


def test_pin_a_plan(api: Client, tn: Tenantry, make_token: MakeToken) -> None:
    token, secret = make_token("plans:write", prefix="pinner")
    planner = api.as_token(secret)
    try:
        pinned = planner.patch("/v1/plans/enterprise", json={"cell": "primary"})
        assert pinned.status_code == 200, pinned.text
        assert pinned.json()["cell"] == "primary" and pinned.json()["cell_labels"] == {}
        labelled = planner.patch("/v1/plans/enterprise", json={"cell_labels": {"region": "eu"}}).json()
        assert labelled["cell"] == "primary" and labelled["cell_labels"] == {"region": "eu"}  # cell kept
        entries = tn.audit.list(target_type="plan", target="enterprise")[:2]
        assert {e.actor for e in entries} == {f"token:{token.name}"} and {e.action for e in entries} == {"plan.pin"}
        assert _problem(planner.patch("/v1/plans/enterprise", json={"cell": "nowhere"}), 404)
        _problem(planner.patch("/v1/plans/enterprise", json={"cell": "Bad Name"}), 422)
        _problem(planner.patch("/v1/plans/enterprise", json={"cell_labels": {"k": "v\x00"}}), 422)
        _problem(planner.patch("/v1/plans/enterprise", json={"isolation": "shared"}), 422)
        _problem(planner.patch("/v1/plans/gold", json={"cell": None}), 404)
    finally:
        unpinned = api.patch("/v1/plans/enterprise", json={"cell": None, "cell_labels": {}}).json()
        assert unpinned["cell"] is None and unpinned["cell_labels"] == {}


def test_cells(api: Client) -> None:
    cells = api.get("/v1/cells").json()["items"]
    primary = next(c for c in cells if c["name"] == "primary")
    assert primary["server"] == "the catalog's server" and primary["status"] == "active"
    assert api.get("/v1/cells/primary").json()["name"] == "primary"
    _problem(api.get("/v1/cells/nowhere"), 404)


def test_add_drain_and_undrain_a_cell(api: Client, tn: Tenantry, second_cell) -> None:
    name = f"api-{uuid.uuid4().hex[:8]}"
    try:
        dsn = second_cell.url
        added = api.post("/v1/cells", json={"name": name, "dsn": dsn, "capacity": 5, "labels": {"region": "eu"}})
        assert added.status_code == 201, added.text
        assert added.headers["location"] == f"/v1/cells/{name}"
        cell = added.json()
        assert cell["capacity"] == 5 and cell["labels"] == {"region": "eu"} and cell["placements"] == 0
        assert "password" not in cell["server"]
        again = api.post("/v1/cells", json={"name": name, "dsn": dsn, "capacity": 5, "labels": {"region": "eu"}})
        assert again.status_code == 200
        _problem(api.post("/v1/cells", json={"name": name, "dsn": dsn + " application_name=x"}), 409)
        drained = api.patch(f"/v1/cells/{name}", json={"status": "draining"})
        assert drained.status_code == 200 and drained.json()["status"] == "draining"
        assert api.patch(f"/v1/cells/{name}", json={"status": "active"}).json()["status"] == "active"
        _problem(api.patch(f"/v1/cells/{name}", json={"status": "gone"}), 422)
        _problem(api.patch("/v1/cells/nowhere", json={"status": "draining"}), 404)
        actions = [e.action for e in tn.audit.list(target_type="cell", target=name)]
        assert actions == ["cell.activate", "cell.drain", "cell.add"]
    finally:  # the second cell's database goes with the test: a later `check` must not find it
        with tn.admin() as conn:
            conn.execute("DELETE FROM tenantry.cells WHERE name = %s", (name,))


def test_a_cell_dsn_is_never_echoed(api: Client) -> None:
    secret = "hunter2-" + uuid.uuid4().hex
    for body in (
        {"name": "Bad Name", "dsn": f"host=127.0.0.1 password={secret}"},
        {"name": "ok-name", "dsn": f"host=127.0.0.1 password={secret}", "capacity": 0},
        {"name": "ok-name", "dsn": f"host=127.0.0.1 password={secret}", "extra": secret},
    ):
        response = api.post("/v1/cells", json=body)
        assert response.status_code == 422 and secret not in response.text
    refused = api.post("/v1/cells", json={"name": "primary", "dsn": f"host=127.0.0.1 password={secret}"})
    assert refused.status_code == 422 and secret not in refused.text


def test_migration_status(api: Client) -> None:
    response = api.get("/v1/migrations")
    assert response.status_code == 200, response.text
    status = response.json()
    assert set(status) == {"head", "revisions", "behind", "failed"}
    assert status["head"] is None and status["behind"] == [] and sum(status["revisions"].values()) >= 1


def test_audit_pages(api: Client, make_tenant) -> None:
    tenant = make_tenant("aud")
    for status in ("suspended", "active") * 3:
        api.patch(f"/v1/tenants/{tenant.slug}", json={"status": status})
    first = api.get("/v1/audit", params={"target_type": "tenant", "target": tenant.slug, "limit": 3})
    body = first.json()
    assert len(body["items"]) == 3 and body["next"] and first.headers["link"].endswith('rel="next"')
    ids = [e["id"] for e in body["items"]]
    while body["next"]:
        body = api.get(body["next"]).json()
        ids += [e["id"] for e in body["items"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 7
    assert body["items"][-1]["action"] == "tenant.create"
    only = api.get("/v1/audit", params={"action": "tenant.suspended", "target": tenant.slug}).json()["items"]
    assert len(only) == 3 and {e["before"]["status"] for e in only} == {"active"}
    for query in (
        "limit=0",
        "limit=501",
        "cursor=abc",
        "cursor=WyJ4Il0",
        "cursor=Wy0xXQ",
        "cursor=WzFlMzBd",
        "cursor=Wzk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5XQ",
    ):
        _problem(api.get(f"/v1/audit?{query}"), 422)
