"""Tier moves: every direction, no row lost, writes refused only at the cutover, and a move
killed at any step finished by a rerun (or undone by an abort)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tenantry import Conflict, InvalidInput, IsolationError, Status, Tenant, TenantMoving, Tenantry, copy_rows
from tenantry.db import change_capture, tenant_copy
from tenantry.db.change_capture import FREEZE_LOCK_CLASS
from tenantry.services.move_steps import CATCH_UP_ENOUGH
from tenantry.services.moves import STEPS
from tenantry.testing import TIER_PLANS
from tests.services.test_cell_counts import assert_counts_match
from tests.support import catalog_env

ROOT = Path(__file__).resolve().parents[2]


def _seed(tn: Tenantry, tenant: Tenant, projects: int = 20) -> dict[str, int]:
    with tn.tenant(tenant.slug), tn.connection() as conn:
        for i in range(projects):
            pid = conn.execute("INSERT INTO projects (name) VALUES (%s) RETURNING id", (f"p{i}",)).fetchone()[0]
            tid = conn.execute(
                "INSERT INTO tasks (project_id, title, points, priority, done) VALUES (%s, 't', %s, 'high', false)"
                " RETURNING id",
                (pid, i),
            ).fetchone()[0]
            conn.execute("INSERT INTO comments (task_id, body) VALUES (%s, %s)", (tid, f"c{i}"))
    return _counts(tn, tenant)


def _counts(tn: Tenantry, tenant: Tenant) -> dict[str, int]:
    with tn.tenant(tenant.slug, allow_inactive=True), tn.connection() as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("projects", "tasks", "comments")}


def _snapshot(tn: Tenantry, tenant: Tenant) -> list[tuple]:
    with tn.tenant(tenant.slug, allow_inactive=True), tn.connection() as conn:
        return conn.execute(
            "SELECT p.id, p.name, t.id, t.points, t.priority::text, c.body FROM projects p"
            " JOIN tasks t USING (tenant_id) JOIN comments c USING (tenant_id)"
            " WHERE t.project_id = p.id AND c.task_id = t.id ORDER BY p.id"
        ).fetchall()


def _old_copy_gone(tn: Tenantry, tenant: Tenant, old: dict) -> None:
    with tn.admin() as conn:
        if old["database"] is not None:
            assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (old["database"],)).fetchone() is None
        elif old["isolation"] == "schema":
            assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (old["schema"],)).fetchone() is None
        else:
            for table in ("projects", "tasks", "comments"):
                rows = conn.execute(
                    sql.SQL("SELECT count(*) FROM {} WHERE tenant_id = %s").format(
                        sql.Identifier(old["schema"], table)
                    ),
                    (tenant.id,),
                ).fetchone()
                assert rows == (0,), table
        _no_move_left(conn, tenant)


def _no_move_left(conn: psycopg.Connection, tenant: Tenant) -> None:
    """No capture or freeze trigger of the tenant remains, nor any logged change or freeze."""
    name = f"tenantry_%_{tenant.id.hex}"
    assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE %s", (name,)).fetchone() == (0,)
    for table in ("move_changes", "move_freezes"):
        assert conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE tenant_id = %s").format(sql.Identifier("tenantry", table)),
            (tenant.id,),
        ).fetchone() == (0,)


@pytest.mark.parametrize(
    ("source", "target"),
    [(s, t) for s in TIER_PLANS for t in TIER_PLANS if s != t],
)
def test_move_between_every_pair_of_tiers(tn: Tenantry, make_tenant, source: str, target: str) -> None:
    moving, bystander = make_tenant("mv", plan=TIER_PLANS[source]), make_tenant("by")
    before, others = _seed(tn, moving), _seed(tn, bystander, projects=3)
    rows_before = _snapshot(tn, moving)
    report = tn.tenants.move(moving.slug, plan=TIER_PLANS[target])
    assert report.rows == before
    assert report.target["isolation"] == target and report.source["isolation"] == source
    assert 0 < report.write_block_seconds < 5
    assert tn.tenants.get(moving.id).plan == TIER_PLANS[target]
    assert tn.tenants.get(moving.id).status is Status.ACTIVE
    assert tn.tenants.placement(moving.id).isolation.value == target  # type: ignore[union-attr]
    assert _snapshot(tn, moving) == rows_before
    assert _counts(tn, bystander) == others
    _old_copy_gone(tn, moving, report.source)
    # the moved tenant writes on, with fresh keys from its new sequences
    with tn.tenant(moving.slug), tn.connection() as conn:
        conn.execute("INSERT INTO projects (name) VALUES ('after')")
        assert conn.execute("SELECT count(*) FROM projects").fetchone() == (before["projects"] + 1,)
    entry = tn.audit.list(target_type="tenant", target=moving.slug)[0]
    assert entry.action == "tenant.move" and entry.after["rows"] == before
    # the placements as the move left them, not as it began (issue 12)
    assert entry.after["placement"]["status"] == report.target["status"] == "active"
    assert report.source["status"] == "retired"
    assert tn.schema.unprotected_tables() == []


def test_writes_during_the_copy_are_carried_and_the_cutover_refuses_writes(tn: Tenantry, make_tenant) -> None:
    moving, neighbour = make_tenant("live"), make_tenant("next")
    _seed(tn, moving, projects=10)
    seen: dict[str, object] = {}

    def write(name: str) -> None:
        with tn.tenant(moving.slug), tn.connection() as conn:
            conn.execute("INSERT INTO projects (name) VALUES (%s)", (name,))

    def on_step(step: str) -> None:
        if step == "bulk_copy":  # captured from here on, whether the snapshot holds it or not
            write("before-snapshot")
            with tn.tenant(neighbour.slug), tn.connection() as conn:  # another tenant: not logged
                conn.execute("INSERT INTO projects (name) VALUES ('neighbour')")
            with tn.admin() as conn:
                logged = conn.execute("SELECT tenant_id FROM tenantry.move_changes").fetchall()
                seen["logged"] = {r[0] for r in logged}
        if step == "catch_up":  # the bulk copy is done; the source still takes writes
            write("during-copy")
            with tn.tenant(moving.slug), tn.connection() as conn:
                conn.execute("UPDATE tasks SET points = 99 WHERE points = 0")
                conn.execute("DELETE FROM comments WHERE body = 'c1'")
                # a parent and its child both born and one of them gone during the copy
                pid = conn.execute("INSERT INTO projects (name) VALUES ('brief') RETURNING id").fetchone()[0]
                conn.execute(
                    "INSERT INTO tasks (project_id, title, points, priority, done) VALUES (%s, 'brief', 1, 'low', false)",
                    (pid,),
                )
                conn.execute("DELETE FROM tasks WHERE title = 'brief'")
        if step == "freeze":  # after catching up, before the freeze: the last round carries it
            write("before-freeze")
        if step == "delta":  # frozen: reads work, writes are refused with a clear error
            with tn.tenant(moving.slug), tn.connection() as conn:
                seen["read"] = conn.execute("SELECT count(*) FROM projects").fetchone()[0]
            with pytest.raises(TenantMoving, match="being moved"):
                write("during-freeze")
            seen["frozen"] = True

    report = tn.tenants.move(moving.slug, plan="enterprise", on_step=on_step)
    assert seen == {"logged": {moving.id}, "read": 14, "frozen": True}
    assert report.rows["projects"] == 14
    with tn.tenant(moving.slug), tn.connection() as conn:
        names = sorted(r[0] for r in conn.execute("SELECT name FROM projects WHERE name !~ '^p[0-9]'").fetchall())
        assert names == ["before-freeze", "before-snapshot", "brief", "during-copy"]
        assert conn.execute("SELECT count(*) FROM tasks WHERE points = 99").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM tasks WHERE title = 'brief'").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM comments WHERE body = 'c1'").fetchone() == (0,)
    with tn.tenant(neighbour.slug), tn.connection() as conn:
        assert conn.execute("SELECT name FROM projects").fetchall() == [("neighbour",)]


@pytest.mark.parametrize(("source", "target"), [("schema", "pooled"), ("pooled", "schema")])
def test_the_bulk_copy_and_the_cleanup_work_in_batches_and_lose_no_row(
    tn: Tenantry, make_tenant, monkeypatch: pytest.MonkeyPatch, source: str, target: str
) -> None:
    """Into shared tables the copy runs in statements of a few pages each, with pauses
    between them, and leaving them the rows go in small transactions: every row arrives,
    the last partial range included, and the neighbour's rows are untouched."""
    monkeypatch.setattr(tenant_copy, "COPY_BATCH", 150)
    monkeypatch.setattr(change_capture, "DELETE_BATCH", 150)
    pauses: list[float] = []
    monkeypatch.setattr(tenant_copy, "pause_after", lambda started: pauses.append(started))
    inserts: list[tuple[int, int | None] | None] = []
    real_insert = tenant_copy._insert_from

    def counting(conn, spec, temp, *, upsert, pages=None):  # type: ignore[no-untyped-def]
        if spec.name == "projects" and not upsert:
            inserts.append(pages)
        return real_insert(conn, spec, temp, upsert=upsert, pages=pages)

    monkeypatch.setattr(tenant_copy, "_insert_from", counting)
    moving, neighbour = make_tenant("batch", plan=TIER_PLANS[source]), make_tenant("nb")
    with tn.tenant(moving.slug), tn.connection() as conn:
        copy_rows(conn, "projects", ["name"], [(f"project {i:04d} " + "x" * 60,) for i in range(1000)])
    before, others = _snapshot(tn, moving), _seed(tn, neighbour, projects=3)
    names = _names(tn, moving)
    report = tn.tenants.move(moving.slug, plan=TIER_PLANS[target])
    assert report.rows["projects"] == 1000
    assert _names(tn, moving) == names and _snapshot(tn, moving) == before
    assert _counts(tn, neighbour) == others
    assert len(inserts) >= 4, inserts  # 1000 rows of ~100 bytes: several pages per 150 rows
    assert inserts[-1] is not None and inserts[-1][1] is None  # the last range is open
    assert len(pauses) >= len(inserts) - 3
    _old_copy_gone(tn, moving, report.source)


