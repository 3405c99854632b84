"""The webhooks plugin end to end: events queued in the app's own transaction, signed POSTs to
a real local endpoint, retries with backoff, refusals, per-tenant isolation on every tier."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from tenantry import ConfigInvalid, SubdomainResolver, Tenant, TenantMiddleware, Tenantry, mount_plugins
from tenantry.contrib.webhooks import Delivery, WebhooksPlugin, deliver_pending, queue, subscribed, verify
from tenantry.contrib.webhooks import delivery as delivery_module
from tenantry.services.egress import Egress
from tests.model_app import Base
from tests.plugins.receiver import Receiver
from tests.support import Scratch

SECRET = "whsec_c2VjcmV0LWtleS1vZi10aGUtdGVzdHMtMzItYnl0ZXM="
B_SECRET = "whsec_Yi1oYXMtaXRzLW93bi1zZWNyZXQtb2YtMzItYnl0ZXM="


def _configure(tn: Tenantry, tenant: Tenant, url: str, secret: str = SECRET, events: list[str] | None = None) -> None:
    value: dict[str, Any] = {"url": url, "secret": secret}
    if events is not None:
        value["events"] = events
    tn.config.set("webhooks", value, tenant=tenant.slug)


@pytest.fixture
def hooked(ptn: Tenantry, ptenant: Callable[..., Tenant]) -> Callable[..., Tenant]:
    """A tenant with the plugin on, pointed at ``url`` (plan as given)."""

    def make(url: str, **kwargs: Any) -> Tenant:
        tenant = ptenant("w", **kwargs)
        ptn.plugins.enable("webhooks", tenant=tenant.slug)
        _configure(ptn, tenant, url + f"/hooks/{tenant.slug}")
        return tenant

    return make


def _emit(tn: Tenantry, tenant: Tenant, event: str, data: dict[str, Any], *, commit: bool = True) -> Delivery | None:
    with tn.tenant(tenant.slug), Session(tn.engine(), expire_on_commit=False) as session:
        found = queue(tn, session, event, data)
        if commit:
            session.commit()
        else:
            session.rollback()
        return found


def _deliveries(tn: Tenantry, tenant: Tenant) -> list[Delivery]:
    with tn.tenant(tenant.slug, allow_inactive=True), Session(tn.engine(), expire_on_commit=False) as session:
        return list(session.scalars(sa.select(Delivery).order_by(Delivery.id)))


@pytest.fixture(autouse=True)
def _scoped_runs(ptn: Tenantry, monkeypatch: pytest.MonkeyPatch) -> None:
    """``deliver_pending`` visits the tenants the test made (``_mine``), not every test's."""
    mine: list[Any] = []
    real = ptn.plugins.tenants
    monkeypatch.setattr(ptn.plugins, "tenants", lambda name: [t for t in real(name) if t[0] in mine])
    monkeypatch.setattr(ptn.plugins, "_mine", mine, raising=False)


def _mine(tn: Tenantry, *tenants: Tenant) -> None:
    tn.plugins._mine.extend(t.id for t in tenants)  # type: ignore[attr-defined]


def test_an_event_is_delivered_signed(ptn: Tenantry, hooked: Callable[..., Tenant]) -> None:
    with Receiver() as receiver:
        tenant = hooked(receiver.url)
        _mine(ptn, tenant)
        queued = _emit(ptn, tenant, "task.created", {"id": 7, "title": "Ship it"})
        assert queued is not None
        report = deliver_pending(ptn)
    assert (report.attempted, report.delivered, report.failed) == (1, 1, 0)
    [got] = receiver.received
    assert got.path == f"/hooks/{tenant.slug}" and got.headers["content-type"] == "application/json"
    assert verify(SECRET, got.headers, got.body)
    assert not verify("whsec_b3RoZXItc2VjcmV0LWtleS1vZi0yNC1i", got.headers, got.body)  # another secret does not verify
    assert not verify(SECRET, got.headers, got.body + b" ")  # nor a changed body
    body = json.loads(got.body)
    assert (
        body["type"] == "task.created"
        and body["tenant"] == tenant.slug
        and body["data"] == {"id": 7, "title": "Ship it"}
    )
    assert got.headers["webhook-id"] == body["id"] == str(queued.event_id)
    [row] = _deliveries(ptn, tenant)
    assert (row.status, row.attempts, row.response_status, row.delivered_at is not None) == ("delivered", 1, 200, True)
    assert deliver_pending(ptn).attempted == 0  # nothing is sent twice


