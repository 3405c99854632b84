"""What row-level security through tenantry costs, against an explicit ``WHERE tenant_id = ...``.

Run::

    python bench/rls_overhead.py [--server embedded|system] [--tenants 1000] [--rows 1000]
                                 [--iterations 5000] [--seed 1]

Set-up (not timed, except tenant creation)
    A scratch database with its own owner and runtime roles is created on the chosen server
    (``embedded``: a fresh embedded PostgreSQL in a temporary directory; ``system``: the server
    at ``--url``) and dropped, with the roles, at the end. ``Tenantry(...).init()`` deploys one
    pooled table, ``tenant_data.bench_items (tenant_id, id, label, score)`` with the primary key
    ``(tenant_id, id)`` and an index on ``(tenant_id, score)``. ``--tenants`` tenants are made
    with ``tn.create_tenant`` (each call timed: the p50 is reported against a 10 ms goal), then
    ``--rows`` rows per tenant are loaded with ``COPY`` as the superuser (superusers bypass RLS),
    interleaved across tenants as a shared table fills in real life. The baseline is a copy of
    the same rows in ``bench_plain.bench_items``: a plain table without RLS, made with
    ``LIKE ... INCLUDING ALL`` (so it has the same indexes), granted to the *runtime role*, so
    both sides connect as the same role with the same settings. Both tables are vacuumed and
    analysed.

Workloads (each one transaction)
    point      a row by primary key
    range      100 rows by a range of ``score`` (index on ``(tenant_id, score)``)
    aggregate  ``count(*)``, ``sum(score)`` over the tenant's rows
    seqscan    the aggregate with index, bitmap and index-only scans disabled by
               ``SET LOCAL`` inside the transaction (a full scan of the shared table)

Sides
    tenantry    ``with tn.tenant(slug), tn.connection() as conn:`` and the query *without* a
                tenant predicate: RLS adds it. ``BEGIN``, the binding and the query go in one
                pipeline, then COMMIT: two round trips.
    baseline    a ``psycopg_pool.ConnectionPool`` of plain psycopg connections as the runtime
                role, ``with pool.connection() as conn:``, the query *with* ``WHERE tenant_id =
                %(tenant)s``: psycopg's BEGIN, query, COMMIT, three round trips.
    no-RLS      information: the tenantry path running the baseline's query on the plain
                table, so ``no-RLS - baseline`` is what binding the tenant costs and
                ``tenantry - no-RLS`` what the policy (its InitPlan) costs.
    autocommit  information: the baseline query as one autocommit statement (one round trip);
                not possible for ``seqscan``, whose ``SET LOCAL`` needs a transaction.
    no-reset    information: the tenantry side with the hand-over reset switched off, so
                ``tenantry - no-reset`` is what resetting the session of every connection
                handed over costs (it rides in the first bind's pipeline: no round trip).
    unfused     information: the tenantry side with the bind sent in a round trip of its own
                ahead of the transaction's first statement (as before 2026-12-07, 22:00 UTC),
                so ``tenantry - unfused`` is what carrying the first statement in the bind's
                pipeline saves.

Method
    Tenants are resolved once before timing (a long ``tenant_cache_ttl`` and a warm cache), but
    the timed region is the whole ``with`` block users write, commit included. Each iteration
    draws a random tenant and parameters and runs every side with them, in an order that rotates
    each iteration; warm-up iterations run first and are not recorded. Times come from
    ``time.perf_counter_ns`` with the garbage collector paused. All pools hold the same number
    of connections, and each workload's query text is its own prepared statement. Reported: p50 and p95 per side and workload, and the ratio of the p50s,
    tenantry / baseline. The last line is the worst of the four ratios.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from _scratch import SYSTEM_URL, load_average, percentile, scratch_database, server, verdict
from psycopg import sql
from psycopg_pool import ConnectionPool
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tenantry import Tenantry, TenantScoped
from tenantry.db import binding, connections

TABLE = "bench_items"
PLAIN_SCHEMA = "bench_plain"
PLAIN_TABLE = f"{PLAIN_SCHEMA}.{TABLE}"
POOL_SIZE = 2
RANGE_ROWS = 100
CREATE_TENANT_GOAL_MS = 10.0
FORCE_SEQ_SCAN = (
    "SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_indexonlyscan = off"
)


class Base(DeclarativeBase):
    pass


class Item(TenantScoped, Base):
    """The pooled app table under test."""

    __tablename__ = TABLE
    __table_args__ = (sa.Index(f"{TABLE}_by_score", "tenant_id", "score"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    label: Mapped[str] = mapped_column(sa.Text)
    # integer, not numeric: numeric's operators are not LEAKPROOF, so under RLS a numeric range
    # could not be an index condition (see docs/performance.md)
    score: Mapped[int] = mapped_column(sa.Integer)


# -- workloads ------------------------------------------------------------------------------

Params = dict[str, object]


@dataclass(frozen=True, slots=True)
class Workload:
    """One query shape, written once and rendered for either side."""

    name: str
    goal: float
    select: str
    conditions: tuple[str, ...]
    draw: Callable[[random.Random, int], Params]
    tail: str = ""
    setup: str | None = None
    share: int = 1
    """Runs ``iterations // share`` times (a full scan of the shared table is slow)."""

    def query(self, table: str, *, explicit_tenant: bool) -> str:
        """The query text, named in a comment so that each workload is its own prepared
        statement (a plan prepared without ``setup`` must not serve the seq scan)."""
        conditions = (("tenant_id = %(tenant)s",) if explicit_tenant else ()) + self.conditions
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return f"/* {self.name} */ {self.select.format(table=table)}{where} {self.tail}".strip()