def _names(tn: Tenantry, tenant: Tenant) -> list[str]:
    with tn.tenant(tenant.slug), tn.connection() as conn:
        return [r[0] for r in conn.execute("SELECT name FROM projects ORDER BY name").fetchall()]


def test_catching_up_runs_rounds_until_little_is_left(tn: Tenantry, make_tenant) -> None:
    moving = make_tenant("busy", plan="business")
    _seed(tn, moving, projects=3)

    def on_step(step: str) -> None:
        if step == "catch_up":  # more changes than one round leaves for the freeze
            with tn.tenant(moving.slug), tn.connection() as conn:
                copy_rows(conn, "projects", ["name"], [(f"bulk{i}",) for i in range(CATCH_UP_ENOUGH * 2)])
                conn.execute("UPDATE projects SET name = name || '!' WHERE name LIKE 'bulk1%%'")

    report = tn.tenants.move(moving.slug, plan="free", on_step=on_step)
    assert report.rows["projects"] == 3 + CATCH_UP_ENOUGH * 2
    with tn.admin() as conn:
        payload = conn.execute(
            "SELECT payload FROM tenantry.jobs WHERE tenant_id = %s AND kind = 'move'", (moving.id,)
        ).fetchone()[0]
    assert payload["caught_up"] >= CATCH_UP_ENOUGH * 2 and payload["delta"] == {"changed": 0}
    with tn.tenant(moving.slug), tn.connection() as conn:
        assert conn.execute("SELECT count(*) FROM projects WHERE name LIKE 'bulk1%%!'").fetchone()[0] > 100