def test_an_event_queued_in_a_rolled_back_transaction_is_never_sent(
    ptn: Tenantry, hooked: Callable[..., Tenant]
) -> None:
    with Receiver() as receiver:
        tenant = hooked(receiver.url)
        _mine(ptn, tenant)
        assert _emit(ptn, tenant, "task.created", {"id": 1}, commit=False) is not None
        deliver_pending(ptn)
    assert receiver.received == [] and _deliveries(ptn, tenant) == []


def test_retries_with_backoff_keep_the_event_id(ptn: Tenantry, hooked: Callable[..., Tenant]) -> None:
    with Receiver(500, 503) as receiver:
        tenant = hooked(receiver.url)
        _mine(ptn, tenant)
        _emit(ptn, tenant, "project.created", {"id": 1})
        first = deliver_pending(ptn)
        [row] = _deliveries(ptn, tenant)
        assert (first.retrying, row.status, row.attempts, row.last_error) == (1, "pending", 1, "HTTP 500")
        deliver_pending(ptn)
        deliver_pending(ptn)
    [row] = _deliveries(ptn, tenant)
    assert (row.status, row.attempts) == ("delivered", 3)
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1 and len(receiver.received) == 3
    plugin = ptn.plugins.get("webhooks")
    assert isinstance(plugin, WebhooksPlugin)
    assert [WebhooksPlugin(backoff_base=10, backoff_cap=60).backoff(n) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 60, 60]


def test_gives_up_after_max_attempts(ptn: Tenantry, hooked: Callable[..., Tenant]) -> None:
    with Receiver(500, 500, 500, 500) as receiver:
        tenant = hooked(receiver.url)
        _mine(ptn, tenant)
        _emit(ptn, tenant, "project.created", {"id": 1})
        for _ in range(4):
            deliver_pending(ptn)
    [row] = _deliveries(ptn, tenant)
    assert (row.status, row.attempts, len(receiver.received)) == ("failed", 3, 3)


