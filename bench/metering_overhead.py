"""What usage metering alone costs at the edge: ``TenantMiddleware`` with metering on against
the same middleware with it off, everything else equal (no limits, no metrics).

Run::

    python bench/metering_overhead.py [--server embedded|system] [--url URL] [--tenants 50]
                                      [--turns 400] [--slice 64] [--concurrency 8] [--control]

Set-up (not timed)
    A scratch database (``bench/_scratch.py``) and ``--tenants`` pooled tenants, each resolved
    once by both sides. The endpoint is ``bench/edge_overhead.py``'s ``/hello`` (the bound
    tenant's slug, no database): the request the edge's own cost is largest a share of.

Method
    In-process ASGI calls, a random tenant per request, the two sides taking turns every
    ``--slice`` requests (the order alternating) for ``--turns`` turns after a warm-up turn,
    with the garbage collector off. ``--control`` builds both sides with metering off: the
    difference it shows is the noise floor of the machine at that moment.

The last line is ``metering_overhead_rps_ratio=<on / off>``; also printed: the microseconds
metering adds per request, and the cost of one ``Meter.request`` call on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from _scratch import add_server_arguments, environment, load_averages, run_took, scratch_database, server
from edge_overhead import ASGIApp, Base, call, make_app, run_side, scope_for

from tenantry import BoundTenant, Tenantry
from tenantry.core.metering import Meter
from tenantry.web import SubdomainResolver, TenantMiddleware


async def benchmark(tn: Tenantry, tenants: list[BoundTenant], args: argparse.Namespace) -> dict[str, float]:
    app = make_app(tn)
    resolvers = [SubdomainResolver("bench.test")]
    sides: dict[str, ASGIApp] = {
        "on": TenantMiddleware(app, tenantry=tn, resolvers=resolvers, limits=False, metering=not args.control),
        "off": TenantMiddleware(app, tenantry=tn, resolvers=resolvers, limits=False, metering=False),
    }
    for bound in tenants:
        for side in sides.values():
            status, _ = await call(side, scope_for("/hello", bound))
            assert status == 200, status
    rng = random.Random(1)
    seconds = dict.fromkeys(sides, 0.0)
    gc.collect()
    gc.disable()
    try:
        for turn in range(args.turns + 1):  # turn 0 warms up
            picks = [rng.choice(tenants) for _ in range(args.slice)]
            for name in list(sides) if turn % 2 == 0 else list(reversed(list(sides))):
                took = await run_side(sides[name], "/hello", picks, args.concurrency)
                if turn:
                    seconds[name] += took
    finally:
        gc.enable()
    return {name: total / (args.turns * args.slice) for name, total in seconds.items()}


def meter_call() -> float:
    """Microseconds of one ``Meter.request`` (100 tenants, best of 3)."""
    meter, ids = Meter(), [uuid.uuid4() for _ in range(100)]
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for i in range(200_000):
            meter.request(ids[i % 100], 200, 0.001)
        best = min(best, (time.perf_counter() - started) / 200_000)
    return best * 1e6


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_server_arguments(parser)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--turns", type=int, default=400)
    parser.add_argument("--slice", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--control", action="store_true", help="metering off on both sides (the noise floor)")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    print(f"tenantry metering overhead: {environment(started)}, load average {load_averages()}")
    with server(args.server, args.url) as url, scratch_database(url) as scratch:
        tn = Tenantry(scratch.settings(tenant_cache_ttl=3600.0), metadata=Base.metadata, actor="bench")
        try:
            tn.schema.init()
            tenants = []
            for i in range(args.tenants):
                t = tn.tenants.create(f"mo-{i:03d}-{uuid.uuid4().hex[:6]}")
                with tn.tenant(t.slug) as bound:
                    tenants.append(bound)
            per_request = asyncio.run(benchmark(tn, tenants, args))
        finally:
            tn.close()
    on, off = per_request["on"], per_request["off"]
    label = "control (metering off on both sides)" if args.control else "metering on / off"
    print(f"/hello, {label}: on {on * 1e6:.2f} µs, off {off * 1e6:.2f} µs a request ({(on - off) * 1e6:+.2f} µs)")
    print(f"Meter.request alone: {meter_call():.2f} µs a call")
    print(f"load average after: {load_averages()}")
    print(f"\n{run_took(started)}")
    print(f"metering_overhead_rps_ratio={off / on:.3f}")


if __name__ == "__main__":
    main()
