"""The edge's limits: each tenant's rate and concurrency, and the process's own cap.

:class:`EdgeLimiter` is what :class:`~tenantry.web.TenantMiddleware` asks before it serves a
tenant's request:

* **Rate** (``requests_per_second``, ``burst`` in the plan's limits): GCRA
  (:func:`tenantry.core.limits.gcra`), one float per tenant, in this process by default. With
  ``Settings.limits_storage = "redis://..."`` the state is shared by every process, in Redis,
  through the `limits <https://limits.readthedocs.io>`_ package's moving window of the
  policy the headers state (``q`` requests in any ``w`` seconds).
* **Concurrency** (``concurrency``): requests of the tenant in flight in this process.
* **The process** (``Settings.edge_max_in_flight``): requests in flight over all tenants.

A tenant over its limits gets 429 (:class:`~tenantry.RateLimited`,
:class:`~tenantry.ConcurrencyLimited`) with ``Retry-After`` and the ``RateLimit`` /
``RateLimit-Policy`` fields; the process over its cap gets 503 (:class:`~tenantry.Overloaded`).
Every answer to a limited tenant carries the two fields.

**Where the limits come from.** :class:`CatalogLimits` reads each plan's ``limits`` once
(through the routing views, so a data-plane process can) and keeps them in a
:class:`~tenantry.core.caches.CatalogCache` that the catalog's ``plan:<name>`` events drop, so
a plan change takes effect within a second everywhere. Each tenant's overrides
(``tn.tenants.limits_set``) are read by ``tn.directory`` with the tenant and dropped with its
lookup by the tenant's ``limits:<id>`` events; another source of overrides plugs in
as a :class:`TenantLayer` (``CatalogLimits(tn, overrides=...)``): its document is merged over
the plan's (:meth:`~tenantry.core.limits.EdgeLimits.from_layers`).

**The store out of reach.** When Redis does not answer within ``Settings.limits_timeout``,
the limiter logs it once, counts it, leaves Redis alone for a second and either serves the
request without a rate limit (``limits_fail_open``, the default) or refuses it with 503 and
``Retry-After`` (fail closed). Never a 500. Concurrency and the process cap are local and go
on either way.

**Cost.** A tenant whose plan limits nothing costs one cache lookup; nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from tenantry.core.caches import CatalogCache
from tenantry.core.events import EventKind
from tenantry.core.limits import (
    NO_LIMITS,
    Decision,
    EdgeLimits,
    gcra,
    policy_field,
    ratelimit_field,
)
from tenantry.core.model import Tenant
from tenantry.db.catalog.plans import plan_limits
from tenantry.errors import ConcurrencyLimited, ConfigurationError, Overloaded, RateLimited
from tenantry.services.directory import NO_OVERRIDES

if TYPE_CHECKING:
    from tenantry.app import Tenantry

__all__ = [
    "Admission",
    "CatalogLimits",
    "EdgeLimiter",
    "LimitsSource",
    "MemoryRates",
    "RateResult",
    "RateStore",
    "RedisRates",
    "StoreUnavailable",
    "TenantLayer",
]

_log = logging.getLogger("tenantry.limits")

#: seconds the limiter leaves an unreachable store alone before it tries again
STORE_BACKOFF = 1.0


# -- where limits come from -----------------------------------------------------------------
class LimitsSource(Protocol):
    """Gives each tenant's :class:`EdgeLimits`."""

    def cached(self, tenant: Tenant) -> EdgeLimits | None:
        """The tenant's limits if known without I/O, else ``None`` (then :meth:`load`)."""

    def load(self, tenant: Tenant) -> EdgeLimits:
        """The tenant's limits, reading the catalog if need be (called in a worker thread)."""


