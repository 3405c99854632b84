"""A binding is only as good as the facts it was made from.

A binding (``with tn.tenant(...)``: a websocket, a long job, a request queued for seconds) that
was made before its tenant moved or was suspended is refused by the database from its next
statement on, on every tier, in every process: never a silent read or write of the old place.
Each test has a negative control: without the fence, the same stale binding reads or writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tenantry import Tenant, TenantMoved, Tenantry, TenantSuspended
from tenantry.core.placement import Placement
from tenantry.services import move_steps
from tenantry.services.provisioning import database_url

TIERS = {"pooled": "free", "schema": "business", "database": "enterprise"}
#: (from, to): every tier is left once
MOVES = [("free", "business"), ("business", "enterprise"), ("enterprise", "free")]


@pytest.fixture(scope="module")
def other(tn: Tenantry) -> Iterator[Tenantry]:
    """Another process's Tenantry on the same catalog (its own pools and caches)."""
    second = Tenantry(tn.settings, metadata=tn.metadata, actor="other-process")
    yield second
    second.close()


def _write(tn: Tenantry, name: str) -> None:
    with tn.connection() as conn:
        conn.execute("INSERT INTO projects (name) VALUES (%s)", (name,))


def _names(tn: Tenantry) -> set[str]:
    with tn.connection() as conn:
        return {r[0] for r in conn.execute("SELECT name FROM projects").fetchall()}


def _admin_in(tn: Tenantry, place: Placement, query: str, params: Any = ()) -> list[tuple[Any, ...]]:
    url = database_url(tn.cells.admin_url(place.cell), place.database)
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def _unfence(tn: Tenantry, place: Placement) -> None:
    _admin_in(tn, place, "DELETE FROM tenantry.fences WHERE tenant_id = %s", (place.tenant_id,))


@pytest.mark.parametrize("tier", sorted(TIERS))
def test_a_suspension_refuses_bindings_already_open_from_their_next_statement(
    tn: Tenantry, other: Tenantry, make_tenant: Callable[..., Tenant], tier: str
) -> None:
    tenant = make_tenant("fsus", plan=TIERS[tier])
    with tn.tenant(tenant.slug):
        _write(tn, "before")
        with pytest.raises(TenantSuspended, match="suspended"):
            with tn.connection() as conn:  # a transaction open across the suspension
                assert conn.execute("SELECT count(*) FROM projects").fetchone() == (1,)
                other.tenants.suspend(tenant.slug)  # another process
                conn.execute("SELECT count(*) FROM projects")
        with pytest.raises(TenantSuspended):
            _write(tn, "after")
        with pytest.raises(TenantSuspended):
            _names(tn)
    other.tenants.resume(tenant.slug)
    with tn.tenant(tenant.slug):
        assert _names(tn) == {"before"}  # nothing was written meanwhile


@pytest.mark.parametrize("tier", sorted(TIERS))
def test_negative_control_without_its_fence_a_suspended_tenants_open_binding_writes_on(
    tn: Tenantry, other: Tenantry, make_tenant: Callable[..., Tenant], tier: str
) -> None:
    tenant = make_tenant("fsusc", plan=TIERS[tier])
    place = tn.tenants.placement(tenant.slug)
    assert place is not None
    with tn.tenant(tenant.slug):
        other.tenants.suspend(tenant.slug)
        _unfence(tn, place)
        _write(tn, "written while suspended")  # the leak the fence closes
        assert _names(tn) == {"written while suspended"}
    other.tenants.resume(tenant.slug)


@pytest.mark.parametrize(("source", "target"), MOVES)
def test_a_binding_made_before_a_move_is_refused_from_the_flip_on(
    tn: Tenantry, make_tenant: Callable[..., Tenant], source: str, target: str
) -> None:
    tenant = make_tenant("fmove", plan=source)
    old = tn.tenants.placement(tenant.slug)
    assert old is not None
    refused: list[str] = []

    def between_flip_and_cleanup(step: str) -> None:
        if step == "cleanup":  # flipped and fenced; the old copy is still there
            with pytest.raises(TenantMoved):
                _names(tn)
            refused.append(step)

    with tn.tenant(tenant.slug):
        _write(tn, "before")
        tn.tenants.move(tenant.slug, plan=target, on_step=between_flip_and_cleanup)
        assert refused == ["cleanup"]
        if old.database is None:  # the old place is still there (shared tables, a schema's database)
            with pytest.raises(TenantMoved):
                _write(tn, "stale")
    with tn.tenant(tenant.slug):
        assert _names(tn) == {"before"}
    if old.isolation.value == "pooled":  # (a schema left behind is dropped by the cleanup)
        table = sql.Identifier(old.schema, "projects").as_string()
        assert _admin_in(tn, old, f"SELECT name FROM {table} WHERE tenant_id = %s", (tenant.id,)) == []


