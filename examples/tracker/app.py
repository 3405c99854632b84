"""The tracker's web app: FastAPI + Jinja2 over tenantry.

Every request is for one tenant, bound by :mod:`examples.tracker.tenancy` from the host name.
The handlers, one router per page area in :mod:`examples.tracker.pages`, query the tables as
if the database held one organisation: tenantry binds the tenant to each transaction and
PostgreSQL's row-level security hides everyone else's rows, so another tenant's project id
simply finds nothing (404).

Tenants differ by more than their data and brand: the ``csv-export`` flag and the ``webhooks``
plugin are switched per tenant (see :mod:`examples.tracker.features`), and the pages show or
hide what they bring as the running app learns of a change, within a second.

Sign-in is deliberately small: pick a member of this tenant by e-mail (a demo has no
passwords). The session cookie (:mod:`examples.tracker.sessions`) is host-only and signed with
a key derived for the tenant, and it names the tenant it was issued for, so a cookie carried
from one tenant's site to another's authenticates nobody. Forms carry a per-session CSRF
token. The signing key is derived from tenantry's stored secret (``TENANTRY_SECRET_KEYS``, or
the embedded server's key file), so sessions outlive a restart and every instance of the app
accepts the others'.

This module assembles the app (:func:`create_app`) and makes the demo's page for hosts that
name no tenant (:func:`site_directory`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from starlette.exceptions import HTTPException

from examples.tracker import pages
from examples.tracker.features import WEBHOOKS
from examples.tracker.pages.common import LoginRequired, templates
from examples.tracker.sessions import SESSION_COOKIE, session_keys, signed_in
from examples.tracker.tenancy import install_tenancy
from tenantry import BrandRoutes, Status, Tenantry, install_brand_helpers, mount_plugins
from tenantry.contrib.webhooks import WebhookWorker
from tenantry.web import NoTenantPage, RequestInfo

__all__ = ["SESSION_COOKIE", "create_app", "site_directory"]

_TEMPLATES = str(Path(__file__).parent / "templates")


def create_app(
    tn: Tenantry,
    base_domain: str = "localhost",
    *,
    secret_key: str | None = None,
    no_tenant_page: NoTenantPage | None = None,
) -> FastAPI:
    """The tracker as an ASGI app serving every tenant of ``tn`` at ``<slug>.<base_domain>``.

    ``no_tenant_page`` makes the page a browser gets at a host that names no tenant (such as
    ``http://localhost:8000/``); by default a neutral one. The demo passes
    :func:`site_directory`.

    ``secret_key`` signs session cookies. By default the key is derived from tenantry's
    stored secret (:meth:`tenantry.Tenantry.secret_keyring`: ``TENANTRY_SECRET_KEYS``, or the
    embedded server's key file), so sessions survive a restart and any instance of the app
    on the same catalog accepts another's cookies; rotating those keys keeps accepting
    cookies signed with the older ones. With no stored secret, a random key (sessions end
    with the process; a warning says so).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # the webhooks plugin's deliveries go out from a worker thread beside the server
        worker = WebhookWorker(tn) if WEBHOOKS in tn.plugins else None
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                await asyncio.to_thread(worker.stop)

    app = FastAPI(title="tracker", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.tn = tn
    app.state.session_keys = session_keys(tn, secret_key)
    app.state.templates = Jinja2Templates(directory=_TEMPLATES)
    # the tenant's brand: brand() in templates, its stylesheet and images under /_brand
    install_brand_helpers(app.state.templates.env, tn)
    app.mount("/_brand", BrandRoutes(tn))
    # plugins' own routes (/_plugins/webhooks/...), for signed-in members of tenants that have them
    mount_plugins(app, tn, authorize=signed_in)
    app.include_router(pages.router)

    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(HTTPException)
    async def _error_page(request: Request, exc: HTTPException) -> Response:
        return templates(request).TemplateResponse(
            request,
            "error.html",
            {"status": exc.status_code, "detail": exc.detail, "org": None, "user": None},
            status_code=exc.status_code,
        )

    install_tenancy(app, tn, base_domain, no_tenant_page=no_tenant_page)
    return app


def site_directory(tn: Tenantry, base_domain: str = "localhost", *, limit: int = 100) -> NoTenantPage:
    """A page listing the active tenants' sites, with links, for hosts that name no tenant.

    For a demo: it reads the catalog's list of tenants (a control-plane process), and a
    production app should not tell anyone who asks who its customers are.
    """
    env = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=True)
    install_brand_helpers(env, tn)  # no tenant is bound here: brand() gives the defaults
    template = env.get_template("sites.html")

    def page(request: RequestInfo) -> str:
        tenants = tn.tenants.list(status=Status.ACTIVE, limit=limit)
        host = request.header(b"host") or ""
        port = host.rsplit(":", 1)[1] if ":" in host.rsplit("]", 1)[-1] else ""
        scheme = str(request.scope.get("scheme", "http"))
        suffix = f":{port}" if port.isdigit() and (scheme, port) not in (("http", "80"), ("https", "443")) else ""
        sites = [(t.name, f"{scheme}://{t.slug}.{base_domain}{suffix}/") for t in tenants]
        return template.render(sites=sites, more=len(tenants) == limit, org=None, user=None)

    return page