def test_the_freeze_waits_for_the_writes_in_flight_and_refuses_the_others_at_once(
    tn: Tenantry, make_tenant, scratch
) -> None:
    moving = make_tenant("drain")
    _seed(tn, moving, projects=2)
    wrote, snapshot, frozen, release = (threading.Event() for _ in range(4))
    seen: dict[str, object] = {}

    def in_flight() -> None:  # wrote before the freeze, commits while the freeze waits for it
        with tn.tenant(moving.slug), tn.connection() as conn:
            conn.execute("INSERT INTO projects (name) VALUES ('in flight')")
            wrote.set()
            release.wait(30)

    def old_snapshot() -> None:  # repeatable read, its snapshot taken before the freeze
        try:
            with tn.tenant(moving.slug), tn.connection() as conn:
                try:
                    conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    conn.commit()
                    assert conn.execute("SHOW transaction_isolation").fetchone() == ("repeatable read",)
                    conn.execute("SELECT count(*) FROM projects")
                    snapshot.set()
                    frozen.wait(30)
                    conn.execute("INSERT INTO projects (name) VALUES ('old snapshot')")
                    seen["old snapshot"] = "written"
                finally:
                    conn.close()  # (its session's isolation level goes with it)
        except TenantMoving:
            seen["old snapshot"] = "refused"

    def watch() -> None:  # once the mover waits for the writer in flight: a new write is refused
        deadline = time.monotonic() + 30
        with tn.admin() as conn:
            while (
                time.monotonic() < deadline
                and not conn.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = %s::oid",
                    (FREEZE_LOCK_CLASS,),
                ).fetchone()[0]
            ):
                time.sleep(0.005)
        try:
            with tn.tenant(moving.slug), tn.connection() as conn:
                conn.execute("INSERT INTO projects (name) VALUES ('while draining')")
        except TenantMoving:
            seen["while draining"] = "refused"
        release.set()

    threads = [threading.Thread(target=f) for f in (in_flight, old_snapshot, watch)]
    # negative control: a snapshot older than the freeze does not see its record; the lock
    # the mover holds refuses that transaction's write
    control = psycopg.connect(scratch.url, autocommit=False)
    control.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ

    def on_step(step: str) -> None:
        if step == "freeze":
            control.execute("SELECT 1").fetchone()
            for t in threads:
                t.start()
            assert wrote.wait(30) and snapshot.wait(30)
        if step == "delta":
            query = "SELECT count(*) FROM tenantry.move_freezes WHERE tenant_id = %s"
            seen["record, old snapshot"] = control.execute(query, (moving.id,)).fetchone()[0]
            with tn.admin() as conn:
                seen["record, now"] = conn.execute(query, (moving.id,)).fetchone()[0]
            frozen.set()
            threads[1].join(30)

    try:
        report = tn.tenants.move(moving.slug, plan="business", on_step=on_step)
    finally:
        release.set()
        frozen.set()
        for t in threads:
            t.join(30) if t.is_alive() else None
        control.close()
    assert seen == {
        "while draining": "refused",
        "old snapshot": "refused",
        "record, old snapshot": 0,
        "record, now": 1,
    }
    assert report.rows["projects"] == 3  # the write in flight was carried
    with tn.tenant(moving.slug), tn.connection() as conn:
        assert conn.execute("SELECT count(*) FROM projects WHERE name = 'in flight'").fetchone() == (1,)


