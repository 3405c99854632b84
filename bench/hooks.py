"""What the durable queue of lifecycle hook calls costs a tenant change, and how soon another
process runs the hook.

Run::

    python bench/hooks.py [--server embedded|system] [--tenants 20] [--rounds 150]

Set-up (not timed)
    A scratch catalog, ``--tenants`` pooled tenants in each of two groups, and a plugin
    (``bench-hook``, a ``LifecycleHooks`` that notes when it is called) subscribed to
    ``suspended`` and ``resumed`` and switched on for the first group only. Three ``Tenantry``
    objects in this one process, each with its own pools and listener, as three processes
    would have them: ``cli`` runs no plugin (the CLI, the admin API), ``app`` runs the plugin
    with its hook runner started, ``maker`` runs the plugin with no runner.

Sides (the same loop for each: ``suspend`` then ``resume`` of a random tenant of the group)
    bare        ``cli`` changes a tenant the plugin is off for: nothing is queued (baseline)
    queued      ``cli`` changes a tenant the plugin is on for: each change queues a call
                (one ``INSERT ... SELECT`` and a ``NOTIFY`` in the change's transaction)
    inline      ``maker`` changes a tenant the plugin is on for: the call is queued and run
                by ``maker`` before ``suspend()`` returns (claim, hook, finish)

Delivery latency (``queued`` side)
    From the moment ``cli.tenants.suspend()`` returned (the change committed) until ``app``'s hook
    runner called the hook: the ``NOTIFY`` reaches ``app``'s listener, which wakes the runner,
    which claims and calls.

Method
    Sides take turns round by round in a rotating order; the first tenth of the rounds warm up
    and are not recorded. Reported: p50 and p95 ms of a change (suspend or resume) per side,
    the p50 and p95 of the delivery latency, and the ratio queued / bare of the p50s (what
    queueing adds to a change made without the plugin; no goal was set: a figure to watch). The last line is
    ``hooks queue_ratio=<queued/bare> inline_ratio=<inline/bare> delivery_p50_ms=<...>``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from _scratch import add_server_arguments, environment, run_took, scratch_database, server

from tenantry import Tenantry
from tenantry.plugins import LifecycleHooks

PLUGIN = "bench-hook"


class Noted(LifecycleHooks):
    """Notes the monotonic time it was called for each (event, tenant)."""

    name = PLUGIN

    def __init__(self) -> None:
        self.called: dict[tuple[str, str], float] = {}
        self.arrived = threading.Condition()

    def _note(self, event: str, tenant: Any) -> None:
        with self.arrived:
            self.called[(event, tenant.slug)] = time.perf_counter()
            self.arrived.notify_all()

    def on_tenant_suspended(self, tenant: Any) -> None:
        self._note("suspended", tenant)

    def on_tenant_resumed(self, tenant: Any) -> None:
        self._note("resumed", tenant)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_server_arguments(parser)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = datetime.now(UTC)
    print(f"bench/hooks.py on {args.server}: {environment(started)}")
    rng = random.Random(args.seed)
    with server(args.server, args.url) as server_url, scratch_database(server_url) as scratch:
        app_plugin, maker_plugin = Noted(), Noted()
        cli = Tenantry(scratch.settings(hook_runner=False), actor="bench-cli")
        app = Tenantry(scratch.settings(), plugins=[app_plugin], actor="bench-app")
        maker = Tenantry(scratch.settings(hook_runner=False), plugins=[maker_plugin], actor="bench-maker")
        try:
            cli.schema.init()
            app.schema.init()  # subscribes the plugin
            on = [cli.tenants.create(f"on-{uuid.uuid4().hex[:8]}").slug for _ in range(args.tenants)]
            off = [cli.tenants.create(f"off-{uuid.uuid4().hex[:8]}").slug for _ in range(args.tenants)]
            mine = [cli.tenants.create(f"mine-{uuid.uuid4().hex[:8]}").slug for _ in range(args.tenants)]
            for slug in on:
                app.plugins.enable(PLUGIN, tenant=slug)
            for slug in mine:
                maker.plugins.enable(PLUGIN, tenant=slug)
            assert app.plugins.start_hooks()
            assert app.plane._listener is not None and app.plane._listener.listening.wait(10)

            timings: dict[str, list[float]] = {"bare": [], "queued": [], "inline": []}
            latency: list[float] = []
            warmup = args.rounds // 10

            def change(side: str, record: bool) -> None:
                maker_side = side == "inline"
                who = maker if maker_side else cli
                slug = rng.choice({"bare": off, "queued": on, "inline": mine}[side])
                for event, call in (("suspended", who.suspend), ("resumed", who.resume)):
                    t0 = time.perf_counter()
                    call(slug)
                    t1 = time.perf_counter()
                    if record:
                        timings[side].append((t1 - t0) * 1000)
                    if side == "queued":
                        with app_plugin.arrived:
                            app_plugin.arrived.wait_for(lambda: app_plugin.called.get((event, slug), 0) > t1, 10)
                        if record:
                            latency.append((app_plugin.called[(event, slug)] - t1) * 1000)
                    if maker_side:
                        assert maker_plugin.called.get((event, slug), 0) > t0, "the maker did not run its hook inline"

            sides = list(timings)
            for n in range(args.rounds):
                order = sides[n % 3 :] + sides[: n % 3]
                for side in order:
                    change(side, n >= warmup)
        finally:
            for tn in (cli, app, maker):
                tn.close()

    print(f"{'side':<8} {'p50 ms':>8} {'p95 ms':>8}  samples")
    for side, values in timings.items():
        print(f"{side:<8} {statistics.median(values):8.2f} {percentile(values, 0.95):8.2f}  {len(values)}")
    print(
        f"delivery to another process's runner: p50 {statistics.median(latency):.2f} ms,"
        f" p95 {percentile(latency, 0.95):.2f} ms, max {max(latency):.2f} ms ({len(latency)} calls)"
    )
    queue_ratio = statistics.median(timings["queued"]) / statistics.median(timings["bare"])
    inline_ratio = statistics.median(timings["inline"]) / statistics.median(timings["bare"])
    print(
        f"queued / bare = {queue_ratio:.3f} (+{statistics.median(timings['queued']) - statistics.median(timings['bare']):.2f} ms a change);"
        f" inline / bare = {inline_ratio:.3f} (the hook runs before the change returns)"
    )
    print(run_took(started))
    print(
        f"hooks queue_ratio={queue_ratio:.3f} inline_ratio={inline_ratio:.3f} delivery_p50_ms={statistics.median(latency):.2f}"
    )


if __name__ == "__main__":
    main()