def test_an_unreachable_endpoint_is_retried(ptn: Tenantry, hooked: Callable[..., Tenant]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here
    tenant = hooked(f"http://127.0.0.1:{port}")
    _mine(ptn, tenant)
    _emit(ptn, tenant, "project.created", {"id": 1})
    assert deliver_pending(ptn).retrying == 1
    [row] = _deliveries(ptn, tenant)
    assert row.status == "pending" and row.last_error is not None and "ConnectError" in row.last_error


def test_private_addresses_are_refused_by_default(
    plugins_db: Scratch, ptn: Tenantry, hooked: Callable[..., Tenant]
) -> None:
    strict = Tenantry(plugins_db.settings(), metadata=Base.metadata, plugins=[WebhooksPlugin()])
    try:
        with Receiver() as receiver:
            tenant = hooked(receiver.url)
            _emit(ptn, tenant, "project.created", {"id": 1})
            real = strict.plugins.tenants
            strict.plugins.tenants = lambda name: [t for t in real(name) if t[0] == tenant.id]  # type: ignore[method-assign]
            report = deliver_pending(strict)
        assert report.failed == 1 and receiver.received == []
        [row] = _deliveries(ptn, tenant)
        assert row.status == "failed" and row.last_error is not None and "not a public address" in row.last_error
    finally:
        strict.close()


def test_nothing_is_queued_or_sent_where_the_plugin_is_off(ptn: Tenantry, hooked: Callable[..., Tenant]) -> None:
    with Receiver() as receiver:
        tenant = hooked(receiver.url)
        _mine(ptn, tenant)
        _emit(ptn, tenant, "task.created", {"id": 1})  # queued while on
        ptn.plugins.disable("webhooks", tenant=tenant.slug)
        assert _emit(ptn, tenant, "task.created", {"id": 2}) is None  # off: nothing queued
        assert deliver_pending(ptn).tenants == 0  # and what was queued waits: the plugin never runs for it
        ptn.plugins.enable("webhooks", tenant=tenant.slug)
        assert deliver_pending(ptn).delivered == 1
    assert [json.loads(r.body)["data"] for r in receiver.received] == [{"id": 1}]


def test_events_outside_the_subscription_are_not_queued(ptn: Tenantry, hooked: Callable[..., Tenant]) -> None:
    tenant = hooked("https://hooks.example")
    _configure(ptn, tenant, "https://hooks.example/x", events=["task.*", "project.deleted"])
    assert _emit(ptn, tenant, "task.created", {}) is not None
    assert _emit(ptn, tenant, "project.deleted", {}) is not None
    assert _emit(ptn, tenant, "project.created", {}) is None
    assert subscribed(["*"], "a.b") and not subscribed(["task.*"], "tasks.created")


def test_the_deliver_flag_holds_a_tenants_deliveries(ptn: Tenantry, hooked: Callable[..., Tenant]) -> None:
    with Receiver() as receiver:
        tenant = hooked(receiver.url)
        _mine(ptn, tenant)
        _emit(ptn, tenant, "task.created", {"id": 1})
        flag = ptn.flags.get("webhooks.deliver")  # created by init, from the plugin's FlagProvider
        assert flag.spec.default == "on"
        rules = [{"when": [{"attribute": "tenant", "op": "eq", "value": tenant.slug}], "variant": "off"}]
        ptn.flags.update("webhooks.deliver", {"rules": rules})
        try:
            report = deliver_pending(ptn)
            assert report.paused == [tenant.slug] and receiver.received == []
        finally:
            ptn.flags.update("webhooks.deliver", {"rules": []})
        assert deliver_pending(ptn).delivered == 1


def test_lifecycle_events_are_queued_by_the_hooks(ptn: Tenantry, hooked: Callable[..., Tenant]) -> None:
    with Receiver() as receiver:
        tenant = hooked(receiver.url)
        _mine(ptn, tenant)
        ptn.suspend(tenant.slug)
        ptn.resume(tenant.slug)
        ptn.move_tenant(tenant.slug, plan="business")
        deliver_pending(ptn)
    events = [json.loads(r.body)["type"] for r in receiver.received]
    assert events == ["tenant.suspended", "tenant.resumed", "tenant.moved"]
    assert json.loads(receiver.received[2].body)["data"]["to"]["isolation"] == "schema"


def test_one_tenants_failure_does_not_stop_the_others(
    ptn: Tenantry, hooked: Callable[..., Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    with Receiver() as receiver:
        bad, good = hooked(receiver.url), hooked(receiver.url)
        _mine(ptn, bad, good)
        for tenant in (bad, good):
            _emit(ptn, tenant, "task.created", {"id": 1})
        real = delivery_module._claim

        def claim(tn: Tenantry, limit: int, lease: float) -> Any:
            from tenantry import current_tenant

            bound = current_tenant()
            if bound is not None and bound.id == bad.id:
                raise RuntimeError("the bad tenant's run breaks")
            return real(tn, limit, lease)

        monkeypatch.setattr(delivery_module, "_claim", claim)
        report = deliver_pending(ptn)
    assert report.errors == [bad.slug] and report.delivered == 1
    assert [json.loads(r.body)["tenant"] for r in receiver.received] == [good.slug]
    [failure] = ptn.plugins.errors(plugin="webhooks", tenant=bad.slug)
    assert failure.hook == "deliver" and "the bad tenant's run breaks" in failure.last_error


@pytest.mark.parametrize(
    "value",
    [
        {"url": "ftp://hooks.example/x", "secret": SECRET},
        {"url": "https://user:pw@hooks.example/x", "secret": SECRET},
        {"url": "https://hooks.example/x"},  # no secret
        {"url": "https://hooks.example/x", "secret": "short"},
        {"url": "https://hooks.example/x", "secret": "any sixteen-plus character text"},  # not whsec_
        {"url": "https://hooks.example/x", "secret": "whsec_not*base64*at*all*but*long*enough"},
        {"url": "https://hooks.example/x", "secret": "whsec_c2hvcnQta2V5LTE2LWJ5dGVz"},  # 16 bytes: too short
        {"url": "https://hooks.example/x", "secret": SECRET, "events": ["Task Created"]},
        {"url": "https://hooks.example/x", "secret": SECRET, "surprise": 1},
        {"url": "not a url", "secret": SECRET},
    ],
)
def test_bad_config_saves_nothing(
    ptn: Tenantry, ptenant: Callable[..., Tenant], plugins_db: Scratch, value: dict[str, Any]
) -> None:
    tenant = ptenant()
    with pytest.raises(ConfigInvalid, match="webhooks"):
        ptn.config.set("webhooks", value, tenant=tenant.slug)
    with psycopg.connect(plugins_db.url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM tenantry.config_layers WHERE tenant_id = %s", (tenant.id,)
        ).fetchone() == (0,)
    with ptn.tenant(tenant.slug):
        assert ptn.config.current().webhooks.url is None  # type: ignore[attr-defined]


def test_bad_events_are_refused(ptn: Tenantry, hooked: Callable[..., Tenant]) -> None:
    from tenantry import InvalidInput

    tenant = hooked("https://hooks.example")
    for event in ("created", "Task.Created", "task created", "a." * 10 + "b"):
        with pytest.raises(InvalidInput, match="dotted lowercase"):
            _emit(ptn, tenant, event, {})
    with pytest.raises(InvalidInput, match="not JSON"):
        _emit(ptn, tenant, "task.created", {"x": float("nan")} | {"y": {1, 2}})
    assert _deliveries(ptn, tenant) == []


def test_deliveries_stay_with_their_tenant_on_every_tier(
    ptn: Tenantry, hooked: Callable[..., Tenant], tier: str
) -> None:
    from tenantry.testing import TIER_PLANS

    with Receiver() as receiver:
        a, b = hooked(receiver.url, plan=TIER_PLANS[tier]), hooked(receiver.url, plan=TIER_PLANS[tier])
        _configure(ptn, b, receiver.url + f"/hooks/{b.slug}", secret=B_SECRET)
        _mine(ptn, a, b)
        _emit(ptn, a, "task.created", {"secret_of": "a"})
        _emit(ptn, b, "task.created", {"secret_of": "b"})
        [b_row] = _deliveries(ptn, b)
        with ptn.tenant(a.slug), Session(ptn.engine()) as session:
            assert session.get(Delivery, (b.id, b_row.id)) is None
            assert [d.payload["data"] for d in session.scalars(sa.select(Delivery))] == [{"secret_of": "a"}]
            assert session.execute(sa.update(Delivery).values(status="failed")).rowcount == 1  # (its own row only)
            session.rollback()
        deliver_pending(ptn)
    by_path = {r.path: r for r in receiver.received}
    assert set(by_path) == {f"/hooks/{a.slug}", f"/hooks/{b.slug}"}
    assert json.loads(by_path[f"/hooks/{a.slug}"].body)["data"] == {"secret_of": "a"}
    assert verify(SECRET, by_path[f"/hooks/{a.slug}"].headers, by_path[f"/hooks/{a.slug}"].body)
    assert verify(B_SECRET, by_path[f"/hooks/{b.slug}"].headers, by_path[f"/hooks/{b.slug}"].body)
    assert not verify(SECRET, by_path[f"/hooks/{b.slug}"].headers, by_path[f"/hooks/{b.slug}"].body)


@pytest.fixture
def runner(ptn: Tenantry) -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as run:
        yield run
        run.run(ptn.router.aclose())


def test_the_routes_show_a_tenant_its_own_deliveries(
    ptn: Tenantry, hooked: Callable[..., Tenant], runner: asyncio.Runner
) -> None:
    from starlette.applications import Starlette

    a, b = hooked("https://a.example"), hooked("https://b.example")
    for i in range(3):
        _emit(ptn, a, "task.created", {"n": i})
    _emit(ptn, b, "task.created", {"n": 99})
    app = Starlette()
    mount_plugins(app, ptn, authorize=None)
    site = TenantMiddleware(app, ptn, [SubdomainResolver("test")])

    async def get(slug: str, path: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=site), base_url=f"http://{slug}.test") as client:
            return await client.get(path)

    overview = runner.run(get(a.slug, "/_plugins/webhooks/")).json()
    assert overview == {
        "plugin": "webhooks",
        "endpoint": f"https://a.example/hooks/{a.slug}",
        "events": ["*"],
        "counts": {"pending": 3, "delivered": 0, "failed": 0},
    }
    assert SECRET not in json.dumps(overview)
    listed = runner.run(get(a.slug, "/_plugins/webhooks/deliveries?limit=2")).json()["deliveries"]
    assert len(listed) == 2 and all(d["event"] == "task.created" for d in listed)
    b_ids = {str(d.event_id) for d in _deliveries(ptn, b)}
    every = runner.run(get(a.slug, "/_plugins/webhooks/deliveries?limit=200")).json()["deliveries"]
    assert len(every) == 3 and not b_ids & {d["event_id"] for d in every}
    assert runner.run(get(a.slug, "/_plugins/webhooks/deliveries?limit=0")).status_code == 422
    assert runner.run(get(a.slug, "/_plugins/webhooks/deliveries?status=nope")).status_code == 422
    assert runner.run(get(a.slug, "/_plugins/webhooks/nope")).status_code == 404


def test_deliveries_connect_to_the_address_the_guard_checked(
    ptn: Tenantry, hooked: Callable[..., Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a rebinding resolver: first loopback (allowed here), then another address; the delivery
    # must go where the first answer pointed, with the name in Host, and ask only once
    asked: list[str] = []

    def rebinding(host: str, timeout: float) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"] if len(asked) == 1 else ["127.0.0.9"]

    monkeypatch.setattr(ptn.plugins.get("webhooks"), "egress", Egress(allow_private=True, resolver=rebinding))
    with Receiver() as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        tenant = hooked(f"http://hooks.tenant.test:{port}")
        _mine(ptn, tenant)
        _emit(ptn, tenant, "task.created", {"id": 1})
        assert deliver_pending(ptn).delivered == 1
    [got] = receiver.received
    assert got.headers["host"] == f"hooks.tenant.test:{port}" and asked == ["hooks.tenant.test"]
    assert verify(SECRET, got.headers, got.body)


@pytest.mark.parametrize("disguised", ["64:ff9b::7f00:1", "2002:7f00:1::1", "::ffff:10.0.0.1", "100.64.0.1"])
def test_disguised_private_addresses_are_refused(
    ptn: Tenantry, hooked: Callable[..., Tenant], monkeypatch: pytest.MonkeyPatch, disguised: str
) -> None:
    # NAT64 and 6to4 forms of loopback passed main's is_global check
    strict = Egress(resolver=lambda host, timeout: [disguised])
    monkeypatch.setattr(ptn.plugins.get("webhooks"), "egress", strict)
    tenant = hooked("https://hooks.tenant.test")
    _mine(ptn, tenant)
    _emit(ptn, tenant, "task.created", {"id": 1})
    assert deliver_pending(ptn).failed == 1
    [row] = _deliveries(ptn, tenant)
    assert row.status == "failed" and row.last_error is not None and "not a public address" in row.last_error
