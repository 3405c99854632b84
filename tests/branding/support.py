"""Fixtures for the branding tests: a minimal Starlette site serving ``BrandRoutes`` for the
tenant named by the host's first label, and clients for it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from tenantry import BrandRoutes, Tenantry, TenantryError


class HostTenancy:
    """The test shim: bind the tenant ``<slug>.test`` names (none for other hosts)."""

    def __init__(self, app: Any, tn: Tenantry) -> None:
        self.app = app
        self.tn = tn

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        host = dict(scope.get("headers", ())).get(b"host", b"").decode()
        async with AsyncExitStack() as stack:
            if host.endswith(".test"):
                try:
                    await stack.enter_async_context(self.tn.tenant(host.removesuffix(".test")))
                except TenantryError:
                    response = PlainTextResponse("unknown tenant", status_code=404)
                    await response(scope, receive, send)
                    return
            await self.app(scope, receive, send)


def brand_site(tn: Tenantry) -> Any:
    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("home")

    app = Starlette(routes=[Route("/", home), Mount("/_brand", app=BrandRoutes(tn))])
    return HostTenancy(app, tn)


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as run:
        yield run


def client(app: Any, slug: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{slug}.test")
