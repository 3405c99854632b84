"""The edge's limits against real PostgreSQL (plans in the catalog, their change events): each
tenant's rate and concurrency, the process cap, the RateLimit fields, fairness between
tenants, a plan change taking effect, an override layer, and a tenant with no limits."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, TypeVar

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tenantry import Tenantry, current_tenant
from tenantry.core.limits import EdgeLimits, policy_field
from tenantry.web import PathPrefixResolver
from tenantry.web.limits import CatalogLimits, EdgeLimiter, MemoryRates
from tests.web.edge_app import BASE, client, get, starlette_app, wrap
from tests.web.limits_support import Clock, header_items, make_plan, set_plan_limits

T = TypeVar("T")


def gated_app(gate: asyncio.Event) -> Starlette:
    """``/hold`` answers once ``gate`` is set; ``/who`` at once."""

    async def hold(request: Request) -> PlainTextResponse:
        await gate.wait()
        bound = current_tenant()
        return PlainTextResponse(bound.slug if bound else "-")

    async def who(request: Request) -> PlainTextResponse:
        bound = current_tenant()
        return PlainTextResponse(bound.slug if bound else "-")

    return Starlette(routes=[Route("/hold", hold), Route("/who", who)])


async def all_of(calls: Iterable[Awaitable[T]]) -> list[T]:
    return list(await asyncio.gather(*calls))


def edge(tn: Tenantry, app: Any, limiter: EdgeLimiter | bool = True) -> Any:
    return wrap(tn, app, [PathPrefixResolver("/t")], limits=limiter)


def test_the_rate_refuses_with_429_and_says_when_to_retry(tn: Tenantry, make_tenant, run) -> None:
    plan = make_plan(tn, {"requests_per_second": 2, "burst": 3})
    t = make_tenant("lim", plan=plan)
    clock = Clock()
    app = edge(tn, starlette_app(tn, []), EdgeLimiter(tn, store=MemoryRates(clock=clock)))

    async def main() -> list[Any]:
        async with client(app) as c:
            answers = [await c.get(f"/t/{t.slug}/who") for _ in range(4)]
            clock.advance(0.5)  # one more request's worth
            answers.append(await c.get(f"/t/{t.slug}/who"))
            answers.append(await c.get(f"/t/{t.slug}/who"))
            return answers

    answers = run(main())
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 200, 429]
    policy = EdgeLimits(rate=2.0, burst=3)
    for a in answers:
        assert a.headers["ratelimit-policy"] == policy_field(policy) == '"rate";q=4;w=2'
    assert [header_items(a.headers["ratelimit"])["rate"]["r"] for a in answers] == ["2", "1", "0", "0", "0", "0"]
    # the bucket is full again 1.5 s after three requests at once: t rounds up
    assert header_items(answers[2].headers["ratelimit"])["rate"]["t"] == "2"
    refused = answers[3]
    assert refused.headers["retry-after"] == "1"  # 0.5 s until the next request's worth, rounded up
    assert refused.headers["content-type"] == "application/problem+json"
    doc = refused.json()
    assert doc["type"] == "urn:tenantry:problem:rate-limited" and doc["status"] == 429
    assert doc["limit"] == "rate" and t.slug in doc["detail"] and doc["instance"] == f"/t/{t.slug}/who"


def test_the_concurrency_cap_counts_requests_in_flight(tn: Tenantry, make_tenant, run) -> None:
    plan = make_plan(tn, {"concurrency": 2})
    t, other = make_tenant("lim", plan=plan), make_tenant("lim", plan=plan)
    gate = asyncio.Event()
    limiter = EdgeLimiter(tn)
    app = edge(tn, gated_app(gate), limiter)

    async def main() -> tuple[list[Any], Any, Any, Any, int]:
        async with client(app) as c:
            held = [asyncio.create_task(c.get(f"/t/{t.slug}/hold")) for _ in range(2)]
            while limiter.held(t.id) < 2:
                await asyncio.sleep(0.005)
            third = await c.get(f"/t/{t.slug}/who")
            elsewhere = await c.get(f"/t/{other.slug}/who")  # another tenant's budget
            gate.set()
            done = await asyncio.gather(*held)
            after = await c.get(f"/t/{t.slug}/who")
            return done, third, elsewhere, after, limiter.held(t.id)

    done, third, elsewhere, after, left = run(main())
    assert [d.status_code for d in done] == [200, 200] and elsewhere.status_code == 200
    assert third.status_code == 429 and third.json()["limit"] == "concurrency"
    assert third.json()["type"] == "urn:tenantry:problem:concurrency-limited"
    assert third.headers["retry-after"] == "1"
    assert header_items(third.headers["ratelimit"]) == {"concurrency": {"r": "0"}}
    assert header_items(third.headers["ratelimit-policy"]) == {"concurrency": {"q": "2", "qu": '"concurrent-requests"'}}
    assert header_items(after.headers["ratelimit"]) == {"concurrency": {"r": "1"}}  # itself in flight
    assert left == 0  # every slot given back


def test_a_flooding_tenant_does_not_get_others_refused(tn: Tenantry, make_tenant, run) -> None:
    plan = make_plan(tn, {"requests_per_second": 5, "concurrency": 3})
    flood, quiet = make_tenant("lim", plan=plan), make_tenant("lim", plan=plan)
    app = edge(tn, starlette_app(tn, []))

    async def main() -> tuple[list[int], list[int]]:
        async with client(app) as c:

            async def flooding() -> list[int]:
                answers = await asyncio.gather(
                    *(c.get(f"/t/{flood.slug}/slow", params={"s": "0.05"}) for _ in range(60))
                )
                return [a.status_code for a in answers]

            async def calm() -> list[int]:
                codes = []
                for _ in range(4):
                    codes.append((await c.get(f"/t/{quiet.slug}/projects")).status_code)
                    await asyncio.sleep(0.02)
                return codes

            return await asyncio.gather(flooding(), calm())

    flooded, calm = run(main())
    assert calm == [200, 200, 200, 200]
    assert flooded.count(429) >= 50 and set(flooded) == {200, 429}


def test_the_process_cap_refuses_with_503(tn: Tenantry, make_tenant, run) -> None:
    t = make_tenant("lim", plan=make_plan(tn, {}))
    gate = asyncio.Event()
    limiter = EdgeLimiter(tn, max_in_flight=1)
    app = edge(tn, gated_app(gate), limiter)

    async def main() -> tuple[Any, Any, Any]:
        async with client(app) as c:
            held = asyncio.create_task(c.get(f"/t/{t.slug}/hold"))
            while limiter.in_flight < 1:
                await asyncio.sleep(0.005)
            refused = await c.get(f"/t/{t.slug}/who")
            gate.set()
            return await held, refused, await c.get(f"/t/{t.slug}/who")

    held, refused, after = run(main())
    assert (held.status_code, refused.status_code, after.status_code) == (200, 503, 200)
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["type"] == "urn:tenantry:problem:overloaded"
    assert limiter.in_flight == 0


def test_a_tenant_without_limits_gets_no_fields(tn: Tenantry, make_tenant, run) -> None:
    t = make_tenant("lim", plan=make_plan(tn, {"storage_mb": 10, "requests_per_second": None}))
    app = edge(tn, starlette_app(tn, []))
    answers = run(all_of(get(app, f"http://{BASE}/t/{t.slug}/who") for _ in range(30)))
    assert {a.status_code for a in answers} == {200}
    assert not any("ratelimit" in a.headers or "ratelimit-policy" in a.headers for a in answers)


def test_a_plan_change_takes_effect_at_once(tn: Tenantry, make_tenant, run) -> None:
    plan = make_plan(tn, {"requests_per_second": 1, "burst": 1})
    t = make_tenant("lim", plan=plan)
    limiter = EdgeLimiter(tn)
    app = edge(tn, starlette_app(tn, []), limiter)

    def codes(n: int) -> list[int]:
        async def main() -> list[int]:
            async with client(app) as c:
                return [(await c.get(f"/t/{t.slug}/who")).status_code for _ in range(n)]

        return run(main())

    assert codes(3) == [200, 429, 429]
    set_plan_limits(tn, plan, {"requests_per_second": 1000})  # the trigger sends plan:<name>
    deadline = time.monotonic() + 5
    assert isinstance(limiter.source, CatalogLimits)
    while limiter.source.cache.peek(plan) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert codes(20) == [200] * 20
    set_plan_limits(tn, plan, {})
    while limiter.source.cache.peek(plan) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    answers = run(all_of(get(app, f"http://{BASE}/t/{t.slug}/who") for _ in range(3)))
    assert all("ratelimit-policy" not in a.headers for a in answers)


class Overrides:
    """A per-tenant layer as an override store would give it (here: a dict)."""

    def __init__(self, documents: Mapping[uuid.UUID, Mapping[str, Any]]) -> None:
        self.documents = documents

    def cached(self, tenant_id: uuid.UUID) -> tuple[bool, Mapping[str, Any] | None]:
        return True, self.documents.get(tenant_id)

    def load(self, tenant_id: uuid.UUID) -> Mapping[str, Any] | None:
        return self.documents.get(tenant_id)


def test_an_override_layer_wins_over_the_plan(tn: Tenantry, make_tenant, run) -> None:
    plan = make_plan(tn, {"requests_per_second": 1, "burst": 1, "concurrency": 3})
    raised, plain = make_tenant("lim", plan=plan), make_tenant("lim", plan=plan)
    source = CatalogLimits(tn, overrides=Overrides({raised.id: {"requests_per_second": 100, "burst": 5}}))
    app = edge(tn, starlette_app(tn, []), EdgeLimiter(tn, source=source))

    async def main() -> tuple[list[int], list[int], str]:
        async with client(app) as c:
            up = [(await c.get(f"/t/{raised.slug}/who")).status_code for _ in range(5)]
            down = [(await c.get(f"/t/{plain.slug}/who")).status_code for _ in range(2)]
            policy = (await c.get(f"/t/{raised.slug}/who")).headers["ratelimit-policy"]
            return up, down, policy

    up, down, policy = run(main())
    assert up == [200] * 5 and down == [200, 429]
    # the override's rate, the plan's concurrency
    assert header_items(policy) == {
        "rate": {"q": "100", "w": "1"},
        "concurrency": {"q": "3", "qu": '"concurrent-requests"'},
    }


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({}, EdgeLimits()),
        ({"requests_per_second": 10, "concurrency": 5, "storage_mb": 500}, EdgeLimits(10.0, 10, 5)),
        ({"requests_per_second": 0.5}, EdgeLimits(0.5, 1, None)),
        ({"requests_per_second": 100, "burst": 20}, EdgeLimits(100.0, 20, None)),
        ({"burst": 20}, EdgeLimits()),
    ],
)
def test_limits_from_a_plan(document: dict[str, Any], expected: EdgeLimits) -> None:
    assert EdgeLimits.from_layers(document) == expected


@pytest.mark.parametrize(
    "document",
    [
        {"requests_per_second": "10"},
        {"requests_per_second": -1},
        {"concurrency": 1.5},
        {"burst": 0},
        {"concurrency": True},
    ],
)
def test_limits_that_are_not_limits_name_their_key(document: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(document))):
        EdgeLimits.from_layers(document)


def test_the_policy_window_never_states_less_than_the_rate() -> None:
    for rate, burst in [(1, 1), (2, 3), (10, 10), (0.5, 1), (7.5, 2), (1000, 50), (3, 100)]:
        quota, seconds = EdgeLimits.from_layers({"requests_per_second": rate, "burst": burst}).window()
        assert seconds >= 1 and quota >= burst and quota / seconds >= rate - 1e-9
        assert math.isclose(quota, max(burst, round(rate * seconds)))


def test_a_data_plane_process_reads_the_plans_limits(tn: Tenantry, make_tenant, run) -> None:
    """Through the reader role's routing view (catalog 0014), as a process without the admin
    connection does."""
    t = make_tenant("lim", plan=make_plan(tn, {"requests_per_second": 1, "burst": 1}))
    with Tenantry(tn.data_plane_settings()) as plane:
        app = wrap(plane, starlette_app(plane, []), [PathPrefixResolver("/t")])

        async def main() -> list[int]:
            try:
                async with client(app) as c:
                    return [(await c.get(f"/t/{t.slug}/who")).status_code for _ in range(2)]
            finally:
                await plane.router.aclose()

        assert run(main()) == [200, 429]
