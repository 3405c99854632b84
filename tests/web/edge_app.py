"""The web edge under test: a Starlette app whose endpoints report the tenant they see, and
helpers to call it with httpx in-process (ASGITransport)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from tenantry import Tenantry, current_tenant
from tenantry.web import Resolver, TenantMiddleware
from tests.model_app import Project

BASE = "example.test"


def slug_now() -> str | None:
    bound = current_tenant()
    return None if bound is None else bound.slug


def starlette_app(tn: Tenantry, seen: list[tuple[str, str | None]]) -> Starlette:
    """Endpoints: /who, /projects (an RLS read), /write (an insert through SQLAlchemy, or
    psycopg with ``?via=psycopg``), /stream, /background, /slow, /boom, /ws."""

    async def who(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "tenant": slug_now(),
                "path": request.url.path,
                "root_path": request.scope.get("root_path", ""),
                "url_for": str(request.url_for("who")),
            }
        )

    async def write(request: Request) -> JSONResponse:
        name = request.query_params.get("name", "written")
        if request.query_params.get("via") == "psycopg":
            async with tn.async_connection() as conn:
                await conn.execute("INSERT INTO projects (name) VALUES (%s)", (name,))
        else:
            async with AsyncSession(tn.async_engine()) as session:
                session.add(Project(name=name))
                await session.commit()
        return JSONResponse({"tenant": slug_now(), "written": name})

    async def projects(request: Request) -> JSONResponse:
        async with tn.async_connection() as conn:
            rows = await (await conn.execute("SELECT name FROM projects ORDER BY name")).fetchall()
        return JSONResponse({"tenant": slug_now(), "projects": [r[0] for r in rows]})

    async def stream(request: Request) -> StreamingResponse:
        async def body() -> Any:
            for i in range(5):
                await asyncio.sleep(0.005)  # let other requests run between chunks
                yield f"{i}:{slug_now()}\n"

        return StreamingResponse(body(), media_type="text/plain")

    async def background(request: Request) -> PlainTextResponse:
        async def later() -> None:
            await asyncio.sleep(0.005)
            seen.append(("background", slug_now()))

        return PlainTextResponse(str(slug_now()), background=BackgroundTask(later))

    async def slow(request: Request) -> JSONResponse:
        before = slug_now()
        await asyncio.sleep(float(request.query_params.get("s", "0.02")))
        return JSONResponse({"before": before, "after": slug_now()})

    async def boom(request: Request) -> PlainTextResponse:
        seen.append(("boom", slug_now()))
        raise RuntimeError("boom")

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(str(slug_now()))
        await websocket.close()

    return Starlette(
        routes=[
            Route("/who", who, name="who"),
            Route("/projects", projects),
            Route("/write", write, methods=["POST"]),
            Route("/stream", stream),
            Route("/background", background),
            Route("/slow", slow),
            Route("/boom", boom),
            WebSocketRoute("/ws", ws),
        ]
    )


def wrap(tn: Tenantry, app: Any, resolvers: Sequence[Resolver] | None = None, **options: Any) -> TenantMiddleware:
    return TenantMiddleware(app, tenantry=tn, resolvers=resolvers, **options)


def client(app: Any, base_url: str = f"http://{BASE}") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url=base_url)


def seed(tn: Tenantry, slug: str, *names: str) -> None:
    with tn.tenant(slug), tn.connection() as conn:
        for name in names:
            conn.execute("INSERT INTO projects (name) VALUES (%s)", (name,))


async def get(app: Any, url: str, **kwargs: Any) -> httpx.Response:
    async with client(app) as c:
        return await c.get(url, **kwargs)