def test_negative_control_without_the_fence_a_stale_binding_writes_into_the_old_pooled_table(
    tn: Tenantry, make_tenant: Callable[..., Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(move_steps, "fence_placement", lambda *args: None)
    tenant = make_tenant("fmovec")
    old = tn.tenants.placement(tenant.slug)
    assert old is not None
    with tn.tenant(tenant.slug):
        tn.tenants.move(tenant.slug, plan="business")
        _write(tn, "lost")  # lands in the shared table the tenant left
    table = sql.Identifier(old.schema, "projects").as_string()
    assert _admin_in(tn, old, f"SELECT name FROM {table} WHERE tenant_id = %s", (tenant.id,)) == [("lost",)]
    _admin_in(tn, old, f"DELETE FROM {table} WHERE tenant_id = %s", (tenant.id,))


def test_a_forged_epoch_is_refused(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    """The epoch is signed: SQL cannot raise its own binding's epoch above a fence."""
    tenant = make_tenant("fforge")
    with tn.tenant(tenant.slug), tn.connection() as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not set by tenantry"):
            conn.execute("SELECT set_config('tenantry.tenant_epoch', '999999', true); SELECT count(*) FROM projects")
        conn.rollback()


def test_control_plane_work_passes_every_fence(
    tn: Tenantry, other: Tenantry, make_tenant: Callable[..., Tenant]
) -> None:
    """Deleting a suspended, fenced tenant still removes its rows (the owner acts as the tenant
    at the control-plane epoch)."""
    tenant = make_tenant("fdel")
    with tn.tenant(tenant.slug):
        _write(tn, "doomed")
    other.tenants.suspend(tenant.slug)
    counts = tn.tenants.delete(tenant.slug)
    assert sum(counts.values()) >= 1
    assert tn.tenants.get(tenant.id).epoch > 1
    assert uuid.UUID(str(tenant.id)) == tenant.id


def test_the_fence_check_ignores_a_hostile_search_path(
    tn: Tenantry, other: Tenantry, make_tenant: Callable[..., Tenant]
) -> None:
    """``tenantry.check_binding`` and ``tenantry.check_marker`` are security definers without a
    SET clause (it cost ~40 µs a bind): every name in them is qualified. In a transaction whose
    search path puts its own temporary types first (``uuid``, ``text``, ``int8`` as domains),
    the check the context makes after a fence still refuses the stale binding."""
    tenant = make_tenant("fhost")
    with tn.admin() as admin:
        config = admin.execute(
            "SELECT proname, proconfig FROM pg_proc WHERE oid IN"
            " ('tenantry.check_binding(text, text)'::regprocedure, 'tenantry.check_marker(text)'::regprocedure)"
        ).fetchall()
    assert sorted(config) == [("check_binding", None), ("check_marker", None)]
    with tn.tenant(tenant.slug):
        _write(tn, "before")
        with pytest.raises(TenantSuspended), tn.connection() as conn:
            assert conn.execute("SELECT count(*) FROM projects WHERE %s", [True]).fetchone() == (1,)
            for name, base in (("uuid", "text"), ("text", "varchar"), ("int8", "numeric")):
                conn.execute(sql.SQL("CREATE DOMAIN pg_temp.{} AS pg_catalog.{}").format(
                    sql.Identifier(name), sql.Identifier(base)))  # fmt: skip
            conn.execute("SET LOCAL search_path = pg_temp, public, pg_catalog")
            other.tenants.suspend(tenant.slug)  # another process
            conn.execute("SELECT count(*) FROM tenant_data.projects")
    other.tenants.resume(tenant.slug)
