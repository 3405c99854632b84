"""``/healthz``, ``/readyz`` and ``/metrics`` on the admin API."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from anyio.from_thread import BlockingPortal

from tenantry import Settings, Tenantry
from tenantry.api import create_admin_app
from tenantry.observability import TenantryMetrics
from tests.api.support import Client, MakeToken


def test_health_and_readiness_need_no_token(api: Client) -> None:
    anonymous = api.as_token(None)
    assert anonymous.get("/healthz").json() == {"status": "ok"}
    ready = anonymous.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {"catalog": "ok", "listener": "ok"}}


@pytest.fixture
def down(portal: BlockingPortal) -> Iterator[Client]:
    """The admin API over a catalog that is not there."""
    with Tenantry(Settings(database_url="host=127.0.0.1 port=1 user=nobody dbname=x", connect_timeout=1)) as tn:
        app = create_admin_app(tn)
        yield Client(portal, app)
        app.state.jobs.close()


def test_not_ready_without_a_catalog(down: Client) -> None:
    assert down.get("/healthz").status_code == 200  # alive: a restart would not help
    answer = down.get("/readyz")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert answer.headers["content-type"] == "application/problem+json"
    doc = answer.json()
    assert doc["type"] == "urn:tenantry:problem:not-ready" and doc["checks"]["catalog"] == "DatabaseUnavailable"
    assert doc["checks"]["listener"] == "not checked" and "host=" not in answer.text


def test_metrics_need_their_scope(api: Client, make_token: MakeToken) -> None:
    assert api.as_token(None).get("/metrics").status_code == 401
    _, reader = make_token("tenants:read")
    refused = api.as_token(reader).get("/metrics")
    assert refused.status_code == 403 and refused.json()["scope"] == "metrics:read"
    _, scraper = make_token("metrics:read")
    answer = api.as_token(scraper).get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert "tenantry_catalog_listener_connected" in text
    assert re.search(r'tenantry_cache_hits_total\{cache="tenant lookups"\} \d', text)
    assert 'tenantry_tenant_requests_total{tenant="other"} 0.0' in text
    assert re.search(r'tenantry_queue_depth\{queue="jobs"\} \d', text)


def test_the_spec_documents_them(api: Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/readyz", "/metrics"} <= set(paths)
    assert "security" not in paths["/healthz"]["get"] and "503" in paths["/readyz"]["get"]["responses"]


def test_an_app_process_mounts_the_metrics_itself(portal: BlockingPortal, tn: Tenantry) -> None:
    metrics = TenantryMetrics(tn, top_tenants=3)
    answer = Client(portal, metrics.asgi()).get("/metrics")  # type: ignore[arg-type]
    assert answer.status_code == 200 and "tenantry_requests_total{" not in answer.text  # none served yet
    assert "tenantry_limiter_store_up 1.0" in answer.text
