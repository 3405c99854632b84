"""Noisy neighbour: what one flooding tenant does to the latency of quiet ones, with the edge's
limits on and off.

Run::

    python bench/noisy_neighbour.py [--server embedded|system] [--url URL] [--seconds 20]
                                    [--quiet 20] [--quiet-rate 2] [--flood-factor 10]
                                    [--flood-concurrency 50] [--heavy-seconds 1.0] [--plan free]

Set-up (not timed)
    A scratch database (``bench/_scratch.py``); one pooled table ``bench_nn_items (tenant_id,
    id, payload)``; ``--quiet`` quiet tenants with 20 rows each and one flooding tenant with
    50,000, all on ``--plan`` (an ordinary plan of the catalog, ``free`` by default: its limits
    are whatever the catalog says, not tuned for this run). The app is Starlette behind
    ``TenantMiddleware(resolvers=[SubdomainResolver("bench.test")])``, served by uvicorn on
    loopback in a process of its own. ``/light`` counts the tenant's rows (an RLS read);
    ``/heavy`` scans the flooder's rows ``loops`` times over (calibrated at set-up to take
    about ``--heavy-seconds``). The app server is a process of its own (as in production:
    before 2026-12-08 it ran in a thread of the load generator's process, sharing its
    interpreter lock, so the flood's answers slowed the quiet tenants' requests on the
    client side too).

Load (open loop: each request is sent on schedule, whether or not earlier ones answered, so
a slow server shows up as latency rather than as fewer requests)
    quiet   every quiet tenant sends ``/light`` at ``--quiet-rate`` requests per second.
    flood   the flooding tenant sends ``/heavy`` at ``--flood-factor`` times its plan's
            ``requests_per_second``, with up to ``--flood-concurrency`` requests outstanding.

Phases, ``--seconds`` each, a fresh server for each
    alone        the quiet tenants only (limits on).
    limits on    quiet and flood; the edge enforces the plan's rate and concurrency.
    limits off   quiet and flood; ``TenantMiddleware(..., limits=False)``.

Reported: the quiet tenants' p50 and p99 latency in each phase (only answers with status 200
count; any other status of a quiet request is reported as an error), the flood's answers by
status, and the ratios of the quiet p99 beside the flood to the quiet p99 alone. The last line
is ``noisy_neighbour_p99_ratio=<limits on / alone>`` (goal <= 1.5); the line before it the
limits-off ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import multiprocessing
import socket
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn
from _scratch import add_server_arguments, environment, load_averages, run_took, scratch_database, server
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tenantry import EdgeLimits, Tenantry, TenantScoped, copy_rows
from tenantry.web import SubdomainResolver, TenantMiddleware

BASE = "bench.test"
QUIET_ROWS = 20
FLOOD_ROWS = 50_000
GOAL = 1.5


class Base(DeclarativeBase):
    pass


class Item(TenantScoped, Base):
    __tablename__ = "bench_nn_items"

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    payload: Mapped[str] = mapped_column(sa.Text)


HEAVY_SQL = "SELECT count(*) FROM bench_nn_items a CROSS JOIN generate_series(1, %s) g WHERE a.payload <> ''"


def make_app(tn: Tenantry, loops: int, *, limits: bool) -> TenantMiddleware:
    async def light(request: Request) -> PlainTextResponse:
        async with tn.async_connection() as conn:
            row = await (await conn.execute("SELECT count(*) FROM bench_nn_items")).fetchone()
        return PlainTextResponse(str(row[0] if row else 0))

    async def heavy(request: Request) -> PlainTextResponse:
        async with tn.async_connection() as conn:
            row = await (await conn.execute(HEAVY_SQL, (loops,))).fetchone()
        return PlainTextResponse(str(row[0] if row else 0))

    app = Starlette(routes=[Route("/light", light), Route("/heavy", heavy)])
    return TenantMiddleware(app, tenantry=tn, resolvers=[SubdomainResolver(BASE)], limits=limits)


def _serve(settings: Any, loops: int, limits: bool, port: int) -> None:
    """The app server's process: its own Tenantry, uvicorn on ``port`` of 127.0.0.1."""
    tn = Tenantry(settings, metadata=Base.metadata, actor="bench")
    try:
        config = uvicorn.Config(
            make_app(tn, loops, limits=limits), host="127.0.0.1", port=port, log_level="critical", access_log=False,
            lifespan="off",
        )  # fmt: skip
        uvicorn.Server(config).run()
    finally:
        tn.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Served:
    """uvicorn in a process of its own (as an app server runs), on a free port of 127.0.0.1:
    the load generator in this process shares no interpreter lock with it."""

    def __init__(self, settings: Any, loops: int, *, limits: bool) -> None:
        self.port = _free_port()
        self.process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(settings, loops, limits, self.port), daemon=True
        )

    def __enter__(self) -> str:
        self.process.start()
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if not self.process.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("the app server did not start") from None
                time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()  # uvicorn stops on SIGTERM
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()


