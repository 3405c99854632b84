"""Moving a tenant between tiers and cells: capture, copy, catch up, freeze, verify, flip.

A move is a durable job (``tenantry.jobs``, kind ``move``) whose steps are recorded as they
finish (:mod:`tenantry.services.steps`), so a move interrupted at any step is finished by
running it again (or undone with :func:`abort` before the flip):

1. ``build``: the target placement, built like a new tenant's (schema or database, tables at
   the current head, RLS, grants).
2. ``capture``: triggers on the source log the keys of the rows the tenant writes from now on
   (other tenants of shared tables are not logged). The freeze's triggers go in with them,
   refusing nothing yet.
3. ``bulk_copy``: every row, from one consistent snapshot of the source. Reads and writes go
   on meanwhile.
4. ``catch_up``: the rows written since are copied again, round after round, while the tenant
   keeps writing, until a round finds little left. A last round seals the copy: the target
   then equals the source as of that round's snapshot, and their per-table checksums (row
   count and a sum of row hashes) must agree.
5. ``freeze``: first, while the tenant writes on, more rounds copy the rows written since
   the seal and compare those rows' checksums, until a round finds only a few. Then the
   tenant's writes to the source are refused, every table at once: one short transaction
   records the freeze and waits for the tenant's transactions in flight
   (:func:`tenant_copy.freeze_writes`); other tenants of shared tables write on. From here
   the source no longer changes.
6. ``delta``: the rows changed since the last round (every one is logged) are copied, and
   their checksums must agree on both sides.
7. ``verify``: the row counts of the tables changed since the seal must be equal on both
   sides (both sides are read at once; the others are as the seal counted them).
8. ``flip``: one catalog transaction makes the target placement active and the tenant's plan
   the target plan; every process learns it within a second (NOTIFY). Writes resume there.
9. ``fence``: the source's database refuses bindings made before the flip (they name the
   source), in every process, from their next statement on (:class:`TenantMoved`).
10. ``cleanup``: once every process's cache has moved on, the source copy is removed (from
    shared tables: in batches of rows, a short transaction each).

The write block lasts from the freeze's transaction to ``flip``: the last few changes and the
counts of the tables they touched, on connections opened before it, so it stays short
however big the tenant. Its length is recorded in the job and the audit log. The mover holds
the freeze's lock from the freeze to the cleanup; a move resumed before the flip takes it
again.

The tables are those the source placement holds (:mod:`tenantry.services.placement_tables`),
not those of the mover's metadata. Other tenants of shared tables write on throughout: move
triggers are created and dropped one table per short transaction, each waiting for the
table's lock only a moment before it gives way and tries again, so the mover never holds one
table while it waits for another (app transactions that lock tables in another order would
otherwise wait for it, and it for them). A step that fails removes the triggers it put in.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from tenantry.core.model import Isolation, Plan, Status, Tenant
from tenantry.core.placement import Placement, choose_cell, plan_steps
from tenantry.db import tenant_copy
from tenantry.db.connect import admin_connection
from tenantry.errors import Conflict, InvalidInput, IsolationError, TablesDiffer
from tenantry.services import audit, placement_tables, plugin_hooks
from tenantry.services.cells import cell_loads
from tenantry.services.events import EventKind, notify_tenant
from tenantry.services.fences import fence_placement
from tenantry.services.provisioning import (
    build_step,
    database_url,
    drop_copy,
    insert_placement,
    local_outdated,
    read_placement,
    tenant_lock,
)
from tenantry.services.steps import Step, StepLog
from tenantry.services.tenants import get_plan, get_tenant

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = ["MoveReport", "abort", "move"]

STEPS = ("build", "capture", "bulk_copy", "catch_up", "freeze", "delta", "verify", "flip", "fence", "cleanup")
#: how long after the flip the source copy is kept (frozen) for processes to learn of it
PROPAGATION_SECONDS = 2.0
#: catching up stops when a round finds at most this many changed rows (the rest wait for
#: the freeze) or after this many rounds (a tenant writing faster than the copy keeps up)
CATCH_UP_ENOUGH = 200
CATCH_UP_ROUNDS = 8
#: after the copy is sealed, rounds (each checked) run until one finds at most this many
#: changed rows, or this many times: what they leave, the delta copies in the write block
SETTLE_ENOUGH = 20
SETTLE_ROUNDS = 3


@dataclass(frozen=True, slots=True)
class MoveReport:
    """What a move did."""

    slug: str
    source: dict[str, Any]
    target: dict[str, Any]
    rows: dict[str, int]
    write_block_seconds: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "from": self.source,
            "to": self.target,
            "rows": self.rows,
            "write_block_seconds": round(self.write_block_seconds, 3),
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MoveReport:
        """The report :meth:`to_dict` gave (as a queued ``moved`` hook call carries it)."""
        return cls(
            slug=data["slug"],
            source=data["from"],
            target=data["to"],
            rows=dict(data["rows"]),
            write_block_seconds=float(data["write_block_seconds"]),
            seconds=float(data["seconds"]),
        )


def _placement_from(data: dict[str, Any]) -> Placement:
    return Placement(
        uuid.UUID(data["tenant_id"]),
        data["cell"],
        Isolation(data["isolation"]),
        data["database"],
        data["schema"],
        data["status"],
    )


def _placement_data(p: Placement) -> dict[str, Any]:
    return {
        "tenant_id": str(p.tenant_id),
        "cell": p.cell,
        "isolation": p.isolation.value,
        "database": p.database,
        "schema": p.schema,
        "status": p.status,
    }


def _running_job(conn: psycopg.Connection[Any], tenant_id: uuid.UUID) -> StepLog | None:
    row = conn.execute(
        "SELECT id, steps_done, payload FROM tenantry.jobs"
        " WHERE tenant_id = %s AND kind = 'move' AND status = 'running' FOR UPDATE",
        (tenant_id,),
    ).fetchone()
    return None if row is None else StepLog("jobs", row[0], list(row[1]), dict(row[2]), crash_prefix="move:")


def _start(tn: ControlPlane, conn: psycopg.Connection[Any], tenant: Tenant, plan: Plan, cell: str | None) -> StepLog:
    """Find the tenant's running move (it must go where this call asks) or begin one."""
    with conn.transaction():
        job = _running_job(conn, tenant.id)
        if job is not None:
            if job.payload["plan"] != plan.name or (cell is not None and job.payload["target"]["cell"] != cell):
                raise Conflict(
                    f"tenant {tenant.slug!r} is being moved to plan {job.payload['plan']!r}"
                    f" (cell {job.payload['target']['cell']!r}); run that move again to finish it, or abort it"
                )
            conn.execute("UPDATE tenantry.jobs SET attempts = attempts + 1 WHERE id = %s", (job.id,))
            audit.record(
                conn,
                actor=tn.actor,
                action="tenant.move.resume",
                target_type="tenant",
                target=tenant.slug,
                after={"steps_done": job.done},
            )
            return job
        if tenant.status is not Status.ACTIVE:
            raise InvalidInput(f"tenant {tenant.slug!r} is {tenant.status.value}; only active tenants move")
        source = read_placement(conn, tenant.id)
        if source is None:
            raise InvalidInput(f"tenant {tenant.slug!r} has no active placement to move from")
        target = Placement.plan_for(
            tenant.id,
            plan.isolation,
            cell=choose_cell(plan, cell_loads(conn), requested=cell),
            pooled_schema=tn.settings.pooled_schema,
        )
        _require_current_tables(tn, tenant, source)
        if target.route == source.route:
            raise InvalidInput(
                f"tenant {tenant.slug!r} already lives there ({source.isolation.value} on cell {source.cell!r})"
            )
        # the target is built from this process's tables (the shared ones exist already)
        if target.isolation is Isolation.POOLED:
            will_have, where = placement_tables.held(tn, target), "at the target"
        else:
            will_have, where = tenant_copy.specs(tn.app_metadata()), "in this process's app tables"
        problems = tenant_copy.differences(placement_tables.held(tn, source), will_have, where)
        _refuse_differences(tenant, problems, started=False)
        insert_placement(conn, target)
        payload = {
            "plan": plan.name,
            "from_plan": tenant.plan,
            "source": _placement_data(source),
            "target": _placement_data(target),
        }
        row = conn.execute(
            "INSERT INTO tenantry.jobs (kind, tenant_id, payload) VALUES ('move', %s, %s) RETURNING id",
            (tenant.id, Jsonb(payload)),
        ).fetchone()
        assert row is not None
        conn.execute("UPDATE tenantry.tenants SET status = 'moving', updated_at = now() WHERE id = %s", (tenant.id,))
        notify_tenant(conn, tenant.id)
        audit.record(
            conn, actor=tn.actor, action="tenant.move.start", target_type="tenant", target=tenant.slug, after=payload
        )
        return StepLog("jobs", row[0], [], payload, crash_prefix="move:")


