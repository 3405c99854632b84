"""The steps of a move, and its report: :class:`Move` runs one tenant's move step by step
(build the target, capture changes, bulk copy, catch up, freeze, check, flip, fence, clean
up), each recorded so that a rerun resumes; :class:`MoveReport` is what a move returns.

:mod:`tenantry.services.moves` starts, resumes and aborts moves; see its docstring for how a
move keeps the tenant writing until the short freeze.
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

from tenantry.core.model import Isolation, Plan, Status, Tenant
from tenantry.core.placement import Placement, plan_steps
from tenantry.db import change_capture, tenant_copy
from tenantry.db.catalog import audit
from tenantry.db.catalog import hooks as plugin_hooks
from tenantry.db.catalog.events import EventKind, notify_tenant
from tenantry.db.catalog.jobs import finish_job
from tenantry.db.catalog.placements import set_placement_status
from tenantry.db.catalog.tenants import get_tenant, set_status
from tenantry.db.connect import admin_connection
from tenantry.errors import IsolationError, TablesDiffer
from tenantry.services import placement_tables
from tenantry.services.fences import fence_placement
from tenantry.services.placements import (
    build_step,
    database_url,
    drop_copy,
    local_outdated,
)
from tenantry.services.steps import Step, StepLog

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = [
    "Move",
    "MoveReport",
    "Sides",
    "autocommit_on",
    "placement_data",
    "placement_from",
    "refuse_differences",
    "report_of",
]

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


def placement_from(data: dict[str, Any]) -> Placement:
    return Placement(
        uuid.UUID(data["tenant_id"]),
        data["cell"],
        Isolation(data["isolation"]),
        data["database"],
        data["schema"],
        data["status"],
    )


def placement_data(p: Placement) -> dict[str, Any]:
    return {
        "tenant_id": str(p.tenant_id),
        "cell": p.cell,
        "isolation": p.isolation.value,
        "database": p.database,
        "schema": p.schema,
        "status": p.status,
    }


def copy_changes(
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

    compare(tenant, changed, src, dst, when, changed_rows)
    return changes


def compare(
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


def count_both(
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


class Sides:
    """Admin connections to the source and target placements, each in a transaction acting
    as the owner with the tenant bound. :meth:`connect` opens them ahead of time (the write
    block then waits for no connection)."""

    def __init__(self, tn: ControlPlane, tenant_id: uuid.UUID, source: Placement, target: Placement) -> None:
        self._tn = tn
        self._tenant_id = tenant_id
        self._places = (source, target)
        self._stack = ExitStack()
        self._conns: list[psycopg.Connection[Any]] = []

    def connect(self) -> Sides:
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


@contextmanager
def autocommit_on(tn: ControlPlane, place: Placement) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit admin connection to ``place``'s database (steps that take one table's
    lock at a time open their own transactions)."""
    url = database_url(tn.cell_admin_url(place.cell), place.database)
    with admin_connection(url, autocommit=True) as conn:
        yield conn


def refuse_differences(tenant: Tenant, problems: list[str], *, started: bool) -> None:
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


