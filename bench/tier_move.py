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
    pooled -> database -> schema -> pooled: ``tn.tenants.move("mover", plan=...)`` with plans
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

Bystanders under load
    ``--clients`` (default 24) threads with a ``Tenantry`` of their own (a pool with a
    connection per client) work for tenants that stay put: half on ``--pooled-bystanders``
    pooled tenants that share the mover's tables, half on ``--schema-bystanders`` schema-tier
    tenants (whose connections share an engine with the pooled tier). Each transaction reads
    (a count of a parent's children) and writes two tables, ``table_01`` and ``table_02``, one
    row each (its own rows, so clients never wait for each other's row locks), in one order
    for even clients and the other for odd ones: the pattern that livelocked with a mover
    holding one shared table's lock while waiting for another's. Half the clients go through
    ``tn.connection()``, half through ``tn.engine()``; each pauses ``--think`` seconds between
    transactions. Every transaction's latency is recorded with its start, and every error.
    The figures: p50/p99 of the transactions started in ``QUIET_SECONDS`` with no move
    running (the baseline, measured in the same run), and of those started during each move;
    the goal is p99 during a move <= 2x the baseline, with no errors.

The mover's own block, as its clients see it
    The writer of the mover counts refusals (``TenantMoving``): the longest stretch from a
    refused write to the next success is the block its clients saw, printed beside the
    block the move reports (freeze to flip) and the writer's longest gap between successes.

Checks after each move (writer paused)
    The tenant's placement is on the new tier; every loaded table has its rows, and
    ``table_01`` has its rows plus every write the writer saw succeed (none lost, none
    duplicated); the old placement's copy is gone; the same for the bystander's rows.

The last line is ``tier_move_100k total_s=<max> write_block_s=<max> writer_gap_s=<max>
refused_block_s=<max> bystander_errors=<n> bystander_p99_ratio=<max>`` (the worst move of the
three; the ratio is p99 during the move over p99 without one); the goals: a write block of
at most 1 s, a ratio of at most 2, no errors.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
import sqlalchemy as sa
from _scratch import (
    Scratch,
    add_server_arguments,
    environment,
    load_averages,
    percentile,
    run_took,
    scratch_database,
    server,
    verdict,
)
from provisioning import TableSpec, app_tables, make_metadata, value
from psycopg import sql

from tenantry import TenantMoving, Tenantry, copy_rows
from tenantry.core.placement import Placement
from tenantry.services.provisioning import database_url

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
#: seconds of writing with no move running: the writers' gaps and the bystanders' baseline
QUIET_SECONDS = 6.0
BYSTANDER_P99_GOAL = 2.0
#: rows each bystander tenant under load starts with
CLIENT_TENANT_ROWS = 400


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
    #: (first refusal, next success) of every stretch of refusals
    refusals: list[tuple[float, float]] = field(default_factory=list)
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
        refused_since: float | None = None
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
                refused_since = refused_since if refused_since is not None else time.monotonic()
                time.sleep(RETRY_PAUSE)
                continue
            except Exception as err:  # noqa: BLE001 - counted and reported, the writer goes on
                self.errors[f"{type(err).__name__}: {str(err).strip().splitlines()[0][:100]}"] += 1
                time.sleep(RETRY_PAUSE)
                continue
            self.successes.append(time.monotonic())
            if refused_since is not None:
                self.refusals.append((refused_since, self.successes[-1]))
                refused_since = None
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

    def refused_block(self, since: float, until: float) -> float:
        """The longest stretch from a refused write to the next success, of those that began
        between ``since`` and ``until`` (0 when nothing was refused)."""
        return max((b - a for a, b in self.refusals if since <= a <= until), default=0.0)

    def gap_at(self, since: float, until: float) -> tuple[float, float]:
        """The longest gap (as :meth:`longest_gap`) and the moment it began."""
        times = self.successes
        first = max((i for i, t in enumerate(times) if t <= since), default=0)
        last = next((i for i, t in enumerate(times) if t > until), len(times) - 1)
        window = times[first : last + 1]
        return max(((b - a, a) for a, b in zip(window, window[1:])), default=(float("nan"), since))


# -- bystanders under load ------------------------------------------------------------------


@dataclass
class Client:
    """One bystander client: a tenant, its two rows, the order it writes them in, its API."""

    slug: str
    rows: tuple[int, int]
    reverse: bool
    via_engine: bool


@dataclass
class Bystanders:
    """``clients`` threads, each with its own connection, working for tenants that stay put."""

    tn: Tenantry
    clients: list[Client]
    think: float
    #: (start, seconds, tier) of every transaction that succeeded
    done: list[tuple[float, float, str]] = field(default_factory=list)
    #: (start, error) of every transaction that failed
    failed: list[tuple[float, str]] = field(default_factory=list)
    tiers: dict[str, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for n, client in enumerate(self.clients):
            thread = threading.Thread(target=self._run, args=(client,), name=f"client-{n}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _statements(self, client: Client) -> list[tuple[str, dict[str, int]]]:
        read = ("SELECT count(*) FROM table_02 WHERE parent_id = :parent", {"parent": client.rows[0]})
        writes = [
            ("UPDATE table_01 SET int_2 = int_2 + 1 WHERE id = :id", {"id": client.rows[0]}),
            ("UPDATE table_02 SET big_3 = big_3 + 1 WHERE id = :id", {"id": client.rows[1]}),
        ]
        return [read, *(reversed(writes) if client.reverse else writes)]

    def _run(self, client: Client) -> None:
        statements = self._statements(client)
        tier = self.tiers[client.slug]
        engine = None
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with self.tn.tenant(client.slug):
                    if client.via_engine:
                        engine = engine or self.tn.engine()
                        with engine.begin() as conn:
                            for text, params in statements:
                                conn.execute(sa.text(text), params)
                    else:
                        with self.tn.connection() as raw:
                            for text, params in statements:
                                raw.execute(text.replace(":parent", "%(parent)s").replace(":id", "%(id)s"), params)
            except Exception as err:  # noqa: BLE001 - every error is a bystander's error, reported
                with self._lock:
                    self.failed.append((started, f"{type(err).__name__}: {str(err).strip().splitlines()[0][:100]}"))
                time.sleep(RETRY_PAUSE)
                continue
            with self._lock:
                self.done.append((started, time.monotonic() - started, tier))
            time.sleep(self.think * random.uniform(0.5, 1.5))

    def window(self, since: float, until: float) -> Window:
        with self._lock:
            seconds = [int(d * 1e9) for t, d, _tier in self.done if since <= t < until]
            errors = Counter(e for t, e in self.failed if since <= t < until)
        return Window(until - since, seconds, errors)


@dataclass
class Window:
    """The bystanders' transactions started in a stretch of time."""

    seconds: float
    latencies_ns: list[int]
    errors: Counter[str]

    @property
    def p50(self) -> float:
        return percentile(self.latencies_ns, 0.50) if self.latencies_ns else float("nan")

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ns, 0.99) if self.latencies_ns else float("nan")

    def describe(self) -> str:
        rate = len(self.latencies_ns) / self.seconds if self.seconds else 0.0
        errors = sum(self.errors.values())
        return (
            f"{len(self.latencies_ns):,} transactions ({rate:,.0f}/s), p50 {self.p50:.1f} ms, p99 {self.p99:.1f} ms,"
            f" {errors} errors" + (f" {dict(self.errors.most_common(3))}" if errors else "")
        )


def make_clients(tn: Tenantry, slugs: Sequence[str], count: int) -> list[Client]:
    """``count`` clients spread over ``slugs``, each with a row of ``table_01`` and one of
    ``table_02`` of its own."""
    rows: dict[str, tuple[list[int], list[int]]] = {}
    for slug in slugs:
        with tn.tenant(slug), tn.connection() as conn:
            ones = [r[0] for r in conn.execute("SELECT id FROM table_01 ORDER BY id")]
            twos = [r[0] for r in conn.execute("SELECT id FROM table_02 ORDER BY id")]
            rows[slug] = (ones, twos)
    clients = []
    for n in range(count):
        slug = slugs[n % len(slugs)]
        k = n // len(slugs)
        ones, twos = rows[slug]
        clients.append(
            Client(slug, (ones[k % len(ones)], twos[k % len(twos)]), reverse=n % 2 == 1, via_engine=n % 4 >= 2)
        )
    return clients


# -- checks ---------------------------------------------------------------------------------


def old_copy_gone(scratch: Scratch, tn: Tenantry, tenant_id: uuid.UUID, old: Placement) -> bool:
    """Whether the placement moved away from holds nothing of the tenant any more."""
    with psycopg.connect(scratch.server_url, autocommit=True) as conn:
        if old.database is not None:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (old.database,)).fetchone() is None
    url = database_url(tn.cells.admin_url(old.cell), old.database)
    with psycopg.connect(url, autocommit=True) as conn:  # a superuser: no RLS
        if old.schema != tn.settings.pooled_schema:
            return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (old.schema,)).fetchone() is None
        return all(
            conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE tenant_id = %s").format(sql.Identifier(old.schema, name)),
                (tenant_id,),
            ).fetchone()[0]
            == 0  # type: ignore[index]
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
    refused_block: float = 0.0
    during: Window | None = None
    baseline: Window | None = None
    writer_gap_step: str = ""
    by_step: dict[str, Window] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        if self.during is None or self.baseline is None or not self.baseline.p99:
            return float("nan")
        return self.during.p99 / self.baseline.p99


def run_move(
    tn: Tenantry,
    writer: Writer,
    neighbour: Writer,
    plan: str,
    source: str,
    target: str,
    clients: Bystanders,
    baseline: Window,
) -> MoveResult:
    marks: list[tuple[str, float]] = []
    refused_before, writes_before = writer.refused, len(writer.successes)
    started = time.monotonic()
    report = tn.tenants.move(TENANT, plan=plan, on_step=lambda step: marks.append((step, time.monotonic())))
    ended = time.monotonic()
    for each in (writer, neighbour):
        if not each.wait_for_success_after(ended):
            raise RuntimeError(f"the writer of {each.slug} wrote nothing within 30 s of the move to {target}")
    ends = [t for _step, t in marks[1:]] + [ended]
    steps = {step: end - t for (step, t), end in zip(marks, ends)}

    def step_at(moment: float) -> str:
        return next((step for (step, t), end in zip(marks, ends) if t <= moment < end), "before the first step")

    gap, began = neighbour.gap_at(started, ended)
    own_gap, own_began = writer.gap_at(started, ended)
    return MoveResult(
        source,
        target,
        ended - started,
        report.write_block_seconds,
        own_gap,
        len(writer.successes) - writes_before,
        writer.refused - refused_before,
        gap,
        step_at(began),
        steps,
        dict(report.rows),
        writer.refused_block(started, ended),
        clients.window(started, ended),
        baseline,
        step_at(own_began),
        {step: clients.window(t, end) for (step, t), end in zip(marks, ends) if end - t >= 0.5},
    )


def verify(
    scratch: Scratch,
    tn: Tenantry,
    writers: dict[str, Writer],
    tier: str,
    old: Placement,
    counts: dict[str, int],
    bystander: dict[str, int],
) -> Placement:
    """Check both tenants after a move (the writers paused); returns the mover's new placement."""
    for writer in writers.values():
        writer.pause()
    try:
        tenant = tn.tenants.get(TENANT)
        placement = tn.tenants.placement(TENANT)
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
        # the clients' app process: a connection per client
        clients_tn = Tenantry(
            scratch.settings(pool_max_size=args.clients + 4), metadata=metadata, actor="bench-clients"
        )
        writers: dict[str, Writer] = {}
        clients: Bystanders | None = None
        try:
            tn.schema.init()
            with tn.admin() as admin:
                version = admin.execute("SHOW server_version").fetchone()
            print(f"server: PostgreSQL {version[0] if version else '?'} ({args.server})")
            tn.tenants.create(TENANT, plan="free")
            tn.tenants.create(BYSTANDER, plan="free")
            seconds = load(tn, TENANT, specs, counts)
            load(tn, BYSTANDER, specs, row_counts(BYSTANDER_ROWS))
            bystander = count_rows(tn, BYSTANDER, list(counts))
            assert count_rows(tn, TENANT, list(counts)) == counts
            print(
                f"loaded {args.rows:,} rows in {seconds:.1f} s with copy_rows: "
                + ", ".join(f"{name} {n:,}" for name, n in counts.items())
                + f"; bystander {sum(bystander.values()):,} rows in the same pooled tables"
            )
            tiers = {f"pooled-{i + 1}": "pooled" for i in range(args.pooled_bystanders)}
            tiers |= {f"schema-{i + 1}": "schema" for i in range(args.schema_bystanders)}
            for slug, tier_name in tiers.items():
                tn.tenants.create(slug, plan="free" if tier_name == "pooled" else "business")
                load(tn, slug, specs, row_counts(CLIENT_TENANT_ROWS))
            by_tier = {t: [slug for slug, each in tiers.items() if each == t] for t in ("pooled", "schema")}
            chosen = make_clients(clients_tn, by_tier["pooled"], (args.clients + 1) // 2)
            chosen += make_clients(clients_tn, by_tier["schema"], args.clients // 2)
            clients = Bystanders(clients_tn, chosen, args.think, tiers=tiers)
            clients.start()
            print(
                f"bystanders under load: {args.clients} clients ({len(chosen) - args.clients // 2} on"
                f" {args.pooled_bystanders} pooled tenants, {args.clients // 2} on {args.schema_bystanders}"
                f" schema-tier tenants), {CLIENT_TENANT_ROWS} rows each, think time {args.think * 1000:g} ms"
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
            baseline = clients.window(quiet, time.monotonic())
            print(
                f"writers' longest gap with no move running ({QUIET_SECONDS:g} s): "
                + ", ".join(f"{w.slug} {w.longest_gap(quiet, time.monotonic()):.3f} s" for w in writers.values())
            )
            print(f"bystanders with no move running: {baseline.describe()}")
            tier = "pooled"
            placement = tn.tenants.placement(TENANT)
            assert placement is not None
            for plan, target in MOVES:
                result = run_move(tn, writers[TENANT], writers[BYSTANDER], plan, tier, target, clients, baseline)
                placement = verify(scratch, tn, writers, target, placement, counts, bystander)
                results.append(result)
                print(describe(result))
                tier = target
                time.sleep(1.0)
            print()
            clients.stop()
            print(
                f"bystanders: {len(clients.done):,} transactions in all,"
                f" {len(clients.failed)} errors {dict(Counter(e for _t, e in clients.failed).most_common(3)) or ''}"
            )
            for writer in writers.values():
                writer.stop()
                print(
                    f"writer of {writer.slug}: {len(writer.successes):,} rows written, every one found after each move;"
                    f" {writer.refused} writes refused (TenantMoving) and retried;"
                    f" other errors: {dict(writer.errors) or 'none'}"
                )
        finally:
            if clients is not None:
                clients.stop()
            for writer in writers.values():
                writer.stop()
            clients_tn.close()
            writer_tn.close()
            tn.close()
    return results


def describe(r: MoveResult) -> str:
    steps = ", ".join(f"{step} {seconds:.2f}" for step, seconds in r.steps.items())
    return (
        f"{r.source} -> {r.target}: {r.seconds:.2f} s, write block {r.write_block:.3f} s (move report),"
        f" writer's longest gap {r.writer_gap:.3f} s (from {r.writer_gap_step});"
        f" {r.writes} writes during the move, {r.refused} refused;"
        f" the bystander's longest gap {r.neighbour_gap:.3f} s (from {r.neighbour_gap_step})\n    steps (s): {steps}"
        f"\n    the mover's clients were refused for {r.refused_block:.3f} s at most (from a refusal to the next success)"
        f"\n    bystanders during the move: {r.during.describe() if r.during else '-'}; p99 {r.ratio:.2f}x without a move"
        + "".join(
            f"\n      during {step}: p99 {w.p99:.1f} ms ({w.p99 / r.baseline.p99:.2f}x), {len(w.latencies_ns):,} transactions"
            for step, w in r.by_step.items()
            if r.baseline is not None and r.baseline.p99 and w.latencies_ns
        )
    )


def size_label(rows: int) -> str:
    return f"{rows // 1000}k" if rows % 1000 == 0 else str(rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_server_arguments(parser)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--write-interval", type=float, default=0.005, help="seconds between the writer's writes")
    parser.add_argument("--clients", type=int, default=24, help="bystander clients under load (at least 20)")
    parser.add_argument("--pooled-bystanders", type=int, default=4, help="pooled tenants the clients work for")
    parser.add_argument("--schema-bystanders", type=int, default=2, help="schema-tier tenants the clients work for")
    parser.add_argument("--think", type=float, default=0.02, help="seconds a client pauses between transactions")
    args = parser.parse_args(argv)
    if args.rows < 100:
        parser.error("--rows must be at least 100")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = datetime.now(UTC)
    print(
        f"tenantry tier moves: {args.rows:,} rows, writer every {args.write_interval * 1000:g} ms,"
        f" {environment(started)}, load average {load_averages()}"
    )
    with server(args.server, args.url) as url:
        results = benchmark(url, args)
    print(f"\n{run_took(started)}")
    block = max(r.write_block for r in results)
    gap = max(r.writer_gap for r in results)
    refused = max(r.refused_block for r in results)
    ratio = max(r.ratio for r in results)
    errors = sum(sum(r.during.errors.values()) for r in results if r.during is not None)
    print(
        f"write block goal <= {WRITE_BLOCK_GOAL:g} s: move report {verdict(block, WRITE_BLOCK_GOAL)},"
        f" as the writer saw it {verdict(gap, WRITE_BLOCK_GOAL)}, refused {verdict(refused, WRITE_BLOCK_GOAL)};"
        f" the bystander's longest gap {max(r.neighbour_gap for r in results):.3f} s"
    )
    print(
        f"bystander goal p99 during a move <= {BYSTANDER_P99_GOAL:g}x without, no errors:"
        f" {verdict(ratio, BYSTANDER_P99_GOAL)} ({ratio:.2f}x), {errors} errors during the moves"
    )
    print(
        f"tier_move_{size_label(args.rows)} total_s={max(r.seconds for r in results):.2f}"
        f" write_block_s={block:.3f} writer_gap_s={gap:.3f} refused_block_s={refused:.3f}"
        f" bystander_errors={errors} bystander_p99_ratio={ratio:.2f}"
    )


if __name__ == "__main__":
    main()