def _draw_point(rng: random.Random, rows: int) -> Params:
    return {"id": rng.randint(1, rows)}


def _draw_range(rng: random.Random, rows: int) -> Params:
    span = min(RANGE_ROWS, rows)
    low = rng.randint(0, rows - span)
    return {"low": low, "high": low + span}


def _draw_nothing(rng: random.Random, rows: int) -> Params:
    return {}


_AGGREGATE = "SELECT count(*), sum(score) FROM {table}"
WORKLOADS = (
    Workload("point", 1.10, "SELECT id, label, score FROM {table}", ("id = %(id)s",), _draw_point),
    Workload(
        "range",
        1.10,
        "SELECT id, label, score FROM {table}",
        ("score >= %(low)s", "score < %(high)s"),
        _draw_range,
        tail="ORDER BY score",
    ),
    Workload("aggregate", 1.10, _AGGREGATE, (), _draw_nothing),
    Workload("seqscan", 1.20, _AGGREGATE, (), _draw_nothing, setup=FORCE_SEQ_SCAN, share=30),
)


@dataclass(frozen=True, slots=True)
class Sample:
    """One iteration's tenant and parameters, shared by every side."""

    slug: str
    params: Params


Runner = Callable[[Sample], None]


def _execute(conn: psycopg.Connection[Any], query: str, setup: str | None, params: Params) -> None:
    if setup is not None:
        conn.execute(setup)
    conn.execute(query, params).fetchall()


def tenantry_runner(tn: Tenantry, workload: Workload, *, rls: bool = True) -> Runner:
    """The path users write; ``rls=False`` runs the baseline's query on it instead, to show
    what binding the tenant costs apart from the policy."""
    if rls:
        query = workload.query(TABLE, explicit_tenant=False)
    else:
        query = workload.query(PLAIN_TABLE, explicit_tenant=True)

    def run(sample: Sample) -> None:
        with tn.tenant(sample.slug), tn.connection() as conn:
            _execute(conn, query, workload.setup, sample.params)

    return run


@contextmanager
def reset_off() -> Iterator[None]:
    """No connection is due the hand-over reset while the block runs (where the bind and a
    fused first statement look)."""
    modules = (binding, connections)
    saved = [m.reset_due for m in modules]
    for m in modules:
        m.reset_due = lambda conn: False  # type: ignore[assignment]
    try:
        yield
    finally:
        for m, due in zip(modules, saved, strict=True):
            m.reset_due = due  # type: ignore[assignment]


@contextmanager
def fusion_off() -> Iterator[None]:
    """The bind is sent on its own, ahead of the transaction's first statement, while the
    block runs (as before the first statement carried it)."""
    saved = connections._fused_for
    connections._fused_for = lambda conn: None  # type: ignore[assignment]
    try:
        yield
    finally:
        connections._fused_for = saved  # type: ignore[assignment]


def without_fusion(run: Runner) -> Runner:
    """``run`` with the bind sent on its own, ahead of the transaction's first statement."""

    def wrapped(sample: Sample) -> None:
        with fusion_off():
            run(sample)

    return wrapped


def without_reset(run: Runner) -> Runner:
    """``run`` with the hand-over reset switched off (the connection is reset by the next
    borrower of the other sides instead)."""

    def wrapped(sample: Sample) -> None:
        with reset_off():
            run(sample)

    return wrapped


