"""The admin API's front door: ``/`` (a small page of links) and the API's documentation pages,
served with no network beyond the API itself.

* ``/`` links to what this app serves: the interactive docs (``/docs``), the reference
  (``/redoc``), the OpenAPI spec (``/openapi.json``), and a health check or an admin console
  when one is mounted on the app; and it says how to get a token for the API (``/v1``).
* ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) load their scripts and styles from
  ``/docs/assets/``, served from the ``fastapi-offline`` package's copy of them, not from a CDN,
  so the pages work on a machine without internet access. Swagger UI's online validator is off
  for the same reason, and each page's ``Content-Security-Policy`` lets the browser load
  from this host alone (ReDoc would otherwise fetch Redocly's logo from their CDN).

Like the spec, these pages need no token (only ``/v1`` does); ``create_admin_app(tn,
docs=False)`` leaves out the documentation pages and their assets, and the front door then
links to the spec alone.
"""

from __future__ import annotations

import html
from typing import Any

import fastapi_offline  # imported here, so that a missing web extra fails as the others do
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import BaseRoute, Mount, Route

__all__ = ["ASSETS_PACKAGE", "ASSETS_PATH", "DOCS_PATH", "REDOC_PATH", "install_front_door"]

DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
ASSETS_PATH = "/docs/assets"
#: the installed package whose ``static/`` folder holds Swagger UI's and ReDoc's bundles
ASSETS_PACKAGE = fastapi_offline.__name__

#: pages the front door links when the app serves them (a console or health check mounted later)
_OPTIONAL = (
    ("/console", "Admin console", "the web console"),
    ("/healthz", "Health", "is this process up"),
    ("/health", "Health", "is this process up"),
)

#: the documentation pages load from this host alone (their scripts style the page inline, draw
#: icons from data: URLs and search in a worker made from a blob)
_DOCS_POLICY = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; worker-src 'self' blob:"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; color: #1d2330; background: #f7f8fa; margin: 0; }}
main {{ max-width: 40rem; margin: 3rem auto; padding: 0 1.5rem; }}
h1 {{ font-size: 1.6rem; margin-bottom: .25rem; }}
ul {{ padding: 0; list-style: none; }}
li {{ margin: .75rem 0; }}
a {{ color: #2b4bc6; font-weight: 600; }}
code {{ background: #e9ecf2; padding: .1rem .3rem; border-radius: 3px; }}
.muted {{ color: #5c6577; }}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
<p class="muted">API version {version}</p>
<ul id="links">
{links}
</ul>
<p>The API under <code>{api}</code> needs a token:
<code>tenantry tokens create NAME --scope tenants:read</code>, sent as
<code>Authorization: Bearer &lt;token&gt;</code>.</p>
</main>
</body>
</html>
"""


def install_front_door(app: FastAPI, *, api_prefix: str, docs: bool = True) -> None:
    """Add ``/`` to ``app`` and, with ``docs``, ``/docs``, ``/redoc`` and their assets.

    ``app`` must have been made with ``docs_url=None, redoc_url=None`` (FastAPI's own pages
    load from a CDN).
    """
    if docs:
        app.mount(ASSETS_PATH, StaticFiles(packages=[(ASSETS_PACKAGE, "static")]), name="docs-assets")

        @app.get(DOCS_PATH, include_in_schema=False)
        async def swagger_ui(request: Request) -> HTMLResponse:
            root = _root(request)
            page = get_swagger_ui_html(
                openapi_url=root + _openapi_url(app),
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
                # no badge fetched from the online validator; the token entered stays on reload
                swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
            )
            page.headers["Content-Security-Policy"] = _DOCS_POLICY + "; script-src 'self' 'unsafe-inline'"
            return page

        @app.get(REDOC_PATH, include_in_schema=False)
        async def redoc(request: Request) -> HTMLResponse:
            root = _root(request)
            page = get_redoc_html(
                openapi_url=root + _openapi_url(app),
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
                with_google_fonts=False,
            )
            # ReDoc shows Redocly's logo from their CDN, whatever its options: the policy keeps
            # the browser from asking for it (the page hides an image that fails)
            page.headers["Content-Security-Policy"] = _DOCS_POLICY + "; script-src 'self'"
            return page

    @app.get("/", include_in_schema=False)
    async def front_door(request: Request) -> HTMLResponse:
        root = _root(request)
        links = [(root + href, label, note) for href, label, note in _links(app, api_prefix)]
        items = "\n".join(
            f'<li><a href="{html.escape(href)}">{html.escape(label)}</a> <code>{html.escape(href)}</code><br>'
            f'<span class="muted">{html.escape(note)}</span></li>'
            for href, label, note in links
        )
        page = _PAGE.format(
            title=html.escape(app.title),
            version=html.escape(app.version),
            links=items,
            api=html.escape(root + api_prefix),
        )
        # the page loads nothing: no script, no image, no style sheet of its own
        return HTMLResponse(page, headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})


def _links(app: FastAPI, api_prefix: str) -> list[tuple[str, str, str]]:
    """(path, label, what it is) of every page the app serves now."""
    paths = {_path(route) for route in app.routes}
    links = []
    if DOCS_PATH in paths:
        links.append((DOCS_PATH, "Interactive API docs", "Swagger UI: try the operations with a token"))
    if REDOC_PATH in paths:
        links.append((REDOC_PATH, "API reference", "ReDoc: every operation and schema"))
    openapi = app.openapi_url
    if openapi and openapi in paths:
        links.append((openapi, "OpenAPI spec", "OpenAPI 3.1, as JSON"))
    seen = set()
    for path, label, note in _OPTIONAL:
        if path in paths and label not in seen:
            seen.add(label)
            links.append((path, label, note))
    return links


def _path(route: BaseRoute) -> str | None:
    if isinstance(route, Route | Mount):
        return route.path
    return None


def _root(request: Request) -> str:
    root: Any = request.scope.get("root_path", "")
    return str(root).rstrip("/")


def _openapi_url(app: FastAPI) -> str:
    assert app.openapi_url is not None
    return app.openapi_url
