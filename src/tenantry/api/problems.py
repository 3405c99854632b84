"""The admin API's errors, as RFC 9457 problem documents (built by :mod:`tenantry.problems`).

FastAPI's side of it: exception handlers that turn tenantry errors, invalid requests and
unknown routes into problem documents, and :class:`ProblemResponse` to send one from Starlette.
What the documents hold (types, titles, ``scope``, ``problems``, ``errors``, ``Retry-After``,
``WWW-Authenticate``) is decided in :mod:`tenantry.problems`, the same for the web edge; here
every document gets ``instance``, the request's path. An unexpected error answers 500 with no
trace of its text: the server log has it.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from tenantry._asgi import ASGIApp, Message, Receive, Scope, Send
from tenantry.errors import TenantryError
from tenantry.problems import PROBLEM_JSON, Problem, internal_error, invalid_request, problem, problem_from_error

__all__ = ["CatchAll", "ProblemResponse", "install_handlers"]

log = logging.getLogger("tenantry.api")


class ProblemResponse(Response):
    """A Starlette response carrying a :class:`~tenantry.problems.Problem`."""

    media_type = PROBLEM_JSON

    def __init__(self, p: Problem) -> None:
        super().__init__(p.body(), status_code=p.status, headers=dict(p.headers))


def _validation_errors(err: RequestValidationError) -> list[dict[str, Any]]:
    # the offending input is left out: it may be a secret (a cell's connection string)
    return [
        {"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in err.errors()
    ]


async def _on_tenantry_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, TenantryError)
    if exc.http_status >= 500:
        log.warning("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return ProblemResponse(problem_from_error(exc, instance=request.url.path))


async def _on_validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    return ProblemResponse(invalid_request(_validation_errors(exc), instance=request.url.path))


async def _on_http_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    if exc.status_code == 404:
        detail = f"no such resource: {request.method} {request.url.path}"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
        headers["Allow"] = ", ".join(_allowed(request))
    return ProblemResponse(problem(exc.status_code, detail, instance=request.url.path, headers=headers))


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def _allowed(request: Request) -> list[str]:
    """Every method some route takes at this path (Starlette names only the first route's)."""
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in request.app.router.routes
        )
    ]


def install_handlers(app: FastAPI) -> None:
    """Answer tenantry errors, invalid requests and unknown routes with problem documents,
    and anything unexpected with a bare 500."""
    app.add_exception_handler(TenantryError, _on_tenantry_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_middleware(CatchAll)


class CatchAll:
    """ASGI middleware: an exception no handler took becomes a 500 problem document (its
    text and traceback go to the log only)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise  # too late for a document: the server closes the connection
            await ProblemResponse(internal_error(instance=scope.get("path")))(scope, receive, send)
