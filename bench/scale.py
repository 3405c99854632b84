"""Whether the control plane stays flat as tenants pile up: each operation's p50 at a tenth of
``--tenants`` and at all of them.

Run::

    python bench/scale.py [--server embedded|system] [--url URL] [--tenants 100000]
                          [--workers 4] [--samples 300] [--seed 1]

Set-up
    Two scratch databases, each with its own owner and runtime roles (``bench/_scratch.py``);
    ``Tenantry(...).init()`` deploys one pooled table in each. Every tenant is a pooled tenant made by
    ``tn.tenants.create`` (one catalog transaction: the tenant row, its placement, the audit
    entry, the cell's count), with a slug that sorts at random (``<8 hex digits>-<n>``), so
    that new slugs land all over the slug indexes as real ones do.

Method
    Two catalogs side by side on the same server: *small* with N/10 tenants and *large* with
    N. Each is bulk-created up to 90% of its size with ``tn.tenants.create`` called from
    ``--workers`` threads (the same code path, in parallel, untimed). Then the last 10% of
    each is created one at a time, each call timed (the ``create`` row), in turns: one small
    create for every ten large ones. After ``ANALYZE`` (autovacuum would do it soon after
    such a load), every other operation runs ``--samples`` times on each catalog, the two
    taking turns (the order alternating), on tenants drawn at random from all there are. The
    turns matter on this shared machine: load that comes and goes lands on both sides alike,
    where measuring one size after the other compared two different loads.

    get            ``tn.tenants.get(slug)`` (a catalog read by slug)
    suspend        ``tn.tenants.suspend(slug)``, then
    resume         ``tn.tenants.resume(slug)`` (each a transaction with its audit entry and catalog
                   event; suspending also fences the placement)
    resolve        one ASGI request through ``TenantMiddleware`` with ``SubdomainResolver``
                   (``Host: <slug>.scale.test``) to an endpoint that answers the bound slug,
                   for tenants whose lookup is cached (1,000 of them, warmed first): the cost
                   per request of an app process at that size
    list           ``tenantry tenants list --json --limit 100`` in-process (one page): the
                   command as the CLI runs it, with its own Tenantry and connection each time,
                   but its imports and Typer's command tree made once, before timing (a fixed
                   0.1-0.4 s per run of the CLI, the same at any catalog size)

    The figures are the p50 of each (milliseconds); p95 beside. The load average is printed
    at each stage. A run at the default size creates 110,000 tenants; the bulk creates take
    most of its time (about 200 a second at a load average of 9, 60 at 20).

The last line is ``scale_create_ratio=<create p50 at N / at N/10>``; the goal is <= 1.2, the
same as for every other row's ratio (printed in the table).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import sqlalchemy as sa
import typer
from _scratch import (
    add_server_arguments,
    environment,
    load_averages,
    percentile,
    run_took,
    scratch_database,
    server,
    verdict,
)

from tenantry import Tenantry, current_tenant, tenant_id_column
from tenantry.cli.main import app as cli_app
from tenantry.web import SubdomainResolver, TenantMiddleware

GOAL = 1.2
BASE_DOMAIN = "scale.test"
CACHED = 1000
OPS = ("create", "get", "suspend", "resume", "resolve", "list")

METADATA = sa.MetaData()
sa.Table("scale_items", METADATA, tenant_id_column(), sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True))


def slug(n: int) -> str:
    """The n-th tenant's slug: random order in the index, the same in every run."""
    return f"{hashlib.blake2b(str(n).encode(), digest_size=4).hexdigest()}-{n}"


def bulk_create(tn: Tenantry, first: int, end: int, workers: int) -> float:
    """Create tenants ``first`` to ``end - 1`` from ``workers`` threads; returns the seconds."""
    started = time.perf_counter()
    next_n = iter(range(first, end))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                n = next(next_n, None)
            if n is None:
                return
            tn.tenants.create(slug(n))

    with ThreadPoolExecutor(workers) as pool:
        for done in [pool.submit(work) for _ in range(workers)]:
            done.result()
    return time.perf_counter() - started


def timed(fn: Callable[[], Any]) -> int:
    began = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - began


async def hello(scope: Any, receive: Any, send: Any) -> None:
    body = current_tenant().slug.encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def request(app: Any, host_slug: str) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/hello",
        "raw_path": b"/hello",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", f"{host_slug}.{BASE_DOMAIN}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    answer: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        answer.append(message)

    await app(scope, receive, send)
    assert answer[0]["status"] == 200 and answer[1]["body"] == host_slug.encode(), answer


async def resolve_timings(sides: Sequence[Side], samples: int, rng: random.Random) -> None:
    apps = [TenantMiddleware(hello, tenantry=side.tn, resolvers=[SubdomainResolver(BASE_DOMAIN)]) for side in sides]
    cached = [[slug(n) for n in rng.sample(range(side.count), min(CACHED, side.count))] for side in sides]
    for app, slugs in zip(apps, cached):
        for s in slugs:  # warm: every one of them cached
            await request(app, s)
    for i in range(samples * 10):
        for k in _turn(i, len(sides)):
            s = rng.choice(cached[k])
            began = time.perf_counter_ns()
            await request(apps[k], s)
            sides[k].figures["resolve"].append(time.perf_counter_ns() - began)


#: the CLI's command tree, built once: building it (Typer reading every command's signature)
#: is a fixed cost of each run of ``tenantry``, about 0.1-0.4 s here, that no catalog size
#: changes and that would drown what the command itself does
COMMAND = typer.main.get_command(cli_app)