def pool_runner(pool: ConnectionPool[Any], workload: Workload) -> Runner:
    query = workload.query(PLAIN_TABLE, explicit_tenant=True)

    def run(sample: Sample) -> None:
        with pool.connection() as conn:
            _execute(conn, query, workload.setup, sample.params)

    return run


# -- statistics -----------------------------------------------------------------------------


@dataclass(slots=True)
class Timings:
    """Nanosecond timings per side of one workload."""

    by_side: dict[str, list[int]] = field(default_factory=dict)

    def p50(self, side: str) -> float:
        return statistics.median(self.by_side[side]) / 1e6

    def describe(self, side: str) -> str:
        values = self.by_side.get(side)
        if not values:
            return f"{'n/a':>17}"
        return f"{self.p50(side):8.3f} /{percentile(values, 0.95):8.3f}"


@contextmanager
def gc_paused() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def measure(sides: dict[str, Runner], samples: Sequence[Sample], warmup: int) -> Timings:
    """Run every side on every sample, rotating the order; record all but the warm-up."""
    timings = Timings({name: [] for name in sides})
    order = list(sides.items())
    with gc_paused():
        for i, sample in enumerate(samples):
            turn = i % len(order)
            for name, run in order[turn:] + order[:turn]:
                start = time.perf_counter_ns()
                run(sample)
                elapsed = time.perf_counter_ns() - start
                if i >= warmup:
                    timings.by_side[name].append(elapsed)
    return timings


# -- set-up ---------------------------------------------------------------------------------


def create_tenants(tn: Tenantry, count: int) -> tuple[list[tuple[str, uuid.UUID]], list[int]]:
    """Create ``count`` tenants through ``tn.create_tenant``; their (slug, id) and the timings."""
    tenants: list[tuple[str, uuid.UUID]] = []
    timings: list[int] = []
    for n in range(count):
        slug = f"bench-{n:05d}"
        start = time.perf_counter_ns()
        tenant = tn.create_tenant(slug)
        timings.append(time.perf_counter_ns() - start)
        tenants.append((slug, tenant.id))
    return tenants, timings


def load_rows(
    admin: psycopg.Connection[Any], schema: str, tenant_ids: Sequence[uuid.UUID], rows: int, seed: int
) -> float:
    """COPY ``rows`` rows per tenant into the pooled table; returns the seconds it took."""
    scores = list(range(rows))
    random.Random(seed).shuffle(scores)
    copy_sql = sql.SQL("COPY {} (tenant_id, id, label, score) FROM STDIN").format(sql.Identifier(schema, TABLE))
    start = time.perf_counter()
    with admin.transaction(), admin.cursor() as cursor, cursor.copy(copy_sql) as copy:
        for row_id in range(1, rows + 1):  # interleaved across tenants, as a shared table fills
            label = f"item {row_id}"
            for tenant_id in tenant_ids:
                copy.write_row((tenant_id, row_id, label, scores[row_id - 1]))
    return time.perf_counter() - start


def make_baseline(admin: psycopg.Connection[Any], pooled_schema: str, runtime_role: str) -> None:
    """The same rows in a plain table without RLS, with the same indexes, for the runtime role."""
    pooled = sql.Identifier(pooled_schema, TABLE)
    plain = sql.Identifier(PLAIN_SCHEMA, TABLE)
    schema, role = sql.Identifier(PLAIN_SCHEMA), sql.Identifier(runtime_role)
    for statement in (
        sql.SQL("CREATE SCHEMA {}").format(schema),
        sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(plain, pooled),
        sql.SQL("INSERT INTO {} SELECT * FROM {}").format(plain, pooled),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role),
        sql.SQL("GRANT SELECT ON {} TO {}").format(plain, role),
        sql.SQL("VACUUM (ANALYZE) {}").format(pooled),
        sql.SQL("VACUUM (ANALYZE) {}").format(plain),
    ):
        admin.execute(statement)


def table_size(admin: psycopg.Connection[Any], schema: str) -> str:
    row = admin.execute(
        "SELECT pg_size_pretty(pg_table_size(c.oid)), pg_size_pretty(pg_indexes_size(c.oid))"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s",
        (schema, TABLE),
    ).fetchone()
    assert row is not None
    return f"{schema}.{TABLE}: table {row[0]}, indexes {row[1]}"


