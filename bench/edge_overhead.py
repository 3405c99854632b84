"""What the tenant middleware costs: requests per second of one tenant-scoped endpoint through
``TenantMiddleware`` against the same endpoint with the tenant hard-wired.

Run::

    python bench/edge_overhead.py [--server embedded|system] [--url URL] [--tenants 100]
                                  [--requests 8000] [--concurrency 1,8] [--slice 64] [--seed 1]

Set-up (not timed)
    A scratch database with its own owner and runtime roles (``bench/_scratch.py``);
    ``Tenantry(...).init()`` deploys one pooled table ``bench_edge_items (tenant_id, id, label)``;
    ``--tenants`` tenants with 20 rows each. The app is Starlette with two endpoints:
    ``/count`` runs ``SELECT count(*)`` on the table through ``tn.async_connection()`` (an RLS
    read in its own transaction: the trivial tenant-scoped endpoint), ``/hello`` returns the
    bound tenant's slug without touching the database (the middleware's cost laid bare).

Sides
    edge        ``TenantMiddleware(app, resolvers=[SubdomainResolver("bench.test"),
                CustomDomainResolver("bench.test")])`` (the default chain of an app with a base domain):
                each request carries ``Host: <slug>.bench.test``; the middleware parses it,
                asks both resolvers, finds the tenant in its per-process cache (warm: the
                tenant cache is what a running app has) and binds it.
    hard-wired  a ten-line ASGI wrapper that binds the same tenant's ``BoundTenant``, made
                once before timing, around the same app: no resolution at all.

Method
    In-process: requests are ASGI calls (a scope, a ``receive`` that yields the empty body, a
    ``send`` that keeps the status), no server and no sockets, so what differs between the
    sides is only the middleware. Every request picks a random tenant (the same sequence for
    both sides). ``--concurrency`` tasks share the requests of a turn on one event loop.
    The sides take turns every ``--slice`` requests (64; the order alternates) until each has
    served ``--requests`` (ten times as many for ``/hello``), after a warm-up turn: load that
    comes and goes on this shared machine lands on both sides about equally. The garbage
    collector runs between cases only. Reported: requests per second of each side (requests
    over the sum of its turns' times), the difference in microseconds per request, and the
    ratio edge / hard-wired. Every response is checked (status 200, and for ``/hello`` the
    right slug).
    The last line is that ratio for ``/count`` at the highest concurrency (goal >= 0.9).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from _scratch import add_server_arguments, environment, load_averages, run_took, scratch_database, server
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tenantry import BoundTenant, Tenantry, TenantScoped, context, current_tenant
from tenantry.web import CustomDomainResolver, SubdomainResolver, TenantMiddleware

BASE_DOMAIN = "bench.test"
ROWS_PER_TENANT = 20
GOAL = 0.9

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class Base(DeclarativeBase):
    pass


class Item(TenantScoped, Base):
    __tablename__ = "bench_edge_items"

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    label: Mapped[str] = mapped_column(sa.Text)


def make_app(tn: Tenantry) -> Starlette:
    async def count(request: Request) -> PlainTextResponse:
        async with tn.async_connection() as conn:
            row = await (await conn.execute("SELECT count(*) FROM bench_edge_items")).fetchone()
        return PlainTextResponse(str(row[0] if row else 0))

    async def hello(request: Request) -> PlainTextResponse:
        bound = current_tenant()
        return PlainTextResponse("" if bound is None else bound.slug)

    return Starlette(routes=[Route("/count", count), Route("/hello", hello)])


class HardWired:
    """The baseline: bind a tenant chosen by the driver, resolve nothing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        token = context._set(scope["bench.tenant"])
        try:
            await self.app(scope, receive, send)
        finally:
            context._reset(token)


