"""A run with nothing to do is answered from the catalog: as fast with 1,000 tenants as with 1.

The placements are catalog rows only (their schemas and databases do not exist), so a run
that connected to any of them would fail; the fan-out is also replaced by one that fails.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from tenantry import Tenantry
from tenantry.services import app_migrations
from tests.migrations.support import FIXTURE, HEAD
from tests.support import Scratch


def _add_placements(url: str, count: int, tier: str, revision: str) -> None:
    database = "'tenant_' || replace(t.id::text, '-', '')" if tier == "database" else "NULL"
    schema = "'tenant_data'" if tier == "database" else "'tenant_' || replace(t.id::text, '-', '')"
    plan = "enterprise" if tier == "database" else "business"
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO tenantry.tenants (slug, name, plan, status)"
            " SELECT 'fp-' || substr(md5(random()::text), 1, 12), 'fast path', %s, 'active'"
            " FROM generate_series(1, %s)",
            (plan, count),
        )
        conn.execute(
            f"INSERT INTO tenantry.placements (tenant_id, cell, isolation, database_name, schema_name, status, app_revision)"  # noqa: S608
            f" SELECT t.id, 'primary', %s, {database}, {schema}, 'active', %s FROM tenantry.tenants t"
            " WHERE t.slug LIKE 'fp-%%' AND NOT EXISTS (SELECT 1 FROM tenantry.placements p WHERE p.tenant_id = t.id)",
            (tier, revision),
        )


def _best_of(tn: Tenantry, runs: int = 9) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        report = app_migrations.migrate(tn.plane, directory=FIXTURE)
        best = min(best, time.perf_counter() - start)
        assert report.from_catalog and report.results == [] and report.up_to_date == report.total
    return best


def test_nothing_to_do_costs_the_same_for_1000_tenants(
    mtn: Tenantry, fresh_scratch: Scratch, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_fanout(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the fast path must not run any placement")

    monkeypatch.setattr(app_migrations.fanout, "run_all", no_fanout)
    app_migrations.stamp(mtn.plane, app_migrations.POOLED, revision=HEAD, directory=FIXTURE)
    _add_placements(fresh_scratch.url, 1, "schema", HEAD)
    app_migrations.migrate(mtn.plane, directory=FIXTURE)  # warm: scripts loaded, admin pool open
    one = _best_of(mtn)
    _add_placements(fresh_scratch.url, 989, "schema", HEAD)
    _add_placements(fresh_scratch.url, 10, "database", HEAD)
    thousand = _best_of(mtn)
    assert app_migrations.migrate(mtn.plane, directory=FIXTURE).total == 1001
    status = app_migrations.status(mtn.plane, directory=FIXTURE)
    assert status.revisions == {HEAD: 1001} and status.behind == []
    with capsys.disabled():
        print(
            f"\nfast path: 1 tenant {one * 1000:.2f} ms, 1,000 tenants {thousand * 1000:.2f} ms ({thousand / one:.2f}x)"
        )
    assert thousand <= 5 * one
    # one placement behind: only it is planned, the rest stay answered from the catalog
    with psycopg.connect(fresh_scratch.url) as conn:
        conn.execute(
            "UPDATE tenantry.placements SET app_revision = NULL WHERE tenant_id ="
            " (SELECT tenant_id FROM tenantry.placements WHERE isolation = 'schema' LIMIT 1)"
        )
    planned = app_migrations.migrate(mtn.plane, dry_run=True, directory=FIXTURE)
    assert len(planned.results) == 1 and planned.up_to_date == 1000
