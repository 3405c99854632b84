"""Prometheus metrics of one process: :class:`TenantryMetrics`.

Needs ``prometheus-client`` (the ``metrics`` extra). One object per process, handed to the
edge (``TenantMiddleware(..., metrics=m)``) and to the admin API
(``create_admin_app(tn, metrics=m)``, which serves it at ``/metrics``); an app process that
runs no admin API mounts :meth:`TenantryMetrics.asgi` where its scraper looks.

=========================================  ===============================================
``tenantry_requests_total``                requests served, by ``plan`` and ``status`` class
``tenantry_request_seconds``               their latency, a histogram by ``plan``
``tenantry_tenant_requests_total``         requests of the top N tenants by ``tenant``
                                           (slug), the rest as ``tenant="other"``
``tenantry_tenant_request_seconds_total``  the time those requests took, the same way
``tenantry_limit_refusals_total``          refusals by ``limit`` (``rate``, ``concurrency``,
                                           ``process``, ``store``) and ``plan``
``tenantry_limiter_errors_total``          calls to the limits' store (Redis) that failed
``tenantry_limiter_store_up``              1 while the limits' store answers
``tenantry_catalog_listener_connected``    1 while the catalog's LISTEN connection is up
``tenantry_cache_hits_total``              reads answered by each catalog cache (``cache``),
``tenantry_cache_misses_total``            and not (hit ratio: hits / (hits + misses))
``tenantry_pool_connections``              connections of each route's pool (``route``) by
                                           ``state`` (``in_use``, ``idle``), and
``tenantry_pool_waiting``                  borrowers waiting for one
``tenantry_queue_depth``                   unfinished plugin hook calls and jobs (``queue``);
                                           read at scrape time, only where the process holds
                                           the admin connection
=========================================  ===============================================

**Cardinality.** Labels take values from small sets (plans, limits, caches, routes); tenants
appear only as the top N by requests (``top_tenants``, default 20) and ``other``. The top N
is chosen at each scrape, so a tenant that drops out of it moves its count into ``other``:
use ``rate()`` on the per-tenant series over windows, not their raw values.
"""

from __future__ import annotations

import bisect
import heapq
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from tenantry.core.model import Tenant
from tenantry.db.catalog.jobs import queue_depths
from tenantry.errors import ConfigurationError

if TYPE_CHECKING:
    from tenantry.app import Tenantry
    from tenantry.core.caches import CatalogCache

__all__ = ["CONTENT_TYPE", "TenantryMetrics"]

