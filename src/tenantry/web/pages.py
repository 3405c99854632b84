"""The pages browsers get when the edge refuses a request for want of a tenant to serve.

API clients get RFC 9457 problem documents (:mod:`tenantry.problems`); a browser (its
``Accept`` names ``text/html``) gets a page with the same status and headers:

* a request that names **no tenant, or an unknown one**: :func:`no_tenant_page`, a neutral
  page that names no tenant (the app may show its own: ``TenantMiddleware(no_tenant_page=...)``,
  a :data:`NoTenantPage`; a demo can list its tenants' sites there, a production app should
  not tell strangers who its customers are);
* a **suspended, archived or not yet placed** tenant: :func:`inactive_page`, in the tenant's
  brand (its product or display name, colours, fonts and logo, never its internal slug) with
  a next step for the person reading it.

Pure: strings and themes in, HTML out.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Awaitable, Callable

from tenantry.branding.css import render_css
from tenantry.branding.theme import Theme
from tenantry.core.model import Status
from tenantry.web.resolvers import RequestInfo

__all__ = ["NoTenantPage", "inactive_page", "no_tenant_page"]

NoTenantPage = Callable[[RequestInfo], str | Awaitable[str]]
"""The HTML a browser gets for a request that names no tenant or an unknown one: a function of
the request (a coroutine function, or a plain one, which runs in a worker thread and so may
read the database). The response keeps its 404 status."""

_STYLE = (
    "body{margin:0;font:16px/1.5 var(--brand-font-body,system-ui,sans-serif);color:var(--brand-text,#1d2330);"
    "background:var(--brand-background,#f7f8fa)}"
    "main{max-width:34em;margin:12vh auto;padding:1.6em 1.8em;background:var(--brand-surface,#fff);"
    "border-top:4px solid var(--brand-primary,#3b5bdb);border-radius:8px;box-shadow:0 1px 3px #0002}"
    "h1{font-family:var(--brand-font-heading,inherit);font-size:1.4em;margin:.2em 0 .6em}"
    "p{color:var(--brand-muted,#667085)}img{display:block;max-height:48px;width:auto}"
    "@media (max-width:36em){main{margin:0;border-radius:0}}"
)

_REASONS = {
    Status.SUSPENDED: "{name} is suspended for now, so its pages are not available.",
    Status.ARCHIVED: "{name} has been closed, so its pages are no longer available.",
}
_NOT_YET = "{name} is not open yet: it is still being set up."


def _document(title: str, body: str, css: str = "") -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{title}</title><style>{css}{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def no_tenant_page() -> str:
    """The default page for a request that names no tenant or an unknown one: it names none."""
    return _document(
        "No site here",
        "<h1>There is no site at this address</h1>"
        "<p>Check the address: it may be mistyped, or the link you followed may be out of date."
        " If someone sent it to you, ask them for the right one.</p>",
    )


def inactive_page(name: str, status: Status, theme: Theme | None = None, logo: tuple[str, bytes] | None = None) -> str:
    """The page of a tenant that cannot be served (``status`` says why), in its brand.

    ``name`` is what its users know it by (the brand's product name, else its display name);
    ``logo`` is ``(content type, bytes)``, inlined since the tenant's own routes are refused
    too. The values of ``theme`` were validated when it was saved, and are written out by
    :func:`~tenantry.branding.css.render_css`, which checks them again.
    """
    shown = html.escape(name)
    reason = _REASONS.get(status, _NOT_YET).format(name=shown)
    image = ""
    if logo is not None:
        image = f'<img src="data:{html.escape(logo[0])};base64,{base64.b64encode(logo[1]).decode()}" alt="">'
    body = (
        f"{image}<h1>{shown} is unavailable</h1><p>{reason}</p>"
        f"<p>If you use {shown} for your work, contact your administrator: they can tell you when it will be"
        " back. Otherwise, try again later.</p>"
    )
    return _document(f"{shown} is unavailable", body, render_css(theme or Theme()))
