"""``TenantMiddleware``: pure ASGI, so it wraps Starlette, FastAPI, Litestar or any ASGI app.

For each HTTP or WebSocket request it asks its resolvers which tenant the request names, looks
the tenant up (a per-process cache, dropped by the catalog's LISTEN/NOTIFY on every change;
a miss is read in a worker thread, so the event loop never waits on the database), refuses
what must not be served, and binds the tenant context around the *whole* downstream call: the
handler, a streamed body and the background tasks Starlette runs after the response all see the
tenant, and the binding is undone with its token when the call returns or raises.

Refusals are RFC 9457 problem documents (an HTML page for browsers, see
:mod:`tenantry.web.pages`: for no tenant or an unknown one, a neutral page or the app's own
``no_tenant_page``; for a tenant that cannot be served, a page in its brand):

==========================================  ======
the request names no tenant                 404
an unknown, deleted or malformed tenant     404
a suspended, archived or unplaced tenant    403
resolvers name two different tenants        403
a tenant header repeated with other values  400
a bearer token that fails verification      401
the tenant is over its rate or concurrency  429, with ``Retry-After`` and ``RateLimit``
the process is at its cap of requests       503, with ``Retry-After``
the catalog cannot be reached               503
the app raised TenantMoving,                503, with ``Retry-After``
TenantRestoring or DatabaseUnavailable
==========================================  ======

**Precedence.** Every resolver in the chain is asked; all that match must name the same
tenant, or the request is refused. So tenant A's subdomain with tenant B's path prefix (or B's
token) is never served as either: there is no order in which signals could mix. The order of
the chain only decides which refusal a request gets first.

**Limits.** A resolved tenant's request passes its plan's rate and concurrency limits, and
every request the process's cap, first (:mod:`tenantry.web.limits`; ``limits=False`` turns
them off). The answers to a limited tenant carry ``RateLimit-Policy`` and ``RateLimit``.

**Observability.** With ``metrics`` (a :class:`tenantry.observability.TenantryMetrics`), each
served request is counted by plan, with its latency; with OpenTelemetry installed, the
current span gets ``tenant.id`` and ``tenant.slug`` and the tenant goes into the Baggage.

**Domain checks.** ``GET /.well-known/tenantry/<token>`` on a registered custom hostname
(pending or verified) answers the token, so a tenant proves a hostname by pointing it at the
app; see :mod:`tenantry.services.domain_checks`.

Usage::

    app = Starlette(routes=...)
    app.add_middleware(TenantMiddleware, tenantry=tn, resolvers=[SubdomainResolver("example.com")])
    # Litestar, or anything: wrap the whole app, so that routing sees the rewritten root_path
    app = TenantMiddleware(Litestar(route_handlers=...), tenantry=tn)
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence

from tenantry import context
from tenantry._asgi import ASGIApp, Message, Receive, Scope, Send
from tenantry.app import Tenantry
from tenantry.context import BoundTenant
from tenantry.core.hostnames import WELL_KNOWN
from tenantry.core.model import Tenant
from tenantry.core.naming import is_slug
from tenantry.core.placement import Placement
from tenantry.db.catalog import tenants as catalog_tenants
from tenantry.db.catalog.domains import HostRoute
from tenantry.errors import Overloaded, StorageQuotaExceeded, TenantNotActive, TenantNotFound, TenantryError
from tenantry.observability import tracing
from tenantry.observability.metrics import TenantryMetrics
from tenantry.problems import Problem, problem, problem_from_error, problem_type, send_problem
from tenantry.web.limits import Admission, CatalogLimits, EdgeLimiter
from tenantry.web.pages import NoTenantPage, inactive_page, no_tenant_page
from tenantry.web.resolvers import CustomDomainResolver, Match, Refusal, RequestInfo, Resolver, SubdomainResolver

__all__ = ["TenantMiddleware", "default_resolvers"]


_log = logging.getLogger("tenantry.web")
_NO_TENANT = Refusal("chain", 404, "No tenant", "this request names no tenant", problem_type("no-tenant"))


def default_resolvers(tn: Tenantry) -> list[Resolver]:
    """The chain used when none is given: the subdomain of ``settings.base_domain`` (if set),
    then verified custom domains. Nothing a client can set freely."""
    base = tn.settings.base_domain
    chain: list[Resolver] = []
    if base:
        chain.append(SubdomainResolver(base))
    chain.append(CustomDomainResolver(base or None))
    return chain


class _Inactive:
    """A tenant that exists but may not be served (suspended, archived, not yet placed)."""

    __slots__ = ("error", "tenant")

    def __init__(self, tenant: Tenant, error: TenantNotActive) -> None:
        self.tenant = tenant
        self.error = error


class TenantMiddleware:
    """Resolve, check and bind the tenant of every request (see the module's docstring).

    ``resolvers``: the chain (default :func:`default_resolvers`). ``optional``: serve requests
    that name no tenant, with no tenant bound, instead of 404. ``exempt``: paths (or prefixes
    ending in ``/``) served without a tenant, such as health checks. ``serve_challenges``:
    answer domain checks at ``/.well-known/tenantry/<token>``. ``no_tenant_page``: the HTML
    browsers get, still with 404, for a request that names no tenant or an unknown one (a
    :data:`~tenantry.web.pages.NoTenantPage`: a function of the :class:`RequestInfo`; a plain
    function runs in a worker thread, so it may read the database). Default: a neutral page
    that names no tenant; keep it so in production, since a list of sites there would tell
    anyone who the app's customers are. API clients get the problem document either way.
    ``limits``: the :class:`~tenantry.web.limits.EdgeLimiter` (default: one built from the
    settings; ``False``: no limits at all). ``metrics``: where served requests are counted.
    ``metering``: count each tenant's requests, by status class, and their time for
    ``tn.usage`` (when ``Settings.usage_metering`` is on; it starts the flusher thread).
    """

    def __init__(
        self,
        app: ASGIApp,
        tenantry: Tenantry,
        resolvers: Sequence[Resolver] | None = None,
        *,
        optional: bool = False,
        exempt: Iterable[str] = (),
        serve_challenges: bool = True,
        no_tenant_page: NoTenantPage | None = None,
        limits: EdgeLimiter | bool = True,
        metrics: TenantryMetrics | None = None,
        metering: bool = True,
    ) -> None:
        self.app = app
        self.tn = tenantry
        self.resolvers = list(resolvers) if resolvers is not None else default_resolvers(tenantry)
        self.optional = optional
        self.exempt = tuple(exempt)
        self.serve_challenges = serve_challenges
        self.no_tenant_page = no_tenant_page
        self.metrics = metrics
        if limits is True:
            limits = EdgeLimiter(tenantry, metrics=metrics)
        self.limiter: EdgeLimiter | None = limits or None
        if metrics is not None and self.limiter is not None and isinstance(self.limiter.source, CatalogLimits):
            metrics.watch_cache(self.limiter.source.cache)  # the plan limits' hit ratio too
        self._capped = self.limiter is not None and self.limiter.max_in_flight > 0
        #: each tenant's requests are counted here (``tn.usage``), flushed by its thread
        self._meter = tenantry.usage.meter if metering else None
        self._timed = self.metrics is not None or self._meter is not None
        if self._meter is not None:
            tenantry.usage.start()
        self._traced = tracing.available()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)  # lifespan and the like: nothing to resolve
            return
        if not self._capped:
            await self._serve(scope, receive, send)
            return
        limiter = self.limiter
        assert limiter is not None
        try:
            limiter.enter()
        except Overloaded as err:  # (counted in the metrics; a line per refusal would flood the log)
            await self._refuse(scope, send, _public_problem(err))
            return
        try:
            await self._serve(scope, receive, send)
        finally:
            limiter.leave()

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = RequestInfo.from_scope(scope)
        if self.serve_challenges and scope["type"] == "http" and request.path.startswith(WELL_KNOWN):
            await self._challenge(request, send)
            return
        if self.exempt and self._exempt(request.path):
            await self._call(None, scope, receive, send)
            return
        try:
            outcome = await self._resolve(request)
        except TenantryError as err:
            if err.http_status >= 500:
                _log.error("tenant resolution failed: %s", err)
            if isinstance(err, TenantNotFound):
                await self._refuse(scope, send, problem_from_error(err), page=lambda: self._no_tenant_html(request))
            else:
                await self._refuse(scope, send, _public_problem(err))
            return
        if isinstance(outcome, _Inactive):
            tenant = outcome.tenant
            await self._refuse(scope, send, problem_from_error(outcome.error), page=lambda: self._inactive_html(tenant))
            return
        if isinstance(outcome, Refusal):
            if outcome is _NO_TENANT and self.optional:
                await self._call(None, scope, receive, send)
                return
            response = Problem(
                outcome.status, outcome.title, outcome.type_, outcome.detail, headers=dict(outcome.headers)
            )
            page = (lambda: self._no_tenant_html(request)) if outcome is _NO_TENANT else None
            await self._refuse(scope, send, response, page=page)
            return
        bound, root_path, tenant = outcome
        if root_path is not None:
            scope = dict(scope)
            scope["root_path"] = root_path
        limiter = self.limiter
        if limiter is None:
            await self._call(bound, scope, receive, send, tenant)
            return
        try:
            limits = limiter.limits_of(tenant)
            if limits is None:
                limits = await limiter.load(tenant)
            if limits.none:  # the common case: one cache lookup, and nothing else
                await self._call(bound, scope, receive, send, tenant)
                return
            admission = await limiter.admit(tenant, limits)
        except TenantryError as err:
            # a refusal by a limit is counted in the metrics, and the limits' store going away
            # is logged once by the limiter; a catalog out of reach is logged here
            if err.http_status >= 500 and not isinstance(err, Overloaded):
                _log.warning("%s %s refused: %s", scope.get("method", "WEBSOCKET"), scope.get("path"), err)
            if self._meter is not None:
                self._meter.request(tenant.id, err.http_status, 0.0)
            await self._refuse(scope, send, _public_problem(err))
            return
        try:
            await self._call(bound, scope, receive, send, tenant, admission)
        finally:
            limiter.release(admission)

    async def _call(
        self,
        bound: BoundTenant | None,
        scope: Scope,
        receive: Receive,
        send: Send,
        tenant: Tenant | None = None,
        admission: Admission | None = None,
    ) -> None:
        # bound (or explicitly unbound) for the whole call: the response body is streamed and
        # background tasks run inside it; reset with the token even when it raises
        token = context._set(bound)
        answer = _Answer(send, admission.headers if admission is not None else None)
        traced = tracing.enter(bound) if self._traced and bound is not None else None
        started = time.perf_counter() if self._timed else 0.0
        try:
            await self.app(scope, receive, answer.send)
        except TenantryError as err:
            # (over its storage quota: the app's write refused, answered 507 rather than 500)
            if (err.retry_after is None and not isinstance(err, StorageQuotaExceeded)) or not answer.replaceable:
                await answer.release()
                raise
            # a moving or restoring tenant, or PostgreSQL out of reach, passes by itself: tell
            # the client when to come back rather than answer 500
            if not isinstance(err, StorageQuotaExceeded):  # (an expected refusal: no line each)
                _log.warning(
                    "%s %s: %s: %s", scope.get("method", "WEBSOCKET"), scope.get("path"), type(err).__name__, err
                )
            answer.discard()
            answer.status = err.http_status
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1013, "reason": "try again later"})
            else:
                await self._refuse(scope, send, _public_problem(err))
        except BaseException:
            await answer.release()
            raise
        else:
            await answer.release()
        finally:
            context._reset(token)
            if traced is not None:
                tracing.leave(traced)
            if self._timed and tenant is not None:
                elapsed = time.perf_counter() - started
                if self._meter is not None:
                    self._meter.request(tenant.id, answer.status, elapsed)
                if self.metrics is not None:
                    self.metrics.served(tenant, answer.status, elapsed)

    def _exempt(self, path: str) -> bool:
        return any(path == p or (p.endswith("/") and path.startswith(p)) for p in self.exempt)

    # -- resolution -----------------------------------------------------------------------
    async def _resolve(self, request: RequestInfo) -> tuple[BoundTenant, str | None, Tenant] | Refusal | _Inactive:
        matches: list[Match] = []
        for resolver in self.resolvers:
            found = resolver.resolve(request)
            if isinstance(found, Refusal):
                return found
            if found is not None:
                matches.append(found)
        chosen: tuple[str | uuid.UUID, tuple[Tenant, Placement | None]] | None = None
        chosen_match: Match | None = None
        root_path: str | None = None
        for match in matches:
            key = await self._key(match)
            if key is None:
                continue  # a hostname that is not a verified custom domain
            resolved = self.tn.directory.cached(key)
            if resolved is None:
                resolved = await asyncio.to_thread(self.tn.directory.load, key)
            if chosen is None:
                chosen, chosen_match = (key, resolved), match
            elif resolved[0].id != chosen[1][0].id:
                assert chosen_match is not None
                return Refusal(
                    "chain",
                    403,
                    "Conflicting tenants",
                    f"the request's {chosen_match.source} and {match.source} name different tenants",
                    problem_type("tenant-mismatch"),
                )
            if match.root_path is not None:
                root_path = match.root_path
        if chosen is None:
            return _NO_TENANT
        directory, key, resolved = self.tn.directory, chosen[0], chosen[1]
        try:
            # no I/O on the event loop: if an event dropped the plan's settings since, in a thread
            bound = directory.bind_cached(key, resolved=resolved)
            if bound is None:
                bound = await asyncio.to_thread(functools.partial(directory.bind, key, resolved=resolved))
        except TenantNotActive as err:
            return _Inactive(chosen[1][0], err)
        return bound, root_path, chosen[1][0]

    async def _key(self, match: Match) -> str | uuid.UUID | None:
        if match.kind == "host":
            route = await self._host(match.value)
            return route.tenant_id if route.verified else None
        if match.kind == "slug":
            if not is_slug(match.value):
                raise TenantNotFound(f"no tenant {match.value[:70]!r}")
            return match.value
        return catalog_tenants.tenant_key(match.value)

    async def _host(self, hostname: str) -> HostRoute:
        route = self.tn.directory.cached_host(hostname)
        if route is None:
            route = await asyncio.to_thread(self.tn.directory.load_host, hostname)
        return route

    # -- answers --------------------------------------------------------------------------
    async def _challenge(self, request: RequestInfo, send: Send) -> None:
        token = request.path[len(WELL_KNOWN) :]
        route = None if request.host is None else await self._host(request.host)
        known = route is not None and route.token is not None and hmac.compare_digest(route.token, token)
        if not known or request.scope.get("method") not in ("GET", "HEAD"):
            response = problem(404, "no domain check is pending here", code="no-domain-check")
            await send_problem(request.scope, send, response)
            return
        body = token.encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"" if request.scope["method"] == "HEAD" else body})

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        response: Problem,
        *,
        page: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        """Send the problem about this request; a browser gets ``page`` (when given) or the
        problem as a page, a WebSocket a close before accept (the server answers 403)."""
        await send_problem(scope, send, response, html_page=True, page=page)

    async def _no_tenant_html(self, request: RequestInfo) -> str:
        make = self.no_tenant_page
        if make is None:
            return no_tenant_page()
        try:
            if inspect.iscoroutinefunction(make) or inspect.iscoroutinefunction(getattr(make, "__call__", None)):  # noqa: B004 - an async __call__
                made = await make(request)  # type: ignore[misc]
            else:
                made = await asyncio.to_thread(make, request)
            if not isinstance(made, str):
                raise TypeError(f"no_tenant_page returned {type(made).__name__}, not the page as str")
            return made
        except Exception:
            # a refusal must go out whatever the app's page does
            _log.exception("no_tenant_page failed; answering with the default page")
            return no_tenant_page()

    async def _inactive_html(self, tenant: Tenant) -> str:
        branding = self.tn.branding
        try:
            brand = await branding.afor_tenant(tenant.id)
            logo = None if brand.theme.logo is None else await branding.aasset(brand, brand.theme.logo.filename)
        except TenantryError as err:
            _log.warning("no brand for the %s page of tenant %s: %s", tenant.status.value, tenant.id, err)
            return inactive_page(tenant.name, tenant.status)
        return inactive_page(brand.product_name, tenant.status, brand.theme, logo)


class _Answer:
    """The app's side of the response, as it goes out; a 500 is held back until the app
    returns or raises, so that an error raised after a framework's own error page went out
    (Starlette's ServerErrorMiddleware sends 500, then raises) can still be answered."""

    def __init__(self, send: Send, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self._send = send
        self._headers = headers
        self._held: list[Message] = []
        self._started = False
        #: the status of the answer that went out (0: none yet)
        self.status = 0

    @property
    def replaceable(self) -> bool:
        """Nothing went out yet but what is held."""
        return not self._started or bool(self._held)

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._started = True
            self.status = message.get("status", 200)
            if self._headers:  # the RateLimit fields of a limited tenant
                message = {**message, "headers": [*message.get("headers", ()), *self._headers]}
            if message.get("status") == 500:
                self._held.append(message)
                return
        elif self._held:
            self._held.append(message)
            return
        elif kind in ("websocket.accept", "websocket.close", "websocket.http.response.start"):
            self._started = True
        await self._send(message)

    def discard(self) -> None:
        self._held.clear()

    async def release(self) -> None:
        held, self._held = self._held, []
        for message in held:
            await self._send(message)


#: what the edge says of a server-side failure: its message (a host, a socket path, a driver's
#: words) goes to the log, not to whoever sent the request
SERVER_SIDE_DETAIL = "the service cannot answer this request right now; please try again shortly"


def _public_problem(err: TenantryError) -> Problem:
    """The problem the edge answers ``err`` with: a server-side failure (5xx) keeps its type,
    status and ``Retry-After`` but not its message."""
    return problem_from_error(err, detail=SERVER_SIDE_DETAIL if err.http_status >= 500 else None)
