"""``BrandRoutes`` over HTTP: the bound tenant's stylesheet and images, validators and cache
headers, and never another tenant's — by URL, by hash, by ETag, or through a warm cache."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import httpx
import pytest

from tenantry import BrandRoutes, Tenant, Tenantry
from tests.branding.images import pillow, png
from tests.branding.support import brand_site, client


def _get(runner: asyncio.Runner, app: object, slug: str, path: str, **kwargs: object) -> httpx.Response:
    async def go() -> httpx.Response:
        async with client(app, slug) as c:
            return await c.request(kwargs.pop("method", "GET"), path, **kwargs)  # type: ignore[arg-type]

    return runner.run(go())


@pytest.fixture
def two(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> tuple[Tenant, Tenant]:
    a, b = make_tenant("brand-a"), make_tenant("brand-b")
    tn.branding.set(
        a.slug,
        {"colors": {"primary": "#aa0000"}},
        logo=png(rgba=b"\xaa\x00\x00\xff"),
        favicon=png(rgba=b"\xaa\x00\x01\xff"),
    )
    tn.branding.set(b.slug, {"colors": {"primary": "#0000bb"}}, logo=pillow("JPEG", (64, 64), (0, 0, 187)))
    return a, b


def test_theme_css_with_revalidation_and_304(tn: Tenantry, two: tuple[Tenant, Tenant], runner: asyncio.Runner) -> None:
    a, _b = two
    app = brand_site(tn)
    response = _get(runner, app, a.slug, "/_brand/theme.css")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/css; charset=utf-8"
    assert response.headers["cache-control"] == "private, no-cache"
    assert "--brand-primary: #aa0000;" in response.text
    etag = response.headers["etag"]
    again = _get(runner, app, a.slug, "/_brand/theme.css", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert (
        _get(runner, app, a.slug, "/_brand/theme.css", headers={"if-none-match": f'"x", W/{etag}'}).status_code == 304
    )
    assert _get(runner, app, a.slug, "/_brand/theme.css", headers={"if-none-match": '"other"'}).status_code == 200
    head = _get(runner, app, a.slug, "/_brand/theme.css", method="HEAD")
    assert (
        head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) == len(response.content)
    )


def test_versioned_css_is_immutable_and_moves_with_the_theme(
    tn: Tenantry, two: tuple[Tenant, Tenant], runner: asyncio.Runner
) -> None:
    a, _b = two
    app = brand_site(tn)
    with tn.tenant(a.slug):
        name = tn.branding.stylesheet(tn.branding.current()).filename
    response = _get(runner, app, a.slug, f"/_brand/{name}")
    assert response.status_code == 200 and response.headers["cache-control"] == "private, max-age=31536000, immutable"
    tn.branding.set(a.slug, {"colors": {"primary": "#ab0000"}})
    with tn.tenant(a.slug):
        newer = tn.branding.stylesheet(tn.branding.current()).filename
    assert newer != name
    stale = _get(runner, app, a.slug, f"/_brand/{name}")
    assert stale.status_code == 307 and stale.headers["location"] == f"/_brand/{newer}"
    assert stale.headers["cache-control"] == "no-store"
    assert "--brand-primary: #ab0000;" in _get(runner, app, a.slug, f"/_brand/{newer}").text


def test_a_tenants_css_never_answers_on_another_host(
    tn: Tenantry, two: tuple[Tenant, Tenant], runner: asyncio.Runner
) -> None:
    a, b = two
    app = brand_site(tn)
    # warm every cache with a's stylesheet first
    a_css = _get(runner, app, a.slug, "/_brand/theme.css")
    with tn.tenant(a.slug):
        a_name = tn.branding.stylesheet(tn.branding.current()).filename
    with tn.tenant(b.slug):
        b_name = tn.branding.stylesheet(tn.branding.current()).filename
    # b's host, a's validator: no 304, b's own stylesheet
    on_b = _get(runner, app, b.slug, "/_brand/theme.css", headers={"if-none-match": a_css.headers["etag"]})
    assert on_b.status_code == 200 and "#0000bb" in on_b.text and "#aa0000" not in on_b.text
    assert on_b.headers["etag"] != a_css.headers["etag"]
    # b's host, a's versioned name: a redirect to b's own, never a's content
    moved = _get(runner, app, b.slug, f"/_brand/{a_name}")
    assert moved.status_code == 307 and moved.headers["location"] == f"/_brand/{b_name}" and "#aa0000" not in moved.text


def test_identical_themes_of_two_tenants_still_get_their_own_validators(
    tn: Tenantry, make_tenant: Callable[..., Tenant], runner: asyncio.Runner
) -> None:
    a, b = make_tenant("brand"), make_tenant("brand")
    app = brand_site(tn)
    on_a = _get(runner, app, a.slug, "/_brand/theme.css")
    on_b = _get(runner, app, b.slug, "/_brand/theme.css", headers={"if-none-match": on_a.headers["etag"]})
    assert on_a.text == on_b.text and on_b.status_code == 200 and on_a.headers["etag"] != on_b.headers["etag"]


def test_assets_answer_only_for_the_tenant_whose_brand_uses_them(
    tn: Tenantry, two: tuple[Tenant, Tenant], runner: asyncio.Runner
) -> None:
    a, b = two
    app = brand_site(tn)
    a_logo = tn.branding.get(a.slug).theme.logo
    b_logo = tn.branding.get(b.slug).theme.logo
    assert a_logo is not None and b_logo is not None
    # a fetches its own logo (and so warms the image cache) ...
    own = _get(runner, app, a.slug, f"/_brand/assets/{a_logo.filename}")
    assert own.status_code == 200 and own.headers["content-type"] == "image/png"
    assert own.headers["x-content-type-options"] == "nosniff"
    assert own.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert own.headers["cross-origin-resource-policy"] == "same-origin"
    assert own.headers["cache-control"] == "private, max-age=31536000, immutable"
    assert own.headers["etag"] == f'"{a_logo.sha256}"'
    assert (
        _get(
            runner, app, a.slug, f"/_brand/assets/{a_logo.filename}", headers={"if-none-match": own.headers["etag"]}
        ).status_code
        == 304
    )
    # ... and b, knowing the hash, still gets nothing: not the bytes, not a 304
    for path in (
        f"/_brand/assets/{a_logo.filename}",
        f"/_brand/assets/{a_logo.sha256}.jpg",
        f"/_brand/assets/{a_logo.sha256}",
        f"/_brand/assets/{a_logo.filename.upper()}",
    ):
        stolen = _get(runner, app, b.slug, path, headers={"if-none-match": own.headers["etag"]})
        assert stolen.status_code == 404, path
        assert stolen.headers["content-type"] == "application/problem+json" and stolen.json()["status"] == 404
    # b's own works, under its own type only
    assert _get(runner, app, b.slug, f"/_brand/assets/{b_logo.filename}").headers["content-type"] == "image/jpeg"
    assert _get(runner, app, b.slug, f"/_brand/assets/{b_logo.sha256}.png").status_code == 404


def test_shared_bytes_serve_each_user_and_nobody_after_they_move_on(
    tn: Tenantry, make_tenant: Callable[..., Tenant], runner: asyncio.Runner
) -> None:
    a, b, c = make_tenant("brand"), make_tenant("brand"), make_tenant("brand")
    shared = png(rgba=b"\x12\x34\x56\xff")
    name = tn.branding.set(a.slug, logo=shared).brand.theme.logo.filename  # type: ignore[union-attr]
    tn.branding.set(b.slug, logo=shared)
    app = brand_site(tn)
    assert _get(runner, app, a.slug, f"/_brand/assets/{name}").content == shared
    assert _get(runner, app, b.slug, f"/_brand/assets/{name}").content == shared
    assert _get(runner, app, c.slug, f"/_brand/assets/{name}").status_code == 404  # warm cache, still no
    tn.branding.set(a.slug, {"logo": None})
    assert _get(runner, app, a.slug, f"/_brand/assets/{name}").status_code == 404
    assert _get(runner, app, b.slug, f"/_brand/assets/{name}").status_code == 200


def test_logo_and_favicon_routes(tn: Tenantry, two: tuple[Tenant, Tenant], runner: asyncio.Runner) -> None:
    a, b = two
    app = brand_site(tn)
    favicon = _get(runner, app, a.slug, "/_brand/favicon")
    assert favicon.status_code == 200 and favicon.headers["cache-control"] == "private, no-cache"
    assert favicon.content.startswith(b"\x89PNG")
    assert (
        _get(runner, app, a.slug, "/_brand/favicon", headers={"if-none-match": favicon.headers["etag"]}).status_code
        == 304
    )
    assert _get(runner, app, b.slug, "/_brand/favicon").status_code == 404  # b has none
    logo = _get(runner, app, b.slug, "/_brand/logo")
    assert logo.status_code == 200 and logo.headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize(
    "path",
    [
        "/_brand/",
        "/_brand/theme.js",
        "/_brand/assets/",
        "/_brand/assets/x/y.png",
        "/_brand/theme.css/x",
        "/_brand/%2e%2e/secrets",
        "/_brand/assets/..%2ftheme.css",
        "/_brand/theme..css",
    ],
)
def test_anything_else_is_404(tn: Tenantry, two: tuple[Tenant, Tenant], runner: asyncio.Runner, path: str) -> None:
    response = _get(runner, brand_site(tn), two[0].slug, path)
    assert response.status_code in (404, 307) and response.headers["cache-control"] == "no-store"
    if response.status_code == 307:  # theme.<anything>.css: the current stylesheet
        assert re.fullmatch(r"/_brand/theme\.[0-9a-f]{16}\.css", response.headers["location"])


def test_no_tenant_no_brand_and_writes_are_refused(
    tn: Tenantry, two: tuple[Tenant, Tenant], runner: asyncio.Runner
) -> None:
    app = brand_site(tn)
    unbound = _get(runner, app, "x", "/_brand/theme.css", headers={"host": "example.org"})  # no tenant bound
    assert unbound.status_code == 404 and unbound.json()["detail"] == "no tenant is served at this address"
    post = _get(runner, app, two[0].slug, "/_brand/theme.css", method="POST")
    assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"


def test_as_middleware_it_passes_everything_else_on(
    tn: Tenantry, two: tuple[Tenant, Tenant], runner: asyncio.Runner
) -> None:
    from starlette.responses import PlainTextResponse

    from tests.branding.support import HostTenancy

    async def inner(scope: object, receive: object, send: object) -> None:
        await PlainTextResponse("inner")(scope, receive, send)  # type: ignore[arg-type]

    app = HostTenancy(BrandRoutes(tn, inner, prefix="/assets-of-brand/"), tn)
    assert _get(runner, app, two[0].slug, "/").text == "inner"
    assert _get(runner, app, two[0].slug, "/assets-of-brandx").text == "inner"
    assert "#aa0000" in _get(runner, app, two[0].slug, "/assets-of-brand/theme.css").text
