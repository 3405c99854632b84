"""A backup restored onto another cell: another server, of another PostgreSQL version (the
suite's two servers are PostgreSQL 15 and 18)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from tenantry import Tenantry
from tests.model_app import Base
from tests.services.backup_support import rows, seed


@pytest.fixture
def cell_tn(fresh_scratch, second_cell, tmp_path):
    tn = Tenantry(fresh_scratch.settings(backup_url=tmp_path.as_uri()), metadata=Base.metadata, actor="pytest")
    tn.schema.init()
    second_cell.owner, second_cell.runtime = fresh_scratch.owner, fresh_scratch.runtime
    tn.cells.add("second", second_cell.server_url, capacity=10)
    yield tn
    with psycopg.connect(fresh_scratch.url) as conn:
        made = conn.execute(
            "SELECT database_name FROM tenantry.placements WHERE cell = 'second' AND database_name IS NOT NULL"
        ).fetchall()
    tn.close()
    with psycopg.connect(second_cell.server_url, autocommit=True) as conn:
        for (name,) in made:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_a_clone_restored_onto_another_server_and_version(cell_tn: Tenantry) -> None:
    tenant = cell_tn.tenants.create("origin")
    seed(cell_tn, tenant, projects=3)
    backup = cell_tn.backups.create("origin")
    report = cell_tn.backups.restore(backup.id, as_slug="elsewhere", plan="enterprise", cell="second")
    assert report["cell"] == "second"
    placement = cell_tn.tenants.placement("elsewhere")
    assert placement is not None and placement.cell == "second"
    assert rows(cell_tn, "elsewhere") == rows(cell_tn, "origin")
    versions = set()
    for cell in ("primary", "second"):
        with psycopg.connect(cell_tn.plane.cell_admin_url(cell)) as conn:
            versions.add(conn.info.server_version // 10000)
    assert len(versions) == 2  # two majors: the archive crossed versions
