"""``BrandRoutes``: a pure-ASGI app that serves the bound tenant's brand.

Mount it at ``/_brand`` behind whatever binds the tenant (tenantry's middleware, or the app's
own, as the example tracker does); every response is for the tenant bound to the request and
nothing else::

    app.mount("/_brand", BrandRoutes(tn))          # or: app = BrandRoutes(tn, app) as middleware

====================================  ==============================================================
``GET /_brand/theme.css``             the design tokens; ``private, no-cache`` + ETag (304 on match)
``GET /_brand/theme.<digest>.css``    the same, immutable (the URL changes with the theme); an old
                                      digest redirects (307) to the current one
``GET /_brand/assets/<sha256>.<ext>`` a logo or favicon — only if *this* tenant's brand uses it
``GET /_brand/logo``, ``/favicon``    the current logo and favicon; ``private, no-cache`` + ETag
====================================  ==============================================================

Caching. Every response is ``Cache-Control: private``: the same URL answers differently per
tenant, and tenants may be told apart by more than the ``Host`` (a header, a token), which a
shared cache's key would not include — so shared caches keep nothing, and ``Vary`` has nothing
to add. Browsers do cache: validators hash the tenant's id with the content, so an ETag of one
tenant never earns a 304 from another, and the versioned URLs (``theme.<digest>.css``,
``assets/<sha256>.<ext>``) are immutable because a change makes a new URL. Images are sent
with ``nosniff``, a ``sandbox`` CSP and ``Cross-Origin-Resource-Policy: same-origin``, so
another tenant's site cannot even embed them.

Errors are RFC 9457 problem documents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenantry import context
from tenantry._asgi import ASGIApp, Receive, Scope, Send
from tenantry.branding.brand import Brand
from tenantry.errors import TenantryError
from tenantry.problems import Problem, problem, problem_from_error, send_problem

if TYPE_CHECKING:
    from tenantry.branding.service import BrandHost

__all__ = ["BrandRoutes"]


_IMMUTABLE = b"private, max-age=31536000, immutable"
_REVALIDATE = b"private, no-cache"
_IMAGE_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"default-src 'none'; sandbox"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


class BrandRoutes:
    """Serve the bound tenant's stylesheet and images (see the module docs).

    Without ``app`` it is an ASGI app to mount at ``prefix``; with ``app`` it is middleware
    that answers under ``prefix`` and passes everything else on.
    """

    def __init__(self, tn: BrandHost, app: ASGIApp | None = None, *, prefix: str = "/_brand") -> None:
        self.tn = tn
        self.app = app
        self.prefix = "/" + prefix.strip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = _route_path(scope)
        if self.app is not None:
            if scope["type"] != "http" or not (path == self.prefix or path.startswith(self.prefix + "/")):
                await self.app(scope, receive, send)
                return
            path = path[len(self.prefix) :]
        elif scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        await self._serve(scope, send, path)

    async def _serve(self, scope: Scope, send: Send, path: str) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await _problem(scope, send, problem(405, "brand resources are read-only", headers={"Allow": "GET, HEAD"}))
            return
        if context.current() is None:
            await _problem(scope, send, problem(404, "no tenant is served at this address"))
            return
        try:
            brand = await self.tn.branding.acurrent()
        except TenantryError as err:
            # a tenant gone meanwhile has no brand; a failing server says nothing of itself here
            if err.http_status < 500:
                await _problem(scope, send, problem(404, "no brand here"))
            else:
                await _problem(scope, send, problem_from_error(err, detail="please try again shortly"))
            return
        if path == "/theme.css":
            await self._css(scope, send, brand, versioned=False)
        elif path.startswith("/theme.") and path.endswith(".css") and path.count("/") == 1:
            await self._css(scope, send, brand, versioned=True)
        elif path.startswith("/assets/") and path.count("/") == 2:
            await self._asset(scope, send, brand, path.removeprefix("/assets/"), _IMMUTABLE)
        elif path in ("/logo", "/favicon"):
            asset = getattr(brand.theme, path[1:])
            if asset is None:
                await _problem(scope, send, problem(404, f"this brand has no {path[1:]}"))
            else:
                await self._asset(scope, send, brand, asset.filename, _REVALIDATE)
        else:
            await _problem(scope, send, problem(404, "no such brand resource"))

    async def _css(self, scope: Scope, send: Send, brand: Brand, *, versioned: bool) -> None:
        sheet = self.tn.branding.stylesheet(brand)
        if versioned and scope["path"].rsplit("/", 1)[-1] != sheet.filename:
            # an old (or another tenant's) digest: the current stylesheet lives elsewhere
            full = scope["path"]
            root = scope.get("root_path", "")
            if root and not full.startswith(root):
                full = root + full
            location = full.rsplit("/", 1)[0] + "/" + sheet.filename
            await _respond(scope, send, 307, b"", [(b"location", location.encode()), (b"cache-control", b"no-store")])
            return
        headers = [
            (b"content-type", b"text/css; charset=utf-8"),
            (b"cache-control", _IMMUTABLE if versioned else _REVALIDATE),
            (b"etag", sheet.etag.encode()),
            (b"x-content-type-options", b"nosniff"),
        ]
        if _matches(scope, sheet.etag):
            await _respond(scope, send, 304, b"", headers[1:3])
        else:
            await _respond(scope, send, 200, sheet.css.encode(), headers)

    async def _asset(self, scope: Scope, send: Send, brand: Brand, filename: str, cache: bytes) -> None:
        found = await self.tn.branding.aasset(brand, filename)
        if found is None:
            await _problem(scope, send, problem(404, "no such brand resource"))
            return
        content_type, data = found
        etag = f'"{filename.split(".", 1)[0]}"'
        headers = [(b"cache-control", cache), (b"etag", etag.encode()), *_IMAGE_HEADERS]
        if _matches(scope, etag):
            await _respond(scope, send, 304, b"", headers[:2])
        else:
            await _respond(scope, send, 200, data, [(b"content-type", content_type.encode()), *headers])


def _route_path(scope: Scope) -> str:
    """The path below the mount point (Starlette keeps the full path and sets ``root_path``)."""
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :] or "/"
    return path


def _matches(scope: Scope, etag: str) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"if-none-match":
            tags = [t.strip().removeprefix("W/") for t in value.decode("latin-1").split(",")]
            return "*" in tags or etag in tags
    return False


async def _respond(scope: Scope, send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    if status != 304:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" or status == 304 else body})


async def _problem(scope: Scope, send: Send, p: Problem) -> None:
    # never kept: the same URL answers once the brand (or the server) is back
    await send_problem(scope, send, p.with_headers({"Cache-Control": "no-store"}))
