"""The admin API's front door (issue 12): ``/`` is a page of links, and the documentation
pages load nothing from outside the API (their assets come from an installed package).

No database: the pages need none (the browser test in tests/e2e/test_browser.py renders them)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from anyio.from_thread import BlockingPortal
from fastapi import FastAPI
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tenantry import Settings, Tenantry
from tenantry.api import create_admin_app
from tests.api.support import Client


class _Refs(HTMLParser):
    """Every URL a page refers to (links, scripts, styles, images)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("href", "src") and value]


def _refs(html: str) -> list[str]:
    parser = _Refs()
    parser.feed(html)
    return parser.urls


@pytest.fixture(scope="module")
def offline_tn() -> Iterator[Tenantry]:
    # the pages read no database: a Tenantry that could not reach one serves them
    with Tenantry(Settings(database_url="host=127.0.0.1 port=1 user=nobody dbname=x", connect_timeout=1)) as tn:
        yield tn


def _app(tn: Tenantry, **kwargs: bool) -> FastAPI:
    return create_admin_app(tn, job_workers=1, **kwargs)


@pytest.fixture
def docs_app(offline_tn: Tenantry) -> Iterator[FastAPI]:
    app = _app(offline_tn)
    yield app
    app.state.jobs.close()


def test_the_front_door_links_the_docs_the_spec_and_says_how_to_get_a_token(
    portal: BlockingPortal, docs_app: FastAPI
) -> None:
    response = Client(portal, docs_app).get("/")  # no token
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert _refs(response.text) == ["/docs", "/redoc", "/openapi.json"]
    assert "tenantry tokens create" in response.text and "<code>/v1</code>" in response.text
    assert response.headers["content-security-policy"].startswith("default-src 'none'")


def test_the_docs_pages_load_only_their_own_assets(portal: BlockingPortal, docs_app: FastAPI) -> None:
    client = Client(portal, docs_app)
    expected = {
        "/docs": {"/docs/assets/swagger-ui.css", "/docs/assets/favicon.png", "/docs/assets/swagger-ui-bundle.js"},
        "/redoc": {"/docs/assets/favicon.png", "/docs/assets/redoc.standalone.js"},
    }
    for page, assets in expected.items():
        response = client.get(page)
        assert response.status_code == 200, page
        assert set(_refs(response.text)) == assets, page
        # nothing absolute anywhere in the page: no CDN, no web fonts, no online validator
        assert not re.search(r"https?://", response.text), page
        assert "url: '/openapi.json'" in response.text or 'spec-url="/openapi.json"' in response.text
        # and the browser may load nothing from elsewhere (ReDoc asks for a logo from its CDN)
        assert response.headers["content-security-policy"].startswith("default-src 'self'; img-src 'self' data:;")
        for asset in assets:
            served = client.get(asset)
            assert served.status_code == 200 and len(served.content) > 1000, asset
    assert '"validatorUrl": null' in client.get("/docs").text
    assert "SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").text
    assert client.get("/docs/assets/redoc.standalone.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/docs/assets/nothing.js").status_code == 404


def test_without_docs_the_front_door_links_the_spec_alone(portal: BlockingPortal, offline_tn: Tenantry) -> None:
    app = _app(offline_tn, docs=False)
    try:
        client = Client(portal, app)
        for path in ("/docs", "/redoc", "/docs/assets/swagger-ui-bundle.js"):
            assert client.get(path).status_code == 404, path
        assert _refs(client.get("/").text) == ["/openapi.json"]
    finally:
        app.state.jobs.close()


def test_a_console_or_health_check_mounted_later_is_linked(portal: BlockingPortal, docs_app: FastAPI) -> None:
    async def ok(request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    docs_app.router.routes.append(Route("/healthz", ok))
    docs_app.router.routes.append(Route("/console", ok))
    assert _refs(Client(portal, docs_app).get("/").text) == ["/docs", "/redoc", "/openapi.json", "/console", "/healthz"]


def test_under_a_prefix_the_links_and_assets_carry_it(portal: BlockingPortal, docs_app: FastAPI) -> None:
    outer = FastAPI()
    outer.mount("/admin", docs_app)
    client = Client(portal, outer)
    assert _refs(client.get("/admin/").text) == ["/admin/docs", "/admin/redoc", "/admin/openapi.json"]
    assert "/admin/docs/assets/swagger-ui-bundle.js" in _refs(client.get("/admin/docs").text)
    assert "url: '/admin/openapi.json'" in client.get("/admin/docs").text
    assert client.get("/admin/docs/assets/swagger-ui-bundle.js").status_code == 200