def _require_current_tables(tn: ControlPlane, tenant: Tenant, source: Placement) -> None:
    """The target is built at the migrations' head: the source must be there too."""
    from tenantry.services import app_migrations  # alembic loads only when needed

    head = app_migrations.head_revision(tn)
    if head is None:
        return
    at = app_migrations.recorded_revision(tn, source)
    if at != head:
        raise InvalidInput(
            f"tenant {tenant.slug!r} is at app revision {at or 'untracked'}, not {head}:"
            " run `tenantry migrate` before moving it"
        )


def _copy_changes(
    tenant: Tenant,
    specs: list[tenant_copy.TableSpec],
    src: psycopg.Connection[Any],
    dst: psycopg.Connection[Any],
    target: Placement,
    tenant_id: str,
    when: str,
) -> tenant_copy.Changes:
    """One round of :func:`tenant_copy.apply_changes`, then the rows it copied compared on
    both sides (the other rows are as the last round, or the sealed copy, left them)."""
    changes = tenant_copy.apply_changes(src, dst, specs, tenant_id)
    changed = [spec for spec in specs if spec.name in changes.keys]
    for spec in changed:  # (the others were synced when the copy was sealed)
        tenant_copy.sync_sequences(dst, target.schema, spec, shared=target.isolation is Isolation.POOLED)

    def changed_rows(conn: psycopg.Connection[Any], spec: tenant_copy.TableSpec) -> tuple[int, str]:
        on_source, on_target = changes.keys[spec.name]
        return tenant_copy.checksum(conn, spec, on_source if conn is src else on_target)

    _compare(tenant, changed, src, dst, when, changed_rows)
    return changes