async def drive(
    base_url: str, quiet: list[str], flood: str | None, args: argparse.Namespace, flood_rate: float
) -> tuple[list[float], collections.Counter[int], collections.Counter[int]]:
    """Run one phase: the quiet tenants' latencies (seconds, status 200 only), the quiet
    answers by status, the flood's answers by status (0: no answer)."""
    latencies: list[float] = []
    quiet_status: collections.Counter[int] = collections.Counter()
    flood_status: collections.Counter[int] = collections.Counter()
    limits = httpx.Limits(max_connections=len(quiet) * 4 + args.flood_concurrency + 10)
    end = time.monotonic() + args.seconds
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0, limits=limits) as http:
        pending: set[asyncio.Task[None]] = set()

        async def light(slug: str) -> None:
            t0 = time.perf_counter()
            try:
                status = (await http.get("/light", headers={"host": f"{slug}.{BASE}"})).status_code
            except httpx.HTTPError:
                status = 0
            quiet_status[status] += 1
            if status == 200:
                latencies.append(time.perf_counter() - t0)

        async def heavy(outstanding: asyncio.Semaphore) -> None:
            try:
                status = (await http.get("/heavy", headers={"host": f"{flood}.{BASE}"})).status_code
            except httpx.HTTPError:
                status = 0
            finally:
                outstanding.release()
            flood_status[status] += 1

        async def quiet_tenant(slug: str, offset: float) -> None:
            interval = 1.0 / args.quiet_rate
            due = time.monotonic() + offset
            while due < end:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                task = asyncio.create_task(light(slug))
                pending.add(task)
                task.add_done_callback(pending.discard)
                due += interval

        async def flooding() -> None:
            outstanding = asyncio.Semaphore(args.flood_concurrency)
            interval = 1.0 / flood_rate
            due = time.monotonic()
            while due < end:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if outstanding.locked():
                    flood_status[-1] += 1  # not sent: as many outstanding as the flood keeps
                else:
                    await outstanding.acquire()
                    task = asyncio.create_task(heavy(outstanding))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                due += interval

        spread = 1.0 / args.quiet_rate / max(1, len(quiet))
        jobs = [quiet_tenant(slug, i * spread) for i, slug in enumerate(quiet)]
        if flood is not None:
            jobs.append(flooding())
        await asyncio.gather(*jobs)
        if pending:
            await asyncio.gather(*list(pending))
    return latencies, quiet_status, flood_status


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))]


