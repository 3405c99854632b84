"""A tenant of 100,000 rows moved across every tier while it keeps writing.

Run::

    python bench/tier_move.py [--server embedded|system] [--url URL] [--rows 100000]
                              [--write-interval 0.005]

Set-up (not timed)
    A scratch database with its own roles (``bench/_scratch.py``) and the 20-table app of
    ``bench/provisioning.py``. The tenant ``mover`` starts on plan ``free`` (pooled) with
    ``--rows`` rows spread over a chain of related tables: ``table_01`` (1%) <- ``table_02``
    (9%) <- ``table_04`` (30%) <- ``table_08`` (60%), each child row pointing at a parent row
    (composite foreign keys), loaded with ``tenantry.copy_rows`` under the tenant. A neighbour,
    ``bystander``, shares the pooled tables with 1,000 rows and stays there.

Moves
    pooled -> database -> schema -> pooled: ``tn.move_tenant("mover", plan=...)`` with plans
    ``enterprise``, ``business``, ``free``, each timed whole; each step's start is recorded
    (``on_step``), so the report shows where the time goes. ``write_block_seconds`` is the
    move's own figure (freeze to flip, from its report).

The writer
    A background thread with a ``Tenantry`` of its own (its own tenant cache and catalog
    listener, as another process of the app would have, with the default settings) inserts
    one row into ``table_01`` per transaction through ``tn.tenant("mover")`` +
    ``tn.connection()``, pausing ``--write-interval`` seconds between writes. A write refused
    with ``TenantMoving`` (the freeze, or a stale route to the old placement after the flip) is
    retried after 10 ms; other errors are counted and retried too. The writer's longest gap
    between two successful writes during a move is the write block as the app sees it,
    including the time its cache takes to learn of the flip. A second writer does the same for
    the bystander: its longest gap shows whether the move held up a tenant that stayed put.
    Both writers share the process (and its GIL) with the mover, so their gaps include waiting
    for the mover's Python work; the longest gaps of a few seconds with no move running are
    printed first, for comparison.

Checks after each move (writer paused)
    The tenant's placement is on the new tier; every loaded table has its rows, and
    ``table_01`` has its rows plus every write the writer saw succeed (none lost, none
    duplicated); the old placement's copy is gone; the same for the bystander's rows.

The last line is ``tier_move_100k total_s=<max> write_block_s=<max> writer_gap_s=<max>`` (the
worst move of the three); the goal for the write block is 1 s.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import psycopg
from psycopg import sql

from tenantry import Tenantry, TenantMoving, copy_rows
from tenantry.core.placement import Placement
from tenantry.services.provisioning import database_url

from _scratch import (
    Scratch,
    add_server_arguments,
    environment,
    load_averages,
    run_took,
    scratch_database,
    server,
    verdict,
)
from provisioning import TableSpec, app_tables, make_metadata, value

TENANT = "mover"
BYSTANDER = "bystander"
BYSTANDER_ROWS = 1_000
#: the chain of related tables that hold the rows, and each one's share of them
SHARES = (("table_01", 0.01), ("table_02", 0.09), ("table_04", 0.30), ("table_08", 0.60))
WRITTEN = "table_01"
#: (plan, tier) of each move, in order, from the pooled start
MOVES = (("enterprise", "database"), ("business", "schema"), ("free", "pooled"))
WRITE_BLOCK_GOAL = 1.0
RETRY_PAUSE = 0.010
#: seconds of writing with no move running, to show the gaps the writers have anyway
QUIET_SECONDS = 3.0


# -- loading --------------------------------------------------------------------------------


def row_counts(total: int) -> dict[str, int]:
    counts = {name: int(total * share) for name, share in SHARES}
    counts[SHARES[-1][0]] += total - sum(counts.values())  # rounding
    return counts


def load(tn: Tenantry, slug: str, specs: dict[str, TableSpec], counts: dict[str, int]) -> float:
    """Load the chain, parents first, each child row pointing at a parent row."""
    start = time.perf_counter()
    parent_ids: list[int] = []
    n = 0
    for name, _share in SHARES:
        spec = specs[name]
        columns = [c.name for c in spec.columns] + (["parent_id"] if spec.parent else [])
        rows = []
        for i in range(counts[name]):
            n += 1
            row = [value(c.kind, n) for c in spec.columns]
            if spec.parent:
                row.append(parent_ids[i % len(parent_ids)])
            rows.append(row)
        with tn.tenant(slug), tn.connection() as conn:
            copy_rows(conn, name, columns, rows)
            parent_ids = [r[0] for r in conn.execute(sql.SQL("SELECT id FROM {}").format(sql.Identifier(name)))]
    return time.perf_counter() - start


def count_rows(tn: Tenantry, slug: str, tables: Sequence[str]) -> dict[str, int]:
    with tn.tenant(slug), tn.connection() as conn:
        return {
            name: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))).fetchone()[0]  # type: ignore[index]
            for name in tables
        }


# -- the writer -----------------------------------------------------------------------------


@dataclass
class Writer:
    """Writes one row per transaction to the tenant until stopped; records every success."""

    tn: Tenantry
    slug: str
    spec: TableSpec
    interval: float
    successes: list[float] = field(default_factory=list)
    refused: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _pause: threading.Event = field(default_factory=threading.Event)
    _idle: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        columns = [c.name for c in self.spec.columns]
        insert = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(self.spec.name),
            sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        )
        n = 10_000_000
        while not self._stop.is_set():
            if self._pause.is_set():
                self._idle.set()
                time.sleep(0.005)
                continue
            self._idle.clear()
            n += 1
            try:
                with self.tn.tenant(self.slug), self.tn.connection() as conn:
                    conn.execute(insert, [value(c.kind, n) for c in self.spec.columns])
            except TenantMoving:
                self.refused += 1
                time.sleep(RETRY_PAUSE)
                continue
            except Exception as err:  # noqa: BLE001 - counted and reported, the writer goes on
                self.errors[f"{type(err).__name__}: {str(err).strip().splitlines()[0][:100]}"] += 1
                time.sleep(RETRY_PAUSE)
                continue
            self.successes.append(time.monotonic())
            if self.interval:
                time.sleep(self.interval)

    def pause(self) -> None:
        """Stop writing and wait until no write is in flight."""
        self._idle.clear()
        self._pause.set()
        if not self._idle.wait(30):
            raise RuntimeError("the writer did not pause within 30 s")

    def resume(self) -> None:
        self._pause.clear()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def wait_for_success_after(self, moment: float, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.successes and self.successes[-1] > moment:
                return True
            time.sleep(0.005)
        return False

    def longest_gap(self, since: float, until: float) -> float:
        """The longest time between successive successes from the last one before ``since``
        to the first one after ``until``."""
        return self.gap_at(since, until)[0]

    def gap_at(self, since: float, until: float) -> tuple[float, float]:
        """The longest gap (as :meth:`longest_gap`) and the moment it began."""
        times = self.successes
        first = max((i for i, t in enumerate(times) if t <= since), default=0)
        last = next((i for i, t in enumerate(times) if t > until), len(times) - 1)
        window = times[first : last + 1]
        return max(((b - a, a) for a, b in zip(window, window[1:])), default=(float("nan"), since))


# -- checks ---------------------------------------------------------------------------------


def old_copy_gone(scratch: Scratch, tn: Tenantry, tenant_id: uuid.UUID, old: Placement) -> bool:
    """Whether the placement moved away from holds nothing of the tenant any more."""
    with psycopg.connect(scratch.server_url, autocommit=True) as conn:
        if old.database is not None:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (old.database,)).fetchone() is None
    url = database_url(tn.cell_admin_url(old.cell), old.database)
    with psycopg.connect(url, autocommit=True) as conn:  # a superuser: no RLS
        if old.schema != tn.settings.pooled_schema:
            return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (old.schema,)).fetchone() is None
        return all(
            conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE tenant_id = %s").format(sql.Identifier(old.schema, name)),
                (tenant_id,),
            ).fetchone()[0] == 0  # type: ignore[index]
            for name, _share in SHARES
        )


@dataclass
class MoveResult:
    source: str
    target: str
    seconds: float
    write_block: float
    writer_gap: float
    writes: int
    refused: int
    neighbour_gap: float
    neighbour_gap_step: str
    steps: dict[str, float]
    rows: dict[str, int]


def run_move(tn: Tenantry, writer: Writer, neighbour: Writer, plan: str, source: str, target: str) -> MoveResult:
    marks: list[tuple[str, float]] = []
    refused_before, writes_before = writer.refused, len(writer.successes)
    started = time.monotonic()
    report = tn.move_tenant(TENANT, plan=plan, on_step=lambda step: marks.append((step, time.monotonic())))
    ended = time.monotonic()
    for each in (writer, neighbour):
        if not each.wait_for_success_after(ended):
            raise RuntimeError(f"the writer of {each.slug} wrote nothing within 30 s of the move to {target}")
    ends = [t for _step, t in marks[1:]] + [ended]
    steps = {step: end - t for (step, t), end in zip(marks, ends)}
    gap, began = neighbour.gap_at(started, ended)
    during = next((step for (step, t), end in zip(marks, ends) if t <= began < end), "before the first step")
    return MoveResult(
        source, target, ended - started, report.write_block_seconds, writer.longest_gap(started, ended),
        len(writer.successes) - writes_before, writer.refused - refused_before,
        gap, during, steps, dict(report.rows),
    )


def verify(
    scratch: Scratch, tn: Tenantry, writers: dict[str, Writer], tier: str, old: Placement,
    counts: dict[str, int], bystander: dict[str, int],
) -> Placement:
    """Check both tenants after a move (the writers paused); returns the mover's new placement."""
    for writer in writers.values():
        writer.pause()
    try:
        tenant = tn.get_tenant(TENANT)
        placement = tn.placement(TENANT)
        assert placement is not None and placement.isolation.value == tier, placement
        for slug, loaded in ((TENANT, counts), (BYSTANDER, bystander)):
            expected = dict(loaded)
            expected[WRITTEN] += len(writers[slug].successes)
            found = count_rows(tn, slug, list(loaded))
            assert found == expected, f"{slug} after the move to {tier}: rows {found}, expected {expected}"
        assert old_copy_gone(scratch, tn, tenant.id, old), f"the copy at {old} is still there"
        return placement
    finally:
        for writer in writers.values():
            writer.resume()


