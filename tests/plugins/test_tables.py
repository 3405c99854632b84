"""A plugin's tables are app tables: in every placement of every tier, under the same
row-level security, moved with the tenant, deleted with it, and part of what spares are
built for. One tenant's plugin rows never answer for another."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.orm import Session

from tenantry import ConfigurationError, IsolationError, NoTenantBound, Tenant, Tenantry
from tenantry.services import spare_keys
from tenantry.testing import TIER_PLANS
from tests.model_app import Base
from tests.plugins.sample_plugins import Note, Notes
from tests.support import Scratch


def _add(tn: Tenantry, tenant: Tenant, *bodies: str) -> list[int]:
    with tn.tenant(tenant.slug), Session(tn.engine()) as session, session.begin():
        notes = [Note(body=b) for b in bodies]
        session.add_all(notes)
        session.flush()
        return [n.id for n in notes]


def _bodies(tn: Tenantry, tenant: Tenant) -> list[str]:
    with tn.tenant(tenant.slug), Session(tn.engine()) as session:
        return sorted(session.scalars(sa.select(Note.body)))


def _stored(tn: Tenantry, tenant: Tenant) -> list[tuple[Any, ...]]:
    """The tenant's notes as they are, read by the admin (no RLS) where its placement is."""
    placement = tn.tenants.placement(tenant.slug)
    assert placement is not None
    from tenantry.services.provisioning import database_url

    url = database_url(tn.cells.admin_url(placement.cell), placement.database)
    with psycopg.connect(url) as conn:
        return conn.execute(
            sql.SQL("SELECT tenant_id, body FROM {} WHERE tenant_id = %s ORDER BY id").format(
                sql.Identifier(placement.schema, "notes_items")
            ),
            (tenant.id,),
        ).fetchall()


def test_two_tenants_on_one_tier_never_meet_in_plugin_tables(ptn: Tenantry, tier_tenant: Callable[..., Tenant]) -> None:
    a, b = tier_tenant(), tier_tenant()
    _add(ptn, a, "a1", "a2")
    [b_id] = _add(ptn, b, "b1")
    with ptn.tenant(a.slug), ptn.connection() as conn:
        assert sorted(r[0] for r in conn.execute("SELECT body FROM notes_items")) == ["a1", "a2"]
        assert conn.execute("SELECT count(*) FROM notes_items WHERE tenant_id = %s", (b.id,)).fetchone() == (0,)
        assert conn.execute("UPDATE notes_items SET body = body || '!'").rowcount == 2
        assert conn.execute("DELETE FROM notes_items WHERE body = 'b1'").rowcount == 0
    with pytest.raises(IsolationError, match="row-level security"):
        with ptn.tenant(a.slug), ptn.connection() as conn:
            conn.execute(
                "INSERT INTO notes_items (tenant_id, id, body) VALUES (%s, %s, 'stolen')"
                " ON CONFLICT (tenant_id, id) DO UPDATE SET body = excluded.body",
                (b.id, b_id),
            )
    with ptn.tenant(a.slug), Session(ptn.engine()) as session:
        assert session.get(Note, (b.id, b_id)) is None
    assert _bodies(ptn, a) == ["a1!", "a2!"] and _bodies(ptn, b) == ["b1"]
    assert _stored(ptn, b) == [(b.id, "b1")] and _stored(ptn, a) == [(a.id, "a1!"), (a.id, "a2!")]


def test_no_tenant_bound_sees_and_writes_no_plugin_rows(ptn: Tenantry, tier_tenant: Callable[..., Tenant]) -> None:
    t = tier_tenant()
    _add(ptn, t, "hidden")
    placement = ptn.tenants.placement(t.slug)
    assert placement is not None
    with ptn.router.pool(placement.route.pool_key).connection() as conn:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(placement.schema, "notes_items"))
        assert conn.execute(query).fetchone() == (0,)
    with pytest.raises(NoTenantBound):
        with Session(ptn.engine()) as session, session.begin():
            session.add(Note(body="orphan"))
    assert [r[1] for r in _stored(ptn, t)] == ["hidden"]


