"""Switching plugins on and off per plan and per tenant: the tenant's setting wins, bad input
saves nothing, every change is audited, and running processes see it within a second without
one tenant's answer ever serving another."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import psycopg
import pytest

from tenantry import (
    InvalidInput,
    NoTenantBound,
    PlanNotFound,
    PluginNotFound,
    Tenant,
    TenantNotFound,
    Tenantry,
)
from tenantry.core.events import EventKind
from tests.support import Scratch

WITHIN = 1.0


def _rows(db: Scratch) -> list[tuple[object, ...]]:
    with psycopg.connect(db.url) as conn:
        return conn.execute(
            "SELECT plugin, plan, tenant_id, enabled FROM tenantry.plugin_enablement ORDER BY 1, 2, 3"
        ).fetchall()


def _audit(db: Scratch) -> int:
    with psycopg.connect(db.url) as conn:
        row = conn.execute("SELECT count(*) FROM tenantry.audit_log WHERE action LIKE 'plugin.%'").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def plan(plugins_db: Scratch) -> str:
    """A pooled plan of the test's own, so plan-wide settings touch no other test."""
    name = f"p-{uuid.uuid4().hex[:10]}"
    with psycopg.connect(plugins_db.url, autocommit=True) as conn:
        conn.execute("INSERT INTO tenantry.plans (name, isolation) VALUES (%s, 'pooled')", (name,))
    return name


def test_off_by_default_on_by_plan_and_the_tenant_wins(
    ptn: Tenantry, ptenant: Callable[..., Tenant], plan: str
) -> None:
    a, b, c = ptenant(plan=plan), ptenant(plan=plan), ptenant(plan=plan)
    with ptn.tenant(a.slug):
        assert not ptn.plugins.is_enabled("notes") and ptn.plugins.enabled_for() == []
    assert ptn.plugins.resolve("notes", tenant=a.slug).to_dict() == {
        "plugin": "notes",
        "enabled": False,
        "source": "default",
    }
    ptn.plugins.enable("notes", plan=plan)
    ptn.plugins.disable("notes", tenant=b.slug)  # off for b although its plan has it on
    ptn.plugins.enable("webhooks", tenant=c.slug)  # on for c alone
    for tenant, notes, webhooks in ((a, True, False), (b, False, False), (c, True, True)):
        with ptn.tenant(tenant.slug):
            assert ptn.plugins.is_enabled("notes") is notes
            assert ptn.plugins.is_enabled("webhooks") is webhooks
        assert ptn.plugins.is_enabled("notes", tenant=tenant.id) is notes
    assert ptn.plugins.resolve("notes", tenant=b.slug).source == "tenant"
    assert ptn.plugins.resolve("notes", tenant=a.slug).source == "plan"
    assert ptn.plugins.enabled_for(c.slug) == ["notes", "webhooks"]
    ptn.plugins.reset("notes", tenant=b.slug)  # b follows its plan again
    with ptn.tenant(b.slug):
        assert ptn.plugins.is_enabled("notes")
    ptn.plugins.disable("notes", plan=plan)
    with ptn.tenant(a.slug):
        assert not ptn.plugins.is_enabled("notes")


def test_resolve_all_names_every_known_plugin_and_those_set_for_the_tenant(
    ptn: Tenantry, ptenant: Callable[..., Tenant], plan: str, plugins_db: Scratch
) -> None:
    a, b = ptenant(plan=plan), ptenant(plan=plan)
    gone = f"gone-{uuid.uuid4().hex[:8]}"  # set in the catalog, neither registered nor installed
    with psycopg.connect(plugins_db.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO tenantry.plugin_enablement (plugin, tenant_id, enabled, updated_by) VALUES (%s, %s, true, 'x')",
            (gone, a.id),
        )
    ptn.plugins.enable("notes", plan=plan)
    ptn.plugins.disable("notes", tenant=b.slug)
    for_a, for_b = ptn.plugins.resolve_all(tenant=a.slug), ptn.plugins.resolve_all(tenant=b.id)
    assert list(for_a) == sorted(for_a) and ptn.plugins.known() <= set(for_a)
    assert for_a["notes"].to_dict() == {"plugin": "notes", "enabled": True, "source": "plan"}
    assert for_b["notes"].to_dict() == {"plugin": "notes", "enabled": False, "source": "tenant"}
    assert for_a[gone].to_dict() == {"plugin": gone, "enabled": True, "source": "tenant"}
    assert gone not in for_b  # another tenant's setting is not b's business
    assert for_a["recorder"].source == "default" and not for_a["recorder"].enabled
    with pytest.raises(TenantNotFound):
        ptn.plugins.resolve_all(tenant=uuid.uuid4())


