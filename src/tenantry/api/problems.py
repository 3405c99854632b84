"""RFC 9457 problem documents: every error of the admin API, in one shape.

``application/problem+json`` with ``type`` (a URN naming the kind of problem), ``title``,
``status``, ``detail`` and ``instance`` (the request's path), plus extension members where they
help (``errors`` for invalid fields, ``scope`` for a missing scope, ``problems`` for a config
value or flag definition that does not validate: one ``"path: message"`` line each, or for
brand colours below WCAG AA contrast: one line per pair). Tenantry's errors carry
their HTTP status (:mod:`tenantry.errors`), so one handler maps them all. An unexpected error
answers 500 with no trace of its text: the server log has it.
"""

from __future__ import annotations

import http
import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from tenantry._asgi import ASGIApp, Message, Receive, Scope, Send
from tenantry.errors import AuthenticationFailed, ConfigInvalid, LowContrast, PermissionDenied, TenantryError
from tenantry.web.problems import retry_after_header

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "CatchAll",
    "ProblemResponse",
    "install_handlers",
    "problem",
    "problem_for",
    "problem_type",
]

log = logging.getLogger("tenantry.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
REALM = "tenantry"


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def problem_type(name: str) -> str:
    """The ``type`` URI of a problem: ``TenantNotFound`` -> ``urn:tenantry:problem:tenant-not-found``."""
    kebab = re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower().replace("_", "-").replace(" ", "-")
    return f"urn:tenantry:problem:{kebab}"


def _title(name: str) -> str:
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", name).split()
    return " ".join([words[0], *(w.lower() for w in words[1:])]) if words else name


def problem(
    status: int,
    detail: str | None = None,
    *,
    type_: str | None = None,
    title: str | None = None,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> ProblemResponse:
    """A problem document response; ``type_`` defaults to ``about:blank`` and ``title`` to the
    status's phrase, as RFC 9457 says."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    body: dict[str, Any] = {
        "type": type_ or "about:blank",
        "title": title or phrase,
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    body.update(extensions)
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


def _www_authenticate(err: TenantryError, bare: bool) -> dict[str, str]:
    """RFC 6750's challenge: no error code when no token came (``bare``), else what was wrong."""
    if isinstance(err, PermissionDenied):
        scope = f', scope="{err.scope}"' if err.scope else ""
        return {"WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope"{scope}'}
    if isinstance(err, AuthenticationFailed):
        if bare:
            return {"WWW-Authenticate": f'Bearer realm="{REALM}"'}
        said = err.message.replace("\\", "").replace('"', "'")
        return {"WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_token", error_description="{said}"'}
    return {}


def problem_for(err: TenantryError, instance: str | None, *, bare_challenge: bool = False) -> ProblemResponse:
    """The problem document of a tenantry error (``bare_challenge``: a 401 for a request
    that carried no token at all)."""
    name = type(err).__name__
    extensions: dict[str, Any] = {}
    if isinstance(err, PermissionDenied) and err.scope:
        extensions["scope"] = err.scope
    if isinstance(err, ConfigInvalid | LowContrast):
        extensions["problems"] = list(err.problems)
    return problem(
        err.http_status,
        err.message,
        type_=problem_type(name),
        title=_title(name),
        instance=instance,
        headers=_www_authenticate(err, bare_challenge) | retry_after_header(err),
        **extensions,
    )


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
    return problem_for(exc, request.url.path)


async def _on_validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    fields = ", ".join(".".join(e["loc"]) for e in errors[:5])
    return problem(
        422,
        f"the request is not valid: {fields}" if fields else "the request is not valid",
        type_=problem_type("InvalidRequest"),
        title="Invalid request",
        instance=request.url.path,
        errors=errors,
    )


async def _on_http_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    if exc.status_code == 404:
        detail = f"no such resource: {request.method} {request.url.path}"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
        headers["Allow"] = ", ".join(_allowed(request))
    return problem(exc.status_code, detail, instance=request.url.path, headers=headers)


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
            response = problem(
                500,
                "an unexpected error occurred; the server log has the details",
                type_=problem_type("InternalError"),
                title="Internal error",
                instance=scope.get("path"),
            )
            await response(scope, receive, send)