def _compare(
    tenant: Tenant,
    specs: list[tenant_copy.TableSpec],
    src: psycopg.Connection[Any],
    dst: psycopg.Connection[Any],
    when: str,
    measure: Callable[[psycopg.Connection[Any], tenant_copy.TableSpec], tuple[int, str]],
) -> dict[str, tuple[int, str]]:
    """``measure`` every table on both sides at once; raise unless they agree. Returns the
    source's figures by table."""
    with ThreadPoolExecutor(1) as other:
        there = other.submit(lambda: [measure(dst, spec) for spec in specs])
        here = [measure(src, spec) for spec in specs]
        theirs = there.result()
    for spec, ours, their in zip(specs, here, theirs):
        if ours != their:
            raise IsolationError(
                f"move of {tenant.slug!r}: table {spec.name} differs {when}"
                f" ({ours[0]} rows at the source, {their[0]} at the target); abort the move"
                f" (`tenantry tenants move {tenant.slug} --abort`) and start it again"
            )
    return {spec.name: ours for spec, ours in zip(specs, here)}


def _count_both(
    tenant: Tenant, specs: list[tenant_copy.TableSpec], src: psycopg.Connection[Any], dst: psycopg.Connection[Any]
) -> dict[str, int]:
    """Every table's count in one query a side, both sides at once; raise unless they agree."""
    with ThreadPoolExecutor(1) as other:
        there = other.submit(tenant_copy.counts, dst, specs)
        here = tenant_copy.counts(src, specs)
        theirs = there.result()
    for spec, ours, their in zip(specs, here, theirs):
        if ours != their:
            raise IsolationError(
                f"move of {tenant.slug!r}: table {spec.name} differs at the cutover ({ours} rows at the"
                f" source, {their} at the target); abort the move (`tenantry tenants move {tenant.slug}"
                " --abort`) and start it again"
            )
    return {spec.name: n for spec, n in zip(specs, here)}