def test_writes_are_audited_and_idempotent(ptn: Tenantry, ptenant: Callable[..., Tenant], plugins_db: Scratch) -> None:
    tenant = ptenant()
    before = _audit(plugins_db)
    first = ptn.plugins.enable("notes", tenant=tenant.slug)
    assert first.changed and (first.before, first.after) == (None, True)
    again = ptn.plugins.enable("notes", tenant=tenant.slug)
    assert not again.changed  # a no-op: no audit entry, no notice
    assert _audit(plugins_db) == before + 1
    entry = ptn.audit.list(target_type="plugin", target="notes", limit=1)[0]
    assert entry.action == "plugin.enable" and entry.after == {
        "scope": "tenant",
        "target": tenant.slug,
        "plan": "free",
        "tenant_id": str(tenant.id),
        "enabled": True,
    }
    ptn.plugins.reset("notes", tenant=tenant.slug)
    assert ptn.audit.list(target_type="plugin", target="notes", limit=1)[0].action == "plugin.reset"
    assert not ptn.plugins.reset("notes", tenant=tenant.slug).changed


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda tn, t: tn.plugins.enable("nope", tenant=t.slug),
            PluginNotFound,
            "no plugin 'nope' is registered or installed",
        ),
        (
            lambda tn, t: tn.plugins.disable("nope", tenant=t.slug),
            PluginNotFound,
            r"known: [^)]*exploder, notes, [^)]*recorder, [^)]*webhooks",
        ),
        (lambda tn, t: tn.plugins.enable("Bad Name", tenant=t.slug), InvalidInput, "plugin name"),
        (lambda tn, t: tn.plugins.enable("notes'; drop table x;--", tenant=t.slug), InvalidInput, "plugin name"),
        (lambda tn, t: tn.plugins.enable("notes", tenant="no-such-tenant"), TenantNotFound, "no-such-tenant"),
        (lambda tn, t: tn.plugins.enable("notes", tenant="../x"), TenantNotFound, "x"),
        (lambda tn, t: tn.plugins.enable("notes", plan="no-such-plan"), PlanNotFound, "no-such-plan"),
        (lambda tn, t: tn.plugins.enable("notes"), InvalidInput, "exactly one"),
        (lambda tn, t: tn.plugins.enable("notes", tenant=t.slug, plan="free"), InvalidInput, "exactly one"),
    ],
)
def test_bad_input_saves_nothing(
    ptn: Tenantry,
    ptenant: Callable[..., Tenant],
    plugins_db: Scratch,
    call: Callable[..., object],
    error: type[Exception],
    message: str,
) -> None:
    tenant = ptenant()
    rows, audited = _rows(plugins_db), _audit(plugins_db)
    with pytest.raises(error, match=message):
        call(ptn, tenant)
    assert _rows(plugins_db) == rows and _audit(plugins_db) == audited


def test_a_deleted_tenant_cannot_be_given_plugins(
    ptn: Tenantry, ptenant: Callable[..., Tenant], plugins_db: Scratch
) -> None:
    tenant = ptenant()
    ptn.tenants.delete(tenant.slug)
    rows = _rows(plugins_db)
    with pytest.raises(TenantNotFound):
        ptn.plugins.enable("notes", tenant=tenant.id)
    assert _rows(plugins_db) == rows


def test_a_plugin_known_only_as_installed_can_be_switched_on(
    ptn: Tenantry, ptenant: Callable[..., Tenant], plugins_db: Scratch
) -> None:
    from tenantry import Tenantry as T

    cli_like = T(plugins_db.settings(), actor="cli")  # no plugins registered, as the CLI runs
    try:
        tenant = ptenant()
        assert "webhooks" in cli_like.plugins.known() and "notes" not in cli_like.plugins.known()
        cli_like.plugins.enable("webhooks", tenant=tenant.slug)
        with pytest.raises(PluginNotFound):
            cli_like.plugins.enable("notes", tenant=tenant.slug)  # registered in the app, unknown here
        with cli_like.tenant(tenant.slug):
            assert cli_like.plugins.enabled_for() == ["webhooks"]
            assert not cli_like.plugins.is_enabled("webhooks")  # switched on, but it does not run here
        with ptn.tenant(tenant.slug):
            assert ptn.plugins.is_enabled("webhooks")
    finally:
        cli_like.close()


