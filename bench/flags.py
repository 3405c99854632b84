"""What a feature flag evaluation costs in a running app, against a plain ``dict.get``.

Run::

    python bench/flags.py [--server embedded|system] [--tenants 50] [--batches 3000]
                          [--batch 200] [--seed 1]

Set-up (not timed)
    Two scratch databases on the chosen server, each with its own catalog
    (``Tenantry(...).init()``), ``--tenants`` pooled tenants, and flags made through
    ``tn.flags.create``: 5 flags in one catalog, 500 in the other. Flag
    ``flag_<n>`` is the same in both: every third one has a rule on the plan, every fifth a
    rule on three tenants' slugs, and each a percentage rollout for the tenants no rule took. ``flag_3`` (measured) has a plan
    rule and a 50% rollout, so its value depends on the tenant. Both ``Tenantry`` objects run
    in this one process, as an app would, and each tenant's view and the flags are loaded
    before timing, after the catalog listener is connected (so the cache is trusted).

Sides (one process, the same loop for each)
    flags-5     ``tn.flags.enabled("flag_3")`` inside ``with tn.tenant(slug)``, 5 flags
    flags-500   the same with 500 flags
    dict.get    ``d.get("flag_3")`` on a dict of 5 booleans, the floor of any lookup

Information only
    user        ``tn.flags.enabled("flag_3", user=...)``: per-user rollouts are not memoised
                (a SHA-256 per call)
    config      ``tn.config.current()``: the tenant's typed config object
    openfeature ``client.get_boolean_value("flag_3", False)`` through the OpenFeature SDK and
                ``tenantry.TenantryProvider``

Method
    Each sample times ``--batch`` consecutive calls with ``time.perf_counter_ns`` and divides
    (a single call is shorter than the timer's own resolution and overhead); the tenant is bound
    outside the batch, a random one per sample. Sides take turns sample by sample in an order
    that rotates; the first tenth of the samples warm up and are not recorded; the garbage
    collector is paused. Reported: p50 and p95 ns per call, and two ratios of p50s:
    flags-5 / dict.get (goal <= 30) and flags-500 / flags-5 (goal <= 1.2). The last line is
    ``flags worst_ratio=<the larger of the two> vs_dict=<...> flags500_vs_5=<...>``.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime

from _scratch import add_server_arguments, environment, load_averages, run_took, scratch_database, server, verdict
from openfeature import api
from pydantic import BaseModel, Field

from tenantry import Settings, Tenantry, TenantryProvider

MEASURED = "flag_3"
DICT_GOAL = 30.0
SIZE_GOAL = 1.2


def flag_definition(n: int, tenants: Sequence[str]) -> dict[str, object]:
    """Flag ``flag_<n>``: a mix of rules and rollouts, the same in both catalogs."""
    definition: dict[str, object] = {"key": f"flag_{n}", "description": f"benchmark flag {n}"}
    rules = []
    if n % 3 == 0:
        rules.append({"when": [{"attribute": "plan", "op": "in", "value": ["enterprise"]}], "variant": "on"})
    if n % 5 == 0:
        rules.append({"when": [{"attribute": "tenant", "op": "in", "value": list(tenants[:3])}], "variant": "off"})
    definition["rules"] = rules
    definition["rollout"] = (n * 37) % 101 if n != 3 else 50
    return definition


class Limits(BaseModel):
    max_projects: int = 10


class BenchConfig(BaseModel):
    """A small app config schema, for the ``config`` side."""

    limits: Limits = Field(default_factory=Limits)
    welcome: str = "hello"


def build(settings: Settings, flags: int, tenants: int) -> tuple[Tenantry, list[str]]:
    """A catalog with ``tenants`` pooled tenants and ``flags`` flags."""
    tn = Tenantry(settings, actor="bench", config=BenchConfig)
    tn.init()
    slugs = [tn.create_tenant(f"bench-{i:04d}").slug for i in range(tenants)]
    for n in range(flags):
        tn.flags.create(flag_definition(n, slugs))
    return tn, slugs


def warm(tn: Tenantry, slugs: Sequence[str]) -> None:
    """Load every tenant's view and the flags while the listener is connected."""
    with tn.tenant(slugs[0]):
        tn.flags.enabled(MEASURED)
    assert tn._listener is not None and tn._listener.listening.wait(10), "the catalog listener did not connect"
    time.sleep(0.6)  # entries loaded before the listener connected lapse after 0.5 s
    for slug in slugs:
        with tn.tenant(slug):
            tn.flags.enabled(MEASURED)
            tn.config.current()


@contextmanager
def gc_paused() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


