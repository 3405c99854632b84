"""What an outage costs the app: the embedded server killed (SIGKILL of the postmaster) under
load and restarted after a chosen outage; how fast requests fail meanwhile, and how soon after
the server accepts connections again they are served.

Run::

    python bench/outage.py [--outages 5,20] [--clients 20] [--pause 0.05] [--warm 2] [--after 5]

Set-up (not timed)
    A private embedded server in a temporary directory (it gets killed), a scratch catalog on
    it (``bench/_scratch.py``), ``Tenantry(...).init()`` with one table ``bench_outage_items``,
    and one tenant per tier (pooled, schema, database), five rows each. The app is Starlette
    behind ``TenantMiddleware(resolvers=[SubdomainResolver("bench.test")])``, served by uvicorn
    on 127.0.0.1 in a thread of this process. Two endpoints read the tenant's rows:
    ``/psycopg`` through ``tn.async_connection()``, ``/orm`` through ``tn.async_engine()``.
    tenantry's errors raised by a handler are answered with their status
    (``problem_from_error``), as the edge does.

Method
    ``--clients`` httpx clients on one event loop, each sending a request (tenant and endpoint
    in turn), then pausing ``--pause`` seconds; every request has a 30 s timeout. For each
    outage in ``--outages``: ``--warm`` seconds of load, then the postmaster is killed
    (SIGKILL), the server is left down for the outage, then started again (the time from
    ``pg_ctl start`` until it accepts connections is the server's own restart time), and the
    load goes on for ``--after`` seconds.
    Reported per outage: the requests that failed and how fast (p50, p99, max latency of the
    requests sent while the server was down), the status codes seen during the outage and
    after the restart, requests that hung (longer than 2 s), and time-to-serve: from the
    moment the server accepts connections until the first answer that is a success, and until
    every answer from then on is one (full service; a request that hung through the restart
    and then failed counts against it).
    The last line is the ratio, for the longest outage, of restart-to-full-service (from
    ``pg_ctl start``) to the server's own restart time (goal: full service within 2 s of the
    server accepting connections, whatever the outage's length).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn
from _scratch import Scratch, environment, run_took, verdict
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tenantry import EmbeddedServer, Tenantry, TenantryError, TenantScoped
from tenantry.problems import PROBLEM_JSON, problem_from_error
from tenantry.web import SubdomainResolver, TenantMiddleware

BASE = "bench.test"
#: what the 500s were: "path type: message" and how many
SERVER_ERRORS: Counter[str] = Counter()
HUNG = 2.0  # seconds after which a request counts as hung
GOAL = 2.0  # seconds from accepting connections to full service


class Base(DeclarativeBase):
    pass


class Item(TenantScoped, Base):
    __tablename__ = "bench_outage_items"

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    label: Mapped[str] = mapped_column(sa.Text)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0]


def make_app(tn: Tenantry) -> Any:
    async def via_psycopg(request: Request) -> JSONResponse:
        async with tn.async_connection() as conn:
            row = await (await conn.execute("SELECT count(*) FROM bench_outage_items")).fetchone()
        return JSONResponse({"count": row[0] if row else None})

    async def via_orm(request: Request) -> JSONResponse:
        async with tn.async_engine().connect() as conn:
            count = (await conn.execute(sa.select(sa.func.count()).select_from(Item))).scalar_one()
        return JSONResponse({"count": count})

    async def tenantry_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TenantryError)
        problem = problem_from_error(exc, instance=request.url.path)
        return Response(problem.body(), problem.status, dict(problem.headers), media_type=PROBLEM_JSON)

    async def other_error(request: Request, exc: Exception) -> Response:
        SERVER_ERRORS[f"{request.url.path} {type(exc).__module__}.{type(exc).__name__}: {_first_line(exc)[:90]}"] += 1
        return Response("Internal Server Error", status_code=500)

    app = Starlette(
        routes=[Route("/psycopg", via_psycopg), Route("/orm", via_orm)],
        exception_handlers={TenantryError: tenantry_error, Exception: other_error},
    )
    return TenantMiddleware(app, tenantry=tn, resolvers=[SubdomainResolver(BASE)])


@dataclass(frozen=True, slots=True)
class Sample:
    started: float
    ended: float
    status: int  # 0: no answer (timeout or connection error)
    path: str


class Served:
    """uvicorn in a thread of this process, on a free port of 127.0.0.1."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


