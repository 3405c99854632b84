"""What limits and metrics cost at the edge: requests per second of a trivial endpoint through
``TenantMiddleware`` with everything on against everything off.

Run::

    python bench/limits_overhead.py [--server embedded|system] [--url URL] [--tenants 100]
                                    [--requests 40000] [--concurrency 8] [--slice 64] [--seed 1]
                                    [--no-metering]

Set-up (not timed)
    A scratch database (``bench/_scratch.py``); ``--tenants`` tenants on a plan of their own
    whose limits are set high enough never to refuse (``requests_per_second`` 1,000,000,
    ``burst`` 1,000,000, ``concurrency`` 10,000): every request pays for the checks and none
    is refused; 20 rows each in ``bench_edge_items``. The endpoints are
    ``bench/edge_overhead.py``'s: ``/count``, an RLS read in its own transaction (the trivial
    tenant-scoped endpoint), and ``/hello``, the bound tenant's slug without touching the
    database (the edge's own cost laid bare; ``--requests`` of it, a tenth as many of
    ``/count``).

Sides
    on    ``TenantMiddleware(app, resolvers=[SubdomainResolver("bench.test")], metrics=m)``:
          the rate (GCRA, in this process), the concurrency count, the process cap
          (``max_in_flight`` 100,000), the RateLimit fields on every answer, and the Prometheus
          counters and latency histogram by plan and top tenants, and usage metering
          (``tn.usage``: each request counted by tenant and status class at the edge, each
          ``tn.async_connection()`` block as a transaction with its time; the flusher runs
          at its default interval, 60 s).
    off   the same with ``limits=False``, ``metering=False``, no metrics, and the data
          plane's meter switched off during the side's turns.

Method as ``bench/edge_overhead.py``: in-process ASGI calls, a random tenant per request, the
sides taking turns every ``--slice`` requests after a warm-up turn. The last line is the ratio
on / off for ``/count`` (goal >= 0.95); the line before it the ratio for ``/hello``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from _scratch import add_server_arguments, environment, load_averages, run_took, scratch_database, server
from edge_overhead import ASGIApp, Base, call, make_app, run_side, scope_for

from tenantry import BoundTenant, EdgeLimiter, Tenantry, TenantryMetrics
from tenantry.core.metering import Meter
from tenantry.web import SubdomainResolver, TenantMiddleware

BASE_DOMAIN = "bench.test"  # (edge_overhead's scope_for sends Host: <slug>.bench.test)
GOAL = 0.95
HIGH = {"requests_per_second": 1_000_000, "burst": 1_000_000, "concurrency": 10_000}


def setup(tn: Tenantry, count: int) -> list[BoundTenant]:
    tn.schema.init()
    plan = f"bench-{uuid.uuid4().hex[:6]}"
    with tn.admin() as conn:
        conn.execute(
            "INSERT INTO tenantry.plans (name, isolation, limits) VALUES (%s, 'pooled', %s)", (plan, json.dumps(HIGH))
        )
    tenants = []
    for i in range(count):
        t = tn.tenants.create(f"lim-{i:04d}-{uuid.uuid4().hex[:6]}", plan=plan)
        with tn.tenant(t.slug) as bound, tn.connection() as conn:
            conn.cursor().executemany(
                "INSERT INTO bench_edge_items (id, label) VALUES (%s, %s)", [(n, f"item {n}") for n in range(20)]
            )
            tenants.append(bound)
    return tenants


async def benchmark(tn: Tenantry, tenants: list[BoundTenant], args: argparse.Namespace) -> dict[str, float]:
    app = make_app(tn)
    resolvers = [SubdomainResolver(BASE_DOMAIN)]
    metrics = TenantryMetrics(tn)
    limiter = EdgeLimiter(tn, max_in_flight=100_000, metrics=metrics)
    sides: dict[str, ASGIApp] = {
        "on": TenantMiddleware(
            app, tenantry=tn, resolvers=resolvers, limits=limiter, metrics=metrics, metering=args.metering
        ),
        "off": TenantMiddleware(app, tenantry=tn, resolvers=resolvers, limits=False, metering=False),
    }
    # usage metering: the edge counts on the "on" side only (above); the data plane's count of
    # transactions is the process's, switched with the side (see measure())
    meters = {"on": tn.plane.meter if args.metering else None, "off": None}
    for bound in tenants:  # warm: every tenant resolved and its plan's limits read
        for side in sides.values():
            status, _ = await call(side, scope_for("/hello", bound))
            assert status == 200, status
    listener = tn.plane._listener
    if listener is not None:
        await asyncio.to_thread(listener.listening.wait, 10)
    ratios: dict[str, float] = {}
    try:
        for path, requests in (("/hello", args.requests), ("/count", max(args.slice, args.requests // 10))):
            rps = await measure(sides, path, tenants, requests, args, tn, meters)
            extra = 1e6 / rps["on"] - 1e6 / rps["off"]
            ratios[path] = rps["on"] / rps["off"]
            print(
                f"{path:7} concurrency {args.concurrency}: on {rps['on']:9,.0f} req/s, off {rps['off']:9,.0f} req/s"
                f" ({extra:+.1f} µs per request), ratio {ratios[path]:.3f}"
            )
    finally:
        await tn.router.aclose()
    return ratios


async def measure(
    sides: dict[str, ASGIApp],
    path: str,
    tenants: list[BoundTenant],
    requests: int,
    args: argparse.Namespace,
    tn: Tenantry,
    meters: dict[str, Meter | None],
) -> dict[str, float]:
    """Requests per second of each side, taking turns (see the module's docs)."""
    rng = random.Random(args.seed)
    slices = max(1, requests // args.slice)
    seconds = dict.fromkeys(sides, 0.0)
    names = list(sides)
    gc.collect()
    gc.disable()
    try:
        for turn in range(slices + 1):  # turn 0 warms up
            picks = [rng.choice(tenants) for _ in range(args.slice)]
            for name in names if turn % 2 == 0 else reversed(names):
                tn.plane.meter = meters[name]
                took = await run_side(sides[name], path, picks, args.concurrency)
                if turn > 0:
                    seconds[name] += took
    finally:
        gc.enable()
        tn.plane.meter = meters["on"]
    return {name: slices * args.slice / total for name, total in seconds.items()}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_server_arguments(parser)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--requests", type=int, default=40_000, help="measured requests per side")
    parser.add_argument("--slice", type=int, default=64, help="requests per turn of a side")
    parser.add_argument("--concurrency", type=int, default=8, help="tasks sharing a turn's requests")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-metering",
        dest="metering",
        action="store_false",
        help="leave usage metering out of 'on' (to see its share)",
    )
    args = parser.parse_args(argv)
    if args.tenants < 1 or args.slice < 1 or args.requests < args.slice or args.concurrency < 1:
        parser.error("--tenants, --slice, --concurrency must be positive and --requests at least --slice")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = datetime.now(UTC)
    print(
        f"tenantry limits, metrics{' and metering' if args.metering else ''} overhead: {args.tenants} tenants,"
        f" {args.requests} requests per side,"
        f" {environment(started)}, load average {load_averages()}"
    )
    with server(args.server, args.url) as url, scratch_database(url) as scratch:
        settings = scratch.settings(pool_min_size=4, pool_max_size=8, tenant_cache_ttl=3600.0)
        tn = Tenantry(settings, metadata=Base.metadata, actor="bench")
        try:
            tenants = setup(tn, args.tenants)
            ratios = asyncio.run(benchmark(tn, tenants, args))
        finally:
            tn.close()
    print(f"\n{run_took(started)}")
    ratio = ratios["/count"]
    print(f"goal: on / off >= {GOAL} on /count: {'met' if ratio >= GOAL else 'NOT MET'}")
    print(f"limits_overhead_rps_ratio_hello={ratios['/hello']:.3f}")
    print(f"limits_overhead_rps_ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
