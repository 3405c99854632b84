"""Plugin routes at /_plugins/<name>/: only for tenants the plugin is switched on for (404 for
everyone else, as for a plugin that does not exist), behind the app's authorisation, and a
plugin whose route raises fails that request only."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tenantry import PluginRoutes, SubdomainResolver, Tenant, TenantMiddleware, Tenantry, mount_plugins
from tests.plugins.sample_plugins import Note


def _site(tn: Tenantry, *, authorize: Any = None, middleware_form: bool = False) -> Any:
    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("home")

    app: Any = Starlette(routes=[Route("/", home)])
    if middleware_form:
        app = PluginRoutes(tn, app, authorize=authorize)
    else:
        mount_plugins(app, tn, authorize=authorize)
    return TenantMiddleware(app, tn, [SubdomainResolver("test")])


@pytest.fixture
def runner(ptn: Tenantry) -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as run:
        yield run
        run.run(ptn.router.aclose())


def _get(runner: asyncio.Runner, app: Any, slug: str, path: str, **headers: str) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{slug}.test") as client:
            return await client.get(path, headers=headers)

    return runner.run(go())


@pytest.mark.parametrize("middleware_form", [False, True])
def test_routes_answer_only_where_the_plugin_is_on(
    ptn: Tenantry, ptenant: Callable[..., Tenant], runner: asyncio.Runner, middleware_form: bool
) -> None:
    on, off = ptenant(), ptenant()
    ptn.plugins.enable("notes", tenant=on.slug)
    with ptn.tenant(on.slug), Session(ptn.engine()) as session, session.begin():
        session.add(Note(body="for on only"))
    site = _site(ptn, middleware_form=middleware_form)
    answer = _get(runner, site, on.slug, "/_plugins/notes/anything")
    assert answer.status_code == 200
    assert answer.json() == {
        "tenant": on.slug,
        "path": "/_plugins/notes/anything",
        "root_path": "/_plugins/notes",
        "notes": ["for on only"],
        "title": "Notes",
    }
    refused = _get(runner, site, off.slug, "/_plugins/notes/anything")
    unknown = _get(runner, site, on.slug, "/_plugins/nope/anything")
    for response in (refused, unknown):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == "no such resource"  # the same answer: nothing to learn
    assert _get(runner, site, off.slug, "/").text == "home"  # the rest of the app is untouched


def test_authorize_guards_every_plugin_route(
    ptn: Tenantry, ptenant: Callable[..., Tenant], runner: asyncio.Runner
) -> None:
    tenant = ptenant()
    ptn.plugins.enable("notes", tenant=tenant.slug)
    seen: list[str] = []

    async def signed_in(scope: Any) -> bool:
        seen.append(scope["path"])
        return dict(scope["headers"]).get(b"authorization") == b"Bearer ok"

    site = _site(ptn, authorize=signed_in)
    assert _get(runner, site, tenant.slug, "/_plugins/notes/").status_code == 403
    assert _get(runner, site, tenant.slug, "/_plugins/notes/", authorization="Bearer ok").status_code == 200
    other = ptenant()
    assert _get(runner, site, other.slug, "/_plugins/notes/", authorization="Bearer ok").status_code == 404
    assert seen == ["/_plugins/notes/", "/_plugins/notes/"]  # not asked where the plugin is off


def test_a_raising_route_is_contained_and_reported(
    ptn: Tenantry, ptenant: Callable[..., Tenant], runner: asyncio.Runner
) -> None:
    tenant, neighbour = ptenant(), ptenant()
    for t in (tenant, neighbour):
        ptn.plugins.enable("exploder", tenant=t.slug)
        ptn.plugins.enable("notes", tenant=t.slug)
    site = _site(ptn)
    failed = _get(runner, site, tenant.slug, "/_plugins/exploder/x", accept="text/html")
    assert (
        failed.status_code == 500 and "the plugin failed" in failed.text and failed.text.startswith("<!doctype html>")
    )
    late = _get(runner, site, tenant.slug, "/_plugins/exploder/late")  # raised after it answered: the answer stands
    assert late.status_code == 200 and late.text == "done"
    with pytest.raises(ValueError, match="route boom"):  # cut off halfway: the server must abort it
        _get(runner, site, tenant.slug, "/_plugins/exploder/half")
    [failure] = ptn.plugins.errors(plugin="exploder", tenant=tenant.slug)
    assert (failure.hook, failure.count, failure.last_error) == ("asgi", 3, "ValueError: route boom")
    assert (
        _get(runner, site, neighbour.slug, "/_plugins/notes/").status_code == 200
    )  # other plugins, other tenants: fine
    assert ptn.plugins.errors(plugin="exploder", tenant=neighbour.slug) == []


def test_no_tenant_no_routes(ptn: Tenantry, runner: asyncio.Runner) -> None:
    routes = PluginRoutes(ptn, authorize=None)

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=routes), base_url="http://x") as client:
            return await client.get("/notes/")

    assert runner.run(go()).status_code == 404