class _Sides:
    """Admin connections to the source and target placements, each in a transaction acting
    as the owner with the tenant bound. :meth:`connect` opens them ahead of time (the write
    block then waits for no connection)."""

    def __init__(self, tn: ControlPlane, tenant_id: uuid.UUID, source: Placement, target: Placement) -> None:
        self._tn = tn
        self._tenant_id = tenant_id
        self._places = (source, target)
        self._stack = ExitStack()
        self._conns: list[psycopg.Connection[Any]] = []

    def connect(self) -> _Sides:
        for place in self._places[len(self._conns) :]:
            url = database_url(self._tn.cell_admin_url(place.cell), place.database)
            conn = self._stack.enter_context(admin_connection(url))
            if not self._conns:  # the source: one snapshot for every table
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            self._conns.append(conn)
        return self

    def __enter__(self) -> tuple[psycopg.Connection[Any], psycopg.Connection[Any]]:
        self.connect()
        for conn, place in zip(self._conns, self._places):
            self._stack.enter_context(conn.transaction())
            signed = self._tn.binder().signed(self._tenant_id, place.schema)
            tenant_copy.act_as_tenant(conn, owner=self._tn.settings.owner_role, signed=signed)
        return self._conns[0], self._conns[1]

    def __exit__(self, *exc: object) -> None:
        self._stack.__exit__(*exc)  # type: ignore[arg-type]

    def close(self) -> None:
        self._stack.close()


def move(
    tn: ControlPlane,
    key: str | uuid.UUID,
    *,
    plan: str | None = None,
    cell: str | None = None,
    on_step: Callable[[str], None] | None = None,
) -> MoveReport:
    """Move a tenant to ``plan``'s tier (and ``cell``), or resume its interrupted move.

    The rows moved are those of every table the source placement holds (its registry of app
    tables, with the columns the system catalogs give), whatever metadata this process has
    loaded; a table or column the target would not have is refused (:class:`TablesDiffer`)
    before anything changes. ``on_step(step)`` is called as each step starts (for progress
    displays).
    """
    started = time.monotonic()
    with tn.admin() as conn:
        tenant = get_tenant(conn, key)
        chosen = get_plan(conn, plan or tenant.plan)
    with (
        tenant_lock(tn, tenant.id, f"tenant {tenant.slug!r} is being moved by another process; try again shortly"),
        ExitStack() as held,  # the freeze's lock, from the freeze to the cleanup
    ):
        report = _move(tn, tenant, chosen, cell, on_step, started, held)
    tn.after_change(tenant.id)  # the flip told this process's caches; the hooks run now
    return report


