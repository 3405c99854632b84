"""The per-process cache: changes reach another process within a second, a reconnect reloads
everything, and no cached answer ever serves another tenant (threads, asyncio tasks)."""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tenantry import Tenantry
from tests.config.app_config import AppConfig
from tests.config.support import eventually
from tests.model_app import Base


@pytest.fixture
def other(config_db, ctn: Tenantry) -> Iterator[Tenantry]:
    """A second Tenantry on the same catalog, as another process of the app would have."""
    second = Tenantry(config_db.settings(tenant_cache_ttl=3600.0), metadata=Base.metadata, config=AppConfig)
    yield second
    second.close()


def _warm(tn: Tenantry, slug: str, key: str) -> None:
    with tn.tenant(slug):
        tn.flags.enabled(key)
        tn.config.current()
    assert tn._listener is not None and tn._listener.listening.wait(5)
    with tn.tenant(slug):  # loaded again while listening: trusted from now on
        time.sleep(0.6)
        tn.flags.enabled(key)
        tn.config.current()


def test_changes_reach_another_process_within_a_second(ctn: Tenantry, other: Tenantry, plan_tenant) -> None:
    t = plan_tenant()
    key = f"live-{uuid.uuid4().hex[:8]}"
    ctn.flags.create({"key": key})
    _warm(other, t.slug, key)

    def flag_on() -> None:
        with other.tenant(t.slug):
            assert other.flags.enabled(key)

    def config_seen() -> None:
        with other.tenant(t.slug):
            assert other.config.current(AppConfig).limits.max_projects == 77

    def plan_seen() -> None:
        with other.tenant(t.slug):
            assert other.config.current(AppConfig).welcome == "from the plan"

    ctn.flags.update(key, {"rollout": 100})
    assert eventually(flag_on) < 1.0
    ctn.config.set("limits.max_projects", 77, tenant=t.slug)
    assert eventually(config_seen) < 1.0
    ctn.config.set("welcome", "from the plan", plan=t.plan)
    assert eventually(plan_seen) < 1.0
    ctn.flags.kill(key)

    def flag_off() -> None:
        with other.tenant(t.slug):
            assert not other.flags.enabled(key)

    assert eventually(flag_off) < 1.0


def _listener_pids(url: str) -> set[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN tenantry_catalog'"
        ).fetchall()
    return {r[0] for r in rows}


def test_a_reconnected_listener_reloads_everything(config_db, ctn: Tenantry, other: Tenantry, plan_tenant) -> None:
    t = plan_tenant()
    key = f"live-{uuid.uuid4().hex[:8]}"
    ctn.flags.create({"key": key})
    ctn.config.set("welcome", "before", tenant=t.slug)
    _warm(other, t.slug, key)
    assert t.id in other._live.views and other._live.flag_set is not None
    before = _listener_pids(config_db.url)
    assert before
    with psycopg.connect(config_db.url, autocommit=True) as admin:
        for pid in before:  # every listener of this catalog: the change below is announced to no one
            admin.execute("SELECT pg_terminate_backend(%s, 2000)", (pid,))
    ctn.config.set("welcome", "while disconnected", tenant=t.slug)
    ctn.flags.update(key, {"rollout": 100})
    listener = other._listener
    assert listener is not None

    def reconnected() -> None:
        assert listener.listening.is_set() and _listener_pids(config_db.url) - before

    eventually(reconnected, within=5.0, step=0.05)
    with other.tenant(t.slug):
        assert other.config.current(AppConfig).welcome == "while disconnected"
        assert other.flags.enabled(key)


