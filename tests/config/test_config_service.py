"""Config layers through the service: layering, overrides in time, validation that saves
nothing, history, diff, rollback, concurrent writes, audit."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tenantry import ConfigInvalid, ConfigurationError, InvalidInput, NotFound, TenantNotFound, Tenantry
from tests.config.app_config import AppConfig, BillingSection
from tests.config.support import versions_count


def test_layers_resolve_defaults_plan_tenant_override(ctn: Tenantry, plan_tenant, make_plan) -> None:
    plan = make_plan()
    t = plan_tenant(plan)
    other = plan_tenant(plan)
    with ctn.tenant(t.slug):
        assert ctn.config.current(AppConfig).model_dump() == AppConfig().model_dump()  # schema defaults only
    ctn.config.set("limits.max_projects", 20, plan=plan)
    ctn.config.set("branding.theme", "dark", plan=plan)
    ctn.config.set("limits.max_projects", 50, tenant=t.slug)
    ctn.config.set("welcome", "hi acme", tenant=t.id, expires_in=timedelta(hours=1))
    with ctn.tenant(t.slug):
        config = ctn.config.current(AppConfig)
        assert (config.limits.max_projects, config.limits.max_users) == (50, 5)
        assert (config.branding.theme, config.welcome) == ("dark", "hi acme")
    with ctn.tenant(other.slug):
        config = ctn.config.current(AppConfig)
        assert (config.limits.max_projects, config.branding.theme, config.welcome) == (20, "dark", "hello")
    got = ctn.config.get(tenant=t.slug, key="limits.max_projects")
    assert (got.value, got.source) == (50, "tenant")
    assert ctn.config.get(tenant=t.slug, key="branding.theme").source == "plan"
    assert ctn.config.get(tenant=t.slug, key="welcome").source == "override"
    assert ctn.config.get(tenant=t.slug, key="limits.max_users").source == "default"
    assert ctn.config.get(plan=plan).effective["limits"]["max_projects"] == 20
    with pytest.raises(NotFound, match="no key"):
        ctn.config.get(tenant=t.slug, key="limits.nothing")


def test_overrides_expire_at_read_time(ctn: Tenantry, plan_tenant) -> None:
    t = plan_tenant()
    ctn.config.set("limits.max_projects", 3, tenant=t.slug)
    with ctn.tenant(t.slug):
        assert ctn.config.current(AppConfig).limits.max_projects == 3  # cache warm
        expires = datetime.now(UTC) + timedelta(milliseconds=600)
        ctn.config.set("limits.max_projects", 300, tenant=t.slug, expires_at=expires)
        assert ctn.config.current(AppConfig).limits.max_projects == 300
        time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)
        # no event announces an expiry: the cached view judges it by the clock
        assert ctn.config.current(AppConfig).limits.max_projects == 3
    with pytest.raises(InvalidInput, match="has passed"):
        ctn.config.set("welcome", "x", tenant=t.slug, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(InvalidInput, match="belong to a tenant"):
        ctn.config.set("welcome", "x", plan=t.plan, expires_in=timedelta(hours=1))
    # ending an override early
    ctn.config.set("welcome", "temp", tenant=t.slug, expires_in=timedelta(hours=1))
    change = ctn.config.unset("welcome", tenant=t.slug, override=True)
    assert change.changed and ctn.config.get(tenant=t.slug, key="welcome").value == "hello"


def test_bad_values_name_the_path_and_save_nothing(ctn: Tenantry, config_db, plan_tenant) -> None:
    t = plan_tenant()
    ctn.config.set("limits.max_projects", 5, tenant=t.slug)
    before = versions_count(config_db.url)
    audit_before = len(ctn.audit_log(target_type="tenant", target=t.slug))
    cases = [
        ("limits.max_projects", "many", "limits.max_projects: Input should be a valid integer"),
        ("limits.max_users", 0, "limits.max_users: Input should be greater than or equal to 1"),
        ("limits.typo", 1, "limits.typo: Extra inputs are not permitted"),
        ("branding.theme", "neon", "branding.theme: Input should be 'light' or 'dark'"),
        ("welcome.deeper", 1, "welcome"),
        ("tags", "not-a-list", "tags: Input should be a valid list"),
    ]
    for key, value, fragment in cases:
        with pytest.raises(ConfigInvalid) as caught:
            ctn.config.set(key, value, tenant=t.slug)
        assert any(fragment in p for p in caught.value.problems) or fragment in str(caught.value), caught.value
    with pytest.raises(ConfigInvalid, match="limits.max_users"):
        ctn.config.set("limits.max_users", -1, tenant=t.slug, expires_in=timedelta(minutes=5))
    with pytest.raises(ConfigInvalid, match="limits.max_projects"):
        ctn.config.replace({"limits": {"max_projects": None}}, tenant=t.slug)
    with pytest.raises(InvalidInput, match="not plain JSON"):
        ctn.config.set("welcome", float("inf"), tenant=t.slug)
    with pytest.raises(InvalidInput, match="config key"):
        ctn.config.set("limits..x", 1, tenant=t.slug)
    assert versions_count(config_db.url) == before
    assert len(ctn.audit_log(target_type="tenant", target=t.slug)) == audit_before
    assert ctn.config.get(tenant=t.slug).document == {"limits": {"max_projects": 5}}


def test_a_plan_write_that_would_break_a_tenant_is_refused(ctn: Tenantry, config_db, make_plan, plan_tenant) -> None:
    plan = make_plan()
    fine = plan_tenant(plan, prefix="fine")
    ctn.config.set("tags", ["a"], tenant=fine.slug)
    before = versions_count(config_db.url)
    with pytest.raises(ConfigInvalid) as caught:
        ctn.config.set("limits.max_users", 0, plan=plan)
    assert "plan" in str(caught.value)
    with pytest.raises(ConfigInvalid) as caught:
        ctn.config.set("welcome", {"not": "a string"}, plan=plan)
    assert versions_count(config_db.url) == before


def test_a_plan_write_is_checked_against_each_tenant_of_the_plan(ctn: Tenantry, make_plan, plan_tenant) -> None:
    class Strict(AppConfig):
        """max_projects may not exceed max_users * 10 (a cross-field rule)."""

        def model_post_init(self, __context: object) -> None:
            if self.limits.max_projects > self.limits.max_users * 10:
                raise ValueError("limits.max_projects may be at most ten times limits.max_users")

    strict = Tenantry(ctn.settings, config=Strict, actor="pytest-strict")
    try:
        plan = make_plan()
        t = plan_tenant(plan, prefix="strict")
        strict.config.set("limits.max_projects", 40, tenant=t.slug)  # 40 <= 5 * 10
        with pytest.raises(ConfigInvalid) as caught:
            strict.config.set("limits.max_users", 3, plan=plan)  # 40 > 30 for that tenant
        assert t.slug in str(caught.value) and f"plan {plan}" in str(caught.value)
        assert strict.config.get(plan=plan).version == 0
    finally:
        strict.close()


def test_history_diff_rollback(ctn: Tenantry, plan_tenant) -> None:
    t = plan_tenant()
    v1 = ctn.config.set("limits.max_projects", 1, tenant=t.slug, message="first")
    v2 = ctn.config.set("branding.title", "Acme", tenant=t.slug)
    v3 = ctn.config.set("limits.max_projects", 3, tenant=t.slug)
    assert [v1.version, v2.version, v3.version] == [1, 2, 3]
    same = ctn.config.set("limits.max_projects", 3, tenant=t.slug)
    assert not same.changed and same.version == 3  # a no-op writes no version
    history = ctn.config.history(tenant=t.slug)
    assert [h.version for h in history] == [3, 2, 1]
    assert history[-1].message == "first" and history[0].actor == "pytest-config"
    assert history[0].document == {"limits": {"max_projects": 3}, "branding": {"title": "Acme"}}
    changes = ctn.config.diff(1, 3, tenant=t.slug).to_dict()["changes"]
    assert {(c["path"], c["change"]) for c in changes} == {
        ("limits.max_projects", "changed"),
        ("branding.title", "added"),
    }
    assert ctn.config.diff(0, 1, tenant=t.slug).changes[0].path == "limits.max_projects"
    back = ctn.config.rollback(1, tenant=t.slug)
    assert back.version == 4 and back.changed
    assert ctn.config.get(tenant=t.slug).document == {"limits": {"max_projects": 1}}
    assert not ctn.config.rollback(1, tenant=t.slug).changed  # idempotent
    with ctn.tenant(t.slug):
        assert ctn.config.current(AppConfig).branding.title == "Tracker"
    assert ctn.config.rollback(0, tenant=t.slug).version == 5
    assert ctn.config.get(tenant=t.slug).document == {}
    with pytest.raises(NotFound, match="no version 9"):
        ctn.config.rollback(9, tenant=t.slug)
    with pytest.raises(NotFound, match="no version 9"):
        ctn.config.diff(1, 9, tenant=t.slug)
    with pytest.raises(InvalidInput):
        ctn.config.version(-1, tenant=t.slug)
    assert ctn.config.version(2, tenant=t.slug).document == {
        "limits": {"max_projects": 1},
        "branding": {"title": "Acme"},
    }


def test_history_is_append_only(config_db, ctn: Tenantry, plan_tenant) -> None:
    t = plan_tenant()
    ctn.config.set("welcome", "x", tenant=t.slug)
    with psycopg.connect(config_db.url, autocommit=True) as conn:
        for statement in (
            "UPDATE tenantry.config_versions SET actor = 'mallory'",
            "DELETE FROM tenantry.config_versions",
            "TRUNCATE tenantry.config_versions",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(statement)


def test_rollback_is_validated_like_any_write(config_db, ctn: Tenantry, plan_tenant) -> None:
    t = plan_tenant()
    withbilling = Tenantry(config_db.settings(), config=AppConfig, actor="pytest-billing")
    try:
        withbilling.config.sections.add("billing", BillingSection)
        withbilling.config.set("billing.seats", 3, tenant=t.slug)  # v1
        withbilling.config.unset("billing", tenant=t.slug)  # v2
    finally:
        withbilling.close()
    before = versions_count(config_db.url)
    # without the plugin's section, version 1 no longer validates: refused, nothing saved
    with pytest.raises(ConfigInvalid, match="billing: Extra inputs are not permitted"):
        ctn.config.rollback(1, tenant=t.slug)
    assert versions_count(config_db.url) == before
    assert ctn.config.get(tenant=t.slug).version == 2


def test_concurrent_writes_get_distinct_versions(ctn: Tenantry, plan_tenant) -> None:
    t = plan_tenant()
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            ctn.config.set("limits.max_projects", n, tenant=t.slug)
        except BaseException as err:  # noqa: BLE001 - collected for the assertion
            errors.append(err)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    versions = [h.version for h in ctn.config.history(tenant=t.slug)]
    assert sorted(versions) == list(range(1, 9))
    last = ctn.config.history(tenant=t.slug, limit=1)[0]
    assert ctn.config.get(tenant=t.slug).document == last.document


def test_every_change_is_audited(ctn: Tenantry, plan_tenant) -> None:
    t = plan_tenant()
    ctn.config.set("welcome", "x", tenant=t.slug, message="greeting")
    ctn.config.set("welcome", "y", tenant=t.slug, expires_in=timedelta(minutes=1))
    ctn.config.unset("welcome", tenant=t.slug)
    ctn.config.rollback(1, tenant=t.slug)
    entries = ctn.audit_log(target_type="tenant", target=t.slug)
    actions = [e.action for e in entries if e.action.startswith("config.")]
    assert actions == ["config.rollback", "config.unset", "config.override", "config.set"]
    newest = entries[0]
    assert newest.actor == "pytest-config" and newest.after is not None and newest.after["version"] == 4


def test_unknown_layers_and_deleted_tenants(ctn: Tenantry, plan_tenant) -> None:
    with pytest.raises(InvalidInput, match="exactly one"):
        ctn.config.get()
    with pytest.raises(InvalidInput, match="exactly one"):
        ctn.config.set("welcome", "x", tenant="a", plan="b")
    with pytest.raises(NotFound, match="no plan"):
        ctn.config.set("welcome", "x", plan="no-such-plan")
    with pytest.raises(TenantNotFound):
        ctn.config.set("welcome", "x", tenant="no-such-tenant")
    with pytest.raises(TenantNotFound):
        ctn.config.set("welcome", "x", tenant="'; drop table tenantry.tenants; --")
    t = plan_tenant()
    ctn.delete_tenant(t.id)
    with pytest.raises(TenantNotFound):
        ctn.config.set("welcome", "x", tenant=t.id)


def test_writes_need_a_schema(config_db, ctn: Tenantry, plan_tenant) -> None:
    bare = Tenantry(config_db.settings(), actor="pytest-bare")
    try:
        t = plan_tenant()
        with pytest.raises(ConfigurationError, match="no config schema"):
            bare.config.set("welcome", "x", tenant=t.slug)
        with bare.tenant(t.slug), pytest.raises(ConfigurationError, match="no config schema"):
            bare.config.current()
    finally:
        bare.close()


def test_plugin_sections_are_validated_and_read(config_db, ctn: Tenantry, plan_tenant) -> None:
    withbilling = Tenantry(config_db.settings(), config=AppConfig, actor="pytest-billing")
    try:
        withbilling.config.sections.add("billing", BillingSection)
        t = plan_tenant()
        withbilling.config.set("billing.seats", 12, tenant=t.slug)
        with pytest.raises(ConfigInvalid, match="billing.currency"):
            withbilling.config.set("billing.currency", "GBP", tenant=t.slug)
        with withbilling.tenant(t.slug):
            config = withbilling.config.current(AppConfig)
            assert config.billing.model_dump() == {"currency": "EUR", "seats": 12}  # type: ignore[attr-defined]
        # a Tenantry without the section refuses the key it does not know
        with pytest.raises(ConfigInvalid, match="billing: Extra inputs"):
            ctn.config.set("welcome", "x", tenant=t.slug)
    finally:
        withbilling.close()


def test_schema_from_the_settings(config_db, ctn: Tenantry, plan_tenant) -> None:
    found = Tenantry(config_db.settings(config="tests.config.app_config:AppConfig"))
    via_app = Tenantry(config_db.settings(app="tests.config.app_config:AppConfig"))
    broken = Tenantry(config_db.settings(config="tests.config.app_config:Nope"))
    try:
        assert found.config.sections.schema().__mro__[2] is AppConfig
        assert via_app.config.sections.app is AppConfig  # the module's TENANTRY_CONFIG
        with pytest.raises(ConfigurationError, match="has no attribute"):
            broken.config.sections.schema()
        with pytest.raises(ConfigurationError, match="has no attribute"):
            broken.config.sections.schema()  # and again, not silently None
    finally:
        for t in (found, via_app, broken):
            t.close()


def test_set_values_is_one_version_all_or_nothing(ctn: Tenantry, plan_tenant) -> None:
    t = plan_tenant()
    change = ctn.config.set_many({"limits.max_projects": 40, "welcome": "hi", "tags": ["a"]}, tenant=t.slug)
    assert change.version == 1 and sorted(c.path for c in change.changes) == ["limits.max_projects", "tags", "welcome"]
    assert ctn.config.history(tenant=t.slug)[0].message == "set limits.max_projects, welcome, tags"
    with pytest.raises(ConfigInvalid) as refused:
        ctn.config.set_many({"welcome": "lost", "limits.max_users": 0}, tenant=t.slug)
    assert [p.split(":")[0] for p in refused.value.problems] == ["limits.max_users"]
    assert ctn.config.get(tenant=t.slug).document["welcome"] == "hi"  # the valid key was not saved either
    for bad in ({}, {"a..b": 1}):
        with pytest.raises(InvalidInput):
            ctn.config.set_many(bad, tenant=t.slug)
    overrides = ctn.config.set_many(
        {"welcome": "promo", "limits.max_projects": 99}, tenant=t.slug, expires_in=timedelta(hours=1)
    )
    assert {c.layer for c in overrides.changes} == {"override"}
    live = ctn.config.get(tenant=t.slug).overrides
    assert live["welcome"]["expires_at"] == live["limits.max_projects"]["expires_at"]  # they end together


def test_history_pages_by_version(ctn: Tenantry, plan_tenant) -> None:
    t = plan_tenant()
    for n in range(5):
        ctn.config.set("limits.max_projects", n + 1, tenant=t.slug)
    assert [v.version for v in ctn.config.history(tenant=t.slug, limit=2)] == [5, 4]
    assert [v.version for v in ctn.config.history(tenant=t.slug, limit=2, before=4)] == [3, 2]
    assert [v.version for v in ctn.config.history(tenant=t.slug, before=2)] == [1]
    assert ctn.config.history(tenant=t.slug, before=1) == []
