"""What the per-tenant cap on connections (``db_connections``) adds to a borrow.

Run::

    python bench/connection_caps.py [--server embedded|system] [--url URL] [--borrows 20000]
                                    [--slice 50] [--seed 1]

Set-up (not timed)
    A scratch database (``bench/_scratch.py``), one process (``pool_max_size`` 4), two pooled
    tenants: ``capped`` on a plan with ``db_connections`` 1,000 (every borrow takes and gives
    back a permit, none ever waits) and ``free`` on a plan without the key (no permit).

Sides
    Each borrow binds nothing new (the tenant is bound once per turn) and runs ``SELECT 1`` on
    the connection it borrowed, then gives it back:

    psycopg      ``with tn.connection() as conn: conn.execute(...)``
    sqlalchemy   ``with tn.engine().connect() as c: c.exec_driver_sql(...)``
    asyncio      ``async with tn.async_connection() as conn: await conn.execute(...)``
    permit       ``caps.acquire(bound)`` and ``caps.release(gate)`` alone (no I/O)

    The two tenants take turns every ``--slice`` borrows after a warm-up turn (in a random
    order each turn), so both see the same load on a shared machine. Each line gives the
    median over the turns of µs per borrow of both (a median: a turn the scheduler preempted
    does not move it) and the difference; the last line is the ratio capped / free for
    psycopg's borrows.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from _scratch import add_server_arguments, environment, load_averages, run_took, scratch_database, server
from edge_overhead import Base

from tenantry import Tenant, Tenantry, current_tenant


def setup(tn: Tenantry) -> dict[str, Tenant]:
    tn.schema.init()
    tenants = {}
    for side, limits in (("capped", {"db_connections": 1000}), ("free", {})):
        plan = f"bench-{side}-{uuid.uuid4().hex[:6]}"
        with tn.admin() as conn:
            conn.execute(
                "INSERT INTO tenantry.plans (name, isolation, limits) VALUES (%s, 'pooled', %s)",
                (plan, json.dumps(limits)),
            )
        tenants[side] = tn.tenants.create(f"caps-{side}-{uuid.uuid4().hex[:6]}", plan=plan)
    return tenants


def sync_borrows(tn: Tenantry, kind: str) -> Callable[[int], None]:
    def psycopg_borrows(n: int) -> None:
        for _ in range(n):
            with tn.connection() as conn:
                conn.execute("SELECT 1")

    def sqlalchemy_borrows(n: int) -> None:
        engine = tn.engine()
        for _ in range(n):
            with engine.connect() as c:
                c.exec_driver_sql("SELECT 1")

    def permits(n: int) -> None:
        caps, bound = tn.router.caps, current_tenant()
        for _ in range(n):
            gate = caps.acquire(bound)
            if gate is not None:
                caps.release(gate)

    return {"psycopg": psycopg_borrows, "sqlalchemy": sqlalchemy_borrows, "permit": permits}[kind]


def measure_sync(tn: Tenantry, tenants: dict[str, Tenant], kind: str, args: argparse.Namespace) -> dict[str, float]:
    """µs per borrow of each tenant, taking turns."""
    borrows = sync_borrows(tn, kind)
    per_turn: dict[str, list[float]] = {side: [] for side in tenants}
    rng = random.Random(args.seed)
    slices = max(1, args.borrows // args.slice)
    per_slice = args.slice * (20 if kind == "permit" else 1)
    gc.collect()
    gc.disable()
    try:
        for turn in range(slices + 1):  # turn 0 warms up
            order = list(tenants)
            rng.shuffle(order)
            for side in order:
                with tn.tenant(tenants[side].slug):
                    started = time.perf_counter()
                    borrows(per_slice)
                    took = time.perf_counter() - started
                if turn:
                    per_turn[side].append(1e6 * took / per_slice)
    finally:
        gc.enable()
    return {side: statistics.median(values) for side, values in per_turn.items()}


async def measure_async(tn: Tenantry, tenants: dict[str, Tenant], args: argparse.Namespace) -> dict[str, float]:
    per_turn: dict[str, list[float]] = {side: [] for side in tenants}
    rng = random.Random(args.seed)
    slices = max(1, args.borrows // args.slice)
    try:
        for turn in range(slices + 1):
            order = list(tenants)
            rng.shuffle(order)
            for side in order:
                async with tn.tenant(tenants[side].slug):
                    started = time.perf_counter()
                    for _ in range(args.slice):
                        async with tn.async_connection() as conn:
                            await conn.execute("SELECT 1")
                    took = time.perf_counter() - started
                if turn:
                    per_turn[side].append(1e6 * took / args.slice)
    finally:
        await tn.router.aclose()
    return {side: statistics.median(values) for side, values in per_turn.items()}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_server_arguments(parser)
    parser.add_argument("--borrows", type=int, default=20_000, help="measured borrows per tenant and kind")
    parser.add_argument("--slice", type=int, default=50, help="borrows per turn of a tenant")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.slice < 1 or args.borrows < args.slice:
        parser.error("--slice must be positive and --borrows at least --slice")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = datetime.now(UTC)
    print(
        f"tenantry connection caps: {args.borrows} borrows per tenant and kind, {environment(started)},"
        f" load average {load_averages()}"
    )
    with server(args.server, args.url) as url, scratch_database(url) as scratch:
        settings = scratch.settings(pool_min_size=4, pool_max_size=4, tenant_cache_ttl=3600.0)
        tn = Tenantry(settings, metadata=Base.metadata, actor="bench")
        try:
            tenants = setup(tn)
            results = {kind: measure_sync(tn, tenants, kind, args) for kind in ("psycopg", "sqlalchemy", "permit")}
            results["asyncio"] = asyncio.run(measure_async(tn, tenants, args))
        finally:
            tn.close()
    for kind in ("psycopg", "sqlalchemy", "asyncio", "permit"):
        r = results[kind]
        print(
            f"{kind:10} capped {r['capped']:8.2f} µs per borrow, free {r['free']:8.2f} µs,"
            f" added {r['capped'] - r['free']:+.2f} µs, ratio {r['capped'] / r['free']:.3f}"
        )
    print(f"\n{run_took(started)}")
    psycopg = results["psycopg"]
    print(f"connection_caps_borrow_ratio={psycopg['capped'] / psycopg['free']:.3f}")


if __name__ == "__main__":
    main()