def scope_for(path: str, bound: BoundTenant) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", f"{bound.slug}.{BASE_DOMAIN}".encode()), (b"accept", b"*/*"), (b"user-agent", b"bench")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "bench.tenant": bound,
    }


async def call(app: ASGIApp, scope: dict[str, Any]) -> tuple[int, bytes]:
    status = 0
    body = b""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        nonlocal status, body
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")

    await app(scope, receive, send)
    return status, body


async def run_side(app: ASGIApp, path: str, tenants: Sequence[BoundTenant], concurrency: int) -> float:
    """Seconds to serve one request per entry of ``tenants``, ``concurrency`` at a time."""
    queue = list(reversed(tenants))

    async def worker() -> None:
        while queue:
            bound = queue.pop()
            status, body = await call(app, scope_for(path, bound))
            if status != 200 or (path == "/hello" and body != bound.slug.encode()):
                raise RuntimeError(f"{path} for {bound.slug}: HTTP {status} {body[:200]!r}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def measure(
    sides: dict[str, ASGIApp],
    path: str,
    tenants: list[BoundTenant],
    requests: int,
    args: argparse.Namespace,
    concurrency: int,
) -> tuple[dict[str, float], float]:
    """Requests per second of each side, and the ratio edge / hard-wired.

    The sides take turns every ``--slice`` requests (order alternating), so load that comes
    and goes on the machine lands on both about equally; the garbage collector runs only
    between cases."""
    rng = random.Random(args.seed)
    slices = max(1, requests // args.slice)
    seconds = {name: 0.0 for name in sides}
    names = list(sides)
    gc.collect()
    gc.disable()
    try:
        for turn in range(slices + 1):  # turn 0 warms up
            picks = [rng.choice(tenants) for _ in range(args.slice)]
            for name in names if turn % 2 == 0 else reversed(names):
                took = await run_side(sides[name], path, picks, concurrency)
                if turn > 0:
                    seconds[name] += took
    finally:
        gc.enable()
    rps = {name: slices * args.slice / total for name, total in seconds.items()}
    return rps, rps["edge"] / rps["hard-wired"]


def setup(tn: Tenantry, count: int) -> list[BoundTenant]:
    tn.schema.init()
    tenants = []
    for i in range(count):
        t = tn.tenants.create(f"edge-{i:04d}-{uuid.uuid4().hex[:6]}")
        with tn.tenant(t.slug) as bound, tn.connection() as conn:
            conn.cursor().executemany(
                "INSERT INTO bench_edge_items (id, label) VALUES (%s, %s)",
                [(n, f"item {n}") for n in range(ROWS_PER_TENANT)],
            )
            tenants.append(bound)
    return tenants


async def benchmark_async(
    tn: Tenantry, tenants: list[BoundTenant], args: argparse.Namespace
) -> dict[tuple[str, int], float]:
    app = make_app(tn)
    sides: dict[str, ASGIApp] = {
        "edge": TenantMiddleware(
            app, tenantry=tn, resolvers=[SubdomainResolver(BASE_DOMAIN), CustomDomainResolver(BASE_DOMAIN)]
        ),
        "hard-wired": HardWired(app),
    }
    # warm the caches a running app has: every tenant and host once, the listener connected
    for bound in tenants:
        await call(sides["edge"], scope_for("/hello", bound))
    listener = tn.plane._listener
    if listener is not None:
        await asyncio.to_thread(listener.listening.wait, 10)
    results: dict[tuple[str, int], float] = {}
    try:
        for path, requests in (("/hello", args.requests * 10), ("/count", args.requests)):
            for concurrency in args.concurrency:
                rps, ratio = await measure(sides, path, tenants, requests, args, concurrency)
                results[(path, concurrency)] = ratio
                extra = 1e6 / rps["edge"] - 1e6 / rps["hard-wired"]
                print(
                    f"{path:7} concurrency {concurrency:2}: edge {rps['edge']:8,.0f} req/s,"
                    f" hard-wired {rps['hard-wired']:8,.0f} req/s ({extra:+.1f} µs per request),"
                    f" ratio {ratio:.3f}"
                )
    finally:
        await tn.router.aclose()
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_server_arguments(parser)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--requests", type=int, default=8000, help="measured requests per side and case")
    parser.add_argument("--slice", type=int, default=64, help="requests per turn of a side")
    parser.add_argument("--concurrency", default="1,8", help="comma-separated task counts")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in str(args.concurrency).split(",") if c.strip()]
    if args.tenants < 1 or args.slice < 1 or args.requests < args.slice or not args.concurrency:
        parser.error("--tenants and --slice must be positive and --requests at least --slice")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = datetime.now(UTC)
    print(
        f"tenantry edge overhead: {args.tenants} tenants, {args.requests} requests per side and case,"
        f" {environment(started)}, load average {load_averages()}"
    )
    with server(args.server, args.url) as url, scratch_database(url) as scratch:
        settings = scratch.settings(pool_min_size=4, pool_max_size=8, tenant_cache_ttl=3600.0)
        tn = Tenantry(settings, metadata=Base.metadata, actor="bench")
        try:
            tenants = setup(tn, args.tenants)
            with tn.admin() as admin:
                version = admin.execute("SHOW server_version").fetchone()
            print(f"server: PostgreSQL {version[0] if version else '?'} ({args.server})")
            results = asyncio.run(benchmark_async(tn, tenants, args))
        finally:
            tn.close()
    print(f"\n{run_took(started)}")
    top = max(args.concurrency)
    ratio = results[("/count", top)]
    print(f"goal: /count ratio >= {GOAL} at concurrency {top}: {'met' if ratio >= GOAL else 'NOT MET'}")
    print(f"edge_overhead_rps_ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
