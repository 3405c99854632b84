"""Backup schedules per plan: run-due takes what is due, once, however many runs race;
prune keeps the newest `keep`."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator

import pytest

from tenantry import InvalidInput, Tenantry
from tenantry.testing import ScratchCatalog
from tests.model_app import Base
from tests.services.backup_support import seed


@pytest.fixture(scope="module")
def plan_tn(tn: Tenantry, tenantry_catalog: ScratchCatalog, tmp_path_factory) -> Iterator[tuple[Tenantry, str]]:
    """A Tenantry whose backups go to a folder of this module, and a plan of its own."""
    plan = f"nightly-{uuid.uuid4().hex[:6]}"
    with tn.admin() as conn:
        conn.execute("INSERT INTO tenantry.plans (name, isolation) VALUES (%s, 'pooled')", (plan,))
    root = tmp_path_factory.mktemp("scheduled")
    with Tenantry(tenantry_catalog.settings(backup_url=root.as_uri()), metadata=Base.metadata, actor="pytest") as t:
        yield t, plan
        t.backups.schedule(plan, every=None)


def test_run_due_takes_each_due_backup_once_and_prunes(plan_tn: tuple[Tenantry, str]) -> None:
    btn, plan = plan_tn
    tenants = [btn.tenants.create(f"sch-{uuid.uuid4().hex[:8]}", plan=plan) for _ in range(2)]
    for tenant in tenants:
        seed(btn, tenant, projects=1)
    btn.backups.schedule(plan, every=dt.timedelta(hours=1), keep=2)
    assert {"plan": plan, "every_seconds": 3600.0, "keep": 2} in btn.backups.schedules()
    # three runs at once, as from cron on three machines: each tenant is backed up once
    reports: list[dict] = []
    runs = [threading.Thread(target=lambda: reports.append(btn.backups.run_due())) for _ in range(3)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(60)
    taken = sorted(slug for r in reports for slug in r["taken"])
    assert taken == sorted(t.slug for t in tenants), reports
    assert all(not r["failed"] for r in reports)
    assert btn.backups.run_due()["taken"] == []  # nothing due within the hour
    # more backups than `keep`: prune drops the oldest
    first = btn.backups.list(tenants[0].slug)[-1]
    btn.backups.create(tenants[0].slug)
    btn.backups.create(tenants[0].slug)
    assert btn.backups.prune(tenants[0].slug) == [str(first.id)]
    assert len(btn.backups.list(tenants[0].slug)) == 2
    with pytest.raises(InvalidInput, match="keep"):
        btn.backups.schedule(plan, every=dt.timedelta(days=1), keep=0)


def test_the_schedule_commands(cli, plan_tn: tuple[Tenantry, str], monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    _, plan = plan_tn
    monkeypatch.setenv("TENANTRY_BACKUP_URL", tmp_path.as_uri())
    code, out, err = cli("backups", "schedule", plan, "--every", "6h", "--keep", "3", "--json")
    assert code == 0, err
    assert '"every_seconds": 21600.0' in out
    code, _, err = cli("backups", "schedule", plan, "--every", "soon", "--keep", "3")
    assert code == 2 and "--every" in err
    code, out, err = cli("backups", "run-due", "--json")
    assert code == 0, err
    code, out, err = cli("backups", "prune", "--json")
    assert code == 0 and '"pruned"' in out, err
