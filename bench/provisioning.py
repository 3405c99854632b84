"""How long ``tn.tenants.create`` takes on each tier, for an app of 20 tables.

Run::

    python bench/provisioning.py [--server embedded|system] [--url URL] [--per-tier N]
                                 [--pooled 50] [--schema 30] [--database 10] [--no-spares]

The app
    20 tenant tables (``table_01`` ... ``table_20``) generated from one spec (:func:`app_tables`),
    which ``bench/vs_django_tenants.py`` also turns into Django models: 3 to 8 columns each of
    varied types (text, varchar, integer, bigint, boolean, timestamptz, date, numeric, jsonb,
    uuid; every third one nullable), a bigint identity ``id``, 15 foreign keys to a parent table
    (in tenantry: composite, ``(tenant_id, parent_id)``, as tenantry requires, with an index on
    them), and 10 secondary indexes ``(tenant_id, <column>)``. Declared with SQLAlchemy and
    :class:`tenantry.TenantScoped`.

Method
    A scratch database with its own owner and runtime roles (``bench/_scratch.py``) on the chosen
    server; ``Tenantry(...).init()`` deploys the 20 tables in the pooled schema. Tenants are then
    created one at a time with ``tn.tenants.create(slug, plan=...)`` on plan ``free`` (pooled),
    ``business`` (a schema of its own) and ``enterprise`` (a database of its own), the tiers
    taking turns so that load on the machine spreads over all three; each call is timed whole
    (``time.perf_counter_ns``). One tenant per tier is created first and not recorded (first-use
    costs: admin pool, catalog listener, imports). One tenant of each tier is then checked to
    serve: an empty count through ``tn.tenant()`` + ``tn.connection()``, and 20 tables in its
    schema. Everything is dropped at the end (the databases of database-tier tenants too).

    Then the same creations from spares (unless ``--no-spares``): ``tn.spares.fill`` builds
    ``--schema`` + 1 schema-tier and ``--database`` + 1 database-tier spares (timed, printed,
    not part of the figures), and as many tenants are created again on ``business`` and
    ``enterprise``, the two taking turns; each claims a spare (checked). The first claim of
    each tier is not recorded. These are the ``schema_spare`` and ``database_spare`` rows:
    what ``create_tenant`` costs with a warm pool, against the pooled tier's goal.

The last line is ``provisioning_p50_ms pooled=<x> schema=<y> database=<z> schema_spare=<a>
database_spare=<b>``; the goals are 10 ms, 250 ms, 1.5 s, and 10 ms for the claims.
"""

from __future__ import annotations

import argparse
import itertools
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import sqlalchemy as sa
from _scratch import (
    add_server_arguments,
    environment,
    load_averages,
    median_ms,
    percentile,
    run_took,
    scratch_database,
    server,
    verdict,
)
from psycopg.types.json import Jsonb
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, mapped_column

from tenantry import Tenantry, TenantScoped
from tenantry.services.provisioning import database_url

# -- the 20-table app -----------------------------------------------------------------------

TABLES = 20
#: column kinds, in the order tables draw them
KINDS = ("name", "int", "text", "at", "flag", "big", "amount", "day", "data", "ref")
#: kinds no one would put a btree index on
UNINDEXED = ("flag", "data")


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    name: str
    kind: str
    nullable: bool


@dataclass(frozen=True, slots=True)
class TableSpec:
    """One app table, for any framework: its columns, its parent table (a foreign key
    ``parent_id``), and the columns that get an index."""

    name: str
    model: str
    columns: tuple[ColumnSpec, ...]
    parent: str | None
    indexed: tuple[str, ...]


