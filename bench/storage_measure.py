"""What one storage measuring pass costs at 10,000 pooled tenants, and how far the pooled
estimate is from the exact measurement.

Run::

    python bench/storage_measure.py [--server embedded|system] [--url URL] [--tenants 10000]
                                    [--rows 20] [--repeat 3] [--seed 1] [--sample 500]

Set-up (not timed)
    A scratch database (``bench/_scratch.py``) with two shared tables, ``bench_storage_notes``
    (a text body) and ``bench_storage_events`` (a jsonb payload). ``--tenants`` pooled
    tenants, their catalog rows and placements inserted by SQL (``tn.tenants.create`` makes
    about 200 a second; the pass reads the same rows either way). Each tenant gets between 1
    and ``2 x --rows`` rows in each table (uniformly at random, ``generate_series``) with a
    body 10 to 400 characters wide, drawn per tenant: tenants differ both in how many rows
    they have and in how wide their rows are, as real ones do. Then ``VACUUM ANALYZE``.

Method
    ``tn.usage.measure_storage(method=...)`` timed ``--repeat`` times for each method, taking
    turns: ``estimate`` (rows x the table's bytes per row: ``count(*) GROUP BY tenant_id``,
    one query per shared table) and ``exact`` (the rows' own bytes, ``sum(pg_column_size(t.*))``,
    x the table's bytes per byte of rows: also one query per table, but it reads every row).
    The best time of each is shown, with the queries it ran on the cell. Baseline: what one
    query per tenant and table would cost (``--sample`` tenants timed, times all of them;
    index scans on the primary key, over one connection), against the grouped pass.

Error
    For every tenant, ``estimate / exact - 1``. ``exact`` charges each tenant the share of the
    tables' total size (heap, indexes, TOAST, free space) that its rows' bytes are of all rows'
    bytes; the estimate charges by rows alone, so it undercharges tenants with wide rows and
    overcharges those with narrow ones. Shown: the median, the 95th percentile and the worst
    of the absolute error, and the error of the sum (nil by construction: both share out the
    same total).

The last line is ``storage_estimate_error_p95=<95th percentile of |estimate / exact - 1|>``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg
import sqlalchemy as sa
from _scratch import add_server_arguments, environment, load_averages, run_took, scratch_database, server
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tenantry import Tenantry, TenantScoped


class Base(DeclarativeBase):
    pass


class Note(TenantScoped, Base):
    __tablename__ = "bench_storage_notes"
    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    body: Mapped[str] = mapped_column(sa.Text)


class Event(TenantScoped, Base):
    __tablename__ = "bench_storage_events"
    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    payload: Mapped[dict[str, object]] = mapped_column(
        sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
    )


def setup(tn: Tenantry, args: argparse.Namespace) -> None:
    tn.schema.init()
    rng = random.Random(args.seed)
    ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(args.tenants)]
    rows = [rng.randint(1, 2 * args.rows) for _ in ids]
    widths = [rng.randint(10, 400) for _ in ids]
    schema = tn.settings.pooled_schema
    with psycopg.connect(tn.admin_url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO tenantry.tenants (id, slug, name, plan, status)
            SELECT id, 'st-' || n, 'Storage ' || n, 'free', 'active'
              FROM unnest(%s::uuid[]) WITH ORDINALITY AS u (id, n)
            """,
            (ids,),
        )
        conn.execute(
            """
            INSERT INTO tenantry.placements (tenant_id, cell, isolation, schema_name, status)
            SELECT id, 'primary', 'pooled', %s, 'active' FROM unnest(%s::uuid[]) AS u (id)
            """,
            (schema, ids),
        )
        for table, value in (
            ("bench_storage_notes", "repeat('n', t.w) || g"),
            ("bench_storage_events", "jsonb_build_object('kind', 'e', 'text', repeat('e', t.w / 2), 'n', g)"),
        ):
            conn.execute(
                f"INSERT INTO {schema}.{table} (tenant_id, id, {'body' if 'notes' in table else 'payload'})"
                f" SELECT t.id, g, {value}"
                "  FROM unnest(%s::uuid[], %s::int[], %s::int[]) AS t (id, r, w), generate_series(1, t.r) AS g",
                (ids, rows, widths),
            )
        conn.execute("VACUUM ANALYZE")
        total = conn.execute(
            f"SELECT (SELECT count(*) FROM {schema}.bench_storage_notes) + (SELECT count(*) FROM {schema}.bench_storage_events),"
            f" pg_total_relation_size('{schema}.bench_storage_notes') + pg_total_relation_size('{schema}.bench_storage_events')"
        ).fetchone()
    assert total is not None
    print(f"set-up: {args.tenants:,} pooled tenants, {total[0]:,} rows in 2 shared tables, {total[1] / 1048576:.1f} MB")


