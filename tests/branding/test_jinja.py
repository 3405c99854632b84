"""``install_brand_helpers``: ``brand()`` in templates is the bound tenant's brand, with URLs
``BrandRoutes`` serves, and never another tenant's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from jinja2 import Environment

from tenantry import Tenant, Tenantry, install_brand_helpers
from tests.branding.images import png
from tests.branding.support import brand_site, client

PAGE = (
    "{% set b = brand() %}{{ b.product_name }}|{{ b.css_url }}|{{ b.logo_url }}|{{ b.favicon_url }}"
    "|{{ b.colors.primary }}|{{ b.fonts.heading }}|{{ b.version }}"
)


def test_brand_is_the_bound_tenants(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    a, b = make_tenant("brand", name="Acme <Corp>"), make_tenant("brand", name="Globex")
    logo = tn.branding.set(
        a.slug,
        {"colors": {"primary": "#aa0000"}, "fonts": {"heading": "Georgia, serif"}},
        logo=png(rgba=b"\xab\x00\x00\xff"),
    ).brand.theme.logo
    assert logo is not None
    env = Environment(autoescape=True)
    install_brand_helpers(env, tn)
    page = env.from_string(PAGE)
    with tn.tenant(a.slug):
        css = tn.branding.stylesheet(tn.branding.current()).filename
        shown = page.render()
    assert shown == (
        f"Acme &lt;Corp&gt;|/_brand/{css}|/_brand/assets/{logo.filename}|None|#aa0000|&#34;Georgia&#34;, serif|1"
    )
    with tn.tenant(b.slug):
        other = page.render()
    assert other.startswith("Globex|/_brand/theme.") and "#aa0000" not in other and logo.sha256 not in other
    assert "|None|None|#3b5bdb|" in other
    assert (
        page.render()
        == "|None|None|None|#3b5bdb|system-ui, &#34;Segoe UI&#34;, &#34;Roboto&#34;, &#34;Helvetica Neue&#34;, &#34;Arial&#34;, sans-serif|0"
    )


def test_helper_urls_are_served_by_brand_routes(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    a = make_tenant("brand")
    tn.branding.set(a.slug, logo=png(rgba=b"\xac\x00\x00\xff"), favicon=png(rgba=b"\xad\x00\x00\xff"))
    env = Environment(autoescape=True)
    install_brand_helpers(env, tn, prefix="/_brand/")
    with tn.tenant(a.slug):
        urls = (
            env.from_string("{% set b = brand() %}{{ b.css_url }} {{ b.logo_url }} {{ b.favicon_url }}")
            .render()
            .split()
        )
    app = brand_site(tn)

    async def fetch() -> list[int]:
        async with client(app, a.slug) as c:
            return [(await c.get(url)).status_code for url in urls]

    assert asyncio.run(fetch()) == [200, 200, 200]
