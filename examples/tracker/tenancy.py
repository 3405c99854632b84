"""Which tenant a request is for: the subdomain of the app's base domain.

This is the only module of the tracker that knows how a request finds its tenant.
``install_tenancy`` wraps the app in a small pure-ASGI middleware that reads the ``Host``
header, takes the label in front of the base domain (``acme.localhost:8000`` → ``acme``) and
binds that tenant with ``tn.tenant(slug)`` around the whole downstream call, body streaming
included; the binding is undone when the call ends, however it ends. Unknown hosts get a 404,
a suspended or archived tenant a 403, as RFC 9457 problem documents.
"""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from tenantry import InvalidSlug, TenantNotFound, Tenantry, TenantryError, validate_slug

__all__ = ["SubdomainTenancy", "install_tenancy", "slug_from_host"]


def install_tenancy(app: Any, tn: Tenantry, base_domain: str) -> None:
    """Serve each tenant at ``<slug>.<base_domain>``: the tenant is bound for every request."""
    app.add_middleware(SubdomainTenancy, tn=tn, base_domain=base_domain)


def slug_from_host(host: str, base_domain: str) -> str | None:
    """The tenant label of ``host`` under ``base_domain``, or ``None`` if it names none.

    >>> slug_from_host("Acme.localhost:8000", "localhost")
    'acme'
    """
    name = host.strip().lower()
    if name.startswith("["):  # an IPv6 literal names no tenant
        return None
    name = name.rpartition(":")[0] if ":" in name else name
    name = name.rstrip(".")
    suffix = "." + base_domain.strip().lower().rstrip(".")
    if not name.endswith(suffix):
        return None
    label = name[: -len(suffix)]
    if not label or "." in label:
        return None
    try:
        validate_slug(label)
    except InvalidSlug:
        return None
    return label


class SubdomainTenancy:
    """Pure-ASGI middleware: bind the tenant named by the ``Host`` header for the request."""

    def __init__(self, app: ASGIApp, *, tn: Tenantry, base_domain: str) -> None:
        self.app = app
        self.tn = tn
        self.base_domain = base_domain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = ""
        for name, value in scope.get("headers", ()):
            if name == b"host":
                host = value.decode("latin-1")
                break
        slug = slug_from_host(host, self.base_domain)
        if slug is None:
            await _problem(scope, send, 404, "Not Found", "no tenant is served at this address")
            return
        async with AsyncExitStack() as stack:
            try:
                bound = await stack.enter_async_context(self.tn.tenant(slug))
            except TenantryError as err:
                if err.http_status >= 500:
                    await _problem(scope, send, err.http_status, "Service Unavailable", "please try again shortly")
                elif isinstance(err, TenantNotFound):
                    await _problem(scope, send, 404, "Not Found", "no tenant is served at this address")
                else:
                    await _problem(scope, send, err.http_status, "Forbidden", f"{slug} is not available")
                return
            if bound.slug != slug:  # a tenant id spelled as a label is not its address
                await _problem(scope, send, 404, "Not Found", "no tenant is served at this address")
                return
            await self.app(scope, receive, send)


async def _problem(scope: Scope, send: Send, status: int, title: str, detail: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