def test_the_runtime_role_cannot_touch_the_change_log_or_pass_the_freeze(tn: Tenantry, make_tenant, scratch) -> None:
    moving = make_tenant("guarded")
    _seed(tn, moving, projects=2)
    tried: dict[str, str] = {}

    def on_step(step: str) -> None:
        if step != "delta":
            return
        with tn.tenant(moving.slug), tn.connection() as conn:
            for name, statement in {
                "read log": "SELECT * FROM tenantry.move_changes",
                "forge log": "INSERT INTO tenantry.move_changes VALUES (gen_random_uuid(), 'projects', '{}')",
                "become owner": f'SET ROLE "{scratch.owner}"',
                "drop freeze": f'DROP TRIGGER "tenantry_freeze_ins_{moving.id.hex}" ON tenant_data.projects',
            }.items():
                try:
                    with conn.transaction():
                        conn.execute(statement)
                except psycopg.Error as err:
                    tried[name] = type(err).__name__
        with pytest.raises(TenantMoving):
            with tn.tenant(moving.slug), tn.connection() as conn:
                conn.execute("INSERT INTO projects (name) VALUES ('late')")

    tn.tenants.move(moving.slug, plan="business", on_step=on_step)
    assert tried == {
        "read log": "InsufficientPrivilege",
        "forge log": "InsufficientPrivilege",
        "become owner": "InsufficientPrivilege",
        "drop freeze": "InsufficientPrivilege",
    }


def test_a_target_that_differs_from_the_source_stops_the_move_before_the_freeze(tn: Tenantry, make_tenant) -> None:
    moving = make_tenant("tamper", plan="business")
    _seed(tn, moving, projects=4)

    def on_step(step: str) -> None:
        if step == "catch_up":  # someone edits the (unserved) target copy behind the mover's back
            target = tn.tenants.placement(moving.id)
            with tn.admin() as conn:
                conn.execute(
                    "UPDATE tenant_data.tasks SET points = points + 1 WHERE tenant_id = %s AND points = 2",
                    (moving.id,),
                )
            assert target is not None and target.isolation.value == "schema"  # still served from the source

    with pytest.raises(IsolationError, match="table tasks differs after catching up.*--abort"):
        tn.tenants.move(moving.slug, plan="free", on_step=on_step)
    with tn.tenant(moving.slug), tn.connection() as conn:  # never frozen: writes go on
        conn.execute("INSERT INTO projects (name) VALUES ('still here')")
    assert tn.tenants.abort_move(moving.slug) is True
    report = tn.tenants.move(moving.slug, plan="free")
    assert report.rows["projects"] == 5