def list_page() -> None:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        COMMAND.main(["tenants", "list", "--json", "--limit", "100"], prog_name="tenantry", standalone_mode=False)
    assert out.getvalue().startswith("["), out.getvalue()[:200]


@dataclass
class Side:
    """One catalog: its Tenantry, its tenant count, its figures."""

    name: str
    scratch: Any
    tn: Tenantry
    count: int
    figures: dict[str, list[int]] = field(default_factory=lambda: {op: [] for op in OPS})

    def cli_env(self) -> None:
        os.environ.update(
            TENANTRY_DATABASE_URL=self.scratch.url,
            TENANTRY_OWNER_ROLE=self.scratch.owner,
            TENANTRY_RUNTIME_ROLE=self.scratch.runtime,
        )


def _turn(i: int, n: int) -> list[int]:
    """The order the sides take turn ``i`` in: alternating, so neither always goes first."""
    return list(range(n)) if i % 2 == 0 else list(reversed(range(n)))


def measure(sides: Sequence[Side], samples: int, rng: random.Random) -> None:
    """Every operation on both catalogs in turns, so that load that comes and goes lands on both."""
    for side in sides:
        with psycopg.connect(side.scratch.url, autocommit=True) as conn:
            conn.execute("ANALYZE tenantry.tenants, tenantry.placements, tenantry.audit_log")
    for i in range(samples):
        for k in _turn(i, len(sides)):
            side = sides[k]
            s = slug(rng.randrange(side.count))
            side.figures["get"].append(timed(lambda: side.tn.tenants.get(s)))
            side.figures["suspend"].append(timed(lambda: side.tn.tenants.suspend(s)))
            side.figures["resume"].append(timed(lambda: side.tn.tenants.resume(s)))
    for i in range(max(20, samples // 5)):
        for k in _turn(i, len(sides)):
            sides[k].cli_env()
            sides[k].figures["list"].append(timed(list_page))
    asyncio.run(resolve_timings(sides, samples, rng))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_server_arguments(parser)
    parser.add_argument("--tenants", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=4, help="threads of the untimed bulk creates")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.tenants < 100 or args.tenants % 100:
        parser.error("--tenants must be a multiple of 100")
    rng = random.Random(args.seed)
    started = datetime.now(UTC)
    print(f"bench/scale.py on {args.server}: {environment(started)}")
    print(f"--tenants {args.tenants} --workers {args.workers} --samples {args.samples} --seed {args.seed}")
    with contextlib.ExitStack() as stack:
        server_url = stack.enter_context(server(args.server, args.url))
        sides = []
        for name, count in (("small", args.tenants // 10), ("large", args.tenants)):
            scratch = stack.enter_context(scratch_database(server_url))
            tn = Tenantry(scratch.settings(), metadata=METADATA, actor="bench-scale")
            stack.callback(tn.close)
            tn.schema.init()
            sides.append(Side(name, scratch, tn, count))
        sides[0].cli_env()
        list_page()  # (its first run loads what it loads)
        for side in sides:
            bulk_to = side.count - side.count // 10
            seconds = bulk_create(side.tn, 0, bulk_to, args.workers)
            print(
                f"{side.name}: bulk-created {bulk_to} tenants in {seconds:.0f} s"
                f" ({bulk_to / seconds:.0f}/s; load {load_averages()})"
            )
        # the last tenth of each, one at a time, in turns: one small create per ten large ones
        small, large = sides
        for i in range(large.count // 10):
            for k in _turn(i // 10, 2) if i % 10 == 0 else [1]:
                side = sides[k]
                n = side.count - side.count // 10 + (i // 10 if k == 0 else i)
                side.figures["create"].append(timed(lambda: side.tn.tenants.create(slug(n))))
        print(f"timed the last tenth of each (load {load_averages()})")
        measure(sides, args.samples, rng)
        print(f"measured both (load {load_averages()})")
        for side in sides:
            with side.tn.admin() as conn:
                kept = {c.name: c.placements for c in side.tn.cells.list()}
                real = conn.execute("SELECT count(*) FROM tenantry.placements WHERE status <> 'retired'").fetchone()
            # the kept count (what choosing a cell reads) is still the real one
            assert real is not None and real[0] == side.count and kept == {"primary": side.count}, (kept, real)
    print()
    print(f"{'p50 ms (p95)':<10} {f'at {small.count:,}':>20} {f'at {large.count:,}':>20} {'ratio':>7}  goal <= {GOAL}")
    ratios = {}
    for op in OPS:
        a, b = small.figures[op], large.figures[op]
        ratios[op] = percentile(b, 0.5) / percentile(a, 0.5)
        print(
            f"{op:<10} {percentile(a, 0.5):>10.3f} ({percentile(a, 0.95):>7.3f})"
            f" {percentile(b, 0.5):>10.3f} ({percentile(b, 0.95):>7.3f}) {ratios[op]:>7.2f}  {verdict(ratios[op], GOAL)}"
        )
    print(
        f"samples: create {len(small.figures['create'])} / {len(large.figures['create'])},"
        f" get, suspend, resume {args.samples}, resolve {args.samples * 10}, list {max(20, args.samples // 5)}"
    )
    print(run_took(started))
    print(f"scale_create_ratio={ratios['create']:.3f}")


if __name__ == "__main__":
    main()
