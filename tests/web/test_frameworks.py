"""The same middleware under FastAPI and Litestar (Starlette: test_middleware.py): subdomain and
path prefix routing, an RLS read, a streamed body and a background task under the right tenant."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import fastapi
import litestar
from litestar.background_tasks import BackgroundTask as LitestarBackgroundTask
from litestar.middleware import DefineMiddleware
from litestar.response import Stream

from tenantry import Tenantry, current_tenant
from tenantry.web import PathPrefixResolver, SubdomainResolver, TenantMiddleware
from tests.web.edge_app import BASE, client, seed, slug_now


def resolvers() -> list[Any]:
    return [SubdomainResolver(BASE), PathPrefixResolver("/t")]


async def _rows(tn: Tenantry) -> list[str]:
    async with tn.async_connection() as conn:
        return [r[0] for r in await (await conn.execute("SELECT name FROM projects ORDER BY name")).fetchall()]


async def _chunks() -> AsyncIterator[str]:
    for i in range(4):
        await asyncio.sleep(0.003)
        yield f"{i}:{slug_now()}\n"


def fastapi_app(tn: Tenantry, seen: list[str | None]) -> fastapi.FastAPI:
    app = fastapi.FastAPI()

    def tenant_slug() -> str | None:  # a dependency sees the tenant too
        return slug_now()

    @app.get("/who", name="who")
    async def who(request: fastapi.Request, slug: str | None = fastapi.Depends(tenant_slug)) -> dict[str, Any]:
        return {"tenant": slug, "path": request.url.path, "url_for": str(request.url_for("who"))}

    @app.get("/projects")
    async def projects() -> dict[str, Any]:
        return {"tenant": slug_now(), "projects": await _rows(tn)}

    @app.get("/stream")
    async def stream() -> fastapi.responses.StreamingResponse:
        return fastapi.responses.StreamingResponse(_chunks(), media_type="text/plain")

    @app.get("/background")
    async def background(tasks: fastapi.BackgroundTasks) -> dict[str, Any]:
        tasks.add_task(lambda: seen.append(slug_now()))  # a sync task: run in a worker thread
        return {"tenant": slug_now()}

    app.add_middleware(TenantMiddleware, tenantry=tn, resolvers=resolvers())
    return app


def litestar_app(tn: Tenantry, seen: list[str | None], middleware: list[Any] | None = None) -> litestar.Litestar:
    @litestar.get("/who", name="who")
    async def who(request: litestar.Request[Any, Any, Any]) -> dict[str, Any]:
        return {"tenant": slug_now(), "path": request.url.path, "url_for": request.url_for("who")}

    @litestar.get("/projects")
    async def projects() -> dict[str, Any]:
        return {"tenant": slug_now(), "projects": await _rows(tn)}

    @litestar.get("/stream")
    async def stream() -> Stream:
        return Stream(_chunks(), media_type="text/plain")

    @litestar.get("/background")
    async def background() -> litestar.Response[dict[str, Any]]:
        async def later() -> None:
            seen.append(slug_now())

        return litestar.Response({"tenant": slug_now()}, background=LitestarBackgroundTask(later))

    return litestar.Litestar(route_handlers=[who, projects, stream, background], middleware=middleware)


def _exercise(app: Any, tn: Tenantry, run: Any, make_tenant: Any, *, path_prefix: bool = True) -> str:
    """Run the requests; returns the slug the background task must have seen."""
    a, b = make_tenant("fw"), make_tenant("fw")
    seed(tn, a.slug, "a-only")
    seed(tn, b.slug, "b-only")

    async def main() -> dict[str, Any]:
        async with client(app) as c:

            async def text(url: str) -> str:
                return (await c.get(url)).text

            streams = await asyncio.gather(*(text(f"http://{t.slug}.{BASE}/stream") for t in (a, b, a, b)))
            out: dict[str, Any] = {
                "who": (await c.get(f"http://{a.slug}.{BASE}/who")).json(),
                "projects": [(await c.get(f"http://{t.slug}.{BASE}/projects")).json() for t in (a, b)],
                "streams": streams,
                "background": (await c.get(f"http://{b.slug}.{BASE}/background")).json(),
                "unknown": (await c.get(f"http://nobody-here.{BASE}/who")).status_code,
            }
            if path_prefix:
                out["prefixed"] = (await c.get(f"http://{BASE}/t/{b.slug}/who")).json()
                out["prefixed_rows"] = (await c.get(f"http://{BASE}/t/{a.slug}/projects")).json()
            assert current_tenant() is None
            return out

    out = run(main())
    assert out["who"]["tenant"] == a.slug and out["who"]["path"] == "/who"
    assert out["projects"] == [{"tenant": a.slug, "projects": ["a-only"]}, {"tenant": b.slug, "projects": ["b-only"]}]
    for slug, body in zip((a.slug, b.slug, a.slug, b.slug), out["streams"]):
        assert body == "".join(f"{i}:{slug}\n" for i in range(4))
    assert out["background"] == {"tenant": b.slug}
    assert out["unknown"] == 404
    if path_prefix:
        assert out["prefixed"]["tenant"] == b.slug
        assert out["prefixed"]["path"] == f"/t/{b.slug}/who"
        assert out["prefixed"]["url_for"].endswith(f"/t/{b.slug}/who")
        assert out["prefixed_rows"] == {"tenant": a.slug, "projects": ["a-only"]}
    return b.slug


def test_fastapi(tn: Tenantry, run, make_tenant) -> None:
    seen: list[str | None] = []
    assert seen == [_exercise(fastapi_app(tn, seen), tn, run, make_tenant)]


def test_litestar_wrapped(tn: Tenantry, run, make_tenant) -> None:
    """Wrapping the whole app: the path prefix is moved before Litestar routes."""
    seen: list[str | None] = []
    app = TenantMiddleware(litestar_app(tn, seen), tenantry=tn, resolvers=resolvers())
    assert seen == [_exercise(app, tn, run, make_tenant)]


def test_litestar_define_middleware(tn: Tenantry, run, make_tenant) -> None:
    """Litestar's own middleware list (it runs after routing: host-based resolvers only)."""
    seen: list[str | None] = []
    hosted = litestar_app(
        tn, seen, middleware=[DefineMiddleware(TenantMiddleware, tenantry=tn, resolvers=[SubdomainResolver(BASE)])]
    )
    assert seen == [_exercise(hosted, tn, run, make_tenant, path_prefix=False)]