class TenantLayer(Protocol):
    """Per-tenant limits over the plan's (an override set for one tenant)."""

    def cached(self, tenant_id: uuid.UUID) -> tuple[bool, Mapping[str, Any] | None]:
        """``(known, document)``: whether the tenant's override is known without I/O, and its
        document (``None``: the tenant has none)."""

    def load(self, tenant_id: uuid.UUID) -> Mapping[str, Any] | None:
        """The tenant's override document, or ``None`` (called in a worker thread)."""


class CatalogLimits:
    """Each plan's edge limits, read from the catalog and cached until the plan changes, with
    each tenant's overrides over them: those of the catalog (``tn.tenants.limits_set``, read
    by ``tn.directory`` with the tenant), or of the ``overrides`` layer given."""

    def __init__(self, tn: Tenantry, *, overrides: TenantLayer | None = None) -> None:
        self._tn = tn
        self._overrides = overrides
        self._directory = tn.directory
        self._overrides_of = tn.directory.overrides  # (bound once: the request path calls it)
        #: the limits of tenants with overrides, made once per (tenant lookup, plan limits,
        #: overrides), by the lookup's identity (the request path hashes no id for them)
        self._own: dict[int, tuple[Tenant, object, Mapping[str, Any], EdgeLimits]] = {}
        self._own_size = max(1, tn.settings.tenant_cache_size)
        settings = tn.settings
        #: plan name -> (the plan's limits document, its EdgeLimits)
        self._plans: CatalogCache[str, tuple[Mapping[str, Any], EdgeLimits]] = CatalogCache(
            "plan limits", ttl=settings.tenant_cache_ttl, size=1024, trusted=tn.plane.trusted
        )
        tn.plane.subscribe(self._on_event, self._plans.clear)

    @property
    def cache(self) -> CatalogCache[str, tuple[Mapping[str, Any], EdgeLimits]]:
        return self._plans

    def _on_event(self, kind: EventKind, key: str) -> None:
        if kind == EventKind.PLAN:
            self._plans.drop(key)

    def cached(self, tenant: Tenant) -> EdgeLimits | None:
        hit = self._plans.get(tenant.plan)
        if hit is None:
            return None
        if self._overrides is None:
            mine = self._overrides_of(tenant)
            if mine is None:
                return None
            return hit[1] if mine is NO_OVERRIDES else self._with_own(tenant, hit, mine)
        known, own = self._overrides.cached(tenant.id)
        if not known:
            return None
        return hit[1] if own is None else self._with_own(tenant, hit, own)

    def load(self, tenant: Tenant) -> EdgeLimits:
        hit = self._plans.get(tenant.plan)
        if hit is None:
            self._tn.plane.listen()  # (the listener drops what is cached here when a plan changes)
            ticket = self._plans.begin()
            with self._tn.catalog_reader() as conn:
                document: Mapping[str, Any] = plan_limits(conn, tenant.plan)
            hit = (document, _merged(tenant, document, None))
            self._plans.put(tenant.plan, hit, ticket)
        own = self._directory.load_overrides(tenant) if self._overrides is None else self._overrides.load(tenant.id)
        return hit[1] if not own else self._with_own(tenant, hit, own)

    def _with_own(
        self, tenant: Tenant, hit: tuple[Mapping[str, Any], EdgeLimits], own: Mapping[str, Any]
    ) -> EdgeLimits:
        """The plan's limits with the tenant's over them, made once per pair of documents (by
        identity: the request path does not merge or hash them again)."""
        made = self._own.get(id(tenant))
        if made is not None and made[0] is tenant and made[1] is hit and made[2] is own:
            return made[3]
        limits = _merged(tenant, hit[0], own)
        if limits == hit[1]:
            limits = hit[1]
        if len(self._own) >= self._own_size:
            self._own.clear()
        self._own[id(tenant)] = (tenant, hit, own, limits)
        return limits