_log = logging.getLogger("tenantry.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: tenants followed one by one at most; the ones after are counted as "other" straight away
_MOST_TENANTS = 50_000
_OTHER = "other"
#: latency buckets, seconds: a web request's range
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class TenantryMetrics:
    """The process's metrics (see the module's docs). ``tn``: the Tenantry whose listener,
    caches, pools and queues are read at each scrape (``None``: only what the edge counts);
    ``top_tenants``: tenants given series of their own; ``registry``: a
    ``prometheus_client.CollectorRegistry`` (default: one of its own, so that two objects in
    one process, as in tests, do not clash)."""

    def __init__(self, tn: Tenantry | None = None, *, top_tenants: int = 20, registry: Any = None) -> None:
        try:
            import prometheus_client as prom
        except ImportError as err:
            raise ConfigurationError("metrics need prometheus-client: pip install 'tenantry[metrics]'") from err
        self._prom = prom
        self.tn = tn
        self.top_tenants = max(0, top_tenants)
        self.registry = registry if registry is not None else prom.CollectorRegistry()
        r = self.registry
        self.refusals = prom.Counter(
            "tenantry_limit_refusals", "Requests refused by a limit, by limit and plan", ["limit", "plan"], registry=r
        )
        self.limiter_errors = prom.Counter(
            "tenantry_limiter_errors", "Calls to the limits' store (Redis) that failed", registry=r
        )
        self.limiter_store = prom.Gauge("tenantry_limiter_store_up", "1 while the limits' store answers", registry=r)
        self.limiter_store.set(1)
        self._lock = threading.Lock()
        #: plan -> its counts (kept as plain numbers: the request path pays a dict lookup and
        #: a few additions, not prometheus-client's locks; read at scrape time)
        self._plans: dict[str, _PlanStats] = {}
        #: slug -> [requests, seconds]; "other" for those past _MOST_TENANTS
        self._tenants: dict[str, list[float]] = {}
        self._caches: list[CatalogCache[Any, Any]] = []
        r.register(_Scraped(self))

    # -- what the edge reports ----------------------------------------------------------------
    def served(self, tenant: Tenant, status: int, seconds: float) -> None:
        """One request of ``tenant`` answered with ``status`` after ``seconds``."""
        plan = self._plans.get(tenant.plan)
        if plan is None:
            with self._lock:
                plan = self._plans.setdefault(tenant.plan, _PlanStats())
        plan.statuses[min(6, status // 100)] += 1
        plan.buckets[bisect.bisect_left(_BUCKETS, seconds)] += 1
        plan.seconds += seconds
        counts = self._tenants.get(tenant.slug)
        if counts is None:
            with self._lock:
                key = tenant.slug if len(self._tenants) < _MOST_TENANTS else _OTHER
                counts = self._tenants.setdefault(key, [0.0, 0.0])
        counts[0] += 1
        counts[1] += seconds

    def refused(self, limit: str, plan: str) -> None:
        """One request refused by ``limit`` (``rate``, ``concurrency``, ``process``, ``store``)."""
        self.refusals.labels(limit, plan).inc()

    def limiter_error(self) -> None:
        self.limiter_errors.inc()

    def limiter_up(self, up: bool) -> None:
        self.limiter_store.set(1 if up else 0)

    def watch_cache(self, cache: CatalogCache[Any, Any]) -> None:
        """Report ``cache``'s hits and misses too (the Tenantry's own caches are reported)."""
        if cache not in self._caches:
            self._caches.append(cache)

    # -- exposition ---------------------------------------------------------------------------
    def exposition(self) -> bytes:
        """The metrics in Prometheus's text format (:data:`CONTENT_TYPE`)."""
        return bytes(self._prom.generate_latest(self.registry))

    def asgi(self) -> Callable[..., Any]:
        """An ASGI app answering every GET with :meth:`exposition` (mount it, e.g. at
        ``/metrics``, in an app process that runs no admin API; exempt it from the edge)."""

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            assert scope["type"] == "http"
            body = self.exposition()
            headers = [(b"content-type", CONTENT_TYPE.encode()), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        return app

    def _top(self) -> tuple[list[tuple[str, list[float]]], list[float]]:
        """The top tenants by requests, and the sum of the rest."""
        items = list(self._tenants.items())
        top = heapq.nlargest(self.top_tenants, (i for i in items if i[0] != _OTHER), key=lambda i: i[1][0])
        chosen = {slug for slug, _ in top}
        other = [0.0, 0.0]
        for slug, (count, seconds) in items:
            if slug not in chosen:
                other[0] += count
                other[1] += seconds
        return top, other


class _PlanStats:
    """A plan's requests by status class (index: the status's first digit; 6 for other) and
    its latency histogram (a count per bucket of :data:`_BUCKETS`, the last for +Inf)."""

    __slots__ = ("buckets", "seconds", "statuses")

    def __init__(self) -> None:
        self.statuses = [0] * 7
        self.buckets = [0] * (len(_BUCKETS) + 1)
        self.seconds = 0.0


class _Scraped:
    """The metrics read at scrape time."""

    def __init__(self, owner: TenantryMetrics) -> None:
        self.owner = owner

    def describe(self) -> Iterable[Any]:
        return []  # (read at scrape time; nothing to check when registered)

    def collect(self) -> Iterator[Any]:
        owner = self.owner
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        served = CounterMetricFamily(
            "tenantry_requests", "Requests the edge served, by plan and status class", labels=["plan", "status"]
        )
        latency = HistogramMetricFamily(
            "tenantry_request_seconds", "Latency of the requests the edge served", labels=["plan"]
        )
        for plan, stats in list(owner._plans.items()):
            for digit, answered in enumerate(stats.statuses):
                if answered:
                    served.add_metric([plan, f"{digit}xx" if 1 <= digit <= 5 else "other"], answered)
            cumulative: list[tuple[str, float]] = []
            running = 0
            for bound, observed in zip((*map(str, _BUCKETS), "+Inf"), stats.buckets):
                running += observed
                cumulative.append((bound, running))
            latency.add_metric([plan], cumulative, stats.seconds)
        yield served
        yield latency

        requests = CounterMetricFamily(
            "tenantry_tenant_requests",
            "Requests served, for the top tenants by requests and the rest",
            labels=["tenant"],
        )
        seconds = CounterMetricFamily(
            "tenantry_tenant_request_seconds", "Time spent serving them, the same way", labels=["tenant"]
        )
        top, other = owner._top()
        for slug, (count, spent) in top:
            requests.add_metric([slug], count)
            seconds.add_metric([slug], spent)
        requests.add_metric([_OTHER], other[0])
        seconds.add_metric([_OTHER], other[1])
        yield requests
        yield seconds

        tn = owner.tn
        caches = list(owner._caches)
        if tn is not None:
            caches = [*tn.directory.caches(), *tn.plane.caches(), *caches]
            listener = GaugeMetricFamily("tenantry_catalog_listener_connected", "1 while the catalog LISTEN is up")
            listener.add_metric([], 1.0 if tn.plane.trusted() else 0.0)
            yield listener
        hits = CounterMetricFamily("tenantry_cache_hits", "Reads answered by a catalog cache", labels=["cache"])
        misses = CounterMetricFamily("tenantry_cache_misses", "Reads a catalog cache did not answer", labels=["cache"])
        for cache in caches:
            hits.add_metric([cache.name], cache.hits)
            misses.add_metric([cache.name], cache.misses)
        yield hits
        yield misses
        if tn is None:
            return
        yield from _pools(tn, GaugeMetricFamily)
        depth = _queues(tn)
        if depth:
            queues = GaugeMetricFamily("tenantry_queue_depth", "Unfinished work in a queue", labels=["queue"])
            for name, count in depth.items():
                queues.add_metric([name], count)
            yield queues


def _pools(tn: Tenantry, gauge: Any) -> Iterator[Any]:
    connections = gauge("tenantry_pool_connections", "Connections of a route's pool", labels=["route", "state"])
    waiting = gauge("tenantry_pool_waiting", "Borrowers waiting for a connection of a route's pool", labels=["route"])
    for route, stats in tn.plane.pool_stats().items():
        size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
        connections.add_metric([route, "in_use"], max(0, size - idle))
        connections.add_metric([route, "idle"], idle)
        waiting.add_metric([route], stats.get("requests_waiting", 0))
    yield connections
    yield waiting


def _queues(tn: Tenantry) -> dict[str, int]:
    if tn.settings.data_plane:
        return {}  # (no admin connection: the queues are the control plane's to report)
    try:
        with tn.admin() as conn, conn.transaction():
            conn.execute("SET LOCAL statement_timeout = 1000")
            return queue_depths(conn)
    except Exception as err:  # a scrape must answer whatever the catalog does
        _log.warning("queue depths not read for the metrics: %s", err)
        return {}