Side = Callable[[str, int], int]
"""Runs ``n`` calls bound to a tenant; returns the nanoseconds they took."""


def flag_side(tn: Tenantry, **kwargs: object) -> Side:
    enabled = tn.flags.enabled

    def run(slug: str, n: int) -> int:
        with tn.tenant(slug):
            start = time.perf_counter_ns()
            for _ in range(n):
                enabled(MEASURED, **kwargs)  # type: ignore[arg-type]
            return time.perf_counter_ns() - start

    return run


def dict_side() -> Side:
    d = {f"flag_{n}": n % 2 == 0 for n in range(5)}

    def run(slug: str, n: int) -> int:
        get = d.get
        start = time.perf_counter_ns()
        for _ in range(n):
            get(MEASURED)
        return time.perf_counter_ns() - start

    return run


def config_side(tn: Tenantry) -> Side:
    def run(slug: str, n: int) -> int:
        with tn.tenant(slug):
            start = time.perf_counter_ns()
            for _ in range(n):
                tn.config.current()
            return time.perf_counter_ns() - start

    return run


def openfeature_side(tn: Tenantry) -> Side:
    api.set_provider(TenantryProvider(tn))
    client = api.get_client()

    def run(slug: str, n: int) -> int:
        with tn.tenant(slug):
            start = time.perf_counter_ns()
            for _ in range(n):
                client.get_boolean_value(MEASURED, False)
            return time.perf_counter_ns() - start

    return run


def measure(
    sides: dict[str, Side], slugs: Sequence[str], batches: int, batch: int, seed: int
) -> dict[str, list[float]]:
    rng = random.Random(seed)
    per_call: dict[str, list[float]] = {name: [] for name in sides}
    order = list(sides.items())
    warmup = batches // 10
    with gc_paused():
        for i in range(warmup + batches):
            slug = rng.choice(slugs)
            turn = i % len(order)
            for name, run in order[turn:] + order[:turn]:
                elapsed = run(slug, batch)
                if i >= warmup:
                    per_call[name].append(elapsed / batch)
    return per_call


def nearest_rank(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))]


def benchmark(server_url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    with ExitStack() as stack:
        few_db = stack.enter_context(scratch_database(server_url))
        many_db = stack.enter_context(scratch_database(server_url))
        few, slugs = build(few_db.settings(tenant_cache_ttl=24 * 3600.0), 5, args.tenants)
        stack.callback(few.close)
        many, many_slugs = build(many_db.settings(tenant_cache_ttl=24 * 3600.0), 500, args.tenants)
        stack.callback(many.close)
        assert slugs == many_slugs
        stack.callback(api.clear_providers)
        with few.admin() as admin:
            version = admin.execute("SHOW server_version").fetchone()
        print(f"server: PostgreSQL {version[0] if version else '?'} ({args.server})")
        warm(few, slugs)
        warm(many, slugs)
        sides = {
            "flags-5": flag_side(few),
            "flags-500": flag_side(many),
            "dict.get": dict_side(),
            "user": flag_side(few, user="user-42"),
            "config": config_side(few),
            "openfeature": openfeature_side(few),
        }
        return measure(sides, slugs, args.batches, args.batch, args.seed)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_server_arguments(parser)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--batches", type=int, default=3000, help="measured samples per side")
    parser.add_argument("--batch", type=int, default=200, help="calls per sample")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    print(
        f"tenantry flags: {args.tenants} tenants, 5 and 500 flags, {args.batches} samples of {args.batch} calls,"
        f" {environment(started)}, load average {load_averages()}"
    )
    with server(args.server, args.url) as url:
        per_call = benchmark(url, args)
    print("\nns per call    p50       p95")
    for name, values in per_call.items():
        print(f"{name:<12} {statistics.median(values):8.1f}  {nearest_rank(values, 0.95):8.1f}")
    p50 = {name: statistics.median(values) for name, values in per_call.items()}
    vs_dict = p50["flags-5"] / p50["dict.get"]
    by_size = p50["flags-500"] / p50["flags-5"]
    print(f"\n{run_took(started)}")
    print(f"ratio flags-5/dict.get = {vs_dict:.2f} (goal <= {DICT_GOAL:g}: {verdict(vs_dict, DICT_GOAL)})")
    print(f"ratio flags-500/flags-5 = {by_size:.3f} (goal <= {SIZE_GOAL:g}: {verdict(by_size, SIZE_GOAL)})")
    print(f"flags worst_ratio={max(vs_dict, by_size):.3f} vs_dict={vs_dict:.3f} flags500_vs_5={by_size:.3f}")


if __name__ == "__main__":
    main()
