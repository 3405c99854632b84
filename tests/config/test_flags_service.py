"""Feature flags through the service and ``tn.flags``: definitions, audit, rules against
tenant attributes and config, rollouts, kill switch, schedule, and no database when warm."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tenantry import ConfigInvalid, FlagExists, FlagNotFound, InvalidInput, NoTenantBound, Tenantry
from tenantry.tenant_config.evaluation import bucket


def _key(prefix: str = "f") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _flag_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM tenantry.flags").fetchone()
    assert row is not None
    return int(row[0])


def test_lifecycle_is_idempotent_and_audited(ctn: Tenantry) -> None:
    key = _key()
    created = ctn.flags.create({"key": key, "description": "new editor"})
    assert created.spec.kind == "boolean" and created.updated_by == "pytest-config"
    assert ctn.flags.create({"key": key, "description": "new editor"}) == created  # same: no-op
    with pytest.raises(FlagExists):
        ctn.flags.create({"key": key, "rollout": 5})
    assert ctn.flags.get(key).spec == created.spec
    assert key in {r.key for r in ctn.flags.list()}
    updated = ctn.flags.update(key, {"rollout": 25})
    assert updated.spec.rollout == {"on": 25.0, "off": 75.0}
    assert ctn.flags.update(key, {"rollout": 25}) == updated  # no change, no audit entry
    assert ctn.flags.kill(key).spec.killed
    assert ctn.flags.kill(key).spec.killed
    assert not ctn.flags.unkill(key).spec.killed
    assert ctn.flags.delete(key) is True
    assert ctn.flags.delete(key) is False
    with pytest.raises(FlagNotFound):
        ctn.flags.get(key)
    with pytest.raises(FlagNotFound):
        ctn.flags.update(key, {"rollout": 5})
    actions = [e.action for e in ctn.audit_log(target_type="flag", target=key)]
    assert actions == ["flag.delete", "flag.unkill", "flag.kill", "flag.update", "flag.create"]
    entry = ctn.audit_log(target_type="flag", target=key)[2]
    assert entry.before is not None and entry.after is not None
    assert (entry.before["killed"], entry.after["killed"]) == (False, True)


def test_bad_definitions_save_nothing(ctn: Tenantry, config_db) -> None:
    key = _key()
    ctn.flags.create({"key": key, "kind": "multivariate", "variants": {"a": 1, "b": 2}, "default": "a"})
    rows, audits = _flag_rows(config_db.url), len(ctn.audit_log(target_type="flag", limit=10000))
    with pytest.raises(ConfigInvalid, match=r"rules\[0\].when\[0\].op"):
        ctn.flags.update(key, {"rules": [{"when": [{"attribute": "plan", "op": "~", "value": 1}], "variant": "a"}]})
    with pytest.raises(ConfigInvalid, match="rollout: the shares must add up to 100"):
        ctn.flags.update(key, {"rollout": {"a": 50}})
    with pytest.raises(ConfigInvalid, match="default names 'c'"):
        ctn.flags.update(key, {"default": "c"})
    with pytest.raises(ConfigInvalid):
        ctn.flags.create({"key": _key(), "kind": "multivariate", "variants": {"a": 1}})
    with pytest.raises(InvalidInput, match="cannot change"):
        ctn.flags.update(key, {"key": "other"})
    with pytest.raises(InvalidInput, match="flag key"):
        ctn.flags.update("Bad Key'--", {"rollout": 5})
    with pytest.raises(InvalidInput):
        ctn.flags.create(["not", "a", "mapping"])  # type: ignore[arg-type]
    assert _flag_rows(config_db.url) == rows
    assert len(ctn.audit_log(target_type="flag", limit=10000)) == audits
    assert ctn.flags.get(key).spec.rollout is None


def test_kind_can_change_when_the_definition_is_whole(ctn: Tenantry) -> None:
    key = _key()
    ctn.flags.create({"key": key, "rollout": 10})
    changed = ctn.flags.update(key, {"kind": "multivariate", "variants": {"x": "X"}, "default": "x"})
    assert changed.spec.kind == "multivariate" and changed.spec.rollout is None


def test_rules_by_tenant_plan_and_config(ctn: Tenantry, make_plan, plan_tenant) -> None:
    plan = make_plan()
    a, b, c = plan_tenant(plan, prefix="a"), plan_tenant(plan, prefix="b"), plan_tenant(prefix="c")
    ctn.config.set("limits.max_projects", 100, tenant=c.slug)
    key = _key()
    ctn.flags.create(
        {
            "key": key,
            "kind": "multivariate",
            "variants": {"basic": "basic", "pro": "pro", "vip": "vip"},
            "default": "basic",
            "rules": [
                {"when": [{"attribute": "tenant", "op": "in", "value": [a.slug]}], "variant": "vip"},
                {"when": [{"attribute": "plan", "op": "eq", "value": plan}], "variant": "pro"},
                {"when": [{"attribute": "config.limits.max_projects", "op": "gte", "value": 50}], "variant": "vip"},
            ],
        },
    )
    served = {}
    for t in (a, b, c):
        with ctn.tenant(t.slug):
            served[t.slug] = ctn.flags.evaluate(key)
    assert (served[a.slug].value, served[a.slug].rule) == ("vip", 0)
    assert (served[b.slug].value, served[b.slug].rule) == ("pro", 1)
    assert (served[c.slug].value, served[c.slug].rule) == ("vip", 2)
    # a config change reaches the flag's rules (the cache is dropped by the write)
    ctn.config.set("limits.max_projects", 1, tenant=c.slug)
    with ctn.tenant(c.slug):
        assert ctn.flags.value(key) == "basic"
    # the caller's attributes cannot pretend to be another tenant or plan
    with ctn.tenant(c.slug):
        assert ctn.flags.value(key, attributes={"tenant": a.slug, "plan": plan}) == "basic"


def test_region_comes_from_the_cell(ctn: Tenantry, config_db, plan_tenant) -> None:
    key = _key()
    ctn.flags.create(
        {"key": key, "rules": [{"when": [{"attribute": "region", "op": "eq", "value": "eu"}], "variant": "on"}]}
    )
    t = plan_tenant()
    with ctn.tenant(t.slug):
        assert not ctn.flags.enabled(key)
    with psycopg.connect(config_db.url, autocommit=True) as conn:
        old = conn.execute("SELECT labels FROM tenantry.cells WHERE name = 'primary'").fetchone()
        assert old is not None
        try:
            with conn.transaction():
                conn.execute(
                    "UPDATE tenantry.cells SET labels = labels || '{\"region\": \"eu\"}' WHERE name = 'primary'"
                )
                conn.execute("SELECT pg_notify('tenantry_catalog', 'cell:primary')")
            ctn._live.on_event("cell", "primary")
            with ctn.tenant(t.slug):
                assert ctn.flags.enabled(key)
        finally:
            conn.execute(
                "UPDATE tenantry.cells SET labels = %s WHERE name = 'primary'", (psycopg.types.json.Jsonb(old[0]),)
            )
            conn.execute("SELECT pg_notify('tenantry_catalog', 'cell:primary')")
            ctn._live.on_event("cell", "primary")


def test_rollout_is_stable_per_tenant_and_per_user(ctn: Tenantry, plan_tenant) -> None:
    key = _key()
    ctn.flags.create({"key": key, "rollout": 50})
    tenants = [plan_tenant() for _ in range(6)]
    for t in tenants:
        with ctn.tenant(t.slug):
            expected = bucket(key, str(t.id)) < 5000
            assert ctn.flags.enabled(key) is expected
            assert ctn.flags.evaluate(key).reason == "SPLIT"
            users = {ctn.flags.enabled(key, user=f"u{n}") for n in range(40)}
            assert users == {True, False}
            assert ctn.flags.enabled(key, user="u7") is (bucket(key, str(t.id), "u7") < 5000)


def test_kill_switch_and_schedule_take_effect(ctn: Tenantry, plan_tenant) -> None:
    t = plan_tenant()
    key = _key()
    ctn.flags.create({"key": key, "rollout": 100})
    with ctn.tenant(t.slug):
        assert ctn.flags.enabled(key)
        ctn.flags.kill(key)
        assert not ctn.flags.enabled(key)
        assert ctn.flags.evaluate(key).reason == "DISABLED"
        ctn.flags.unkill(key)
        assert ctn.flags.enabled(key)
        start = datetime.now(UTC) + timedelta(milliseconds=500)
        ctn.flags.update(
            key, {"enable_at": start.isoformat(), "disable_at": (start + timedelta(milliseconds=500)).isoformat()}
        )
        assert not ctn.flags.enabled(key)  # memoised until enable_at, then judged again
        time.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()) + 0.05)
        assert ctn.flags.enabled(key)
        time.sleep(0.55)
        assert not ctn.flags.enabled(key)


def test_unknown_flags_and_no_tenant(ctn: Tenantry, plan_tenant) -> None:
    t = plan_tenant()
    with ctn.tenant(t.slug):
        assert ctn.flags.enabled("no-such-flag") is False
        assert ctn.flags.value("no-such-flag", "fallback") == "fallback"
        with pytest.raises(FlagNotFound):
            ctn.flags.evaluate("no-such-flag")
    with pytest.raises(NoTenantBound):
        ctn.flags.enabled("anything")
    with pytest.raises(NoTenantBound):
        ctn.config.current()
    # admin tools name the tenant explicitly
    key = _key()
    ctn.flags.create(
        {"key": key, "rules": [{"when": [{"attribute": "tenant", "op": "eq", "value": t.slug}], "variant": "on"}]}
    )
    assert ctn.flags.enabled(key, tenant=t.slug)
    assert ctn.flags.evaluate(key, tenant=str(t.id)).value is True
    assert sorted(ctn.flags.evaluate_all(tenant=t.slug))  # every flag, by key


def test_warm_reads_never_touch_the_database(ctn: Tenantry, plan_tenant, monkeypatch) -> None:
    t = plan_tenant()
    key = _key()
    ctn.flags.create({"key": key, "rollout": 100})
    ctn.config.set("welcome", "warm", tenant=t.slug)
    with ctn.tenant(t.slug):
        ctn.flags.enabled(key)
        ctn.config.current()
        assert ctn._listener is not None and ctn._listener.listening.wait(5)
    with ctn.tenant(t.slug):  # now trusted (loaded while listening)
        ctn.flags.enabled(key)
        ctn.config.current()

    def refuse():
        raise AssertionError("the hot path asked the database")

    monkeypatch.setattr(ctn, "admin", refuse)
    monkeypatch.setattr(ctn, "_lookup", lambda *a: refuse())
    with ctn.tenant(t.slug):
        for _ in range(1000):
            assert ctn.flags.enabled(key)
            assert ctn.flags.evaluate(key).value is True
            assert ctn.flags.enabled(key, user="someone")
            assert ctn.config.current().welcome == "warm"  # type: ignore[attr-defined]