def _merged(tenant: Tenant, plan: Mapping[str, Any], own: Mapping[str, Any] | None) -> EdgeLimits:
    try:
        return EdgeLimits.from_layers(plan, own)
    except ValueError as err:
        # a plan saved before its limits were validated: serve, and say so (a refusal for a
        # limit no one can read would refuse every tenant of the plan)
        _log.error("the limits of plan %r (tenant %s) are not valid, not enforced: %s", tenant.plan, tenant.slug, err)
        return NO_LIMITS


# -- where the rate state lives -------------------------------------------------------------
class StoreUnavailable(Exception):
    """The rate store did not answer (in time)."""


#: one request against a tenant's rate: allowed or not, what is left (``None``: the store
#: does not say without another round trip), seconds to a full budget and to a retry
#: (:class:`tenantry.core.limits.Decision`; ``tat`` is the in-process store's own)
RateResult = Decision


class RateStore(Protocol):
    async def hit(self, key: str, limits: EdgeLimits) -> RateResult:
        """Count one request of ``key`` (a tenant's id) against ``limits`` (whose rate is
        set); raises :class:`StoreUnavailable` when the store cannot answer."""

    async def aclose(self) -> None: ...


class MemoryRates:
    """GCRA state in this process: one float per tenant (with the limits it was counted
    against: new limits start a full bucket, as Redis keys per window do), pruned when full."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, prune_at: int = 100_000) -> None:
        self._tat: dict[Hashable, tuple[float, EdgeLimits]] = {}
        self._clock = clock
        self._prune_at = prune_at

    async def hit(self, key: str, limits: EdgeLimits) -> RateResult:
        return self.hit_now(key, limits)

    def hit_now(self, key: Hashable, limits: EdgeLimits) -> RateResult:
        assert limits.rate is not None and limits.burst is not None
        now = self._clock()
        held = self._tat.get(key)
        tat = held[0] if held is not None and (held[1] is limits or held[1] == limits) else 0.0
        decision = gcra(tat, now, limits.rate, limits.burst)
        if decision.allowed:
            self._tat[key] = (decision.tat, limits)
            if len(self._tat) > self._prune_at:
                self._prune(now)
        return decision

    def _prune(self, now: float) -> None:
        # a tenant whose arrival time is past has a full bucket: forgetting it changes nothing
        for key in [k for k, (tat, _) in self._tat.items() if tat <= now]:
            del self._tat[key]

    async def aclose(self) -> None:
        self._tat.clear()


class RedisRates:
    """Rate state in Redis, shared by every process, through the ``limits`` package: a moving
    window of ``q`` requests in ``w`` seconds (the policy the headers state).

    One round trip for an allowed request; a refused one costs a second (to say when to retry).
    At most ``connections`` connections at once; a request that finds none free within
    ``timeout`` counts as Redis out of reach.
    """

    def __init__(self, url: str, *, timeout: float = 0.05, prefix: str = "tenantry", connections: int = 32) -> None:
        try:
            from limits import RateLimitItemPerSecond
            from limits.aio.storage import RedisStorage
            from limits.aio.strategies import MovingWindowRateLimiter
            from redis.asyncio import BlockingConnectionPool
        except ImportError as err:  # pragma: no cover - depends on the extra
            raise ConfigurationError(
                "limits_storage names Redis: install the limits extra (pip install 'tenantry[limits]')"
            ) from err
        self._item = RateLimitItemPerSecond
        self._items: dict[tuple[int, int], Any] = {}
        # a bounded pool that waits (up to the timeout) for a free connection: a burst of
        # requests must not open a connection each (redis-py's default pool would)
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        self._pool = pool
        scheme, rest = url.split("://", 1)
        self._storage = RedisStorage(
            f"async+{scheme}://{rest}",
            implementation="redispy",
            key_prefix=prefix,
            wrap_exceptions=True,
            connection_pool=pool,  # type: ignore[arg-type]  # (limits types its options narrowly)
        )
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._timeout = timeout

    def _window(self, limits: EdgeLimits) -> Any:
        quota, seconds = limits.window()
        item = self._items.get((quota, seconds))
        if item is None:
            item = self._items[(quota, seconds)] = self._item(quota, seconds)
        return item

    async def hit(self, key: str, limits: EdgeLimits) -> RateResult:
        item = self._window(limits)
        try:
            async with asyncio.timeout(self._timeout * 2):
                allowed = await self._limiter.hit(item, "rate", key)
                if allowed:
                    return Decision(True, 0.0, None, None, 0.0)
                stats = await self._limiter.get_window_stats(item, "rate", key)
        except TimeoutError as err:
            raise StoreUnavailable(f"Redis did not answer within {self._timeout * 2:g} s") from err
        except Exception as err:  # the client's errors, wrapped by limits (StorageError) or not
            raise StoreUnavailable(f"{type(err).__name__}: {err}") from err
        wait = max(0.0, stats.reset_time - time.time())
        return Decision(False, 0.0, max(0, stats.remaining), wait, wait)

    async def aclose(self) -> None:
        """Close the client's connections (made in the running event loop; the next hit
        opens new ones)."""
        await self._pool.disconnect()


# -- the limiter ----------------------------------------------------------------------------
class _Metrics(Protocol):
    def refused(self, limit: str, plan: str) -> None: ...
    def limiter_error(self) -> None: ...
    def limiter_up(self, up: bool) -> None: ...


@dataclass(slots=True)
class Admission:
    """A request let through: the headers its answer carries, and what to release after."""

    headers: list[tuple[bytes, bytes]]
    tenant_id: uuid.UUID | None
    """The tenant whose concurrency slot the request holds (``None``: none)."""


class EdgeLimiter:
    """Each tenant's rate and concurrency, and the process's cap (see the module's docs).

    ``source``: where limits come from (default :class:`CatalogLimits`); ``store``: the rate
    state (default: Redis when ``Settings.limits_storage`` is set, else this process);
    ``max_in_flight`` and ``fail_open`` default to ``Settings.edge_max_in_flight`` and
    ``Settings.limits_fail_open``; ``metrics`` receives refusals and store outages.
    """

    def __init__(
        self,
        tn: Tenantry,
        *,
        source: LimitsSource | None = None,
        store: RateStore | None = None,
        max_in_flight: int | None = None,
        fail_open: bool | None = None,
        metrics: _Metrics | None = None,
    ) -> None:
        settings = tn.settings
        self.source: LimitsSource = source if source is not None else CatalogLimits(tn)
        if store is None:
            url = settings.limits_storage
            store = (
                MemoryRates() if url is None else RedisRates(url.get_secret_value(), timeout=settings.limits_timeout)
            )
        self.store = store
        self.max_in_flight = settings.edge_max_in_flight if max_in_flight is None else max_in_flight
        self.fail_open = settings.limits_fail_open if fail_open is None else fail_open
        self.metrics = metrics
        #: requests in flight in this process: over all, and per limited tenant
        self.in_flight = 0
        self._tenants: dict[uuid.UUID, int] = {}
        self._store_down_until = 0.0
        self._store_down = False
        #: the in-process store, called without the coroutine of the protocol (the hot path)
        self._memory = store if isinstance(store, MemoryRates) else None

    def limits_of(self, tenant: Tenant) -> EdgeLimits | None:
        """The tenant's limits if known without I/O (else ``None``: call :meth:`load`)."""
        return self.source.cached(tenant)

    async def load(self, tenant: Tenant) -> EdgeLimits:
        return await asyncio.to_thread(self.source.load, tenant)

    def enter(self) -> None:
        """Count one request in flight in the process; raises :class:`Overloaded` at the cap."""
        if self.max_in_flight and self.in_flight >= self.max_in_flight:
            if self.metrics is not None:
                self.metrics.refused("process", "")
            raise Overloaded(f"this process serves {self.max_in_flight} requests at once already")
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1

    async def admit(self, tenant: Tenant, limits: EdgeLimits) -> Admission:
        """Let one request of ``tenant`` through ``limits`` (not :data:`NO_LIMITS`), or raise
        :class:`RateLimited`, :class:`ConcurrencyLimited` or :class:`Overloaded`. Call
        :meth:`release` with the admission when the request is done."""
        headers = [(b"ratelimit-policy", limits.policy)]
        held = self._tenants.get(tenant.id, 0)
        if limits.concurrency is not None and held >= limits.concurrency:
            self._refused("concurrency", tenant)
            raise ConcurrencyLimited(
                f"tenant {tenant.slug!r} has {limits.concurrency} requests in flight, as many as its plan allows",
                limit="concurrency",
                retry_in=1.0,
                fields=_fields(limits, ratelimit_field(limits, in_flight=held)),
            )
        memory = self._memory
        if memory is not None and limits.rate is not None:
            result: RateResult | None = memory.hit_now(tenant.id, limits)  # (no coroutine: the hot path)
        else:
            result = await self._rate(tenant, limits)
        if result is not None and not result.allowed:
            self._refused("rate", tenant)
            raise RateLimited(
                f"tenant {tenant.slug!r} sent more than {limits.rate:g} requests per second (bursts of {limits.burst})",
                limit="rate",
                retry_in=result.retry_after,
                fields=_fields(limits, ratelimit_field(limits, remaining=0, reset=result.reset)),
            )
        now_held = held + 1 if limits.concurrency is not None else None
        remaining = None if result is None else result.remaining
        reset = None if result is None else result.reset
        field = ratelimit_field(limits, remaining=remaining, reset=reset, in_flight=now_held)
        if field:
            headers.append((b"ratelimit", field.encode()))
        if limits.concurrency is None:
            return Admission(headers, None)
        self._tenants[tenant.id] = held + 1
        return Admission(headers, tenant.id)

    def release(self, admission: Admission) -> None:
        tenant_id = admission.tenant_id
        if tenant_id is not None:
            held = self._tenants.get(tenant_id, 1) - 1
            if held > 0:
                self._tenants[tenant_id] = held
            else:
                self._tenants.pop(tenant_id, None)

    def held(self, tenant_id: uuid.UUID) -> int:
        """Requests of the tenant in flight in this process (that its concurrency counts)."""
        return self._tenants.get(tenant_id, 0)

    async def _rate(self, tenant: Tenant, limits: EdgeLimits) -> RateResult | None:
        if limits.rate is None:
            return None
        if self._store_down and time.monotonic() < self._store_down_until:
            return self._unavailable(tenant)
        try:
            result = await self.store.hit(str(tenant.id), limits)
        except StoreUnavailable as err:
            self._store_down_until = time.monotonic() + STORE_BACKOFF
            if self.metrics is not None:
                self.metrics.limiter_error()
            if not self._store_down:
                self._store_down = True
                if self.metrics is not None:
                    self.metrics.limiter_up(False)
                _log.error(
                    "the limits' store is out of reach (%s): failing %s until it answers",
                    err,
                    "open (rates not enforced)" if self.fail_open else "closed (limited tenants refused with 503)",
                )
            return self._unavailable(tenant)
        if self._store_down:
            self._store_down = False
            if self.metrics is not None:
                self.metrics.limiter_up(True)
            _log.warning("the limits' store answers again: rates are enforced")
        return result

    def _unavailable(self, tenant: Tenant) -> RateResult | None:
        if self.fail_open:
            return None
        self._refused("store", tenant)
        raise Overloaded("the rate limits cannot be checked right now")

    def _refused(self, limit: str, tenant: Tenant) -> None:
        if self.metrics is not None:
            self.metrics.refused(limit, tenant.plan)

    async def aclose(self) -> None:
        await self.store.aclose()


def _fields(limits: EdgeLimits, ratelimit: str) -> dict[str, str]:
    return {"RateLimit-Policy": policy_field(limits), "RateLimit": ratelimit}