def warm_tenant_cache(tn: Tenantry, slugs: Sequence[str]) -> None:
    for slug in slugs:
        with tn.tenant(slug):
            pass


# -- plans (a check that both sides use the same access path) -------------------------------


def _scans(node: dict[str, Any]) -> Iterator[str]:
    if "Relation Name" in node or "Index Name" in node:
        name = node.get("Index Name") or node["Relation Name"]
        yield f"{node['Node Type']}({name})"
    for child in node.get("Plans", []):
        yield from _scans(child)


def access_path(conn: psycopg.Connection[Any], workload: Workload, query: str, params: Params) -> str:
    if workload.setup is not None:
        conn.execute(workload.setup)
    row = conn.execute("EXPLAIN (FORMAT JSON) " + query, params).fetchone()
    assert row is not None
    conn.rollback()
    return " + ".join(_scans(row[0][0]["Plan"]))


def describe_plans(tn: Tenantry, pool: ConnectionPool[Any], workload: Workload, sample: Sample) -> str:
    with tn.tenant(sample.slug), tn.connection() as conn:
        ours = access_path(conn, workload, workload.query(TABLE, explicit_tenant=False), sample.params)
    with pool.connection() as conn:
        plain = workload.query(PLAIN_TABLE, explicit_tenant=True)
        theirs = access_path(conn, workload, plain, sample.params)
    return f"  {workload.name:<10} tenantry: {ours}\n  {'':<10} baseline: {theirs}"


# -- the run --------------------------------------------------------------------------------


def draw_samples(
    workload: Workload, tenants: Sequence[tuple[str, uuid.UUID]], rows: int, count: int, rng: random.Random
) -> list[Sample]:
    samples = []
    for _ in range(count):
        slug, tenant_id = rng.choice(tenants)
        samples.append(Sample(slug, {"tenant": tenant_id, **workload.draw(rng, rows)}))
    return samples


