"""Authentication and authorisation of the admin API: bearer tokens with scopes.

:class:`TokenAuth` (ASGI middleware) authenticates every request under ``/v1`` by its
``Authorization: Bearer <token>`` header, before routing: a missing, malformed, unknown,
expired or revoked token is answered 401 with a problem document and a ``WWW-Authenticate``
challenge. Then, for the whole request and in that request's context only, the Tenantry audits
every change as ``token:<name>`` (:meth:`tenantry.Tenantry.acting_as`): concurrent requests
never see each other's actor. Each route names the scope it needs with :func:`require`; a
token without it is answered 403, naming the scope.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio.to_thread
from fastapi import Request
from fastapi.security import HTTPBearer
from starlette.datastructures import Headers

from tenantry._asgi import ASGIApp, Receive, Scope, Send
from tenantry.api.problems import ProblemResponse
from tenantry.app import Tenantry
from tenantry.core.scopes import expand
from tenantry.db.catalog.tokens import ApiToken
from tenantry.errors import AuthenticationFailed, PermissionDenied, TenantryError
from tenantry.problems import problem_from_error
from tenantry.web.resolvers import RequestInfo

__all__ = ["Principal", "TokenAuth", "bearer", "principal_of", "require"]

_SCOPE_KEY = "tenantry.principal"

#: documents the scheme in the OpenAPI spec; TokenAuth does the checking
bearer = HTTPBearer(auto_error=False, description="An admin API token: `tenantry tokens create NAME --scope ...`")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a live token and every scope it grants."""

    token: ApiToken
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def actor(self) -> str:
        return self.token.actor


class TokenAuth:
    """ASGI middleware that authenticates requests whose path starts with ``prefix``."""

    def __init__(self, app: ASGIApp, *, tn: Tenantry, prefix: str = "/v1") -> None:
        self.app = app
        self.tn = tn
        self.prefix = prefix

    def _guards(self, scope: Scope) -> bool:
        # ASGI keeps the whole path in `path`: under a mount (Starlette's Mount, a proxy's
        # root_path) the app's own routes start after `root_path`
        path = RequestInfo.from_scope(scope).path
        return path == self.prefix or path.startswith(self.prefix + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._guards(scope):
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization")
        try:
            if not header:
                raise AuthenticationFailed("this endpoint needs an API token: send 'Authorization: Bearer <token>'")
            kind, _, credentials = header.strip().partition(" ")
            if kind.lower() != "bearer" or not credentials.strip():
                raise AuthenticationFailed("the Authorization header must read 'Bearer <token>'")
            token = await anyio.to_thread.run_sync(self.tn.tokens.authenticate, credentials.strip())
        except TenantryError as err:
            response = ProblemResponse(problem_from_error(err, instance=scope["path"], bare_challenge=not header))
            await response(scope, receive, send)
            return
        scope[_SCOPE_KEY] = Principal(token, expand(token.scopes))
        with self.tn.acting_as(token.actor):
            await self.app(scope, receive, send)


def principal_of(request: Request) -> Principal:
    """The principal :class:`TokenAuth` authenticated for this request."""
    principal = request.scope.get(_SCOPE_KEY)
    if not isinstance(principal, Principal):  # a route outside the guarded prefix
        raise AuthenticationFailed("this endpoint needs an API token: send 'Authorization: Bearer <token>'")
    return principal


def require(needed: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that admits tokens granting ``needed`` (the scope, or one implying it)."""

    async def check(request: Request) -> Principal:
        principal = principal_of(request)
        if needed not in principal.scopes:
            held = ", ".join(principal.token.scopes)
            raise PermissionDenied(
                f"token {principal.token.name!r} lacks the scope {needed!r} (it has: {held})", scope=needed
            )
        return principal

    check.__name__ = f"require_{needed.replace(':', '_')}"
    return check