def test_plugin_tables_are_protected_everywhere(ptn: Tenantry, tier_tenant: Callable[..., Tenant]) -> None:
    tier_tenant()
    assert ptn.schema.unprotected_tables() == []


def test_plugin_rows_move_with_the_tenant(ptn: Tenantry, ptenant: Callable[..., Tenant]) -> None:
    t = ptenant()
    _add(ptn, t, "one", "two")
    for plan in ("business", "enterprise", "free"):
        report = ptn.tenants.move(t.slug, plan=plan)
        assert report.rows["notes_items"] == 2
        assert _bodies(ptn, t) == ["one", "two"]
    assert [r[1] for r in _stored(ptn, t)] == ["one", "two"]


def test_plugin_rows_go_when_the_tenant_is_deleted(
    ptn: Tenantry, ptenant: Callable[..., Tenant], plugins_db: Scratch
) -> None:
    t, keep = ptenant(), ptenant()
    _add(ptn, t, "doomed")
    _add(ptn, keep, "kept")
    counts = ptn.tenants.delete(t.slug)
    assert counts[f"{ptn.settings.pooled_schema}.notes_items"] == 1
    with psycopg.connect(plugins_db.url) as conn:
        rows = conn.execute(
            sql.SQL("SELECT tenant_id FROM {}").format(sql.Identifier(ptn.settings.pooled_schema, "notes_items"))
        ).fetchall()
    assert (t.id,) not in rows and (keep.id,) in rows


def test_spares_are_built_for_the_apps_and_the_plugins_tables(ptn: Tenantry) -> None:
    without = spare_keys.fingerprint(Base.metadata)
    with_plugins = spare_keys.wanted(ptn.plane).fingerprint
    assert without != with_plugins
    assert with_plugins == spare_keys.fingerprint(ptn.plane.app_metadata())


def test_deploy_adds_a_new_plugins_tables_to_existing_placements(plugins_db: Scratch, server_url: str) -> None:
    """An app that gains a plugin later: its existing schema- and database-tier tenants lack the
    tables until ``tn.plugins.deploy()``; a rerun changes nothing."""
    db = Scratch(server_url)
    try:
        before = Tenantry(db.settings(), metadata=Base.metadata, actor="pytest")
        before.schema.init()
        tenants = [before.tenants.create(f"d-{tier}", plan=plan) for tier, plan in TIER_PLANS.items()]
        before.close()
        after = Tenantry(db.settings(), metadata=Base.metadata, actor="pytest", plugins=[Notes()])
        after.schema.init()  # the pooled tables
        with pytest.raises(sa.exc.ProgrammingError, match='relation "notes_items" does not exist'):
            _add(after, tenants[1], "too early")  # the schema tier has no notes table yet
        done = after.plugins.deploy()
        assert {d["placement"] for d in done} == {"pooled", "d-schema", "d-database"}
        assert all(d["created"] == ["notes_items"] for d in done if d["placement"] != "pooled")
        assert all(d["created"] == [] for d in after.plugins.deploy())
        for tenant in tenants:
            _add(after, tenant, f"hello {tenant.slug}")
            assert _bodies(after, tenant) == [f"hello {tenant.slug}"]
        assert after.schema.unprotected_tables() == []
        after.close()
    finally:
        db.drop()


def test_deploy_refuses_when_the_app_uses_migrations(ptn: Tenantry) -> None:
    versioned = Tenantry(
        ptn.settings.with_changes(migrations="/nonexistent"), metadata=Base.metadata, plugins=[Notes()]
    )
    with pytest.raises(ConfigurationError, match="add the plugins' tables with a revision"):
        versioned.plugins.deploy()
    versioned.close()