def iterations_for(workload: Workload, iterations: int) -> tuple[int, int]:
    """(warm-up, measured) iterations of a workload."""
    measured = max(10, iterations // workload.share)
    return max(3, measured // 10), measured


def sides_for(tn: Tenantry, pools: dict[str, ConnectionPool[Any]], workload: Workload) -> dict[str, Runner]:
    sides = {
        "tenantry": tenantry_runner(tn, workload),
        "baseline": pool_runner(pools["baseline"], workload),
        "no-RLS": tenantry_runner(tn, workload, rls=False),
        "no-reset": without_reset(tenantry_runner(tn, workload)),
        "unfused": without_fusion(tenantry_runner(tn, workload)),
    }
    if workload.setup is None:  # SET LOCAL needs a transaction
        sides["autocommit"] = pool_runner(pools["autocommit"], workload)
    return sides


COLUMNS = ("tenantry", "baseline", "no-RLS", "autocommit", "no-reset", "unfused")


def run_workloads(
    tn: Tenantry,
    pools: dict[str, ConnectionPool[Any]],
    tenants: Sequence[tuple[str, uuid.UUID]],
    args: argparse.Namespace,
) -> dict[str, float]:
    rng = random.Random(args.seed)
    ratios: dict[str, float] = {}
    resets: dict[str, float] = {}
    fusions: dict[str, float] = {}
    print("\naccess paths (EXPLAIN):")
    for workload in WORKLOADS:
        print(describe_plans(tn, pools["baseline"], workload, draw_samples(workload, tenants, args.rows, 1, rng)[0]))
    print(
        "\np50 / p95 in ms. tenantry: tn.tenant() + tn.connection(), RLS adds the tenant; baseline:"
        " plain pool, explicit WHERE tenant_id;\nno-RLS: the tenantry path running the baseline's"
        " query (binding cost alone); autocommit: the baseline query in one round trip (information);\n"
        "no-reset: tenantry without the hand-over reset; unfused: tenantry with the bind in a round trip of"
        " its own, ahead of the first statement (information)\n"
    )
    print(f"{'workload':<10} {'iters':>6}" + "".join(f"  {name:>17}" for name in COLUMNS) + "   ratio  goal")
    for workload in WORKLOADS:
        warmup, measured = iterations_for(workload, args.iterations)
        samples = draw_samples(workload, tenants, args.rows, warmup + measured, rng)
        timings = measure(sides_for(tn, pools, workload), samples, warmup)
        ratio = timings.p50("tenantry") / timings.p50("baseline")
        ratios[workload.name] = ratio
        figures = "".join(f"  {timings.describe(name)}" for name in COLUMNS)
        print(
            f"{workload.name:<10} {measured:>6}{figures}  {ratio:6.3f}  <= {workload.goal:.2f}"
            f" {verdict(ratio, workload.goal)}"
        )
        resets[workload.name] = timings.p50("tenantry") - timings.p50("no-reset")
        fusions[workload.name] = timings.p50("tenantry") - timings.p50("unfused")
    print(
        "\nhand-over reset, p50 per borrow (tenantry - no-reset): "
        + ", ".join(f"{name} {cost * 1000:+.1f} us" for name, cost in resets.items())
    )
    print(
        "the first statement in the bind's pipeline, p50 (tenantry - unfused): "
        + ", ".join(f"{name} {cost * 1000:+.1f} us" for name, cost in fusions.items())
    )
    return ratios


def open_pools(tn: Tenantry) -> dict[str, ConnectionPool[Any]]:
    """The baseline pools: plain psycopg connections as the runtime role."""
    return {
        name: ConnectionPool(
            tn.runtime_url,
            min_size=POOL_SIZE,
            max_size=POOL_SIZE,
            name=name,
            kwargs={"autocommit": autocommit},
            open=True,
        )
        for name, autocommit in (("baseline", False), ("autocommit", True))
    }


def benchmark(server_url: str, args: argparse.Namespace) -> dict[str, float]:
    with scratch_database(server_url) as scratch:
        settings = scratch.settings(pool_min_size=POOL_SIZE, pool_max_size=POOL_SIZE, tenant_cache_ttl=24 * 3600.0)
        tn = Tenantry(settings, metadata=Base.metadata, actor="bench")
        pools: dict[str, ConnectionPool[Any]] = {}
        try:
            tn.init()
            with tn.admin() as admin:
                version = admin.execute("SHOW server_version").fetchone()
                print(f"server: PostgreSQL {version[0] if version else '?'} ({args.server})")
            tenants, created = create_tenants(tn, args.tenants)
            p50 = statistics.median(created) / 1e6
            print(
                f"create_tenant: p50 {p50:.2f} ms, p95 {percentile(created, 0.95):.2f} ms over"
                f" {len(created)} tenants (goal <= {CREATE_TENANT_GOAL_MS:.0f} ms: "
                f"{verdict(p50, CREATE_TENANT_GOAL_MS)})"
            )
            with tn.admin() as admin:
                schema = tn.settings.pooled_schema
                seconds = load_rows(admin, schema, [t[1] for t in tenants], args.rows, args.seed)
                total = len(tenants) * args.rows
                print(f"COPY: {total:,} rows in {seconds:.1f} s ({total / seconds:,.0f} rows/s)")
                make_baseline(admin, schema, tn.settings.runtime_role)
                for name in (schema, PLAIN_SCHEMA):
                    print(table_size(admin, name))
            warm_tenant_cache(tn, [t[0] for t in tenants])
            pools = open_pools(tn)
            return run_workloads(tn, pools, tenants, args)
        finally:
            for pool in pools.values():
                pool.close()
            tn.close()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--server", choices=("embedded", "system"), default="embedded")
    parser.add_argument("--url", default=SYSTEM_URL, help="superuser URL of the system server")
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=1000, help="rows per tenant")
    parser.add_argument(
        "--iterations",
        type=int,
        default=5000,
        help="measured iterations per workload (seqscan: 1/30 of it)",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.tenants < 1 or args.rows < 1 or args.iterations < 1:
        parser.error("--tenants, --rows and --iterations must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = datetime.now(UTC)
    print(
        f"tenantry RLS overhead: {args.tenants} tenants x {args.rows} rows, seed {args.seed},"
        f" {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, Python {platform.python_version()},"
        f" psycopg {psycopg.__version__}, load average {load_average()}"
    )
    with server(args.server, args.url) as url:
        ratios = benchmark(url, args)
    seconds = (datetime.now(UTC) - started).total_seconds()
    print(f"\n(run took {seconds:.0f} s; load average at the end {load_average()})")
    for name, ratio in ratios.items():
        goal = next(w.goal for w in WORKLOADS if w.name == name)
        print(f"ratio_{name}={ratio:.3f} (tenantry/baseline p50, goal <= {goal:.2f}: {verdict(ratio, goal)})")
    print(f"rls_overhead_p50_ratio={max(ratios.values()):.3f}")


if __name__ == "__main__":
    main()
