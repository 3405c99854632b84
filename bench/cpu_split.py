"""Where a point lookup's time goes: CPU per transaction, the app's and the server's, tenantry
against a plain psycopg pool with ``WHERE tenant_id = ...``.

Run::

    python bench/cpu_split.py [--server embedded|system] [--tenants 100] [--rows 1000]
                              [--iterations 20000]

Latency on a shared machine moves with its load; CPU time does not, much. Each side runs the
point lookup of ``bench/rls_overhead.py`` (same table, rows and query) on one connection, and
the script reads the CPU time of this process (``time.process_time``: the Python side) and of
that connection's server backend (``/proc/<pid>/stat``, so the server must run on this
machine) per transaction, in ``--rounds`` rounds that run every side in turn, and reports each
side's median round. The sides:

    baseline     ``with pool.connection() as conn:`` and the query with its tenant predicate
    tenantry     ``with tn.tenant(slug), tn.connection() as conn:`` and the query under RLS
    no-reset     tenantry with the hand-over reset switched off (what the reset costs)
    no-RLS       tenantry running the baseline's query on the plain table (what the policy costs)
    unfused      tenantry with the bind sent on its own, ahead of the first statement (what
                 fusing them into one pipeline saves: a negative difference)

The last line, ``cpu_split_ratio=``, is tenantry's CPU per transaction (app and server) over
the baseline's.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
from _scratch import add_server_arguments, environment, load_averages, run_took, scratch_database, server
from psycopg_pool import ConnectionPool
from rls_overhead import (
    PLAIN_TABLE,
    TABLE,
    WORKLOADS,
    Base,
    fusion_off,
    load_rows,
    make_baseline,
    reset_off,
    warm_tenant_cache,
)

from tenantry import Tenantry

_TICK = os.sysconf("SC_CLK_TCK")


def backend_cpu(pid: int) -> float:
    """Seconds of CPU the server process ``pid`` has used (user and system)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def measure(
    sides: dict[str, tuple[Callable[[str, dict[str, Any]], None], int]],
    draws: list[tuple[str, dict[str, Any]]],
    rounds: int,
) -> dict[str, tuple[float, float, float]]:
    """Per side, (app CPU, server CPU, wall) in microseconds per transaction: the median of
    ``rounds`` rounds, each running every side over ``draws`` in turn (in an order that
    rotates), so that the machine's other work weighs on every side alike."""
    for run, _pid in sides.values():  # warm-up
        for slug, params in draws[: len(draws) // 5]:
            run(slug, params)
    seen: dict[str, list[tuple[float, float, float]]] = {name: [] for name in sides}
    names = list(sides)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            run, pid = sides[name]
            app, backend, wall = time.process_time(), backend_cpu(pid), time.perf_counter()
            for slug, params in draws:
                run(slug, params)
            n = len(draws)
            seen[name].append(
                (
                    (time.process_time() - app) / n * 1e6,
                    (backend_cpu(pid) - backend) / n * 1e6,
                    (time.perf_counter() - wall) / n * 1e6,
                )
            )
    return {name: tuple(statistics.median(r[i] for r in rows) for i in range(3)) for name, rows in seen.items()}  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_server_arguments(parser)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--iterations", type=int, default=20000, help="transactions a side, in all rounds")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    started = datetime.now(UTC)
    print(f"tenantry CPU per point lookup: {environment(started)}, load average {load_averages()}")
    point = next(w for w in WORKLOADS if w.name == "point")
    with server(args.server, args.url) as url, scratch_database(url) as scratch:
        settings = scratch.settings(pool_min_size=1, pool_max_size=1, tenant_cache_ttl=3600.0)
        with Tenantry(settings, metadata=Base.metadata, actor="bench") as tn:
            tn.init()
            tenants = [tn.create_tenant(f"cpu-{i:04d}") for i in range(args.tenants)]
            with psycopg.connect(scratch.url, autocommit=True) as admin:  # a superuser: RLS does not apply
                load_rows(admin, tn.settings.pooled_schema, [t.id for t in tenants], args.rows, 1)
                make_baseline(admin, tn.settings.pooled_schema, scratch.runtime)
            warm_tenant_cache(tn, [t.slug for t in tenants])
            ids = {t.slug: t.id for t in tenants}
            rng = random.Random(1)
            draws = [(rng.choice(tenants).slug, {"id": rng.randint(1, args.rows)}) for _ in range(args.iterations)]
            rls_query = point.query(TABLE, explicit_tenant=False)
            plain_query = point.query(PLAIN_TABLE, explicit_tenant=True)
            with ConnectionPool(tn.runtime_url, min_size=1, max_size=1, open=True) as pool:

                def baseline(slug: str, params: dict[str, Any]) -> None:
                    with pool.connection() as conn:
                        conn.execute(plain_query, {**params, "tenant": ids[slug]}).fetchall()

                def tenantry(slug: str, params: dict[str, Any]) -> None:
                    with tn.tenant(slug), tn.connection() as conn:
                        conn.execute(rls_query, params).fetchall()

                def no_rls(slug: str, params: dict[str, Any]) -> None:
                    with tn.tenant(slug), tn.connection() as conn:
                        conn.execute(plain_query, {**params, "tenant": ids[slug]}).fetchall()

                def no_reset(slug: str, params: dict[str, Any]) -> None:
                    with reset_off():
                        tenantry(slug, params)

                def unfused(slug: str, params: dict[str, Any]) -> None:
                    with fusion_off():
                        tenantry(slug, params)

                with pool.connection() as conn:
                    base_pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
                with tn.tenant(tenants[0].slug), tn.connection() as conn:
                    tn_pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
                sides = measure(
                    {
                        "baseline": (baseline, base_pid),
                        "tenantry": (tenantry, tn_pid),
                        "no-reset": (no_reset, tn_pid),
                        "no-RLS": (no_rls, tn_pid),
                        "unfused": (unfused, tn_pid),
                    },
                    draws[: args.iterations // args.rounds],
                    args.rounds,
                )
    print(
        f"server: {args.server}; {args.tenants} tenants x {args.rows} rows; {args.iterations:,} transactions a side in {args.rounds} rounds (medians)"
    )
    print(f"\n{'side':<10} {'app CPU':>9} {'server CPU':>11} {'CPU sum':>9} {'wall':>9}   (us per transaction)")
    for name, (app, backend, wall) in sides.items():
        print(f"{name:<10} {app:9.1f} {backend:11.1f} {app + backend:9.1f} {wall:9.1f}")
    base, ours = sides["baseline"], sides["tenantry"]
    print("\ntenantry - baseline:")
    print(
        f"  app CPU {ours[0] - base[0]:+.1f} us, server CPU {ours[1] - base[1]:+.1f} us, wall {ours[2] - base[2]:+.1f} us"
    )
    for name, label in (
        ("no-reset", "the hand-over reset"),
        ("no-RLS", "the policy"),
        ("unfused", "the bind fused with the first statement"),
    ):
        other = sides[name]
        print(
            f"  of which {label}: app CPU {ours[0] - other[0]:+.1f} us, server CPU {ours[1] - other[1]:+.1f} us,"
            f" wall {ours[2] - other[2]:+.1f} us"
        )
    print(run_took(started))
    print(f"cpu_split_ratio={(ours[0] + ours[1]) / (base[0] + base[1]):.3f}")


if __name__ == "__main__":
    main()