def setup(tn: Tenantry, args: argparse.Namespace) -> tuple[list[str], str, int, float]:
    tn.schema.init()
    run = uuid.uuid4().hex[:6]
    quiet = []
    for i in range(args.quiet):
        t = tn.tenants.create(f"quiet-{i:02d}-{run}", plan=args.plan)
        with tn.tenant(t.slug), tn.connection() as conn:
            conn.cursor().executemany(
                "INSERT INTO bench_nn_items (id, payload) VALUES (%s, %s)", [(n, f"q{n}") for n in range(QUIET_ROWS)]
            )
        quiet.append(t.slug)
    flood = tn.tenants.create(f"flood-{run}", plan=args.plan)
    with tn.tenant(flood.slug), tn.connection() as conn:
        copy_rows(conn, "bench_nn_items", ["id", "payload"], ((n, f"payload {n:08d}") for n in range(FLOOD_ROWS)))
    with tn.tenant(flood.slug), tn.connection() as conn:
        conn.execute("ANALYZE bench_nn_items")
        t0 = time.perf_counter()
        conn.execute(HEAVY_SQL, (4,)).fetchone()
        per_loop = max(1e-4, (time.perf_counter() - t0) / 4)
    loops = max(1, round(args.heavy_seconds / per_loop))
    plan_limits = EdgeLimits.from_layers(tn.plans.get(args.plan).limits)
    rate = plan_limits.rate if plan_limits.rate is not None else 10.0
    return quiet, flood.slug, loops, rate


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_server_arguments(parser)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--quiet", type=int, default=20, help="quiet tenants")
    parser.add_argument("--quiet-rate", type=float, default=2.0, help="requests per second of each quiet tenant")
    parser.add_argument("--flood-factor", type=float, default=10.0, help="the flood's rate over its plan's")
    parser.add_argument("--flood-concurrency", type=int, default=50, help="most flood requests outstanding")
    parser.add_argument("--heavy-seconds", type=float, default=1.0, help="what one heavy query takes, alone")
    parser.add_argument("--plan", default="free", help="the plan of every tenant (an ordinary catalog plan)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.quiet < 1 or args.quiet_rate <= 0 or args.flood_factor <= 0:
        parser.error("--seconds, --quiet, --quiet-rate and --flood-factor must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = datetime.now(UTC)
    print(
        f"tenantry noisy neighbour: {args.quiet} quiet tenants at {args.quiet_rate:g} req/s, one flooding at"
        f" {args.flood_factor:g}x its plan's rate, {args.seconds:g} s per phase, plan {args.plan!r};"
        f" {environment(started)}, load average {load_averages()}"
    )
    with server(args.server, args.url) as url, scratch_database(url) as scratch:
        settings = scratch.settings(tenant_cache_ttl=3600.0)
        tn = Tenantry(settings, metadata=Base.metadata, actor="bench")
        try:
            quiet, flood, loops, plan_rate = setup(tn, args)
            flood_rate = plan_rate * args.flood_factor
            limits = tn.plans.get(args.plan).limits
            print(
                f"plan {args.plan!r} limits: {limits}; flood: {flood_rate:g} req/s of /heavy ({loops} loops over"
                f" {FLOOD_ROWS:,} rows, about {args.heavy_seconds:g} s alone); pool max {settings.pool_max_size}"
            )
            p99: dict[str, float] = {}
            for phase, with_flood, on in (
                ("alone", False, True),
                ("limits on", True, True),
                ("limits off", True, False),
            ):
                with Served(settings, loops, limits=on) as base_url:
                    # warm: every tenant resolved once, the listener connected
                    asyncio.run(
                        drive(
                            base_url, quiet + [flood], None, argparse.Namespace(**{**vars(args), "seconds": 0.6}), 1.0
                        )
                    )
                    latencies, quiet_status, flood_status = asyncio.run(
                        drive(base_url, quiet, flood if with_flood else None, args, flood_rate)
                    )
                p50, p99[phase] = percentile(latencies, 0.50) * 1e3, percentile(latencies, 0.99) * 1e3
                errors = {s: n for s, n in quiet_status.items() if s != 200}
                flood_said = ", ".join(f"{'not sent' if s == -1 else s}: {n}" for s, n in sorted(flood_status.items()))
                print(
                    f"{phase:10}: quiet p50 {p50:8.1f} ms, p99 {p99[phase]:8.1f} ms ({len(latencies)} answers"
                    f"{f', errors {errors}' if errors else ''}){f'; flood {flood_said}' if with_flood else ''}"
                )
        finally:
            tn.close()
    print(f"\n{run_took(started)}")
    on, off = p99["limits on"] / p99["alone"], p99["limits off"] / p99["alone"]
    print(f"goal: quiet p99 beside the flood with limits on <= {GOAL}x alone: {'met' if on <= GOAL else 'NOT MET'}")
    print(f"noisy_neighbour_p99_ratio_limits_off={off:.2f}")
    print(f"noisy_neighbour_p99_ratio={on:.2f}")


if __name__ == "__main__":
    main()