def test_two_movers_of_one_tenant_do_not_run_at_once(tn: Tenantry, make_tenant) -> None:
    moving = make_tenant("twice")
    _seed(tn, moving, projects=2)
    clash: list[str] = []

    def on_step(step: str) -> None:
        if step == "bulk_copy":
            for attempt in (
                lambda: tn.tenants.move(moving.slug, plan="enterprise"),
                lambda: tn.tenants.abort_move(moving.slug),
            ):
                with pytest.raises(Conflict, match="being moved by another process") as err:
                    attempt()
                clash.append(str(err.value))

    tn.tenants.move(moving.slug, plan="enterprise", on_step=on_step)
    assert len(clash) == 2
    assert tn.tenants.placement(moving.id).isolation.value == "database"  # type: ignore[union-attr]


def test_refusals(tn: Tenantry, make_tenant) -> None:
    t = make_tenant("no")
    with pytest.raises(InvalidInput, match="already lives there"):
        tn.tenants.move(t.slug, plan="free")
    tn.tenants.suspend(t.slug)
    with pytest.raises(InvalidInput, match="only active tenants move"):
        tn.tenants.move(t.slug, plan="business")
    tn.tenants.resume(t.slug)
    assert tn.tenants.abort_move(t.slug) is False


def _cli(scratch, *args: str, crash: str | None = None) -> subprocess.CompletedProcess[str]:
    env = catalog_env(
        scratch,
        TENANTRY_APP="tests.model_app:Base",
        PYTHONPATH=os.pathsep.join((str(ROOT / "src"), str(ROOT))),  # this tree, not the installed one
    )
    if crash:
        env["TENANTRY_TEST_CRASH_AFTER"] = crash
    return subprocess.run(
        [sys.executable, "-c", "from tenantry.cli.main import run; run()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


@pytest.mark.parametrize("step", STEPS[:-1])
def test_a_move_killed_at_any_step_is_finished_by_a_rerun(scratch, tn: Tenantry, make_tenant, step: str) -> None:
    moving = make_tenant("crash")
    before = _seed(tn, moving, projects=8)
    rows_before = _snapshot(tn, moving)
    killed = _cli(scratch, "tenants", "move", moving.slug, "--plan", "enterprise", crash=f"move:{step}")
    assert killed.returncode == 70, killed.stderr
    assert tn.tenants.get(moving.id).status is (Status.ACTIVE if step in ("flip", "fence") else Status.MOVING)
    # the tenant is served all along: reads see every row
    assert _counts(tn, moving) == before
    if step in ("freeze", "delta", "verify"):  # the freeze outlives the mover that made it
        with pytest.raises(TenantMoving), tn.tenant(moving.slug), tn.connection() as conn:
            conn.execute("INSERT INTO projects (name) VALUES ('lost?')")
    with pytest.raises(Conflict, match="being moved to plan 'enterprise'"):
        tn.tenants.move(moving.slug, plan="business")
    finished = _cli(scratch, "tenants", "move", moving.slug, "--plan", "enterprise", "--json")
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["rows"] == before
    assert _snapshot(tn, moving) == rows_before
    assert tn.tenants.placement(moving.id).isolation.value == "database"  # type: ignore[union-attr]
    assert_counts_match(scratch.url)
    actions = [e.action for e in tn.audit.list(target_type="tenant", target=moving.slug)]
    # (killed after the flip, the audit holds the move before the resume that cleaned up)
    assert sorted(actions[:3]) == ["tenant.move", "tenant.move.resume", "tenant.move.start"]


@pytest.mark.parametrize("step", STEPS[: STEPS.index("flip")])
def test_a_move_killed_before_the_flip_can_be_aborted(scratch, tn: Tenantry, make_tenant, step: str) -> None:
    moving = make_tenant("abort", plan="business")
    before = _seed(tn, moving, projects=5)
    assert _cli(scratch, "tenants", "move", moving.slug, "--plan", "free", crash=f"move:{step}").returncode == 70
    aborted = _cli(scratch, "tenants", "move", moving.slug, "--abort", "--json")
    assert json.loads(aborted.stdout) == {"aborted": True}
    assert tn.tenants.get(moving.id).status is Status.ACTIVE
    assert tn.tenants.placement(moving.id).isolation.value == "schema"  # type: ignore[union-attr]
    assert _counts(tn, moving) == before
    assert_counts_match(scratch.url)
    with tn.tenant(moving.slug), tn.connection() as conn:  # writes work again (thawed)
        conn.execute("INSERT INTO projects (name) VALUES ('back')")
    with tn.admin() as conn:  # the half-made pooled copy is gone, and the source is as before
        assert conn.execute(
            "SELECT count(*) FROM tenant_data.projects WHERE tenant_id = %s", (moving.id,)
        ).fetchone() == (0,)
        _no_move_left(conn, moving)
