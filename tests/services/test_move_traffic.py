"""A move out of the pooled tier under traffic on the shared tables: the neighbours' transactions,
each touching two tables in opposite orders, neither stall nor fail, and the move finishes.

A mover that holds one shared table's lock while it waits for another's (the old cleanup:
every trigger dropped in one transaction) livelocks with such transactions: the app's
transaction holds ``tasks`` and waits for ``projects`` behind the mover, which holds
``projects`` and retries ``tasks`` until it gives up, a minute later, half-cleaned.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg import sql

from tenantry import Conflict, Tenant, Tenantry
from tenantry.db import change_capture
from tenantry.testing import TIER_PLANS
from tests.services.test_moves import _counts, _no_move_left, _seed

#: seconds a bystander transaction holds its first table before it takes the second
HOLD = 0.02
#: a move of a small tenant takes a few seconds (2 of them waiting for the flip to propagate)
MOVE_BOUND = 30.0
#: the longest a bystander transaction may take while a move runs (the old cleanup: ~60 s)
STALL_BOUND = 5.0


class Hammer:
    """Threads running short transactions on pooled tenants, two tables each, in both orders."""

    def __init__(self, tn: Tenantry, tenants: list[Tenant], threads: int = 4) -> None:
        self.tn, self.tenants, self.threads = tn, tenants, threads
        self.stop = threading.Event()
        self.errors: Counter[str] = Counter()
        self.done = 0
        self.slowest = 0.0
        self._lock = threading.Lock()

    def run(self, n: int) -> None:
        tenant = self.tenants[n % len(self.tenants)]
        first, second = ("projects", "tasks") if n % 2 else ("tasks", "projects")
        column = {"projects": "name = name", "tasks": "points = points + 1"}
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                with self.tn.tenant(tenant.slug), self.tn.connection() as conn:
                    conn.execute(f"UPDATE {first} SET {column[first]} WHERE id = (SELECT min(id) FROM {first})")
                    time.sleep(HOLD)
                    conn.execute(f"UPDATE {second} SET {column[second]} WHERE id = (SELECT min(id) FROM {second})")
                    conn.execute("SELECT count(*) FROM comments").fetchone()
            except Exception as err:  # noqa: BLE001 - every error of a bystander fails the test
                with self._lock:
                    self.errors[f"{type(err).__name__}: {err}"[:200]] += 1
                continue
            with self._lock:
                self.done += 1
                self.slowest = max(self.slowest, time.monotonic() - started)


@pytest.mark.parametrize("target", ["schema", "database"])
def test_a_move_out_of_the_pooled_tier_does_not_stall_or_fail_its_neighbours(
    tn: Tenantry, make_tenant, target: str
) -> None:
    moving = make_tenant("leave")
    _seed(tn, moving, projects=30)
    neighbours = [make_tenant("stay"), make_tenant("stay")]
    for each in neighbours:
        _seed(tn, each, projects=3)
    hammer = Hammer(tn, neighbours)
    with ThreadPoolExecutor(hammer.threads) as pool:
        running = [pool.submit(hammer.run, n) for n in range(hammer.threads)]
        time.sleep(0.3)
        started = time.monotonic()
        try:
            with ThreadPoolExecutor(1) as mover:
                report = mover.submit(tn.tenants.move, moving.slug, plan=TIER_PLANS[target]).result(MOVE_BOUND)
        finally:
            took = time.monotonic() - started
            hammer.stop.set()
            for each in running:
                each.result()
    assert report.target["isolation"] == target
    assert took < MOVE_BOUND
    assert not hammer.errors, hammer.errors
    assert hammer.done > 20 and hammer.slowest < STALL_BOUND, (hammer.done, hammer.slowest)
    with tn.admin() as conn:
        _no_move_left(conn, moving)
        assert change_capture.tenant_triggers(conn, str(moving.id)) == []
    assert sum(_counts(tn, moving).values()) == 90


def test_a_cleanup_that_cannot_finish_removes_what_it_can_and_a_rerun_completes_it(
    tn: Tenantry, make_tenant, scratch, monkeypatch: pytest.MonkeyPatch
) -> None:
    moving, other = make_tenant("stuck"), make_tenant("holds")
    _seed(tn, moving, projects=5)
    monkeypatch.setattr(change_capture, "LOCK_PATIENCE", 0.5)  # (default: minutes of trying)
    pooled = tn.settings.pooled_schema
    with psycopg.connect(scratch.url, autocommit=True) as holder:

        def hold(step: str) -> None:
            if step == "cleanup":  # an app transaction writing tasks, open throughout the cleanup
                holder.execute("BEGIN")
                holder.execute(sql.SQL("LOCK TABLE {} IN ROW EXCLUSIVE MODE").format(sql.Identifier(pooled, "tasks")))

        with pytest.raises(Conflict, match="stayed locked"):
            tn.tenants.move(moving.slug, plan=TIER_PLANS["schema"], on_step=hold)
        with tn.admin() as conn:
            # only the locked table keeps its triggers: the others' are gone
            assert {t for _s, t, _n in change_capture.tenant_triggers(conn, str(moving.id))} == {"tasks"}
        holder.execute("COMMIT")
    assert tn.tenants.get(moving.id).plan == TIER_PLANS["schema"]  # flipped: only the cleanup is left
    report = tn.tenants.move(moving.slug, plan=TIER_PLANS["schema"])
    assert report.target["isolation"] == "schema"
    with tn.admin() as conn:
        _no_move_left(conn, moving)
        for table in ("projects", "tasks", "comments"):
            assert conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE tenant_id = %s").format(sql.Identifier(pooled, table)),
                (moving.id,),
            ).fetchone() == (0,)
        assert conn.execute(
            "SELECT status FROM tenantry.jobs WHERE tenant_id = %s AND kind = 'move'", (moving.id,)
        ).fetchone() == ("done",)
    assert _counts(tn, moving) == {"projects": 5, "tasks": 5, "comments": 5}
    assert sum(_counts(tn, other).values()) == 0