async def load(
    base_url: str, slugs: list[str], clients: int, pause: float, stop: asyncio.Event, out: list[Sample]
) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0, limits=httpx.Limits(max_connections=clients)) as http:

        async def client(n: int) -> None:
            i = n
            while not stop.is_set():
                slug = slugs[i % len(slugs)]
                path = ("/psycopg", "/orm")[(i // len(slugs)) % 2]
                i += 1
                t0 = time.monotonic()
                try:
                    response = await http.get(path, headers={"host": f"{slug}.{BASE}"})
                    status = response.status_code
                except httpx.HTTPError:
                    status = 0
                out.append(Sample(t0, time.monotonic(), status, path))
                await asyncio.sleep(pause)

        await asyncio.gather(*(client(n) for n in range(clients)))


def kill(server: EmbeddedServer) -> None:
    pid = server.pid()
    assert pid is not None, "the server is not running"
    os.kill(pid, signal.SIGKILL)
    while server.pid() is not None:
        time.sleep(0.01)


def restart(server: EmbeddedServer) -> tuple[float, float]:
    """Start the server again: (when ``pg_ctl start`` began, when it accepts connections)."""
    began = time.monotonic()
    for attempt in range(50):  # the killed postmaster's backends may still hold its memory
        try:
            server.ensure_running()
            return began, time.monotonic()
        except TenantryError:
            if attempt == 49:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")


@dataclass
class Outage:
    length: float
    killed: float
    restart_began: float
    accepting: float
    samples: list[Sample]

    def report(self) -> tuple[list[str], float]:
        down = [s for s in self.samples if self.killed + 0.2 <= s.started < self.restart_began]
        fast = sorted(s.ended - s.started for s in down if s.status != 200)
        restarting = [s for s in self.samples if self.restart_began <= s.started < self.accepting]
        after = [s for s in self.samples if s.started >= self.accepting]
        failed_after = [s for s in after if s.status != 200]
        # answered after the server accepts connections, whenever sent (hung requests count)
        answered = [s for s in self.samples if s.ended >= self.accepting]
        first_ok = min((s.ended for s in answered if s.status == 200), default=float("inf"))
        # full service: every answer from then on is a success
        full = max([first_ok, *(s.ended for s in answered if s.status != 200)])
        in_flight = [s for s in self.samples if s.started < self.killed < s.ended]
        hung = [s for s in self.samples if s.ended - s.started > HUNG]
        restart_took = self.accepting - self.restart_began

        def codes(group: list[Sample]) -> str:
            counted = Counter((s.path, s.status) for s in group)
            return ", ".join(f"{path} {status or 'none'}: {n}" for (path, status), n in sorted(counted.items())) or "-"

        def ms(values: list[float], share: float) -> str:
            if not values:
                return "-"
            return f"{values[max(0, min(len(values) - 1, round(share * len(values)) - 1))] * 1000:.0f} ms"

        lines = [
            f"outage {self.length:g} s (killed at +0, restarted at +{self.restart_began - self.killed:.1f} s):",
            f"  server's own restart (pg_ctl start until it accepts connections): {restart_took * 1000:.0f} ms",
            f"  while down: {len(down)} requests, {len(fast)} failed; fail-fast latency p50 {ms(fast, 0.5)},"
            f" p99 {ms(fast, 0.99)}, max {ms(fast, 1.0)}",
            f"  status codes while down: {codes(down)}",
            f"  in flight at the kill: {codes(in_flight)}",
            f"  sent while the server was starting: {codes(restarting)}",
            f"  after the restart: first success {1000 * (first_ok - self.accepting):.0f} ms after accepting,"
            f" full service {1000 * (full - self.accepting):.0f} ms after accepting"
            f" [{verdict(full - self.accepting, GOAL)}: <= {GOAL:g} s]; {len(failed_after)} of those sent after failed",
            f"  status codes after the restart: {codes(after)}",
            f"  hung (> {HUNG:g} s): {len(hung)}; longest request {max((s.ended - s.started for s in self.samples), default=0) * 1000:.0f} ms",
        ]
        lines += [
            f"    hung: {s.path} sent at +{s.started - self.killed:.2f} s, answered {s.status or 'none'}"
            f" after {s.ended - s.started:.2f} s"
            for s in sorted(hung, key=lambda s: s.started)[:5]
        ]
        return lines, (full - self.restart_began) / restart_took


async def run_outages(tn: Tenantry, server: EmbeddedServer, slugs: list[str], args: argparse.Namespace) -> list[Outage]:
    found: list[Outage] = []
    with Served(make_app(tn)) as base_url:
        for length in args.outages:
            samples: list[Sample] = []
            stop = asyncio.Event()
            task = asyncio.create_task(load(base_url, slugs, args.clients, args.pause, stop, samples))
            await asyncio.sleep(args.warm)
            killed = time.monotonic()
            await asyncio.to_thread(kill, server)
            await asyncio.sleep(max(0.0, length - (time.monotonic() - killed)))
            began, accepting = await asyncio.to_thread(restart, server)
            await asyncio.sleep(args.after)
            stop.set()
            await task
            found.append(Outage(length, killed, began, accepting, samples))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outages", default="5,20", type=lambda v: [float(x) for x in v.split(",")])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--pause", type=float, default=0.05)
    parser.add_argument("--warm", type=float, default=2.0)
    parser.add_argument("--after", type=float, default=5.0)
    args = parser.parse_args()
    # the edge logs every refused request while the server is down; the watches' own
    # "is down" / "is back" lines stay
    logging.basicConfig(level=logging.WARNING, format="  log: %(name)s: %(message)s")
    for noisy in ("tenantry.web", "tenantry.events", "psycopg.pool", "sqlalchemy.pool"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    started = datetime.now(UTC)
    print(environment(started))
    print(f"clients {args.clients}, pause {args.pause:g} s, outages {', '.join(f'{o:g} s' for o in args.outages)}")
    root = Path(tempfile.mkdtemp(prefix="tenantry-bench-outage-"))
    root.chmod(0o755)
    server = EmbeddedServer(root / "pg")
    try:
        scratch = Scratch(server.ensure_running()).create()
        tn = Tenantry(scratch.settings(), metadata=Base.metadata, actor="bench")
        try:
            tn.schema.init()
            slugs = []
            for plan in ("free", "business", "enterprise"):
                tenant = tn.tenants.create(f"o-{plan}-{uuid.uuid4().hex[:6]}", plan=plan)
                slugs.append(tenant.slug)
                with tn.tenant(tenant.slug), tn.connection() as conn:
                    for i in range(5):
                        conn.execute("INSERT INTO bench_outage_items (id, label) VALUES (%s, %s)", (i, f"item {i}"))
            outages = asyncio.run(run_outages(tn, server, slugs, args))
        finally:
            tn.close()
        ratio = 0.0
        for outage in outages:
            lines, ratio = outage.report()
            print("\n".join(lines))
        for what, count in SERVER_ERRORS.most_common():
            print(f"500: {count} x {what}")
        print(run_took(started))
        print(f"ratio restart-to-full-service / server restart time, {outages[-1].length:g} s outage: {ratio:.2f}")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
