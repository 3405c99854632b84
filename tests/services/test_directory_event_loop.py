"""The async entries of a binding (``async with tn.tenant()``, the ASGI middleware) never read
the catalog on the event loop, even when an event drops what the lookup found between the
lookup and the bind (the listener runs in a thread of its own)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tenantry import Tenant, Tenantry, current_tenant
from tenantry.core.events import EventKind
from tenantry.web import HeaderResolver, TenantMiddleware


@pytest.fixture
def reads_on_the_loop(tn: Tenantry, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The catalog reads made on the thread that runs the event loop, and a lookup that an
    event overtakes: the plan's settings are dropped right after every cached lookup."""
    plane, directory = tn.plane, tn.directory
    plane.listen()  # caches serve only while the listener is connected
    deadline = time.monotonic() + 10
    while not plane.trusted():
        assert time.monotonic() < deadline, "the catalog listener did not connect"
        time.sleep(0.02)
    loop_thread: list[threading.Thread] = []
    reads: list[str] = []
    reader = plane.catalog_reader

    @contextmanager
    def watched() -> Iterator[Any]:
        if loop_thread and threading.current_thread() is loop_thread[0]:
            reads.append("a catalog read on the event loop")
        with reader() as conn:
            yield conn

    cached = directory.cached

    def overtaken(key: Any) -> Any:
        found = cached(key)
        deadline = time.monotonic() + 10
        while found is None:  # (the events of the tenant's creation still arriving: read again, unwatched)
            assert time.monotonic() < deadline, "the lookup never stayed cached"
            directory.load(key)
            found = cached(key)
        loop_thread[:] = [threading.current_thread()]
        plane.publish(EventKind.PLAN, found[0].plan)  # the listener's notice, just now
        return found

    monkeypatch.setattr(plane, "catalog_reader", watched)
    monkeypatch.setattr(directory, "cached", overtaken)
    return reads


def test_async_with_tn_tenant_binds_off_the_loop(
    tn: Tenantry, make_tenant: Callable[..., Tenant], reads_on_the_loop: list[str]
) -> None:
    tenant = make_tenant("loop")

    async def enter() -> str:
        async with tn.tenant(tenant.slug) as bound:
            return bound.slug

    assert asyncio.run(enter()) == tenant.slug
    assert reads_on_the_loop == []


def test_the_middleware_binds_off_the_loop(
    tn: Tenantry, make_tenant: Callable[..., Tenant], reads_on_the_loop: list[str]
) -> None:
    tenant = make_tenant("loopmw")

    async def who(request: Request) -> PlainTextResponse:
        bound = current_tenant()
        return PlainTextResponse(bound.slug if bound else "-")

    app = TenantMiddleware(Starlette(routes=[Route("/", who)]), tenantry=tn, resolvers=[HeaderResolver()])

    async def call() -> str:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return (await client.get("/", headers={"X-Tenant": tenant.slug})).text

    assert asyncio.run(call()) == tenant.slug
    assert reads_on_the_loop == []
