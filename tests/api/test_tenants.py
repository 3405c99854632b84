"""``/v1/tenants``: every route's happy path and error paths, paging, and jobs for the
schema and database tiers."""

from __future__ import annotations

import uuid

import pytest

from tenantry import Status, Tenantry
from tests.api.support import Client
from tests.api.test_auth import _problem


def _slug(prefix: str = "api") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_create_pooled_is_201_with_location(api: Client, tn: Tenantry) -> None:
    slug = _slug()
    response = api.post("/v1/tenants", json={"slug": slug, "name": "Acme Corp"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert (
        body["slug"] == slug and body["name"] == "Acme Corp" and body["plan"] == "free" and body["status"] == "active"
    )
    assert response.headers["location"] == f"/v1/tenants/{slug}"
    assert tn.tenants.get(slug).id == uuid.UUID(body["id"])
    for key in (slug, body["id"]):
        got = api.get(f"/v1/tenants/{key}")
        assert got.status_code == 200 and got.json() == body
    placement = api.get(f"/v1/tenants/{slug}/placement").json()
    assert placement == {
        "tenant": slug,
        "building": None,
        "active": {"tier": "pooled", "cell": "primary", "database": None, "schema": "tenant_data", "status": "active"},
    }


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"slug": 'a"; drop'}, 422, "not a DNS label"),
        ({"slug": "public"}, 422, "reserved"),
        ({"slug": "x" * 64}, 422, "longer than 63"),
        ({"slug": "../etc"}, 422, "not a DNS label"),
        ({"slug": "ok-x", "plan": "gold"}, 404, "no plan named"),
        ({"slug": "ok-x", "name": ""}, 422, "1 to 200"),
        ({"slug": "ok-x", "plan": "free", "cell": "elsewhere"}, 422, "primary cell"),
        ({"slug": "ok-x", "unknown": 1}, 422, "unknown"),
        ({"name": "no slug"}, 422, "slug"),
        ({"slug": "nul\x00"}, 422, "slug"),
        ({"slug": 12}, 422, "slug"),
    ],
)
def test_create_refuses_bad_input(api: Client, body: dict, status: int, fragment: str) -> None:
    problem = _problem(api.post("/v1/tenants", json=body), status)
    assert fragment in problem["detail"]


def test_validation_problems_list_the_fields(api: Client) -> None:
    problem = _problem(api.post("/v1/tenants", json={"slug": ["x"], "plan": 3, "extra": True}), 422)
    assert problem["type"] == "urn:tenantry:problem:invalid-request"
    assert {tuple(e["loc"]) for e in problem["errors"]} == {("body", "slug"), ("body", "plan"), ("body", "extra")}
    assert all("input" not in e for e in problem["errors"])
    problem = _problem(api.post("/v1/tenants", content=b"{not json", headers={"content-type": "application/json"}), 422)
    assert problem["errors"]


def test_create_twice_is_409(api: Client) -> None:
    slug = _slug()
    assert api.post("/v1/tenants", json={"slug": slug}).status_code == 201
    problem = _problem(api.post("/v1/tenants", json={"slug": slug}), 409)
    assert problem["type"] == "urn:tenantry:problem:tenant-exists"
    problem = _problem(api.post("/v1/tenants", json={"slug": slug, "plan": "business"}), 409)
    assert "exists already" in problem["detail"]


def test_unknown_tenants_are_404(api: Client) -> None:
    for key in ("no-such-tenant", str(uuid.uuid4()), "NUL%00", "a%22%3B%20drop", "x" * 80):
        for method, path, body in (
            ("GET", f"/v1/tenants/{key}", None),
            ("GET", f"/v1/tenants/{key}/placement", None),
            ("PATCH", f"/v1/tenants/{key}", {"status": "suspended"}),
            ("DELETE", f"/v1/tenants/{key}", None),
            ("POST", f"/v1/tenants/{key}/move", {"plan": "business"}),
            ("POST", f"/v1/tenants/{key}/move/abort", None),
        ):
            problem = _problem(api.request(method, path, json=body), 404)
            assert problem["type"] == "urn:tenantry:problem:tenant-not-found"


def test_lifecycle_by_patch_and_delete(api: Client, tn: Tenantry, make_tenant) -> None:
    tenant = make_tenant("life")
    path = f"/v1/tenants/{tenant.slug}"
    for status in ("suspended", "active", "archived"):
        response = api.patch(path, json={"status": status})
        assert response.status_code == 200 and response.json()["status"] == status
    assert api.patch(path, json={"status": "archived"}).json()["status"] == "archived"  # no-op
    problem = _problem(api.patch(path, json={"status": "suspended"}), 409)
    assert problem["type"] == "urn:tenantry:problem:invalid-transition"
    for status in ("deleted", "moving", "provisioning", "bogus"):
        _problem(api.patch(path, json={"status": status}), 422)
    response = api.delete(path)
    assert response.status_code == 200
    assert response.json() == {
        "id": str(tenant.id),
        "slug": tenant.slug,
        "status": "deleted",
        "rows_deleted": response.json()["rows_deleted"],
    }
    _problem(api.get(path), 404)
    assert api.get(f"/v1/tenants/{tenant.id}").json()["status"] == "deleted"  # by id, its tombstone
    assert tn.tenants.get(tenant.id).status is Status.DELETED


