"""``tenantry.testing.ScratchCatalog``: everything a scratch catalog made is gone after it, the
databases its database-tier tenants got and the extra ones included."""

from __future__ import annotations

import psycopg

from tenantry import Tenantry
from tenantry.testing import TIER_PLANS, ScratchCatalog
from tests.model_app import Base


def test_a_scratch_catalog_leaves_nothing_behind(server_url: str) -> None:
    with ScratchCatalog(server_url, prefix="tenantry_scratch_test") as scratch:
        extra_url = scratch.database("extra")
        with Tenantry(scratch.settings(), metadata=Base.metadata, actor="pytest") as tn:
            tn.schema.init()
            tenant = tn.tenants.create("scratch-db", plan=TIER_PLANS["database"])
            placement = tn.tenants.placement(tenant.slug)
            assert placement is not None and placement.database is not None
        made = [scratch.dbname, f"{scratch.dbname}_extra", placement.database]
        assert sorted(scratch.tenant_databases()) == [placement.database]
        with psycopg.connect(extra_url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (f"{scratch.dbname}_extra",)
    with psycopg.connect(server_url) as conn:
        left = conn.execute("SELECT datname FROM pg_database WHERE datname = ANY (%s)", (made,)).fetchall()
        roles = conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY (%s)", ([scratch.owner, scratch.runtime],)
        ).fetchall()
    assert left == [] and roles == []
    scratch.drop()  # idempotent
