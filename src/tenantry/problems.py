"""RFC 9457 problem documents: the one error format of every HTTP face of tenantry.

The admin API (:mod:`tenantry.api`), the web edge (:class:`tenantry.web.TenantMiddleware`),
the brand routes and the plugins' routes all answer errors through this module, so one error
gets one document wherever it happens:

* :func:`problem_from_error` maps a :class:`tenantry.TenantryError` to its problem. ``type`` is
  ``urn:tenantry:problem:<code>`` (the error's :attr:`~tenantry.TenantryError.code`:
  ``tenant-not-found`` for :class:`~tenantry.TenantNotFound`), ``title`` the code in words
  (``Tenant not found``), ``status`` its ``http_status``, ``detail`` its message. Errors that
  pass by themselves add ``Retry-After`` (a tenant over a limit: when its budget allows one
  more, with the ``RateLimit`` fields and ``limit`` naming the limit); a token refused (401) or short of a scope (403) adds
  ``WWW-Authenticate``; :class:`~tenantry.PermissionDenied` adds ``scope``, and errors that
  list what is wrong add ``problems`` (:class:`~tenantry.ConfigInvalid`: ``"path: message"``
  lines; :class:`~tenantry.LowContrast`: the pairs of colours below WCAG AA;
  :class:`~tenantry.TablesDiffer`: each difference).
* :func:`invalid_request` (422, ``errors`` naming each field) and :func:`internal_error` (500,
  nothing of the cause) for what is not a tenantry error; :func:`problem` for anything else:
  ``about:blank`` and the status's phrase as the title when no ``code`` is given, as RFC 9457
  says.
* :meth:`Problem.body` renders the JSON (``application/problem+json``); :func:`send_problem`
  sends it as an ASGI response, or as a page to a browser. The admin API wraps it in a
  Starlette response (:class:`tenantry.api.problems.ProblemResponse`).

Pure: nothing here imports a web framework.

>>> from tenantry import TenantNotFound
>>> p = problem_from_error(TenantNotFound("no tenant 'acme'"), instance="/projects")
>>> p.document()
{'type': 'urn:tenantry:problem:tenant-not-found', 'title': 'Tenant not found', 'status': 404, \
'detail': "no tenant 'acme'", 'instance': '/projects'}
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from tenantry._asgi import Scope, Send
from tenantry.errors import (
    AuthenticationFailed,
    ConfigInvalid,
    LimitExceeded,
    LowContrast,
    PermissionDenied,
    TablesDiffer,
    TenantryError,
)

__all__ = [
    "ABOUT_BLANK",
    "PROBLEM_JSON",
    "PROBLEM_TYPE_PREFIX",
    "REALM",
    "Problem",
    "internal_error",
    "invalid_request",
    "problem",
    "problem_from_error",
    "problem_page",
    "problem_title",
    "problem_type",
    "send_problem",
    "wants_html",
]

PROBLEM_JSON = "application/problem+json"
#: the ``type`` of a problem that is no more than its HTTP status (RFC 9457, section 4.2.1)
ABOUT_BLANK = "about:blank"
PROBLEM_TYPE_PREFIX = "urn:tenantry:problem:"
#: the realm of the ``WWW-Authenticate`` challenges (RFC 6750)
REALM = "tenantry"

Headers = list[tuple[bytes, bytes]]

_RESERVED = frozenset({"type", "title", "status", "detail", "instance"})


def _code(name: str) -> str:
    """``TenantNotFound`` (or ``tenant-not-found``) -> ``tenant-not-found``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower().replace("_", "-").replace(" ", "-")


def problem_type(code: str) -> str:
    """The ``type`` URI of one of tenantry's problems: ``tenant-not-found`` (or the class name
    ``TenantNotFound``) -> ``urn:tenantry:problem:tenant-not-found``."""
    return PROBLEM_TYPE_PREFIX + _code(code)


def problem_title(code: str) -> str:
    """The ``title`` of one of tenantry's problems, its code in words: ``tenant-not-found``
    (or ``TenantNotFound``) -> ``Tenant not found``. One title per type, whatever the case."""
    return _code(code).replace("-", " ").capitalize()


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem document, and the headers that go with it.

    ``extensions`` become members of the document beside the standard ones (which they may not
    shadow); ``headers`` go on the response (``Retry-After``, ``WWW-Authenticate``, ``Allow``).
    """

    status: int
    title: str
    type: str = ABOUT_BLANK
    detail: str | None = None
    instance: str | None = None
    extensions: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clash = _RESERVED & self.extensions.keys()
        if clash:
            raise ValueError(f"extension members may not be named {sorted(clash)}")

    def document(self) -> dict[str, Any]:
        """The document as a dict: ``type``, ``title``, ``status``, then ``detail`` and
        ``instance`` when set, then the extensions."""
        document: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail is not None:
            document["detail"] = self.detail
        if self.instance is not None:
            document["instance"] = self.instance
        document.update(self.extensions)
        return document

    def body(self) -> bytes:
        """The document as ``application/problem+json`` (UTF-8)."""
        return json.dumps(self.document(), ensure_ascii=False, separators=(",", ":"), default=str).encode()

    def at(self, instance: str | None) -> Problem:
        """The same problem, about the request at ``instance`` (its path)."""
        return dataclasses.replace(self, instance=instance)

    def with_headers(self, headers: Mapping[str, str]) -> Problem:
        """The same problem with ``headers`` added to (or replacing) its own."""
        return dataclasses.replace(self, headers={**self.headers, **headers})

    def asgi_headers(self, body: bytes | None = None, content_type: str = PROBLEM_JSON) -> Headers:
        """The response's ASGI headers: content type and length (of ``body``, by default
        :meth:`body`), then :attr:`headers`."""
        length = len(self.body() if body is None else body)
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(length).encode())]
        for name, value in self.headers.items():
            headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        return headers


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem(
    status: int,
    detail: str | None = None,
    *,
    code: str | None = None,
    title: str | None = None,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> Problem:
    """A problem of ``status``. With a ``code`` (``tenant-mismatch``), the type is
    ``urn:tenantry:problem:<code>`` and the title its words (:func:`problem_title`); without,
    ``about:blank`` and the status's phrase (``Not Found``). ``title`` overrides either."""
    if code is None:
        return Problem(status, title or _phrase(status), ABOUT_BLANK, detail, instance, extensions, dict(headers or {}))
    return Problem(
        status, title or problem_title(code), problem_type(code), detail, instance, extensions, dict(headers or {})
    )


