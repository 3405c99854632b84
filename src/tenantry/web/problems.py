"""RFC 9457 problem documents, framework-free: the one error format of tenantry's HTTP faces.

:func:`problem` builds ``(status, headers, body)`` that any ASGI app, Starlette ``Response`` or
test can use; :func:`problem_from_error` does it for a :class:`tenantry.TenantryError` (its
``http_status``); :func:`send_problem` writes one to an ASGI ``send``. Problem types are URIs
``urn:tenantry:problem:<name>`` (see :func:`problem_type`); ``about:blank`` when no type is given.

>>> status, headers, body = problem(404, "Tenant not found", "no tenant 'acme'", type_=problem_type("tenant-not-found"))
>>> status, dict(headers)[b"content-type"]
(404, b'application/problem+json')
"""

from __future__ import annotations

import html
import json
import re
from http import HTTPStatus
from typing import Any

from tenantry._asgi import Send
from tenantry.errors import TenantryError

__all__ = [
    "PROBLEM_JSON",
    "PROBLEM_TYPE_PREFIX",
    "problem",
    "problem_from_error",
    "problem_page",
    "problem_type",
    "retry_after_header",
    "send_problem",
    "wants_html",
    "with_page",
]

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:tenantry:problem:"

Headers = list[tuple[bytes, bytes]]

_RESERVED = {"type", "title", "status", "detail", "instance"}


def problem_type(name: str) -> str:
    """The type URI of one of tenantry's problems: ``urn:tenantry:problem:<name>``."""
    return PROBLEM_TYPE_PREFIX + name


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    type_: str = "about:blank",
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> tuple[int, Headers, bytes]:
    """A problem document as ``(status, ASGI headers, JSON body)``.

    ``extra`` become extension members (they may not shadow the standard ones); ``headers``
    are added to the response (e.g. ``WWW-Authenticate``).
    """
    clash = _RESERVED & extra.keys()
    if clash:
        raise ValueError(f"extension members may not be named {sorted(clash)}")
    document: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail is not None:
        document["detail"] = detail
    if instance is not None:
        document["instance"] = instance
    document.update(extra)
    body = json.dumps(document, separators=(",", ":"), default=str).encode()
    return status, _headers(PROBLEM_JSON, body, headers), body


def problem_from_error(error: TenantryError, *, type_: str | None = None, **extra: Any) -> tuple[int, Headers, bytes]:
    """The problem document of a tenantry error: its ``http_status``, its class as the type
    (``urn:tenantry:problem:tenant-not-found`` for :class:`~tenantry.TenantNotFound`), its
    one-line message as the detail, and ``Retry-After`` for an error that passes by itself."""
    status = error.http_status
    name = re.sub(r"(?<!^)(?=[A-Z])", "-", type(error).__name__).lower()
    return problem(
        status,
        HTTPStatus(status).phrase,
        error.message,
        type_ or problem_type(name),
        headers=retry_after_header(error),
        **extra,
    )


def retry_after_header(error: TenantryError) -> dict[str, str]:
    """``{"Retry-After": seconds}`` for an error that passes by itself, else nothing."""
    return {} if error.retry_after is None else {"Retry-After": str(error.retry_after)}


def problem_page(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
    """The same problem as a small HTML page, for browsers (headers other than the content
    type and length are kept)."""
    document = json.loads(body)
    title = html.escape(str(document.get("title", "")))
    detail = html.escape(str(document.get("detail", "")))
    page = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>{status} {title}</title>"
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:15vh auto;padding:0 1em;color:#222}"
        "h1{font-size:1.4em}p{color:#555}</style>"
        f"<h1>{title}</h1><p>{detail}</p></html>"
    )
    return with_page((status, headers, body), page)


def with_page(response: tuple[int, Headers, bytes], page: str) -> tuple[int, Headers, bytes]:
    """The same response (status, and headers other than the content type and length) with
    ``page``, a complete HTML document, as its body."""
    status, headers, _ = response
    body = page.encode()
    kept = {
        k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k not in (b"content-type", b"content-length")
    }
    return status, _headers("text/html; charset=utf-8", body, kept), body


def wants_html(accept: str | None) -> bool:
    """Whether an ``Accept`` header asks for a page rather than a document: it names
    ``text/html`` and neither JSON form (browsers do; API clients and curl do not)."""
    if not accept:
        return False
    return "text/html" in accept and "json" not in accept


async def send_problem(send: Send, response: tuple[int, Headers, bytes], *, html_page: bool = False) -> None:
    """Send a problem (from :func:`problem`) as a complete ASGI HTTP response."""
    status, headers, body = problem_page(*response) if html_page else response
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _headers(content_type: str, body: bytes, extra: dict[str, str] | None) -> Headers:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    for name, value in (extra or {}).items():
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return headers