def test_no_cached_answer_serves_another_tenant_in_threads(ctn: Tenantry, make_plan, plan_tenant) -> None:
    plan = make_plan()
    a, b = plan_tenant(plan, prefix="iso-a"), plan_tenant(plan, prefix="iso-b")
    key = f"iso-{uuid.uuid4().hex[:8]}"
    ctn.flags.create(
        {"key": key, "rules": [{"when": [{"attribute": "tenant", "op": "eq", "value": a.slug}], "variant": "on"}]}
    )
    ctn.config.set("welcome", "only for a", tenant=a.slug)
    ctn.config.set("welcome", "override for a", tenant=a.slug, expires_in=__import__("datetime").timedelta(hours=1))
    expected = {a.slug: (True, "override for a"), b.slug: (False, "hello")}

    def warm() -> None:  # both warm in the same process (the notices of the writes above may
        # still be on their way and drop a view just made: warm until both stay)
        for slug in expected:
            with ctn.tenant(slug):
                assert (ctn.flags.enabled(key), ctn.config.current(AppConfig).welcome) == expected[slug]
        assert set(ctn._live.views) >= {a.id, b.id}

    eventually(warm, within=5.0, step=0.05)
    assert all(view.id == tenant_id for tenant_id, view in ctn._live.views.items())
    wrong: list[str] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(300):
            slug = rng.choice([a.slug, b.slug])
            with ctn.tenant(slug):
                got = (ctn.flags.enabled(key), ctn.config.current(AppConfig).welcome)
                if got != expected[slug]:
                    wrong.append(f"{slug}: {got}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong


def test_no_cached_answer_serves_another_tenant_in_asyncio_tasks(ctn: Tenantry, plan_tenant) -> None:
    a, b = plan_tenant(prefix="aio-a"), plan_tenant(prefix="aio-b")
    key = f"aio-{uuid.uuid4().hex[:8]}"
    ctn.flags.create(
        {"key": key, "rules": [{"when": [{"attribute": "tenant", "op": "eq", "value": b.slug}], "variant": "on"}]}
    )
    ctn.config.set("limits.max_projects", 1, tenant=a.slug)
    ctn.config.set("limits.max_projects", 2, tenant=b.slug)
    expected = {a.slug: (False, 1), b.slug: (True, 2)}

    async def task(slug: str, rounds: int) -> list[str]:
        wrong = []
        async with ctn.tenant(slug):
            for _ in range(rounds):
                await asyncio.sleep(0)  # let the other tenant's tasks run in between
                got = (ctn.flags.enabled(key), ctn.config.current(AppConfig).limits.max_projects)
                if got != expected[slug]:
                    wrong.append(f"{slug}: {got}")
        return wrong

    async def main() -> list[str]:
        results = await asyncio.gather(*(task(s, 50) for s in [a.slug, b.slug] * 10))
        return [w for r in results for w in r]

    assert asyncio.run(main()) == []


def test_an_event_for_one_tenant_leaves_the_other_cached(ctn: Tenantry, plan_tenant) -> None:
    a, b = plan_tenant(prefix="ev-a"), plan_tenant(prefix="ev-b")
    for slug in (a.slug, b.slug):
        with ctn.tenant(slug):
            ctn.config.current()
    view_b = ctn._live.views.peek(b.id)
    assert view_b is not None
    ctn.config.set("welcome", "a changed", tenant=a.slug)
    assert a.id not in ctn._live.views and ctn._live.views.peek(b.id) is view_b
    with ctn.tenant(b.slug):
        assert ctn.config.current(AppConfig).welcome == "hello"
    with ctn.tenant(a.slug):
        assert ctn.config.current(AppConfig).welcome == "a changed"


def test_per_tenant_caches_keep_at_most_tenant_cache_size_and_answer_right_after_dropping(
    config_db, ctn: Tenantry, plan_tenant
) -> None:
    tenants = [plan_tenant() for _ in range(6)]
    for n, tenant in enumerate(tenants):
        ctn.config.set("welcome", f"hello {tenant.slug} #{n}", tenant=tenant.slug)
    small = Tenantry(config_db.settings(tenant_cache_size=3), metadata=Base.metadata, config=AppConfig)
    try:
        for _round in range(3):  # each round drops and reloads every tenant's entries
            for n, tenant in enumerate(tenants):
                with small.tenant(tenant.slug):
                    assert small.config.current(AppConfig).welcome == f"hello {tenant.slug} #{n}"
                    assert small.plugins.is_enabled("anything") is False
                small.plugins.enabled_for(tenant.slug)
                assert len(small._live.views) <= 3
                assert len(small._tenant_cache) <= 3
                assert len(small.plugins._cache.entries) <= 3
        assert {str(v.id) for _, v in small._live.views.items()} <= {str(t.id) for t in tenants[-3:]}
    finally:
        small.close()