def test_list_pages_by_cursor(api: Client, make_tenant) -> None:
    made = sorted(make_tenant("page").slug for _ in range(5))
    seen: list[str] = []
    url: str | None = "/v1/tenants?limit=2"
    pages = 0
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= 2
        seen += [t["slug"] for t in body["items"]]
        url = body["next"]
        if url:
            assert response.headers["link"] == f'<{url}>; rel="next"'
            assert body["next_cursor"] in url
        pages += 1
    assert pages >= 3 and seen == sorted(seen) and len(seen) == len(set(seen))
    assert set(made) <= set(seen)
    everything = api.get("/v1/tenants", params={"limit": 500}).json()
    assert [t["slug"] for t in everything["items"]] == seen[: len(everything["items"])]


def test_list_filters(api: Client, make_tenant) -> None:
    suspended = make_tenant("filt")
    api.patch(f"/v1/tenants/{suspended.slug}", json={"status": "suspended"})
    listed = api.get("/v1/tenants", params={"status": "suspended", "limit": 500}).json()["items"]
    assert suspended.slug in {t["slug"] for t in listed} and {t["status"] for t in listed} == {"suspended"}
    assert api.get("/v1/tenants", params={"plan": "no-such-plan"}).json() == {
        "items": [],
        "next": None,
        "next_cursor": None,
    }
    gone = make_tenant("filt")
    api.delete(f"/v1/tenants/{gone.slug}")
    live = {t["slug"] for t in api.get("/v1/tenants", params={"limit": 500}).json()["items"]}
    assert gone.slug not in live
    with_deleted = api.get("/v1/tenants", params={"limit": 500, "include_deleted": True, "status": "deleted"}).json()
    assert gone.slug in {t["slug"] for t in with_deleted["items"]}


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=501",
        "limit=abc",
        "cursor=not-a-cursor",
        "cursor=WzFd",
        "cursor=W251bGwsbnVsbF0",
        "cursor=WyJceDAwIiwiMSJd",
        "status=gone",
        "stauts=active",
        "limit=5&extra=",
        "plan=free&plan=business",
    ],
)
def test_bad_paging_and_filters_are_422(api: Client, query: str) -> None:
    _problem(api.get(f"/v1/tenants?{query}"), 422)


def test_schema_tier_create_is_a_job_to_poll(api: Client, tn: Tenantry, make_token) -> None:
    token, secret = make_token("tenants:write", prefix="builder")
    client = api.as_token(secret)
    slug = _slug("biz")
    response = client.post("/v1/tenants", json={"slug": slug, "plan": "business"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["kind"] == "tenant.create" and job["tenant"] == slug and job["actor"] == f"token:{token.name}"
    assert job["steps"] == ["create_schema", "deploy_tables", "activate"]
    assert job["request"] == {"slug": slug, "name": None, "plan": "business", "cell": None}
    done = client.wait_job(job["id"])
    assert done["status"] == "done", done
    assert done["steps_done"] == ["create_schema", "deploy_tables", "activate"]
    assert done["result"]["tenant"]["slug"] == slug and done["result"]["tenant"]["status"] == "active"
    assert not done["resumable"] and done["retry"] is None and done["error"] is None
    assert done["links"] == {"self": f"/v1/jobs/{job['id']}", "tenant": f"/v1/tenants/{slug}"}
    placement = client.get(f"/v1/tenants/{slug}/placement").json()["active"]
    assert placement["tier"] == "schema" and placement["schema"].startswith("tenant_")
    actors = {e.actor for e in tn.audit.list(target_type="tenant", target=slug)}
    assert actors == {f"token:{token.name}"}
    # the same request again: the tenant exists
    _problem(client.post("/v1/tenants", json={"slug": slug, "plan": "business"}), 409)


def test_database_tier_create_refused_before_a_job(api: Client) -> None:
    problem = _problem(api.post("/v1/tenants", json={"slug": _slug(), "plan": "enterprise", "cell": "nowhere"}), 422)
    assert "no cell named" in problem["detail"]
    _problem(api.post("/v1/tenants", json={"slug": "Bad Slug", "plan": "enterprise"}), 422)


def test_database_tier_create_job(api: Client, tn: Tenantry) -> None:
    slug = _slug("ent")
    response = api.post("/v1/tenants", json={"slug": slug, "plan": "enterprise", "name": "Big Co"})
    assert response.status_code == 202, response.text
    done = api.wait_job(response.json()["id"])
    assert done["status"] == "done", done
    assert done["steps_done"] == ["create_database", "install_local", "deploy_tables", "activate"]
    assert tn.tenants.placement(slug).isolation.value == "database"  # type: ignore[union-attr]
    assert api.delete(f"/v1/tenants/{slug}").status_code == 200
