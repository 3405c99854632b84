"""Connection pools stay bounded with thousands of database-tier tenants.

Run::

    python bench/pool_bound.py [--server embedded|system] [--url URL] [--tenants 2000]
                               [--max-pools 16] [--tenant-pool-max-size 2] [--threads 8]

Set-up (timed, reported, not the point)
    A scratch database with its own roles (``bench/_scratch.py``) and a one-table app.
    ``--tenants`` tenants on plan ``enterprise``: each gets a database of its own, built by
    ``tn.tenants.create`` (two at a time, one per core).

What is measured
    A second ``Tenantry`` (the app process) with ``max_pools`` and ``tenant_pool_max_size`` set
    serves every tenant in turn, twice over, through psycopg (``tn.connection()``) and every
    tenth one through SQLAlchemy (``tn.engine()``): an insert and a count, checked. After each
    tenant the router's open pools are counted; every 50 tenants, and at the end, the server's
    connections of the runtime role (``pg_stat_activity``), in all and per database. Then
    ``--threads`` threads hit random tenants at once for 10 s, and the same counts are taken
    while they run. Then the same walk through ``tn.async_connection()``.

A pool is one database's; evicting the least recently used closes it. The router keeps four
kinds, each bounded by ``max_pools`` on its own: psycopg pools, SQLAlchemy engines, and their
async twins; this run uses three. The bounds are: open pools of each kind <= ``max_pools``,
the runtime role's connections <= 3 x ``max_pools`` x ``tenant_pool_max_size``, and on one
database <= 3 x ``tenant_pool_max_size`` (one cap per kind).

The last line is ``pool_bound tenants=<n> max_pools=<seen>/<bound> runtime_conns=<seen>/<bound>
per_db=<seen>/<bound>``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg
import sqlalchemy as sa
from _scratch import (
    Scratch,
    add_server_arguments,
    environment,
    load_averages,
    median_ms,
    run_took,
    scratch_database,
    server,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from tenantry import Tenantry, TenantScoped


class Base(DeclarativeBase):
    pass


class Note(TenantScoped, Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    body: Mapped[str] = mapped_column(sa.Text)


class Watch:
    """The highest counts seen."""

    def __init__(self, scratch: Scratch, server_url: str) -> None:
        self._runtime = scratch.runtime_role
        self._conn = psycopg.connect(server_url, autocommit=True)
        self._lock = threading.Lock()
        self.pools = 0
        self.conns = 0
        self.per_db = 0

    def pools_now(self, tn: Tenantry) -> None:
        self.pools = max(self.pools, *tn.router.open_counts().values())

    def server_now(self) -> None:
        with self._lock:
            rows = self._conn.execute(
                "SELECT datname, count(*) FROM pg_stat_activity WHERE usename = %s GROUP BY datname",
                (self._runtime,),
            ).fetchall()
        self.conns = max(self.conns, sum(n for _, n in rows))
        self.per_db = max([self.per_db, *(n for _, n in rows)])

    def close(self) -> None:
        self._conn.close()


def serve(tn: Tenantry, slug: str, orm: bool) -> None:
    with tn.tenant(slug):
        with tn.connection() as conn:
            conn.execute("INSERT INTO notes (body) VALUES ('raw')")
            count = conn.execute("SELECT count(*) FROM notes").fetchone()
            assert count is not None and count[0] >= 1
        if orm:
            with Session(tn.engine()) as session:
                session.add(Note(body="orm"))
                session.commit()
                bodies = set(session.scalars(sa.select(Note.body)))
                assert bodies <= {"raw", "orm"}, bodies


def walk(tn: Tenantry, slugs: list[str], watch: Watch, label: str) -> list[int]:
    timings = []
    for i, slug in enumerate(slugs):
        started = time.perf_counter_ns()
        serve(tn, slug, orm=i % 10 == 0)
        timings.append(time.perf_counter_ns() - started)
        watch.pools_now(tn)
        if i % 50 == 0:
            watch.server_now()
    watch.server_now()
    print(f"  {label}: {len(slugs):,} tenants, p50 {median_ms(timings):.2f} ms per tenant served", flush=True)
    return timings


def hammer(tn: Tenantry, slugs: list[str], watch: Watch, threads: int, seconds: float) -> int:
    stop = time.monotonic() + seconds
    served = [0] * threads

    def worker(n: int) -> None:
        rng = random.Random(n)
        while time.monotonic() < stop:
            serve(tn, rng.choice(slugs), orm=False)
            served[n] += 1

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(worker, n) for n in range(threads)]
        while not all(f.done() for f in futures):
            watch.pools_now(tn)
            watch.server_now()
            time.sleep(0.05)
        for f in futures:
            f.result()
    return sum(served)


async def async_walk(tn: Tenantry, slugs: list[str], watch: Watch) -> None:
    for i, slug in enumerate(slugs):
        async with tn.tenant(slug), tn.async_connection() as conn:
            await conn.execute("INSERT INTO notes (body) VALUES ('async')")
        if i % 50 == 0:
            watch.pools_now(tn)
            await asyncio.to_thread(watch.server_now)
    await asyncio.to_thread(watch.server_now)


def create_all(scratch: Scratch, count: int) -> list[str]:
    slugs = [f"db-{i:05d}" for i in range(count)]
    made = 0
    lock = threading.Lock()
    started = time.monotonic()

    def make(part: list[str]) -> None:
        nonlocal made
        with Tenantry(scratch.settings(), metadata=Base.metadata) as tn:
            for slug in part:
                tn.tenants.create(slug, plan="enterprise")
                with lock:
                    made += 1
                    if made % 200 == 0:
                        print(f"  created {made:,} database tenants in {time.monotonic() - started:.0f} s", flush=True)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(make, [slugs[0::2], slugs[1::2]]))
    took = time.monotonic() - started
    print(f"created {count:,} database-tier tenants in {took:.0f} s ({took / count * 1000:.0f} ms each, 2 at a time)")
    return slugs


def run(args: argparse.Namespace) -> None:
    started = datetime.now(UTC)
    print(
        f"tenantry pool bound: {args.tenants:,} database-tier tenants, {environment(started)}, load average {load_averages()}"
    )
    with server(args.server, args.url) as server_url, scratch_database(server_url) as scratch:
        with psycopg.connect(server_url) as conn:
            version = conn.execute("SHOW server_version").fetchone()
        print(f"server: PostgreSQL {version[0] if version else '?'} ({args.server})")
        with Tenantry(scratch.settings(), metadata=Base.metadata) as admin:
            admin.schema.init()
            admin.schema.deploy()
        slugs = create_all(scratch, args.tenants)
        settings = scratch.settings(max_pools=args.max_pools, tenant_pool_max_size=args.tenant_pool_max_size)
        watch = Watch(scratch, server_url)
        pool_bound = args.max_pools
        conn_bound = 3 * args.max_pools * args.tenant_pool_max_size
        per_db_bound = 3 * args.tenant_pool_max_size
        print(f"app process: max_pools={args.max_pools}, tenant_pool_max_size={args.tenant_pool_max_size}")
        try:
            with Tenantry(settings, metadata=Base.metadata) as tn:
                walk(tn, slugs, watch, "first walk (every pool opened cold)")
                walk(tn, slugs, watch, "second walk (every pool evicted and opened again)")
                hot = slugs[: args.max_pools // 2]
                walk(tn, hot * 20, watch, f"{len(hot)} tenants again and again (pools stay open)")
                served = hammer(tn, slugs, watch, args.threads, 10.0)
                print(f"  {args.threads} threads on random tenants for 10 s: {served:,} served")
                asyncio.run(async_walk(tn, slugs, watch))
                print(f"  async walk: {len(slugs):,} tenants")
                tn.close()
        finally:
            watch.close()
        print(
            f"seen at most: {watch.pools:,} open pools (bound {pool_bound}), {watch.conns:,} runtime connections"
            f" (bound {conn_bound}), {watch.per_db:,} on one database (bound {per_db_bound})"
        )
        ok = watch.pools <= pool_bound and watch.conns <= conn_bound and watch.per_db <= per_db_bound
        print("bounds held" if ok else "BOUNDS EXCEEDED")
        print(f"dropping {args.tenants:,} databases ...", flush=True)
    print(run_took(started))
    print(
        f"pool_bound tenants={args.tenants} max_pools={watch.pools}/{pool_bound}"
        f" runtime_conns={watch.conns}/{conn_bound} per_db={watch.per_db}/{per_db_bound}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_server_arguments(parser)
    parser.add_argument("--tenants", type=int, default=2000)
    parser.add_argument("--max-pools", type=int, default=16)
    parser.add_argument("--tenant-pool-max-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
