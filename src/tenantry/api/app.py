"""The admin HTTP API: one FastAPI app over one Tenantry.

::

    from tenantry import Settings, Tenantry
    from tenantry.api import create_admin_app

    app = create_admin_app(Tenantry(Settings.from_env()))
    # uvicorn module:app, or `tenantry api serve`

Everything under ``/v1`` needs an admin API token (``Authorization: Bearer ...``, made with
``tenantry tokens create``) with the scope each route names; every change is audited as
``token:<name>``. The OpenAPI 3.1 spec is at ``/openapi.json``, its pages at ``/docs`` (Swagger
UI) and ``/redoc`` (ReDoc), served without a CDN; ``/`` links to them (:mod:`tenantry.api.frontdoor`).
Errors are RFC 9457 problem documents; lists are paged by cursor; long operations answer 202
with a job to poll at ``/v1/jobs/{id}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Request, Security
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from tenantry.api.auth import TokenAuth, bearer
from tenantry.api.frontdoor import install_front_door
from tenantry.api.health import default_metrics, install_health
from tenantry.api.problems import install_handlers
from tenantry.api.routes import ROUTERS
from tenantry.app import Tenantry
from tenantry.errors import InvalidInput
from tenantry.observability.metrics import TenantryMetrics
from tenantry.problems import PROBLEM_JSON
from tenantry.services.domain_checks import DomainChecker
from tenantry.services.jobs import JobRunner

__all__ = ["API_PREFIX", "create_admin_app"]

API_PREFIX = "/v1"

_DESCRIPTION = """\
The control plane of tenantry: tenants, plans, cells, placements, moves, custom domains,
configuration, feature flags, brands, plugins, app migrations and the audit log.

**Authentication**: `Authorization: Bearer <token>`, a token made with
`tenantry tokens create NAME --scope tenants:write ...`. Each operation names the scope it
needs; a write scope implies the matching read, `admin` implies every scope.

**Health**: `/healthz` (the process answers) and `/readyz` (the catalog answers and its
listener is connected) need no token; `/metrics` (Prometheus) needs `metrics:read`.

**Errors** are RFC 9457 problem documents (`application/problem+json`).
**Lists** are paged: `limit` (1-500) and the `next_cursor` of the previous page.
**Long operations** (schema- and database-tier tenants, moves) answer `202` with a job;
poll `GET /v1/jobs/{id}` until it is `done` or `failed`.
"""


def create_admin_app(
    tn: Tenantry,
    *,
    job_workers: int = 2,
    docs: bool = True,
    domain_checkers: Mapping[str, DomainChecker] | None = None,
    metrics: TenantryMetrics | None = None,
) -> FastAPI:
    """The admin API over ``tn``; long operations run in ``job_workers`` background threads.

    ``domain_checkers`` (``{"http": HttpChecker(connect_to=...), "dns": DnsChecker(...)}``)
    replace the default ownership checks of ``POST /v1/domains/{hostname}/verify`` for the
    methods they name (the operator's choice: a request cannot say where a check connects).

    ``/`` is a page of links; ``docs=False`` leaves out the documentation pages (``/docs``,
    ``/redoc``) but not the spec. ``/healthz`` and ``/readyz`` answer without a token;
    ``/metrics`` serves ``metrics`` (default: a :class:`~tenantry.observability.TenantryMetrics`
    of its own when prometheus-client is installed; give the edge's to see its requests too)
    to tokens with ``metrics:read`` (:mod:`tenantry.api.health`).

    The app does not own ``tn``: close it yourself. Shutting the app down (its lifespan)
    waits for running jobs to finish.
    """
    checkers = dict(domain_checkers or {})
    unknown = sorted(set(checkers) - {"http", "dns"})
    if unknown:
        raise InvalidInput(f"domain checkers are for the methods 'http' and 'dns', not {', '.join(map(repr, unknown))}")
    runner = JobRunner(tn.plane, workers=job_workers)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await anyio.to_thread.run_sync(runner.close)

    app = FastAPI(
        title="tenantry admin API",
        version="1",
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load from a CDN: the front door serves its own
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.tenantry = tn
    app.state.jobs = runner
    app.state.domain_checkers = checkers
    api = APIRouter(prefix=API_PREFIX, dependencies=[Security(bearer), Depends(refuse_unknown_query)])
    for router in ROUTERS:
        api.include_router(router)
    app.include_router(api)
    install_health(app, tn, metrics if metrics is not None else default_metrics(tn))
    install_front_door(app, api_prefix=API_PREFIX, docs=docs)
    app.add_middleware(TokenAuth, tn=tn, prefix=API_PREFIX)
    install_handlers(app)  # its catch-all goes outside the token check
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


async def refuse_unknown_query(request: Request) -> None:
    """A query parameter the route does not take, or one given twice, is refused (422), not
    ignored: a misspelt filter (``?stauts=active``) must not quietly list everything."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = {param.alias for param in route.dependant.query_params}
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        shown = ", ".join(repr(name[:50]) for name in unknown[:5])
        takes = ", ".join(sorted(known)) or "none"
        raise InvalidInput(f"unknown query parameter(s) {shown}; this takes: {takes}")
    repeated = sorted(name for name in known if len(request.query_params.getlist(name)) > 1)
    if repeated:  # each takes one value: which one was meant?
        raise InvalidInput(f"query parameter(s) {', '.join(map(repr, repeated))} given more than once")


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's spec, with error responses as problem documents only."""
    if app.openapi_schema is None:
        spec = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            openapi_version=app.openapi_version,
        )
        for operations in spec.get("paths", {}).values():
            for operation in operations.values():
                for code, answer in operation.get("responses", {}).items():
                    content = answer.get("content", {})
                    if code[:1] in "45" and PROBLEM_JSON in content:
                        schema = content.pop("application/json", {}).get("schema")
                        if schema is not None and not content[PROBLEM_JSON].get("schema"):
                            content[PROBLEM_JSON]["schema"] = schema
        app.openapi_schema = spec
    return app.openapi_schema