# -- the run --------------------------------------------------------------------------------


def benchmark(server_url: str, args: argparse.Namespace) -> list[MoveResult]:
    specs = {s.name: s for s in app_tables()}
    metadata = make_metadata(list(specs.values()))
    counts = row_counts(args.rows)
    results: list[MoveResult] = []
    with scratch_database(server_url) as scratch:
        tn = Tenantry(scratch.settings(), metadata=metadata, actor="bench")
        writer_tn = Tenantry(scratch.settings(), metadata=metadata, actor="bench-writer")
        writers: dict[str, Writer] = {}
        try:
            tn.init()
            with tn.admin() as admin:
                version = admin.execute("SHOW server_version").fetchone()
            print(f"server: PostgreSQL {version[0] if version else '?'} ({args.server})")
            tn.create_tenant(TENANT, plan="free")
            tn.create_tenant(BYSTANDER, plan="free")
            seconds = load(tn, TENANT, specs, counts)
            load(tn, BYSTANDER, specs, row_counts(BYSTANDER_ROWS))
            bystander = count_rows(tn, BYSTANDER, list(counts))
            assert count_rows(tn, TENANT, list(counts)) == counts
            print(
                f"loaded {args.rows:,} rows in {seconds:.1f} s with copy_rows: "
                + ", ".join(f"{name} {n:,}" for name, n in counts.items())
                + f"; bystander {sum(bystander.values()):,} rows in the same pooled tables"
            )
            writers = {
                slug: Writer(writer_tn, slug, specs[WRITTEN], args.write_interval) for slug in (TENANT, BYSTANDER)
            }
            for writer in writers.values():
                writer.start()
                if not writer.wait_for_success_after(time.monotonic()):
                    raise RuntimeError(f"the writer of {writer.slug} cannot write")
            quiet = time.monotonic()
            time.sleep(QUIET_SECONDS)  # a steady rate before the first move, and the gaps it has
            print(
                f"writers' longest gap with no move running ({QUIET_SECONDS:g} s): "
                + ", ".join(f"{w.slug} {w.longest_gap(quiet, time.monotonic()):.3f} s" for w in writers.values())
            )
            tier = "pooled"
            placement = tn.placement(TENANT)
            assert placement is not None
            for plan, target in MOVES:
                result = run_move(tn, writers[TENANT], writers[BYSTANDER], plan, tier, target)
                placement = verify(scratch, tn, writers, target, placement, counts, bystander)
                results.append(result)
                print(describe(result))
                tier = target
                time.sleep(1.0)
            print()
            for writer in writers.values():
                writer.stop()
                print(
                    f"writer of {writer.slug}: {len(writer.successes):,} rows written, every one found after each move;"
                    f" {writer.refused} writes refused (TenantMoving) and retried;"
                    f" other errors: {dict(writer.errors) or 'none'}"
                )
        finally:
            for writer in writers.values():
                writer.stop()
            writer_tn.close()
            tn.close()
    return results