@contextmanager
def _autocommit_on(tn: ControlPlane, place: Placement) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit admin connection to ``place``'s database (steps that take one table's
    lock at a time open their own transactions)."""
    url = database_url(tn.cell_admin_url(place.cell), place.database)
    with admin_connection(url, autocommit=True) as conn:
        yield conn


def _refuse_differences(tenant: Tenant, problems: list[str], *, started: bool) -> None:
    if not problems:
        return
    then = (
        f"abort the move (`tenantry tenants move {tenant.slug} --abort`), {placement_tables.ADVICE}, and move again"
        if started
        else f"nothing was changed; {placement_tables.ADVICE}"
    )
    raise TablesDiffer(
        f"tenant {tenant.slug!r} cannot move without losing data: " + "; ".join(problems) + f"; {then}", problems
    )


def _move(
    tn: ControlPlane,
    tenant: Tenant,
    chosen: Plan,
    cell: str | None,
    on_step: Callable[[str], None] | None,
    started: float,
    held: ExitStack,
) -> MoveReport:
    with tn.admin() as conn:
        tenant = get_tenant(conn, tenant.id)  # as it is now we hold the lock
        job = _start(tn, conn, tenant, chosen, cell)
    job.on_step = on_step
    run = _Move(tn, tenant, chosen, job, held, started)
    job.run(tn, run.steps())
    return _report(tenant, job, run.rows, started)


class _Move:
    """The steps of one move (see the module's docstring), run by its :class:`StepLog`: what a
    step finds that a later one needs, a rerun reads from the job's payload."""

    def __init__(
        self, tn: ControlPlane, tenant: Tenant, chosen: Plan, job: StepLog, held: ExitStack, started: float
    ) -> None:
        self.tn, self.tenant, self.chosen, self.job, self.held = tn, tenant, chosen, job, held
        self.started = started
        self.source = _placement_from(job.payload["source"])
        self.target = _placement_from(job.payload["target"])
        self.rows: dict[str, int] = dict(job.payload.get("rows", {}))
        self.tid = str(tenant.id)
        self.owner = tn.settings.owner_role
        #: the tables changed since the copy was sealed (None: unknown, every table is recounted)
        self.touched: set[str] | None = None
        self.cutover = _Sides(tn, tenant.id, self.source, self.target)
        #: the target is shared tables (other tenants draw from their sequences meanwhile)
        self.shared = self.target.isolation is Isolation.POOLED
        self._specs: list[tenant_copy.TableSpec] | None = None
        if "freeze" in job.done and "flip" not in job.done:
            # a resumed move: the freeze's lock goes back on (its record outlived the mover)
            # before anything reads the frozen source
            tenant_copy.freeze_writes(held.enter_context(_autocommit_on(tn, self.source)), self.tid, owner=self.owner)

    @property
    def specs(self) -> list[tenant_copy.TableSpec]:
        """Every table and column the source holds, checked (once the target is built, on
        first use) against what the target holds."""
        if self._specs is None:
            specs = placement_tables.held(self.tn, self.source)
            problems = tenant_copy.differences(specs, placement_tables.held(self.tn, self.target), "at the target")
            _refuse_differences(self.tenant, problems, started=True)
            self._specs = specs
        return self._specs

    def steps(self) -> list[Step]:
        return [
            ("build", self.build),
            ("capture", self.capture),
            ("bulk_copy", self.bulk_copy),
            ("catch_up", self.catch_up),
            ("freeze", self.freeze),
            ("delta", self.cutover_checks),
            ("verify", self.cutover_checks),
            ("flip", self.flip),
            ("fence", self.fence),
            ("cleanup", self.cleanup),
        ]

    def sides(self) -> _Sides:
        return _Sides(self.tn, self.tenant.id, self.source, self.target)

    def build(self) -> None:
        for step in plan_steps(self.target.isolation)[:-1]:
            build_step(self.tn, step, self.target)

    def capture(self) -> None:
        # a database built by an older tenantry (before change capture, or the atomic freeze);
        # only then: installing takes locks that every transaction of the tenant waits for
        if local_outdated(self.tn, self.source):
            build_step(self.tn, "install_local", self.source)
        with _autocommit_on(self.tn, self.source) as conn:
            tenant_copy.capture_changes(conn, self.source.schema, self.specs, self.tid, owner=self.owner)

    def bulk_copy(self) -> dict[str, Any]:
        with self.sides() as (src, dst):
            for spec in self.specs:
                self.rows[spec.name] = tenant_copy.bulk_copy(src, dst, spec)
                tenant_copy.sync_sequences(dst, self.target.schema, spec, shared=self.shared)
        return {"rows": self.rows}

    def catch_up(self) -> dict[str, Any]:
        caught = 0
        for _ in range(CATCH_UP_ROUNDS):
            with self.sides() as (src, dst):
                found = tenant_copy.apply_changes(src, dst, self.specs, self.tid).found
            caught += found
            if found <= CATCH_UP_ENOUGH:
                break
        # the last round seals the copy: the target now equals the source as of the round's
        # snapshot, so their full checksums must agree (read here, while the tenant writes on)
        with self.sides() as (src, dst):
            caught += tenant_copy.apply_changes(src, dst, self.specs, self.tid).found
            for spec in self.specs:  # before the freeze: the delta then syncs only what it changes
                tenant_copy.sync_sequences(dst, self.target.schema, spec, shared=self.shared)
            sealed = _compare(
                self.tenant,
                self.specs,
                src,
                dst,
                "after catching up",
                lambda conn, spec: tenant_copy.checksum(conn, spec),
            )
        # the tables' counts as sealed: the cutover recounts only the tables changed since
        # (known when this process seals and freezes; a resumed freeze recounts them all)
        self.touched = set()
        return {"caught_up": caught, "counted": {name: n for name, (n, _sum) in sealed.items()}}

    def freeze(self) -> dict[str, Any]:
        # the rows written while the copy was sealed (its checksums take a while) are copied
        # and checked now, so that the delta, in the write block, has only the last few
        for _ in range(SETTLE_ROUNDS):
            with self.sides() as (src, dst):
                changes = _copy_changes(
                    self.tenant, self.specs, src, dst, self.target, self.tid, "in the changes before the freeze"
                )
            if self.touched is not None:
                self.touched |= changes.keys.keys()
            if changes.found <= SETTLE_ENOUGH:
                break
        # one transaction freezes every table at once (the triggers went in with the capture);
        # its connection holds the freeze's lock until the cleanup
        lock = self.held.enter_context(_autocommit_on(self.tn, self.source))
        self.held.callback(self.cutover.close)
        self.cutover.connect()
        freezing = time.time()
        tenant_copy.freeze_writes(lock, self.tid, owner=self.owner)
        return {"frozen_at": freezing, "touched": None if self.touched is None else sorted(self.touched)}

    def cutover_checks(self) -> None:
        """``delta`` and ``verify``, whichever is still to run: one session for both, and one
        catalog transaction records them (the write block is made of these; the source is
        frozen)."""
        job, specs = self.job, self.specs
        resumed = "delta" in job.done  # the run announced the verify itself
        recorded: dict[str, dict[str, Any]] = {}
        with self.cutover as (src, dst):
            recount = specs
            if not resumed:
                # every row changed since the last round is logged: copy those, and check them
                changes = _copy_changes(self.tenant, specs, src, dst, self.target, self.tid, "in the last changes")
                recorded["delta"] = {"delta": {"changed": changes.found}}
                if job.payload.get("touched") is not None:  # the others are as they were sealed
                    since = set(job.payload["touched"]) | changes.keys.keys()
                    recount = [spec for spec in specs if spec.name in since]
            if "verify" not in job.done:
                if not resumed:
                    job.pending("verify")  # announce it (the run announced the delta)
                rows = {} if recount is specs else dict(job.payload["counted"])
                rows |= _count_both(self.tenant, recount, src, dst)
                self.rows = {spec.name: rows[spec.name] for spec in specs}
                recorded["verify"] = {"rows": self.rows}
        with self.tn.admin() as conn, conn.transaction():  # one catalog transaction for both
            for step, payload in recorded.items():
                job.record(conn, step, **payload)

    def flip(self) -> None:
        tn, tenant, job = self.tn, self.tenant, self.job
        with tn.admin() as conn, conn.transaction():
            conn.execute(
                "UPDATE tenantry.placements SET status = 'retired', updated_at = now()"
                " WHERE tenant_id = %s AND status = 'active'",
                (tenant.id,),
            )
            conn.execute(
                "UPDATE tenantry.placements SET status = 'active', updated_at = now()"
                " WHERE tenant_id = %s AND status = 'building'",
                (tenant.id,),
            )
            conn.execute(
                "UPDATE tenantry.tenants SET status = 'active', plan = %s, epoch = epoch + 1, updated_at = now()"
                " WHERE id = %s",
                (self.chosen.name, tenant.id),
            )
            flipped_at = time.time()
            job.record(
                conn, "flip", flipped_at=flipped_at, write_block_seconds=flipped_at - float(job.payload["frozen_at"])
            )
            notify_tenant(conn, tenant.id)
            audit.record(
                conn,
                actor=tn.actor,
                action="tenant.move",
                target_type="tenant",
                target=tenant.slug,
                before={"plan": job.payload["from_plan"], "placement": job.payload["source"]},
                # the target as this transaction leaves it (the job recorded it being built)
                after={
                    "plan": self.chosen.name,
                    "placement": {**job.payload["target"], "status": "active"},
                    "rows": self.rows,
                    "write_block_seconds": round(job.payload["write_block_seconds"], 3),
                },
            )
        tn.publish(EventKind.TENANT, str(tenant.id))

    def fence(self) -> None:
        # bindings made before the flip still name the source: its database refuses them from
        # now on (TenantMoved), in every process, before the cleanup removes what they name
        with self.tn.admin() as conn:
            epoch = get_tenant(conn, self.tenant.id).epoch
        fence_placement(self.tn, self.source, epoch, "moved")

    def cleanup(self) -> None:
        tn, tenant, job = self.tn, self.tenant, self.job
        # other processes learn of the flip by NOTIFY within a second (and trust no cache while
        # their listener is down); until then the freeze refuses their writes to the source
        wait = float(job.payload["flipped_at"]) + PROPAGATION_SECONDS - time.time()
        if wait > 0:
            time.sleep(wait)
        self.held.close()  # the freeze's record refuses the stale writes from here (fenced, too)
        with tn.admin() as conn:
            try:
                drop_copy(tn, conn, tenant.id, self.source)
            except BaseException:
                # what is left of the source copy waits for a rerun; its triggers would slow
                # every tenant of shared tables meanwhile (stale bindings are fenced off)
                with contextlib.suppress(Exception), _autocommit_on(tn, self.source) as src:
                    tenant_copy.drop_tenant_triggers(src, self.tid, owner=self.owner, schema=self.source.schema)
                raise
            with conn.transaction():
                job.record(conn, "cleanup")
                conn.execute("UPDATE tenantry.jobs SET status = 'done' WHERE id = %s", (job.id,))
                # the move is done: its plugins' hooks are queued with the job's end, once
                plugin_hooks.enqueue(
                    conn,
                    "moved",
                    get_tenant(conn, tenant.id),
                    origin=tn.origin(),
                    extra=_report(tenant, job, self.rows, self.started).to_dict(),
                )


def _report(tenant: Tenant, job: StepLog, rows: dict[str, int], started: float) -> MoveReport:
    return MoveReport(
        slug=tenant.slug,
        # the placements as the move left them (the job recorded them as it began)
        source={**job.payload["source"], "status": "retired"},
        target={**job.payload["target"], "status": "active"},
        rows=rows,
        write_block_seconds=float(job.payload["write_block_seconds"]),
        seconds=time.monotonic() - started,
    )


def abort(tn: ControlPlane, key: str | uuid.UUID) -> bool:
    """Undo a move that has not flipped yet: thaw the source, drop the target copy.

    Returns ``False`` when there is no move to abort. After the flip, move back instead.
    """
    with tn.admin() as conn:
        tenant = get_tenant(conn, key)
    with tenant_lock(tn, tenant.id, f"tenant {tenant.slug!r} is being moved by another process; try again shortly"):
        return _abort(tn, tenant)


def _abort(tn: ControlPlane, tenant: Tenant) -> bool:
    with tn.admin() as conn:
        with conn.transaction():
            job = _running_job(conn, tenant.id)
        if job is None:
            return False
        if "flip" in job.done:
            raise Conflict(f"the move of {tenant.slug!r} has flipped already; move it back instead")
        source = _placement_from(job.payload["source"])
        target = _placement_from(job.payload["target"])
        with _autocommit_on(tn, source) as src:
            tenant_copy.drop_tenant_triggers(src, str(tenant.id), owner=tn.settings.owner_role)
            tenant_copy.thaw(src, str(tenant.id), owner=tn.settings.owner_role)
            src.execute("DELETE FROM tenantry.move_changes WHERE tenant_id = %s", (tenant.id,))
        drop_copy(tn, conn, tenant.id, target)  # idempotent, whatever was built of it
        with conn.transaction():
            conn.execute(
                "UPDATE tenantry.placements SET status = 'retired', updated_at = now()"
                " WHERE tenant_id = %s AND status = 'building'",
                (tenant.id,),
            )
            conn.execute(
                "UPDATE tenantry.jobs SET status = 'failed', error = 'aborted', updated_at = now() WHERE id = %s",
                (job.id,),
            )
            conn.execute(
                "UPDATE tenantry.tenants SET status = 'active', updated_at = now() WHERE id = %s", (tenant.id,)
            )
            notify_tenant(conn, tenant.id)
            audit.record(
                conn,
                actor=tn.actor,
                action="tenant.move.abort",
                target_type="tenant",
                target=tenant.slug,
                after={"steps_done": job.done},
            )
    tn.publish(EventKind.TENANT, str(tenant.id))
    return True
