"""The durable queue of lifecycle hook calls: a change made anywhere is queued in its own
transaction and delivered, at least once and in order per tenant, by a process that runs the
plugin; raising hooks are retried, then held as failed; dead deliverers' calls are taken again.

Each test registers plugins of its own names (on the plugin tests' catalog), so the session's
app (``ptn``) never delivers their calls."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from tenantry import Tenant, Tenantry
from tenantry.core.model import Status
from tenantry.db.catalog import hooks as plugin_hooks
from tenantry.errors import InvalidInput
from tenantry.plugins import LifecycleHooks
from tenantry.services import tenants as tenant_service
from tests.model_app import Base
from tests.support import Scratch


class Counter(LifecycleHooks):
    """Records (event, slug) of every call; raises for the first ``fail`` calls of each tenant."""

    hook_backoff = 0.05
    hook_retries = 3

    def __init__(self, name: str, *, fail: int = 0, slow: float = 0.0) -> None:
        self.name = name
        self.fail = fail
        self.slow = slow
        self.calls: list[tuple[str, str]] = []
        self.tried: dict[str, int] = {}
        self.lock = threading.Lock()

    def _hit(self, event: str, tenant: Any) -> None:
        with self.lock:
            self.tried[tenant.slug] = self.tried.get(tenant.slug, 0) + 1
            if self.tried[tenant.slug] <= self.fail:
                raise RuntimeError(f"{self.name} down for {tenant.slug}")
        if self.slow:
            time.sleep(self.slow)
        with self.lock:
            self.calls.append((event, tenant.slug))

    def on_tenant_created(self, tn: Any, tenant: Any) -> None:
        self._hit("created", tenant)

    def on_tenant_suspended(self, tn: Any, tenant: Any) -> None:
        self._hit("suspended", tenant)

    def on_tenant_resumed(self, tn: Any, tenant: Any) -> None:
        self._hit("resumed", tenant)

    def on_tenant_deleted(self, tn: Any, tenant: Any) -> None:
        self._hit("deleted", tenant)


def _name() -> str:
    return f"q{uuid.uuid4().hex[:10]}"


@pytest.fixture
def app_of(plugins_db: Scratch) -> Iterator[Callable[..., Tenantry]]:
    """Build Tenantry objects on the plugin tests' catalog (each another process of the app)."""
    made: list[Tenantry] = []

    def make(*plugins: LifecycleHooks, runner: bool = False, actor: str = "queue-test") -> Tenantry:
        tn = Tenantry(
            plugins_db.settings(hook_runner=runner), metadata=Base.metadata, plugins=list(plugins), actor=actor
        )
        made.append(tn)
        tn.plugins.subscribe_hooks()
        return tn

    yield make
    for tn in made:
        tn.close()