def describe(r: MoveResult) -> str:
    steps = ", ".join(f"{step} {seconds:.2f}" for step, seconds in r.steps.items())
    return (
        f"{r.source} -> {r.target}: {r.seconds:.2f} s, write block {r.write_block:.3f} s (move report),"
        f" writer's longest gap {r.writer_gap:.3f} s; {r.writes} writes during the move, {r.refused} refused;"
        f" the bystander's longest gap {r.neighbour_gap:.3f} s (from {r.neighbour_gap_step})\n    steps (s): {steps}"
    )


def size_label(rows: int) -> str:
    return f"{rows // 1000}k" if rows % 1000 == 0 else str(rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_server_arguments(parser)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--write-interval", type=float, default=0.005, help="seconds between the writer's writes")
    args = parser.parse_args(argv)
    if args.rows < 100:
        parser.error("--rows must be at least 100")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = datetime.now(timezone.utc)
    print(
        f"tenantry tier moves: {args.rows:,} rows, writer every {args.write_interval * 1000:g} ms,"
        f" {environment(started)}, load average {load_averages()}"
    )
    with server(args.server, args.url) as url:
        results = benchmark(url, args)
    print(f"\n{run_took(started)}")
    block = max(r.write_block for r in results)
    gap = max(r.writer_gap for r in results)
    print(
        f"write block goal <= {WRITE_BLOCK_GOAL:g} s: move report {verdict(block, WRITE_BLOCK_GOAL)},"
        f" as the writer saw it {verdict(gap, WRITE_BLOCK_GOAL)};"
        f" the bystander's longest gap {max(r.neighbour_gap for r in results):.3f} s"
    )
    print(
        f"tier_move_{size_label(args.rows)} total_s={max(r.seconds for r in results):.2f}"
        f" write_block_s={block:.3f} writer_gap_s={gap:.3f}"
    )


if __name__ == "__main__":
    main()
