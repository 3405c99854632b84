"""Problem documents for whatever goes wrong, and the OpenAPI spec the API publishes."""

from __future__ import annotations

from anyio.from_thread import BlockingPortal

from tenantry import Tenantry
from tenantry.api import create_admin_app
from tests.api.support import Client
from tests.api.test_auth import _problem


def test_unknown_routes_and_methods(api: Client) -> None:
    problem = _problem(api.get("/v1/nothing-here"), 404)
    assert problem["instance"] == "/v1/nothing-here" and problem["title"] == "Not Found"
    problem = _problem(api.as_token(None).get("/elsewhere"), 404)
    response = api.request("PUT", "/v1/tenants")
    _problem(response, 405)
    assert "GET" in response.headers["allow"] and "POST" in response.headers["allow"]


def test_an_unexpected_error_is_a_bare_500(portal: BlockingPortal, tn: Tenantry, admin_secret: str) -> None:
    app = create_admin_app(tn)

    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    response = Client(portal, app, admin_secret).get("/v1/boom")
    problem = _problem(response, 500)
    assert "hunter2" not in response.text and "RuntimeError" not in response.text
    assert problem["type"] == "urn:tenantry:problem:internal-error"


def test_catalog_not_initialised_is_503(portal: BlockingPortal, fresh_scratch) -> None:
    with Tenantry(fresh_scratch.settings()) as bare:
        client = Client(portal, create_admin_app(bare), "tnt_aaaaaaaaaaaa_" + "A" * 43)
        problem = _problem(client.get("/v1/tenants"), 503)
        assert (
            problem["type"] == "urn:tenantry:problem:catalog-not-initialised" and "tenantry init" in problem["detail"]
        )


def test_database_unreachable_is_503(portal: BlockingPortal) -> None:
    from tenantry import Settings

    with Tenantry(Settings(database_url="host=127.0.0.1 port=1 user=nobody dbname=x", connect_timeout=1)) as down:
        client = Client(portal, create_admin_app(down), "tnt_aaaaaaaaaaaa_" + "A" * 43)
        problem = _problem(client.get("/v1/tenants"), 503)
        assert problem["type"] == "urn:tenantry:problem:database-unavailable"


def test_the_spec_and_docs_need_no_token(api: Client) -> None:
    anonymous = api.as_token(None)
    spec = anonymous.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        if path in ("/healthz", "/readyz"):  # probes: no token (tests/api/test_health.py)
            assert all("security" not in operation for operation in operations.values())
            continue
        assert path.startswith("/v1/") or path == "/metrics"
        for operation in operations.values():
            assert operation["security"] == [{"HTTPBearer": []}]
            assert "Scope: `" in operation["description"]
            for code in ("401", "403", "422", "500", "503"):
                assert list(operation["responses"][code]["content"]) == ["application/problem+json"]
    docs = anonymous.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
