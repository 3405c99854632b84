"""``/healthz``, ``/readyz`` and ``/metrics`` on the admin API.

* ``GET /healthz`` (no token): the process answers. Always 200 while it runs: a liveness
  probe restarts a process that stops answering, and nothing else.
* ``GET /readyz`` (no token): the process can serve: the catalog answers a query (through
  the reader role where there is one), and the catalog listener is connected (the caches are
  trusted; while it is not, every request reads the catalog). 200 with each check's state, or
  503 (a problem document, ``checks`` naming what failed, ``Retry-After``): a readiness probe
  takes the process out of the load balancer until it is back.
* ``GET /metrics`` (token with ``metrics:read``): the Prometheus exposition of
  :class:`tenantry.observability.TenantryMetrics` (prometheus-client, the ``metrics`` extra;
  without it, 503 saying so).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal

from fastapi import APIRouter, Depends, FastAPI, Response, Security
from pydantic import BaseModel

from tenantry.api.auth import TokenAuth, bearer, require
from tenantry.api.deps import TN, problems
from tenantry.api.problems import ProblemResponse
from tenantry.app import Tenantry
from tenantry.errors import ConfigurationError
from tenantry.observability.metrics import CONTENT_TYPE, TenantryMetrics
from tenantry.problems import PROBLEM_JSON, problem

__all__ = ["METRICS_PATH", "install_health"]

_log = logging.getLogger("tenantry.api")

METRICS_PATH = "/metrics"
#: seconds /readyz waits for the catalog listener it has just started to connect
LISTENER_WAIT = 2.0
#: seconds the catalog query of /readyz may take
CATALOG_TIMEOUT = 2.0


class Health(BaseModel):
    status: Literal["ok"]


class Checks(BaseModel):
    catalog: str
    """``ok``, or why the catalog did not answer."""
    listener: str
    """``ok``, or ``not connected``."""


class Ready(BaseModel):
    status: Literal["ready"]
    checks: Checks


def _catalog(tn: Tenantry) -> None:
    with tn.catalog_reader() as conn:
        conn.execute("SELECT 1").fetchone()


def _listener(tn: Tenantry) -> bool:
    tn.plane.listen()  # (started by the first lookup otherwise)
    deadline = time.monotonic() + LISTENER_WAIT
    while not tn.plane.trusted() and time.monotonic() < deadline:
        time.sleep(0.02)
    return tn.plane.trusted()


def install_health(app: FastAPI, tn: Tenantry, metrics: TenantryMetrics | None) -> None:
    """Add the three routes (and the token check of ``/metrics``) to the admin API."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=Health)
    def healthz() -> Health:
        """Liveness: the process answers. No token needed."""
        return Health(status="ok")

    @router.get(
        "/readyz",
        response_model=Ready,
        responses={503: {"description": "Not ready: `checks` names what failed.", "content": {PROBLEM_JSON: {}}}},
    )
    async def readyz(tn: TN) -> Ready | ProblemResponse:
        """Readiness: the catalog answers and its listener is connected. No token needed."""
        checks = {"catalog": "ok", "listener": "ok"}
        started = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.to_thread(_catalog, tn), CATALOG_TIMEOUT)
        except TimeoutError:
            checks["catalog"] = f"no answer within {CATALOG_TIMEOUT:g} s"
        except Exception as err:  # whatever keeps it from answering: the probe says so, not 500
            checks["catalog"] = type(err).__name__
            _log.warning("readiness: the catalog did not answer: %s", err)
        if checks["catalog"] == "ok" and not await asyncio.to_thread(_listener, tn):
            checks["listener"] = "not connected"
        elif checks["catalog"] != "ok":
            checks["listener"] = "not checked"
        if all(v == "ok" for v in checks.values()):
            return Ready(status="ready", checks=Checks(**checks))
        failed = ", ".join(k for k, v in checks.items() if v != "ok" and v != "not checked")
        return ProblemResponse(
            problem(
                503,
                f"not ready: {failed} ({time.monotonic() - started:.1f} s)",
                code="not-ready",
                headers={"Retry-After": "1"},
                checks=checks,
            )
        )

    @router.get(
        METRICS_PATH,
        response_class=Response,
        dependencies=[Security(bearer), Depends(require("metrics:read"))],
        responses={
            200: {
                "description": "The Prometheus text exposition.",
                "content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
            },
            **problems(),
        },
    )
    def prometheus() -> Response:
        """The process's Prometheus metrics (see `tenantry.observability.metrics`).
        Scope: `metrics:read`."""
        if metrics is None:
            raise ConfigurationError("metrics need prometheus-client: pip install 'tenantry[metrics]'")
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    app.include_router(router)
    app.add_middleware(TokenAuth, tn=tn, prefix=METRICS_PATH)


def default_metrics(tn: Tenantry) -> TenantryMetrics | None:
    """A collector over ``tn`` when prometheus-client is installed, else ``None``."""
    try:
        return TenantryMetrics(tn)
    except ConfigurationError:
        return None