def per_tenant_seconds(tn: Tenantry, tenants: list[uuid.UUID], sample: int) -> float:
    """Seconds per tenant of the way the pass does not work: the tenant's rows' bytes read
    with a query of its own for each shared table (through the primary key's index)."""
    schema = tn.settings.pooled_schema
    picks = random.Random(2).sample(tenants, min(sample, len(tenants)))
    with psycopg.connect(tn.admin_url, autocommit=True) as conn:
        t0 = time.perf_counter()
        for tenant in picks:
            for table in ("bench_storage_notes", "bench_storage_events"):
                conn.execute(
                    f"SELECT count(*), sum(pg_column_size(t.*)) FROM {schema}.{table} t WHERE tenant_id = %s",
                    (tenant,),
                ).fetchone()
        return (time.perf_counter() - t0) / len(picks)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_server_arguments(parser)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=20, help="mean rows per tenant per table")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sample", type=int, default=500, help="tenants the per-tenant baseline times")
    args = parser.parse_args(argv)
    if args.tenants < 1 or args.rows < 1 or args.repeat < 1:
        parser.error("--tenants, --rows and --repeat must be positive")
    started = datetime.now(UTC)
    print(f"tenantry storage measurement: {environment(started)}, load average {load_averages()}")
    with server(args.server, args.url) as url, scratch_database(url) as scratch:
        tn = Tenantry(scratch.settings(), metadata=Base.metadata, actor="bench")
        try:
            setup(tn, args)
            best: dict[str, float] = {}
            found: dict[str, dict[uuid.UUID, int]] = {}
            for turn in range(args.repeat):
                for method in ("estimate", "exact") if turn % 2 == 0 else ("exact", "estimate"):
                    t0 = time.perf_counter()
                    report = tn.usage.measure_storage(method=method)  # type: ignore[arg-type]
                    took = time.perf_counter() - t0
                    best[method] = min(best.get(method, took), took)
                    found[method] = report.bytes
                    queries = report.queries
            for method in ("estimate", "exact"):
                print(
                    f"{method:8}: one pass over {len(found[method]):,} tenants {best[method] * 1000:8.1f} ms"
                    f" (best of {args.repeat}; {queries} queries on the cell, one per shared table)"
                )
            per_tenant = per_tenant_seconds(tn, list(found["exact"]), args.sample)
            print(
                f"baseline: one query per tenant and table, {args.sample} tenants timed:"
                f" {per_tenant * 1000:.2f} ms a tenant, {per_tenant * len(found['exact']):.1f} s for all"
                f" ({per_tenant * len(found['exact']) / best['exact']:.0f}x the grouped pass)"
            )
            estimate, exact = found["estimate"], found["exact"]
            errors = sorted(abs(estimate[t] / exact[t] - 1) for t in exact if exact[t])
            signed = [estimate[t] / exact[t] - 1 for t in exact if exact[t]]
            p95 = errors[min(len(errors) - 1, int(0.95 * len(errors)))]
            print(
                f"error |estimate / exact - 1| over {len(errors):,} tenants: median {statistics.median(errors):.1%},"
                f" p95 {p95:.1%}, worst {errors[-1]:.1%} (signed: from {min(signed):+.1%} to {max(signed):+.1%});"
                f" sum {sum(estimate.values()) / sum(exact.values()) - 1:+.2%}"
            )
        finally:
            tn.close()
    print(f"load average after: {load_averages()}")
    print(f"\n{run_took(started)}")
    print(f"storage_measure_estimate_ms={best['estimate'] * 1000:.1f}")
    print(f"storage_measure_exact_over_estimate_time_ratio={best['exact'] / best['estimate']:.2f}")
    print(f"storage_measure_per_tenant_over_grouped_time_ratio={per_tenant * len(found['exact']) / best['exact']:.1f}")
    print(f"storage_estimate_error_p95={p95:.4f}")


if __name__ == "__main__":
    main()