def test_no_tenant_bound(ptn: Tenantry) -> None:
    with pytest.raises(NoTenantBound):
        ptn.plugins.is_enabled("notes")


def _warm(tn: Tenantry, slug: str) -> None:
    with tn.tenant(slug):
        tn.plugins.is_enabled("notes")
    assert tn.plane._listener is not None and tn.plane._listener.listening.wait(10)
    with tn.tenant(slug):
        tn.plugins.is_enabled("notes")
        assert tn.plugins._cache.fresh(tn.plugins._tenant_id(slug)) is not None


def _until(check: Callable[[], bool], limit: float = 5.0) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > limit:
            pytest.fail(f"the change did not show within {limit:g} s")
        time.sleep(0.005)
    return time.monotonic() - start


@pytest.mark.parametrize("scope", ["tenant", "plan"])
def test_a_change_reaches_another_process_within_a_second(
    ptn: Tenantry, other: Tenantry, ptenant: Callable[..., Tenant], plan: str, scope: str
) -> None:
    a, b = ptenant(plan=plan), ptenant(plan=plan)
    _warm(other, a.slug)
    _warm(other, b.slug)
    if scope == "tenant":
        ptn.plugins.enable("notes", tenant=a.slug)
    else:
        ptn.plugins.enable("notes", plan=plan)

    def seen() -> bool:
        with other.tenant(a.slug):
            return other.plugins.is_enabled("notes")

    assert _until(seen) < WITHIN
    with other.tenant(b.slug):
        assert other.plugins.is_enabled("notes") is (scope == "plan")


def test_a_plan_change_by_a_move_is_seen(
    ptn: Tenantry, other: Tenantry, ptenant: Callable[..., Tenant], plan: str
) -> None:
    tenant = ptenant(plan=plan)
    ptn.plugins.enable("notes", plan="business")
    _warm(other, tenant.slug)
    with other.tenant(tenant.slug):
        assert not other.plugins.is_enabled("notes")
    ptn.tenants.move(tenant.slug, plan="business")

    def seen() -> bool:
        with other.tenant(tenant.slug):
            return other.plugins.is_enabled("notes")

    assert _until(seen) < WITHIN
    ptn.plugins.reset("notes", plan="business")


def test_the_cache_never_answers_for_another_tenant(ptn: Tenantry, ptenant: Callable[..., Tenant]) -> None:
    a, b = ptenant(), ptenant()
    ptn.plugins.enable("notes", tenant=a.slug)
    cache = ptn.plugins._cache
    planted = None
    for _ in range(20):  # a late notice of the tenants' creation may drop the warm entry once
        with ptn.tenant(a.slug):
            assert ptn.plugins.is_enabled("notes")
        planted = cache.entries.peek(a.id)
        if planted is not None:
            break
        time.sleep(0.05)
    # plant a's entry under b's id, as a bug keying the cache wrongly would: b must not get a's answer
    assert planted is not None and cache.entries.put(b.id, planted, cache.entries.begin())
    with ptn.tenant(b.slug):
        assert not ptn.plugins.is_enabled("notes")
    cache.on_reset()


def test_the_cache_is_not_trusted_without_the_listener(
    ptn: Tenantry, other: Tenantry, ptenant: Callable[..., Tenant]
) -> None:
    tenant = ptenant()
    _warm(other, tenant.slug)
    assert other.plane._listener is not None
    other.plane._listener.listening.clear()  # as while it reconnects
    other.plane._on_reset()
    with other.tenant(tenant.slug):
        assert not other.plugins.is_enabled("notes")
    assert tenant.id in other.plugins._cache.entries  # loaded and kept, but not served while it is down
    assert other.plugins._cache.fresh(tenant.id) is None
    other.plane._listener.listening.set()


def test_a_load_racing_an_event_is_not_kept(other: Tenantry, ptenant: Callable[..., Tenant]) -> None:
    tenant = ptenant()
    cache = other.plugins._cache
    real = other.plane.catalog_reader  # (the request path's catalog reads)

    def read_then_event():  # type: ignore[no-untyped-def]
        cache.on_event(EventKind.PLUGIN, f"tenant:{tenant.id}")  # a notice arrives while the catalog is read
        return real()

    other.plane.catalog_reader = read_then_event  # type: ignore[method-assign]
    try:
        cache.load(tenant.id)
    finally:
        del other.plane.catalog_reader
    assert tenant.id not in cache.entries
