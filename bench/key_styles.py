"""What UUIDv7 primary keys cost against identity (sequence) keys in a pooled table.

Run::

    python bench/key_styles.py [--server embedded|system] [--tenants 20] [--rounds 600]
                               [--batch 200] [--seed 1]

Why: ids drawn from a sequence that every pooled tenant shares grow with every tenant's
inserts, so a tenant can tell how busy the others are from its own ids; UUIDv7 keys tell
nothing (see docs/app-tables.md). This measures what the switch costs an insert.

Set-up (not timed)
    A scratch catalog with three pooled tables of the same shape, ``(tenant_id, id, label,
    created_at)`` with the primary key ``(tenant_id, id)``: ``keys_identity`` (``bigint``
    identity), ``keys_uuid7`` (``uuid``, generated in Python by ``examples/uuid7_keys.py``'s
    ``uuid7()``), and ``keys_uuid4`` (``uuid``, random: information, the key style UUIDv7
    replaces). On PostgreSQL 18 a fourth, ``keys_uuidv7_pg``, defaults to the server's
    ``uuidv7()``. ``--tenants`` pooled tenants.

Workloads (the path users write: ``with tn.tenant(slug), tn.connection() as conn``)
    one      a transaction inserting one row with ``RETURNING id``
    batch    a transaction inserting ``--batch`` rows (``executemany``, psycopg's pipeline)

Method
    Each round draws a random tenant and runs every side, in an order that rotates each round;
    the first tenth of the rounds warm up and are not recorded. Times come from
    ``time.perf_counter_ns``. Reported: p50 and p95 ms per side and workload, the tables' sizes
    at the end (heap and indexes), and the ratio uuid7 / identity of the p50s. The last line is
    ``key_styles one_ratio=<uuid7/identity> batch_ratio=<uuid7/identity>``.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from _scratch import add_server_arguments, environment, median_ms, percentile, run_took, scratch_database, server
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tenantry import Tenantry, TenantScoped


def _example_uuid7() -> Callable[[], uuid.UUID]:
    """``uuid7()`` exactly as the guide shows it (the example module is not importable: it runs)."""
    path = Path(__file__).resolve().parents[1] / "examples" / "uuid7_keys.py"
    source = path.read_text()
    start = source.index("def uuid7()")
    end = source.index("\n\n\n", start)
    namespace: dict[str, Any] = {}
    exec("import os, time, uuid\n" + source[start:end], namespace)
    found: Callable[[], uuid.UUID] = namespace["uuid7"]
    assert found().version == 7
    return found


class Base(DeclarativeBase):
    pass


class KeyIdentity(TenantScoped, Base):
    __tablename__ = "keys_identity"
    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    label: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


class KeyUuid7(TenantScoped, Base):
    __tablename__ = "keys_uuid7"
    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid(), primary_key=True)
    label: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


class KeyUuidv7Server(TenantScoped, Base):
    """Only on PostgreSQL 18 and later (dropped from the metadata before ``init`` otherwise)."""

    __tablename__ = "keys_uuidv7_pg"
    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid(), primary_key=True, server_default=sa.text("uuidv7()"))
    label: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


class KeyUuid4(TenantScoped, Base):
    __tablename__ = "keys_uuid4"
    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid(), primary_key=True)
    label: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_server_arguments(parser)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=600)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = datetime.now(UTC)
    print(f"bench/key_styles.py on {args.server}: {environment(started)}")
    rng = random.Random(args.seed)
    uuid7 = _example_uuid7()
    with server(args.server, args.url) as server_url, scratch_database(server_url) as scratch:
        with psycopg.connect(scratch.url) as probe:
            version = int(probe.info.server_version)
        if version < 180000:
            Base.metadata.remove(KeyUuidv7Server.__table__)  # type: ignore[arg-type]
        tn = Tenantry(scratch.settings(tenant_cache_ttl=3600.0), metadata=Base.metadata, actor="bench")
        try:
            tn.schema.init()
            slugs = [tn.tenants.create(f"keys-{uuid.uuid4().hex[:8]}").slug for _ in range(args.tenants)]
            sides: dict[str, tuple[str, Callable[[], Any] | None]] = {
                "identity": ("INSERT INTO keys_identity (label) VALUES (%s) RETURNING id", None),
                "uuid7": ("INSERT INTO keys_uuid7 (id, label) VALUES (%s, %s) RETURNING id", uuid7),
                "uuid4": ("INSERT INTO keys_uuid4 (id, label) VALUES (%s, %s) RETURNING id", uuid.uuid4),
            }
            if version >= 180000:
                sides["uuidv7()"] = ("INSERT INTO keys_uuidv7_pg (label) VALUES (%s) RETURNING id", None)
            batch_sql = {name: text.replace(" RETURNING id", "") for name, (text, _) in sides.items()}

            def params(make: Callable[[], Any] | None, label: str) -> tuple[Any, ...]:
                return (label,) if make is None else (make(), label)

            def one(side: str, slug: str) -> int:
                text, make = sides[side]
                t0 = time.perf_counter_ns()
                with tn.tenant(slug), tn.connection() as conn:
                    conn.execute(text, params(make, "one")).fetchone()
                return time.perf_counter_ns() - t0

            def batch(side: str, slug: str) -> int:
                _, make = sides[side]
                t0 = time.perf_counter_ns()
                with tn.tenant(slug), tn.connection() as conn, conn.cursor() as cur:
                    cur.executemany(batch_sql[side], [params(make, f"b{n}") for n in range(args.batch)])
                return time.perf_counter_ns() - t0

            timings: dict[tuple[str, str], list[int]] = {(w, s): [] for w in ("one", "batch") for s in sides}
            names = list(sides)
            warmup = args.rounds // 10
            gc.disable()
            try:
                for n in range(args.rounds):
                    slug = rng.choice(slugs)
                    order = names[n % len(names) :] + names[: n % len(names)]
                    for side in order:
                        took = one(side, slug)
                        if n >= warmup:
                            timings[("one", side)].append(took)
                    if n % 10 == 0:  # batches are ~--batch times longer: fewer of them
                        for side in order:
                            took = batch(side, slug)
                            if n >= warmup:
                                timings[("batch", side)].append(took)
            finally:
                gc.enable()
            with tn.admin() as conn:
                sizes = {
                    side: conn.execute(
                        "SELECT pg_relation_size(%s::regclass), pg_indexes_size(%s::regclass)",
                        (f"{tn.settings.pooled_schema}.{table}",) * 2,
                    ).fetchone()
                    for side, table in zip(
                        sides, ("keys_identity", "keys_uuid7", "keys_uuid4", "keys_uuidv7_pg"), strict=False
                    )
                }
        finally:
            tn.close()

    print(f"server_version_num {version}; {args.tenants} pooled tenants; batch = {args.batch} rows")
    print(f"{'workload':<8} {'side':<10} {'p50 ms':>8} {'p95 ms':>8}  samples")
    for (workload, side), values in timings.items():
        print(f"{workload:<8} {side:<10} {median_ms(values):8.3f} {percentile(values, 0.95):8.3f}  {len(values)}")
    print(f"{'side':<10} {'heap kB':>9} {'index kB':>9}")
    for side, row in sizes.items():
        assert row is not None
        print(f"{side:<10} {row[0] // 1024:9d} {row[1] // 1024:9d}")
    ratios = {w: median_ms(timings[(w, "uuid7")]) / median_ms(timings[(w, "identity")]) for w in ("one", "batch")}
    print(f"uuid7 / identity: one row {ratios['one']:.3f}, batch of {args.batch} {ratios['batch']:.3f}")
    print(run_took(started))
    print(f"key_styles one_ratio={ratios['one']:.3f} batch_ratio={ratios['batch']:.3f}")


if __name__ == "__main__":
    main()
