"""A tenant's overrides of its plan's edge limits (``tn.tenants.limits_set``), enforced by
the edge of a running data-plane process: the overridden rate is refused with 429, the other
tenant of the plan keeps the plan's, and unsetting it brings the plan's back, each within a
second of the change."""

from __future__ import annotations

import time
from typing import Any

from tenantry import Tenantry
from tenantry.web import PathPrefixResolver
from tenantry.web.limits import EdgeLimiter, MemoryRates
from tests.web.edge_app import client, starlette_app, wrap
from tests.web.limits_support import Clock, header_items, make_plan


def _dropped(plane: Tenantry, slug: str) -> None:
    """Wait (at most a second) for the plane to drop its lookup of the tenant (and with it, the
    overrides it read)."""
    deadline = time.monotonic() + 1.0
    while plane.directory.cached(slug) is not None:
        assert time.monotonic() < deadline, "the override's event did not reach the running process"
        time.sleep(0.02)


def test_an_override_is_enforced_at_the_edge_for_its_tenant_only(tn: Tenantry, make_tenant: Any, run: Any) -> None:
    plan = make_plan(tn, {"requests_per_second": 100, "burst": 100})
    a, b = make_tenant("ovr", plan=plan), make_tenant("ovr", plan=plan)
    clock = Clock()  # (time stands still: only the burst counts)
    with Tenantry(tn.data_plane_settings()) as plane:
        limiter = EdgeLimiter(plane, store=MemoryRates(clock=clock))
        app = wrap(plane, starlette_app(plane, []), [PathPrefixResolver("/t")], limits=limiter)

        def codes(slug: str, n: int) -> tuple[list[int], str]:
            async def main() -> tuple[list[int], str]:
                try:
                    async with client(app) as c:
                        answers = [await c.get(f"/t/{slug}/who") for _ in range(n)]
                        return [r.status_code for r in answers], answers[0].headers["ratelimit-policy"]
                finally:
                    await plane.router.aclose()

            return run(main())

        assert codes(a.slug, 3)[0] == [200] * 3  # warm: the plane knows A has no overrides
        tn.tenants.limits_set(a.slug, requests_per_second=1, burst=2, concurrency=4)
        _dropped(plane, a.slug)
        got, policy = codes(a.slug, 4)
        assert got == [200, 200, 429, 429]
        assert header_items(policy) == {
            "rate": {"q": "2", "w": "2"},
            "concurrency": {"q": "4", "qu": '"concurrent-requests"'},
        }
        # B, on the same plan, keeps the plan's rate
        got, policy = codes(b.slug, 20)
        assert got == [200] * 20 and header_items(policy) == {"rate": {"q": "100", "w": "1"}}
        tn.tenants.limits_unset(a.slug)
        _dropped(plane, a.slug)
        got, policy = codes(a.slug, 5)
        assert got == [200] * 5 and header_items(policy) == {"rate": {"q": "100", "w": "1"}}


def test_an_override_can_lift_the_plans_rate(tn: Tenantry, make_tenant: Any, run: Any) -> None:
    plan = make_plan(tn, {"requests_per_second": 1, "burst": 1})
    lifted, kept = make_tenant("ovr", plan=plan), make_tenant("ovr", plan=plan)
    tn.tenants.limits_set(lifted.slug, requests_per_second=None)
    app = wrap(tn, starlette_app(tn, []), [PathPrefixResolver("/t")], limits=EdgeLimiter(tn))

    async def main() -> tuple[list[Any], list[int]]:
        async with client(app) as c:
            up = [await c.get(f"/t/{lifted.slug}/who") for _ in range(5)]
            down = [(await c.get(f"/t/{kept.slug}/who")).status_code for _ in range(2)]
            return up, down

    up, down = run(main())
    assert [r.status_code for r in up] == [200] * 5 and "ratelimit-policy" not in up[0].headers
    assert down == [200, 429]


def test_an_override_of_a_never_limits_b(tn: Tenantry, make_tenant: Any, run: Any, monkeypatch: Any) -> None:
    """Two tenants on one plan; A's override limits A only. The negative control makes the
    overrides the directory keeps answer A's for every tenant: B is then refused at A's rate,
    so the check would see such a leak."""
    plan = make_plan(tn, {"requests_per_second": 100, "burst": 100})
    a, b = make_tenant("ovr", plan=plan), make_tenant("ovr", plan=plan)
    tn.tenants.limits_set(a.slug, requests_per_second=1, burst=1)

    def codes(limiter: EdgeLimiter) -> tuple[list[int], list[int]]:
        app = wrap(tn, starlette_app(tn, []), [PathPrefixResolver("/t")], limits=limiter)

        async def main() -> tuple[list[int], list[int]]:
            async with client(app) as c:
                down = [(await c.get(f"/t/{a.slug}/who")).status_code for _ in range(2)]
                up = [(await c.get(f"/t/{b.slug}/who")).status_code for _ in range(3)]
                return down, up

        return run(main())

    assert codes(EdgeLimiter(tn, store=MemoryRates(clock=Clock()))) == ([200, 429], [200, 200, 200])
    leaked = tn.directory.overrides(tn.tenants.lookup(a.slug))
    assert leaked is not None and leaked["requests_per_second"] == 1
    monkeypatch.setattr(tn.directory, "overrides", lambda tenant: leaked)
    assert codes(EdgeLimiter(tn, store=MemoryRates(clock=Clock()))) == ([200, 429], [200, 429, 429])