class Move:
    """The steps of one move (see the module's docstring), run by its :class:`StepLog`: what a
    step finds that a later one needs, a rerun reads from the job's payload."""

    def __init__(
        self, tn: ControlPlane, tenant: Tenant, chosen: Plan, job: StepLog, held: ExitStack, started: float
    ) -> None:
        self.tn, self.tenant, self.chosen, self.job, self.held = tn, tenant, chosen, job, held
        self.started = started
        self.source = placement_from(job.payload["source"])
        self.target = placement_from(job.payload["target"])
        self.rows: dict[str, int] = dict(job.payload.get("rows", {}))
        self.tid = str(tenant.id)
        self.owner = tn.settings.owner_role
        #: the tables changed since the copy was sealed (None: unknown, every table is recounted)
        self.touched: set[str] | None = None
        self.cutover = Sides(tn, tenant.id, self.source, self.target)
        #: the target is shared tables (other tenants draw from their sequences meanwhile)
        self.shared = self.target.isolation is Isolation.POOLED
        self._specs: list[tenant_copy.TableSpec] | None = None
        if "freeze" in job.done and "flip" not in job.done:
            # a resumed move: the freeze's lock goes back on (its record outlived the mover)
            # before anything reads the frozen source
            change_capture.freeze_writes(held.enter_context(autocommit_on(tn, self.source)), self.tid, owner=self.owner)

    @property
    def specs(self) -> list[tenant_copy.TableSpec]:
        """Every table and column the source holds, checked (once the target is built, on
        first use) against what the target holds."""
        if self._specs is None:
            specs = placement_tables.held(self.tn, self.source)
            problems = tenant_copy.differences(specs, placement_tables.held(self.tn, self.target), "at the target")
            refuse_differences(self.tenant, problems, started=True)
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

    def sides(self) -> Sides:
        return Sides(self.tn, self.tenant.id, self.source, self.target)

    def build(self) -> None:
        for step in plan_steps(self.target.isolation)[:-1]:
            build_step(self.tn, step, self.target)

    def capture(self) -> None:
        # a database built by an older tenantry (before change capture, or the atomic freeze);
        # only then: installing takes locks that every transaction of the tenant waits for
        if local_outdated(self.tn, self.source):
            build_step(self.tn, "install_local", self.source)
        with autocommit_on(self.tn, self.source) as conn:
            change_capture.capture_changes(conn, self.source.schema, self.specs, self.tid, owner=self.owner)

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
            sealed = compare(
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
                changes = copy_changes(
                    self.tenant, self.specs, src, dst, self.target, self.tid, "in the changes before the freeze"
                )
            if self.touched is not None:
                self.touched |= changes.keys.keys()
            if changes.found <= SETTLE_ENOUGH:
                break
        # one transaction freezes every table at once (the triggers went in with the capture);
        # its connection holds the freeze's lock until the cleanup
        lock = self.held.enter_context(autocommit_on(self.tn, self.source))
        self.held.callback(self.cutover.close)
        self.cutover.connect()
        freezing = time.time()
        change_capture.freeze_writes(lock, self.tid, owner=self.owner)
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
                changes = copy_changes(self.tenant, specs, src, dst, self.target, self.tid, "in the last changes")
                recorded["delta"] = {"delta": {"changed": changes.found}}
                if job.payload.get("touched") is not None:  # the others are as they were sealed
                    since = set(job.payload["touched"]) | changes.keys.keys()
                    recount = [spec for spec in specs if spec.name in since]
            if "verify" not in job.done:
                if not resumed:
                    job.pending("verify")  # announce it (the run announced the delta)
                rows = {} if recount is specs else dict(job.payload["counted"])
                rows |= count_both(self.tenant, recount, src, dst)
                self.rows = {spec.name: rows[spec.name] for spec in specs}
                recorded["verify"] = {"rows": self.rows}
        with self.tn.admin() as conn, conn.transaction():  # one catalog transaction for both
            for step, payload in recorded.items():
                job.record(conn, step, **payload)

    def flip(self) -> None:
        tn, tenant, job = self.tn, self.tenant, self.job
        with tn.admin() as conn, conn.transaction():
            set_placement_status(conn, tenant.id, old="active", new="retired")
            set_placement_status(conn, tenant.id, old="building", new="active")
            set_status(conn, tenant.id, Status.ACTIVE, new_epoch=True, plan=self.chosen.name)
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
                with contextlib.suppress(Exception), autocommit_on(tn, self.source) as src:
                    change_capture.drop_tenant_triggers(src, self.tid, owner=self.owner, schema=self.source.schema)
                raise
            with conn.transaction():
                job.record(conn, "cleanup")
                finish_job(conn, job.id, "done")
                # the move is done: its plugins' hooks are queued with the job's end, once
                plugin_hooks.enqueue(
                    conn,
                    "moved",
                    get_tenant(conn, tenant.id),
                    origin=tn.origin(),
                    extra=report_of(tenant, job, self.rows, self.started).to_dict(),
                )


def report_of(tenant: Tenant, job: StepLog, rows: dict[str, int], started: float) -> MoveReport:
    return MoveReport(
        slug=tenant.slug,
        # the placements as the move left them (the job recorded them as it began)
        source={**job.payload["source"], "status": "retired"},
        target={**job.payload["target"], "status": "active"},
        rows=rows,
        write_block_seconds=float(job.payload["write_block_seconds"]),
        seconds=time.monotonic() - started,
    )