def app_tables() -> list[TableSpec]:
    """The app's 20 tables, parents first. Table ``i`` (from 0) has ``3 + (5 i mod 6)`` columns
    of kinds drawn in turn from ``KINDS``, every third nullable; its parent is table
    ``(i - 1) // 2`` unless ``i`` is a multiple of 4 (so the tables form a few trees, up to four
    levels deep); every even table indexes its first column of an indexable kind."""
    specs: list[TableSpec] = []
    draw = itertools.cycle(KINDS)
    for i in range(TABLES):
        count = 3 + (5 * i) % 6
        columns = []
        for j in range(count):
            kind = next(draw)
            columns.append(ColumnSpec(f"{kind}_{j + 1}", kind, nullable=j % 3 == 2))
        parent = None if i % 4 == 0 else specs[(i - 1) // 2].name
        indexed = (next(c.name for c in columns if c.kind not in UNINDEXED),) if i % 2 == 0 else ()
        specs.append(TableSpec(f"table_{i + 1:02d}", f"Table{i + 1:02d}", tuple(columns), parent, indexed))
    return specs


def _sa_type(kind: str) -> sa.types.TypeEngine[Any]:
    return {
        "text": sa.Text(),
        "name": sa.String(200),
        "int": sa.Integer(),
        "big": sa.BigInteger(),
        "flag": sa.Boolean(),
        "at": sa.DateTime(timezone=True),
        "day": sa.Date(),
        "amount": sa.Numeric(12, 2),
        "data": JSONB(),
        "ref": sa.Uuid(),
    }[kind]


def make_metadata(specs: Sequence[TableSpec] | None = None) -> sa.MetaData:
    """The app as SQLAlchemy ORM classes on a fresh ``DeclarativeBase``; returns its metadata."""

    class Base(DeclarativeBase):
        pass

    for spec in specs or app_tables():
        attrs: dict[str, Any] = {
            "__tablename__": spec.name,
            "id": mapped_column(sa.BigInteger, sa.Identity(), primary_key=True),
        }
        args: list[Any] = []
        for column in spec.columns:
            attrs[column.name] = mapped_column(_sa_type(column.kind), nullable=column.nullable)
        if spec.parent is not None:
            attrs["parent_id"] = mapped_column(sa.BigInteger, nullable=False)
            args.append(
                sa.ForeignKeyConstraint(
                    ["tenant_id", "parent_id"], [f"{spec.parent}.tenant_id", f"{spec.parent}.id"], ondelete="CASCADE"
                )
            )
            args.append(sa.Index(f"{spec.name}_by_parent", "tenant_id", "parent_id"))
        for name in spec.indexed:
            args.append(sa.Index(f"{spec.name}_by_{name}", "tenant_id", name))
        attrs["__table_args__"] = tuple(args)
        type(spec.model, (TenantScoped, Base), attrs)
    return Base.metadata


def describe_app(specs: Sequence[TableSpec]) -> str:
    columns = sum(len(s.columns) + 1 + (s.parent is not None) for s in specs)
    fks = sum(s.parent is not None for s in specs)
    indexes = sum(len(s.indexed) for s in specs)
    return (
        f"app: {len(specs)} tables, {columns} columns besides tenant_id, {fks} foreign keys"
        f" (each indexed), {indexes} more indexes"
    )


_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def value(kind: str, n: int) -> Any:
    """A value of column kind ``kind`` for row ``n`` (deterministic)."""
    if kind == "text":
        return f"some text for row {n}"
    if kind == "name":
        return f"name {n}"
    if kind == "int":
        return n % 100_000
    if kind == "big":
        return n * 7919
    if kind == "flag":
        return n % 2 == 0
    if kind == "at":
        return _EPOCH + timedelta(seconds=n)
    if kind == "day":
        return date(2026, 1, 1) + timedelta(days=n % 365)
    if kind == "amount":
        return Decimal(n % 1_000_000) / 100
    if kind == "data":
        return Jsonb({"n": n, "tags": ["a", "b"]})
    if kind == "ref":
        return uuid.UUID(int=n)
    raise ValueError(f"unknown column kind {kind!r}")


# -- the benchmark --------------------------------------------------------------------------

#: tier -> (plan, goal for the p50 in ms)
TIERS = {"pooled": ("free", 10.0), "schema": ("business", 250.0), "database": ("enterprise", 1500.0)}
#: creations that claim a spare: name -> (tier of the spares, plan, goal for the p50 in ms)
CLAIMS = {"schema_spare": ("schema", "business", 10.0), "database_spare": ("database", "enterprise", 10.0)}


def turns(counts: dict[str, int]) -> list[str]:
    """Tiers (or kinds of claim) taking turns, until each has had its count."""
    left = dict(counts)
    order: list[str] = []
    while any(left.values()):
        for tier in counts:
            if left.get(tier, 0) > 0:
                order.append(tier)
                left[tier] -= 1
    return order


def create(tn: Tenantry, slug: str, tier: str) -> int:
    start = time.perf_counter_ns()
    tn.tenants.create(slug, plan=TIERS[tier][0])
    return time.perf_counter_ns() - start


def claim(tn: Tenantry, slug: str, kind: str, spare_ids: set[uuid.UUID]) -> int:
    """Create a tenant that must claim one of ``spare_ids``; its time."""
    start = time.perf_counter_ns()
    tenant = tn.tenants.create(slug, plan=CLAIMS[kind][1])
    took = time.perf_counter_ns() - start
    assert tenant.id in spare_ids, f"{slug} did not claim a spare"
    spare_ids.discard(tenant.id)
    return took


def fill_spares(tn: Tenantry, counts: dict[str, int]) -> set[uuid.UUID]:
    """Build ``counts[kind]`` spares of each kind of claim; print how long it took."""
    for kind, count in counts.items():
        tier = CLAIMS[kind][0]
        begun = time.perf_counter()
        report = tn.spares.fill(count, tier=tier)
        took = time.perf_counter() - begun
        print(
            f"filled {report.ready} {tier} spares in {took:.2f} s ({took / max(report.built, 1) * 1000:.1f} ms each;"
            " not part of the figures)"
        )
    return {s.id for s in tn.spares.list() if s.status == "ready"}


def check_serves(tn: Tenantry, slug: str, specs: Sequence[TableSpec]) -> str:
    """The tenant serves (an empty table through the runtime path) and has all its tables."""
    with tn.tenant(slug), tn.connection() as conn:
        row = conn.execute(f"SELECT count(*) FROM {specs[-1].name}").fetchone()
    assert row is not None and row[0] == 0, row
    placement = tn.tenants.placement(slug)
    assert placement is not None
    with psycopg.connect(database_url(tn.cells.admin_url(placement.cell), placement.database)) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename LIKE 'table\\_%%'",
            (placement.schema,),
        ).fetchone()
    assert found is not None and found[0] == len(specs), (slug, found)
    where = placement.database or "shared database"
    return f"{slug}: serves, {found[0]} tables in {where}, schema {placement.schema}"