def _challenge(error: TenantryError, bare: bool) -> dict[str, str]:
    """RFC 6750's challenge: no error code when no token came (``bare``), else what was wrong."""
    if isinstance(error, PermissionDenied):
        scope = f', scope="{error.scope}"' if error.scope else ""
        return {"WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope"{scope}'}
    if isinstance(error, AuthenticationFailed):
        if bare:
            return {"WWW-Authenticate": f'Bearer realm="{REALM}"'}
        said = error.message.replace("\\", "").replace('"', "'")
        return {"WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_token", error_description="{said}"'}
    return {}


def problem_from_error(
    error: TenantryError, *, instance: str | None = None, detail: str | None = None, bare_challenge: bool = False
) -> Problem:
    """The problem of a tenantry error (see the module's docstring for what it holds).

    ``detail`` replaces the error's message where the message must not go out (a public
    page's answer to a failed database); ``bare_challenge``: a 401 for a request that carried
    no token at all (its ``WWW-Authenticate`` names no error).
    """
    extensions: dict[str, Any] = {}
    if isinstance(error, PermissionDenied) and error.scope:
        extensions["scope"] = error.scope
    if isinstance(error, ConfigInvalid | LowContrast | TablesDiffer):
        extensions["problems"] = list(error.problems)
    headers = _challenge(error, bare_challenge)
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, LimitExceeded):
        if error.limit is not None:
            extensions["limit"] = error.limit
        if error.retry_in is not None:  # whole seconds, rounded up: a client that waits is not early
            headers["Retry-After"] = str(max(1, math.ceil(error.retry_in)))
        headers.update(error.fields)
    return problem(
        error.http_status,
        error.message if detail is None else detail,
        code=error.code,
        instance=instance,
        headers=headers,
        **extensions,
    )


def invalid_request(
    errors: Sequence[Mapping[str, Any]], *, detail: str | None = None, instance: str | None = None
) -> Problem:
    """422 for a request that does not validate (its body, query or path), before any tenantry
    code ran: ``errors`` holds one ``{"loc": [...], "msg": ..., "type": ...}`` per field (never
    the value sent: it may be a secret). ``detail`` defaults to the fields' names."""
    if detail is None:
        fields = ", ".join(".".join(str(part) for part in e.get("loc", ())) for e in errors[:5])
        detail = f"the request is not valid: {fields}" if fields else "the request is not valid"
    return problem(422, detail, code="invalid-request", instance=instance, errors=[dict(e) for e in errors])


def internal_error(
    detail: str = "an unexpected error occurred; the server log has the details", *, instance: str | None = None
) -> Problem:
    """500 for an error no one expected; ``detail`` must say nothing of its cause (the log has it)."""
    return problem(500, detail, code="internal-error", instance=instance)


def problem_page(p: Problem) -> str:
    """The problem as a small HTML page, for browsers."""
    title = html.escape(p.title)
    detail = html.escape(p.detail or "")
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>{p.status} {title}</title>"
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:15vh auto;padding:0 1em;color:#222}"
        "h1{font-size:1.4em}p{color:#555}</style>"
        f"<h1>{title}</h1><p>{detail}</p></html>"
    )


def wants_html(accept: str | None) -> bool:
    """Whether an ``Accept`` header asks for a page rather than a document: it names
    ``text/html`` and neither JSON form (browsers do; API clients and curl do not)."""
    if not accept:
        return False
    return "text/html" in accept and "json" not in accept


async def send_problem(
    scope: Scope,
    send: Send,
    p: Problem,
    *,
    html_page: bool = False,
    page: Callable[[], Awaitable[str]] | None = None,
) -> None:
    """Answer the request of ``scope`` with the problem, as a complete ASGI response.

    ``html_page`` (implied by ``page``): a browser (:func:`wants_html`) gets a page with the same
    status and headers instead, ``await page()`` when given, else :func:`problem_page`. A
    ``HEAD`` request gets the headers only. A WebSocket not yet accepted is closed with 1008
    and the title as the reason (the server refuses the handshake). The document's ``instance``
    is the request's path, unless the problem names one.
    """
    if p.instance is None and scope.get("path"):
        p = p.at(scope["path"])
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": p.title[:120]})
        return
    content_type, body = PROBLEM_JSON, p.body()
    if html_page or page is not None:
        accept = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"accept"), None)
        if wants_html(accept):
            content_type = "text/html; charset=utf-8"
            body = (await page() if page is not None else problem_page(p)).encode()
    await send({"type": "http.response.start", "status": p.status, "headers": p.asgi_headers(body, content_type)})
    await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else body})
