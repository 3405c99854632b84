"""The kept counts of placements per cell (catalog 0011) equal a real count.

Choosing a cell reads ``tenantry.cell_counts`` instead of counting every placement; triggers on
``tenantry.placements`` keep it in the transaction of each change. The moves between cells and
the moves killed midway are checked in ``test_cells.py`` and ``test_moves.py`` with
:func:`assert_counts_match`.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from tenantry import Tenantry
from tenantry.db.catalog import migrate_catalog
from tests.model_app import Base

KEPT = "SELECT cell, sum(placements)::bigint FROM tenantry.cell_counts GROUP BY cell HAVING sum(placements) <> 0"
REAL = "SELECT cell, count(*) FROM tenantry.placements WHERE status <> 'retired' GROUP BY cell"


def assert_counts_match(url: str) -> dict[str, int]:
    """The kept counts equal a count of the placements (read in one snapshot); returns them."""
    with psycopg.connect(url) as conn:
        kept = dict(conn.execute(KEPT).fetchall())
        real = dict(conn.execute(REAL).fetchall())
    assert kept == real
    return kept


def _shown(tn: Tenantry) -> int:
    return {c.name: c.placements for c in tn.cells.list()}["primary"]


def test_counts_match_after_a_mix_of_operations(tn: Tenantry, scratch: Any) -> None:
    before = assert_counts_match(scratch.url).get("primary", 0)
    tag = uuid.uuid4().hex[:6]
    # concurrent creates (each thread its own backend: different slots of the same cell)
    with ThreadPoolExecutor(4) as pool:
        made = list(pool.map(lambda n: tn.tenants.create(f"cc-{tag}-{n}"), range(8)))
    schema = tn.tenants.create(f"cc-{tag}-s", plan="business")
    assert _shown(tn) == before + 9
    tn.tenants.suspend(made[0].slug)
    tn.tenants.resume(made[0].slug)
    tn.tenants.archive(made[1].slug)
    tn.tenants.delete(made[1].slug)
    tn.tenants.delete(schema.slug)
    tn.tenants.delete(made[1].id)  # a rerun of a delete counts nothing twice
    # a change that fails midway is rolled back with its count
    with psycopg.connect(scratch.url) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        with conn.transaction():
            conn.execute("UPDATE tenantry.placements SET status = 'retired' WHERE tenant_id = %s", (made[2].id,))
            conn.execute(  # a second active placement of made[3]: refused by placements_one_active
                "INSERT INTO tenantry.placements (tenant_id, cell, isolation, schema_name, status)"
                " SELECT tenant_id, cell, isolation, schema_name, 'active' FROM tenantry.placements"
                " WHERE tenant_id = %s",
                (made[3].id,),
            )
    # a placement row changed or removed by hand (repairs) is counted too
    with psycopg.connect(scratch.url) as conn:
        conn.execute("UPDATE tenantry.placements SET app_revision = 'x' WHERE tenant_id = %s", (made[4].id,))
        conn.execute("UPDATE tenantry.placements SET status = 'retired' WHERE tenant_id = %s", (made[5].id,))
        conn.execute("UPDATE tenantry.placements SET status = 'building' WHERE tenant_id = %s", (made[5].id,))
        conn.execute("DELETE FROM tenantry.placements WHERE tenant_id = %s AND status = 'retired'", (schema.id,))
    assert assert_counts_match(scratch.url)["primary"] == before + 7
    assert _shown(tn) == before + 7


def test_the_upgrade_counts_the_placements_there_are(fresh_scratch: Any) -> None:
    tn = Tenantry(fresh_scratch.settings(), metadata=Base.metadata, actor="pytest")
    try:
        tn.schema.init()
        for n in range(3):
            tn.tenants.create(f"up-{n}")
        tn.tenants.delete("up-0")
        # the catalog as version 10 left it, with these placements
        with psycopg.connect(fresh_scratch.url, autocommit=True) as conn, conn.transaction():
            conn.execute(
                "DROP TABLE tenantry.cell_counts; DROP FUNCTION tenantry.count_placements() CASCADE;"
                " DROP INDEX tenantry.placements_tenant, tenantry.tenants_list, tenantry.tenants_list_plan,"
                " tenantry.tenants_list_status; DELETE FROM tenantry.schema_migrations WHERE version = 11"
            )
            applied = migrate_catalog(
                conn,
                owner=fresh_scratch.owner,
                runtime=fresh_scratch.runtime,
                reader=fresh_scratch.reader,
                pooled_schema=tn.settings.pooled_schema,
                passwords={},
            )
        assert applied == ["0011_scale.sql"]
        assert assert_counts_match(fresh_scratch.url) == {"primary": 2}
        tn.tenants.create("up-3")
        assert assert_counts_match(fresh_scratch.url) == {"primary": 3}
    finally:
        tn.close()