def benchmark(server_url: str, args: argparse.Namespace) -> dict[str, list[int]]:
    specs = app_tables()
    counts = {"pooled": args.pooled, "schema": args.schema, "database": args.database}
    timings: dict[str, list[int]] = {tier: [] for tier in [*TIERS, *CLAIMS]}
    with scratch_database(server_url) as scratch:
        tn = Tenantry(scratch.settings(), metadata=make_metadata(specs), actor="bench")
        try:
            tn.schema.init()
            with tn.admin() as admin:
                version = admin.execute("SHOW server_version").fetchone()
            print(f"server: PostgreSQL {version[0] if version else '?'} ({args.server})")
            print(describe_app(specs))
            for tier in TIERS:  # first use of each path, not recorded
                create(tn, f"warm-{tier}", tier)
            seen: dict[str, int] = dict.fromkeys(TIERS, 0)
            first: dict[str, str] = {}
            for tier in turns(counts):
                slug = f"{tier}-{seen[tier]:04d}"
                seen[tier] += 1
                timings[tier].append(create(tn, slug, tier))
                first.setdefault(tier, slug)
            if args.spares:
                claims = {"schema_spare": args.schema + 1, "database_spare": args.database + 1}
                spare_ids = fill_spares(tn, claims)
                for kind in CLAIMS:  # first use of the claim path, not recorded
                    claim(tn, f"warm-{kind.replace('_', '-')}", kind, spare_ids)
                seen = dict.fromkeys(CLAIMS, 0)
                for kind in turns({k: c - 1 for k, c in claims.items()}):
                    slug = f"{kind.replace('_', '-')}-{seen[kind]:04d}"
                    seen[kind] += 1
                    timings[kind].append(claim(tn, slug, kind, spare_ids))
                    first.setdefault(kind, slug)
            for slug in first.values():
                print(check_serves(tn, slug, specs))
        finally:
            tn.close()
    return timings


def report(timings: dict[str, list[int]]) -> dict[str, float]:
    print(f"\n{'tier':<15} {'plan':<11} {'tenants':>7} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}  goal (p50)")
    p50s: dict[str, float] = {}
    rows = [(tier, plan, goal) for tier, (plan, goal) in TIERS.items()]
    rows += [(kind, plan, goal) for kind, (_, plan, goal) in CLAIMS.items()]
    for tier, plan, goal in rows:
        values = timings[tier]
        if not values:
            continue
        p50s[tier] = median_ms(values)
        print(
            f"{tier:<15} {plan:<11} {len(values):>7} {p50s[tier]:9.2f} {percentile(values, 0.95):9.2f}"
            f" {max(values) / 1e6:9.2f}  <= {goal:g} ms {verdict(p50s[tier], goal)}"
        )
    return p50s


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_server_arguments(parser)
    parser.add_argument("--per-tier", type=int, help="tenants per tier (overrides the three below)")
    parser.add_argument("--pooled", type=int, default=50)
    parser.add_argument("--schema", type=int, default=30)
    parser.add_argument("--database", type=int, default=10)
    parser.add_argument(
        "--no-spares", dest="spares", action="store_false", help="leave out the creations that claim spares"
    )
    args = parser.parse_args(argv)
    if args.per_tier is not None:
        args.pooled = args.schema = args.database = args.per_tier
    if min(args.pooled, args.schema, args.database) < 1:
        parser.error("each tier needs at least one tenant")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = datetime.now(UTC)
    print(
        f"tenantry provisioning: {args.pooled} pooled, {args.schema} schema, {args.database} database tenants,"
        f" {environment(started)}, load average {load_averages()}"
    )
    with server(args.server, args.url) as url:
        timings = benchmark(url, args)
    p50s = report(timings)
    print(f"\n{run_took(started)}")
    print("provisioning_p50_ms " + " ".join(f"{tier}={p50s[tier]:.2f}" for tier in [*TIERS, *CLAIMS] if tier in p50s))


if __name__ == "__main__":
    main()