def _wait(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _deliver_until(tn: Tenantry, check: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Deliver ``tn``'s due calls until ``check()`` holds (``False`` after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        tn.plugins.deliver()
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def _rows(db: Scratch, plugin: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db.url) as conn:
        return conn.execute(
            "SELECT event, status, attempts, claimed_by, last_error FROM tenantry.plugin_hooks WHERE plugin = %s ORDER BY id",
            (plugin,),
        ).fetchall()


def test_a_change_made_without_the_plugin_reaches_the_apps_runner_within_a_second(
    app_of: Callable[..., Tenantry], ptenant: Callable[..., Tenant], plugins_db: Scratch
) -> None:
    counter = Counter(_name())
    app = app_of(counter, runner=True)
    assert app.plugins.start_hooks()
    cli_like = app_of()  # the CLI or the admin API: runs no plugin
    tenant = ptenant()
    app.plugins.enable(counter.name, tenant=tenant.slug)
    other = ptenant()  # not switched on: never called
    started = time.monotonic()
    cli_like.tenants.suspend(tenant.slug)
    cli_like.tenants.suspend(other.slug)
    assert _wait(lambda: counter.calls == [("suspended", tenant.slug)], 1.0), counter.calls
    assert time.monotonic() - started < 1.0
    [(event, status, attempts, claimed_by, _error)] = _rows(plugins_db, counter.name)
    assert (event, status, attempts, claimed_by) == ("suspended", "done", 1, app.plugins._delivery.worker)
    cli_like.tenants.resume(tenant.slug)
    assert _wait(lambda: counter.calls[-1:] == [("resumed", tenant.slug)], 1.0)
    assert all(slug == tenant.slug for _event, slug in counter.calls)


def test_the_process_that_made_the_change_runs_its_own_hooks_before_returning(
    app_of: Callable[..., Tenantry], ptenant: Callable[..., Tenant], plugins_db: Scratch
) -> None:
    mine, elsewhere = Counter(_name()), Counter(_name())
    app = app_of(mine)
    app_of(elsewhere)  # subscribed by another process, which is not delivering now
    tenant = ptenant()
    for counter in (mine, elsewhere):
        app.plugins.enable(counter.name, tenant=tenant.slug)
    app.tenants.suspend(tenant.slug)
    assert mine.calls == [("suspended", tenant.slug)]  # at once, no runner involved
    assert elsewhere.calls == [] and [r[1] for r in _rows(plugins_db, elsewhere.name)] == ["pending"]


def test_a_change_whose_process_died_before_delivering_is_delivered_by_another(
    app_of: Callable[..., Tenantry],
    ptenant: Callable[..., Tenant],
    plugins_db: Scratch,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counter = Counter(_name())
    dying = app_of(Counter(counter.name))
    survivor = app_of(counter)
    tenant = ptenant()
    survivor.plugins.enable(counter.name, tenant=tenant.slug)
    monkeypatch.setattr(plugin_hooks, "RESERVE_SECONDS", 0.3)
    with dying.admin() as conn:  # the change commits; the process dies before its hooks run
        tenant_service.transition(conn, tenant.slug, Status.SUSPENDED, actor="dying", origin=dying.plugins.origin())
    assert survivor.plugins.deliver().total == 0  # reserved for the process that made it, for now
    time.sleep(0.35)
    assert survivor.plugins.deliver().done == 1
    assert counter.calls == [("suspended", tenant.slug)]


def test_a_call_whose_deliverer_died_midway_is_taken_again_after_its_lease(
    app_of: Callable[..., Tenantry], ptenant: Callable[..., Tenant], plugins_db: Scratch
) -> None:
    counter = Counter(_name())
    app = app_of(counter)
    tenant = ptenant()
    app.plugins.enable(counter.name, tenant=tenant.slug)
    with app.admin() as conn:
        tenant_service.transition(conn, tenant.slug, Status.SUSPENDED, actor="t")
        [held] = plugin_hooks.claim(conn, [counter.name], worker="dead-worker", reserved=None, lease=0.2)
    assert app.plugins.deliver().total == 0  # leased to the dead worker
    time.sleep(0.25)
    assert app.plugins.deliver().done == 1 and counter.calls == [("suspended", tenant.slug)]
    with app.admin() as conn:  # the dead worker comes back: its claim is gone
        assert not plugin_hooks.finish(conn, held.id, "dead-worker", "done")
    [(_e, status, attempts, claimed_by, _err)] = _rows(plugins_db, counter.name)
    assert (status, attempts, claimed_by) == ("done", 2, app.plugins._delivery.worker)


def test_a_raising_hook_is_retried_with_backoff_and_later_calls_wait_for_it(
    app_of: Callable[..., Tenantry], ptenant: Callable[..., Tenant], plugins_db: Scratch
) -> None:
    counter = Counter(_name(), fail=2)
    app = app_of(counter)
    tenant = ptenant()
    app.plugins.enable(counter.name, tenant=tenant.slug)
    app.tenants.suspend(tenant.slug)  # first try raises: queued again, the suspend stands
    app.tenants.resume(tenant.slug)  # must not overtake the suspended call
    assert counter.calls == [] and app.tenants.get(tenant.slug).status is Status.ACTIVE
    assert _deliver_until(app, lambda: len(counter.calls) == 2)
    assert counter.calls == [("suspended", tenant.slug), ("resumed", tenant.slug)]
    rows = _rows(plugins_db, counter.name)
    assert [(r[0], r[1], r[2]) for r in rows] == [("suspended", "done", 3), ("resumed", "done", 1)]
    [failure] = app.plugins.errors(plugin=counter.name)
    assert failure.count == 2 and "down for" in failure.last_error


def test_a_hook_that_keeps_raising_is_held_as_failed_then_retried_by_hand(
    app_of: Callable[..., Tenantry], ptenant: Callable[..., Tenant], plugins_db: Scratch
) -> None:
    counter = Counter(_name(), fail=4)  # 1 try + 3 retries, all raise
    app = app_of(counter)
    tenant = ptenant()
    app.plugins.enable(counter.name, tenant=tenant.slug)
    app.tenants.suspend(tenant.slug)
    assert _deliver_until(app, lambda: _rows(plugins_db, counter.name)[0][1] == "failed")
    app.tenants.resume(tenant.slug)  # a failed call holds nothing back
    assert counter.calls == [("resumed", tenant.slug)]
    [failed] = app.plugins.hooks(plugin=counter.name, status="failed")
    assert (failed.event, failed.attempts, failed.tenant) == ("suspended", 4, tenant.slug)
    assert app.plugins.retry_hooks([failed.id]) == [failed.id]
    assert app.plugins.retry_hooks([failed.id]) == []  # not failed any more: nothing to do
    assert app.plugins.deliver().done == 1  # the endpoint is back
    assert counter.calls == [("resumed", tenant.slug), ("suspended", tenant.slug)]
    entry = app.audit.list(target_type="plugin", target=counter.name, limit=5)[0]  # newest first
    assert (entry.action, entry.actor, (entry.after or {}).get("ids")) == (
        "plugin.hooks.retry",
        "queue-test",
        [failed.id],
    )
    with pytest.raises(InvalidInput):
        app.plugins.retry_hooks()


def test_a_plugin_switched_off_before_its_call_is_due_is_never_called(
    app_of: Callable[..., Tenantry], ptenant: Callable[..., Tenant], plugins_db: Scratch
) -> None:
    counter = Counter(_name())
    app = app_of(counter)
    cli_like = app_of()
    tenant = ptenant()
    app.plugins.enable(counter.name, tenant=tenant.slug)
    cli_like.tenants.suspend(tenant.slug)  # queued
    app.plugins.disable(counter.name, tenant=tenant.slug)  # then switched off
    assert app.plugins.deliver().skipped == 1 and counter.calls == []
    cli_like.tenants.resume(tenant.slug)  # off when it happened: not even queued
    assert [r[1] for r in _rows(plugins_db, counter.name)] == ["skipped"]


def test_concurrent_deliverers_call_each_hook_once_and_in_order_per_tenant(
    app_of: Callable[..., Tenantry], ptenant: Callable[..., Tenant], plugins_db: Scratch
) -> None:
    name = _name()
    first, second = Counter(name, slow=0.002), Counter(name, slow=0.002)
    apps = [app_of(first), app_of(second)]
    cli_like = app_of()
    app = apps[0]
    tenants = [ptenant() for _ in range(6)]
    app.plugins.enable(name, plan="free")
    try:
        for _round in range(3):
            for tenant in tenants:
                cli_like.tenants.suspend(tenant.slug)
                cli_like.tenants.resume(tenant.slug)
        stop = threading.Event()

        def deliver(tn: Tenantry) -> None:
            while not stop.is_set():
                tn.plugins.deliver()

        threads = [threading.Thread(target=deliver, args=(a,)) for a in apps]
        for thread in threads:
            thread.start()
        try:
            assert _wait(lambda: len(first.calls) + len(second.calls) >= 36, 20.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
    finally:
        app.plugins.reset(name, plan="free")
    rows = _rows(plugins_db, name)
    assert len(rows) == 36 and all(r[1] == "done" and r[2] == 1 for r in rows)  # each once, no redelivery
    assert len(first.calls) + len(second.calls) == 36 and first.calls and second.calls  # both took some
    with psycopg.connect(plugins_db.url) as conn:
        for tenant in tenants:  # finished in the order they were queued, whoever delivered them
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM tenantry.plugin_hooks WHERE plugin = %s AND tenant_id = %s ORDER BY finished_at, id",
                    (name, tenant.id),
                ).fetchall()
            ]
            assert ids == sorted(ids)
    for tenant in tenants:
        seen = [e for e, s in first.calls + second.calls if s == tenant.slug]
        assert sorted(seen) == sorted(["suspended", "resumed"] * 3)


def test_each_call_carries_only_its_own_tenant_and_the_app_role_cannot_touch_the_queue(
    app_of: Callable[..., Tenantry], ptenant: Callable[..., Tenant], plugins_db: Scratch
) -> None:
    counter = Counter(_name())
    app = app_of(counter)
    a, b = ptenant(), ptenant()
    app.plugins.enable(counter.name, tenant=a.slug)
    app.tenants.suspend(a.slug)
    app.tenants.suspend(b.slug)
    app.tenants.delete(a.slug)
    assert counter.calls == [("suspended", a.slug), ("deleted", a.slug)]
    assert [h.tenant for h in app.plugins.hooks(plugin=counter.name)] == [a.slug, a.slug]
    assert app.plugins.hooks(plugin=counter.name, tenant=b.slug) == []
    url = app.runtime_url  # the role the app's requests run as
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in (
            "SELECT * FROM tenantry.plugin_hooks",
            "INSERT INTO tenantry.plugin_subscriptions (plugin, event) VALUES ('evil', 'created')",
            "UPDATE tenantry.plugin_hooks SET status = 'pending'",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_subscriptions_follow_the_hooks_a_plugin_implements(
    app_of: Callable[..., Tenantry], plugins_db: Scratch
) -> None:
    counter = Counter(_name())
    app_of(counter)
    with psycopg.connect(plugins_db.url) as conn:
        events = [
            r[0]
            for r in conn.execute(
                "SELECT event FROM tenantry.plugin_subscriptions WHERE plugin = %s ORDER BY event", (counter.name,)
            ).fetchall()
        ]
    assert events == ["created", "deleted", "resumed", "suspended"]  # no archived, no moved hook
    with pytest.raises(InvalidInput):
        with psycopg.connect(plugins_db.url) as conn:
            plugin_hooks.subscribe(conn, counter.name, ["exploded"])


class Leaky(LifecycleHooks):
    """Records the tenant bound when it is called, then binds its own and leaves it bound."""

    hook_retries = 0

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[str | None] = []

    def on_tenant_suspended(self, tn: Any, tenant: Any) -> None:
        from tenantry import context

        bound = context.current()
        self.seen.append(None if bound is None else bound.slug)
        scope = tn.tenant(tenant.id, allow_inactive=True)
        scope.__enter__()  # and never leaves: a buggy plugin


def test_hooks_run_unbound_whatever_the_caller_bound_and_leak_nothing(
    app_of: Callable[..., Tenantry], ptenant: Callable[..., Tenant]
) -> None:
    leaky = Leaky(_name())
    app = app_of(leaky)
    a, b, c = ptenant(), ptenant(), ptenant()
    for tenant in (b, c):
        app.plugins.enable(leaky.name, tenant=tenant.slug)
    with app.tenant(a.slug):  # an admin action inside a request of tenant a
        app.tenants.suspend(b.slug)
        from tenantry import current_tenant

        assert current_tenant().slug == a.slug  # the caller's binding is untouched
    app.tenants.suspend(c.slug)  # the binding b's hook left behind did not reach c's
    assert leaky.seen == [None, None]
    from tenantry import context

    assert context.current() is None


def test_a_plugin_removed_from_the_app_is_unsubscribed_and_its_pending_calls_skipped(
    app_of: Callable[..., Tenantry], ptenant: Callable[..., Tenant], plugins_db: Scratch
) -> None:
    counter = Counter(_name())
    app = app_of(counter)
    tenant = ptenant()
    app.plugins.enable(counter.name, tenant=tenant.slug)
    cli_like = app_of()
    cli_like.tenants.suspend(tenant.slug)  # queued; then the plugin is removed from the app
    with pytest.raises(InvalidInput, match="runs in this process"):
        app.plugins.unsubscribe_hooks(counter.name)
    assert cli_like.plugins.unsubscribe_hooks(counter.name) == (4, 1)
    assert cli_like.plugins.unsubscribe_hooks(counter.name) == (0, 0)  # idempotent
    cli_like.tenants.resume(tenant.slug)  # nothing queued any more
    assert [(r[0], r[1], r[4]) for r in _rows(plugins_db, counter.name)] == [("suspended", "skipped", "unsubscribed")]
    assert app.plugins.deliver().total == 0 and counter.calls == []
    entry = cli_like.audit.list(target_type="plugin", target=counter.name, limit=1)[0]
    assert entry.action == "plugin.hooks.unsubscribe" and entry.after == {"events": 4, "skipped": 1}


def test_a_worker_following_the_queue_delivers_as_calls_arrive_and_stops_when_told(
    app_of: Callable[..., Tenantry], ptenant: Callable[..., Tenant]
) -> None:
    counter = Counter(_name())
    worker = app_of(counter)  # `tenantry plugins hooks run --follow`: a process of its own
    cli_like = app_of()
    tenant = ptenant()
    worker.plugins.enable(counter.name, tenant=tenant.slug)
    stop = threading.Event()
    passes: list[int] = []
    thread = threading.Thread(
        target=worker.plugins.follow_hooks,
        args=(stop,),
        kwargs={"poll": 30.0, "on_pass": lambda r: passes.append(r.done)},
    )
    thread.start()
    try:
        assert _wait(lambda: len(passes) >= 1)  # the first pass ran
        cli_like.tenants.suspend(tenant.slug)  # NOTIFY wakes it long before its 30 s poll
        assert _wait(lambda: counter.calls == [("suspended", tenant.slug)], 2.0), counter.calls
        assert _wait(lambda: 1 in passes)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
