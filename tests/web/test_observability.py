"""What the edge tells about the tenants it serves: Prometheus metrics (by plan, refusals by
limit, the top tenants and the rest), the tenant on every log record, INFO lines for
lifecycle operations, and OpenTelemetry's span attributes and Baggage."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.trace import NonRecordingSpan, SpanContext
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tenantry import Tenantry
from tenantry.observability import TenantLogFilter, TenantryMetrics, install_log_filter
from tenantry.web import PathPrefixResolver
from tests.web.edge_app import client, starlette_app, wrap
from tests.web.limits_support import make_plan


def test_metrics_count_by_plan_and_keep_tenants_bounded(tn: Tenantry, make_tenant, run) -> None:
    limited = make_plan(tn, {"requests_per_second": 1, "burst": 1})
    open_plan = make_plan(tn, {})
    busy, calm, quiet = (
        make_tenant("obs", plan=open_plan),
        make_tenant("obs", plan=open_plan),
        make_tenant("obs", plan=limited),
    )
    metrics = TenantryMetrics(tn, top_tenants=1)
    app = wrap(tn, starlette_app(tn, []), [PathPrefixResolver("/t")], metrics=metrics)

    async def main() -> None:
        async with client(app) as c:
            for slug, n in ((busy.slug, 5), (calm.slug, 2), (quiet.slug, 3)):
                for _ in range(n):
                    await c.get(f"/t/{slug}/who")

    run(main())
    text = metrics.exposition().decode()
    assert f'tenantry_requests_total{{plan="{open_plan}",status="2xx"}} 7.0' in text
    assert f'tenantry_requests_total{{plan="{limited}",status="2xx"}} 1.0' in text  # two refused, not served
    assert f'tenantry_request_seconds_count{{plan="{open_plan}"}} 7.0' in text
    assert f'tenantry_limit_refusals_total{{limit="rate",plan="{limited}"}} 2.0' in text
    # one tenant of its own (the busiest), the others as "other"
    tenants = dict(re.findall(r'tenantry_tenant_requests_total\{tenant="([^"]+)"\} (\S+)', text))
    assert tenants == {busy.slug: "5.0", "other": "3.0"}
    assert re.search(r'tenantry_cache_hits_total\{cache="plan limits"\} [1-9]', text)
    assert re.search(r'tenantry_cache_hits_total\{cache="tenant lookups"\} [1-9]', text)


def test_every_record_names_the_tenant(tn: Tenantry, make_tenant, run, caplog: pytest.LogCaptureFixture) -> None:
    t = make_tenant("obs", plan=make_plan(tn, {}))
    log = logging.getLogger("tests.app")

    async def endpoint(request: Request) -> JSONResponse:
        log.warning("serving")
        return JSONResponse({})

    app = wrap(tn, Starlette(routes=[Route("/x", endpoint)]), [PathPrefixResolver("/t")])
    handler = caplog.handler
    installed = TenantLogFilter()
    handler.addFilter(installed)
    try:

        async def main() -> None:
            async with client(app) as c:
                await c.get(f"/t/{t.slug}/x")

        with caplog.at_level(logging.WARNING, logger="tests.app"):
            run(main())
            log.warning("between requests")
    finally:
        handler.removeFilter(installed)
    inside, outside = (r for r in caplog.records if r.name == "tests.app")
    assert (inside.tenant_slug, inside.tenant_id) == (t.slug, str(t.id))  # type: ignore[attr-defined]
    assert (outside.tenant_slug, outside.tenant_id) == ("-", "-")  # type: ignore[attr-defined]


def test_install_log_filter_adds_one_filter() -> None:
    logger = logging.getLogger("tests.install-filter")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    try:
        first, again = install_log_filter(logger), install_log_filter(logger)
        assert first is again and handler.filters == [first]
    finally:
        logger.removeHandler(handler)


def test_lifecycle_operations_log_at_info(tn: Tenantry, make_tenant, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tenantry.audit"):
        t = make_tenant("obs")
        tn.tenants.suspend(t.slug)
    lines = [(r.getMessage(), getattr(r, "action", None)) for r in caplog.records if r.name == "tenantry.audit"]
    assert (f"tenant.create tenant {t.slug} by {tn.actor}", "tenant.create") in lines
    assert any(action == "tenant.suspended" and t.slug in said for said, action in lines)


class _Recording(NonRecordingSpan):
    """A span that keeps its attributes (the API alone records nothing; no SDK needed)."""

    def __init__(self) -> None:
        super().__init__(SpanContext(trace_id=1, span_id=1, is_remote=False))
        self.attributes: dict[str, Any] = {}

    def is_recording(self) -> bool:
        return True

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value


def test_the_tenant_goes_on_the_span_and_into_the_baggage(tn: Tenantry, make_tenant, run) -> None:
    t = make_tenant("obs", plan=make_plan(tn, {}))
    span = _Recording()

    async def endpoint(request: Request) -> JSONResponse:
        return JSONResponse({"id": baggage.get_baggage("tenant.id"), "slug": baggage.get_baggage("tenant.slug")})

    edge = wrap(tn, Starlette(routes=[Route("/x", endpoint)]), [PathPrefixResolver("/t")])

    async def traced(scope: Any, receive: Any, send: Any) -> None:  # as an OTel ASGI middleware would
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await edge(scope, receive, send)
        finally:
            otel_context.detach(token)

    async def main() -> Any:
        async with client(traced) as c:
            return (await c.get(f"/t/{t.slug}/x")).json()

    assert run(main()) == {"id": str(t.id), "slug": t.slug}
    assert span.attributes == {"tenant.id": str(t.id), "tenant.slug": t.slug}
    assert baggage.get_baggage("tenant.slug") is None  # left behind nowhere
