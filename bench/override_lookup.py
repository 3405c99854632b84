"""What per-tenant limit overrides cost on the request path: ``tn.directory.bind`` (every
transaction's binding, cached) and the edge's limits lookup (``CatalogLimits.cached``, every
request of a limited tenant), per call, in one process.

Run::

    python bench/override_lookup.py [--server embedded|system] [--url URL] [--against REV]
                                    [--rounds 15] [--calls 50000]

Set-up (not timed)
    A scratch database, two pooled tenants on ``free``: ``plain`` without overrides,
    ``own`` with two (``statement_timeout_ms`` and ``requests_per_second``); both bound and
    their edge limits loaded once, so every call below is a cache hit, as on a warm process.

Sides (rounds interleaved, ``--calls`` calls a side a round; the median of the rounds)
    plain, own   the tenants above, with this tree's code.
    base         with ``--against REV`` (a git revision, such as the commit before overrides):
                 that revision's ``services/directory.py`` and ``web/limits.py``, loaded beside
                 this tree's, on the same Tenantry and tenants (``plain``).

The last line is ``bind`` time of this tree over the base's for ``plain`` with ``--against``
(goal <= 1.05: a tenant without overrides pays nothing in its transactions), else ``own`` over
``plain``.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from _scratch import add_server_arguments, environment, load_averages, run_took, scratch_database, server

from tenantry import Tenantry
from tenantry.web.limits import CatalogLimits

ROOT = Path(__file__).resolve().parent.parent


def _module_at(rev: str, path: str, name: str, folder: Path) -> ModuleType:
    """``path`` of the repository as it was at ``rev``, imported as ``name``."""
    text = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True)
    file = folder / f"{name}.py"
    file.write_text(text.stdout)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _per_call(fn: Callable[[], Any], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e9


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_server_arguments(parser)
    parser.add_argument("--against", help="a git revision to compare with (its directory and edge limits)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=50000)
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    print(f"tenantry override lookup: {environment(started)}, load average {load_averages()}")
    with server(args.server, args.url) as url, scratch_database(url) as scratch, tempfile.TemporaryDirectory() as tmp:
        tn = Tenantry(scratch.settings())
        try:
            tn.schema.init()
            tn.tenants.create("plain")
            tn.tenants.create("own")
            tn.tenants.limits_set("own", statement_timeout_ms=1234, requests_per_second=5000)
            tn.plane.listen()
            time.sleep(0.3)
            edge = CatalogLimits(tn)
            for slug in ("plain", "own"):
                tn.directory.bind(slug)
                edge.load(tn.directory.resolved(slug)[0])
            found = {slug: tn.directory.resolved(slug)[0] for slug in ("plain", "own")}
            sides: dict[str, Callable[[], Any]] = {
                "bind plain": lambda: tn.directory.bind("plain"),
                "bind own": lambda: tn.directory.bind("own"),
                "edge plain": lambda: edge.cached(found["plain"]),
                "edge own": lambda: edge.cached(found["own"]),
            }
            if args.against:
                base_directory = _module_at(
                    args.against, "src/tenantry/services/directory.py", "base_directory", Path(tmp)
                )
                base_limits = _module_at(args.against, "src/tenantry/web/limits.py", "base_limits", Path(tmp))
                directory, base_edge = base_directory.Directory(tn.plane), base_limits.CatalogLimits(tn)
                directory.bind("plain")
                base_edge.load(found["plain"])
                sides["bind base"] = lambda: directory.bind("plain")
                sides["edge base"] = lambda: base_edge.cached(found["plain"])
            assert tn.directory.bind("own").settings != tn.directory.bind("plain").settings
            results: dict[str, list[float]] = {name: [] for name in sides}
            for _ in range(args.rounds):
                for name, fn in sides.items():
                    results[name].append(_per_call(fn, args.calls))
            median = {name: statistics.median(values) for name, values in results.items()}
            for name, value in median.items():
                print(f"{name:12s} {value:7.0f} ns per call (min {min(results[name]):.0f})")
            print(run_took(started))
            if args.against:
                print(f"edge_ratio_vs_{args.against}={median['edge plain'] / median['edge base']:.3f}")
                print(f"bind_ratio_vs_{args.against}={median['bind plain'] / median['bind base']:.3f}")
            else:
                print(f"override_bind_ratio={median['bind own'] / median['bind plain']:.3f}")
        finally:
            tn.close()


if __name__ == "__main__":
    main()
