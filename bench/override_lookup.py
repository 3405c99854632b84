"""Same-run comparison: base's Directory/CatalogLimits (loaded from /work/base's files) against the branch's, in one process, rounds interleaved."""
import importlib.util, statistics, sys, time, os
from tenantry import Tenantry
from tenantry.testing import ScratchCatalog, SYSTEM_URL

def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec); sys.modules[name] = mod; spec.loader.exec_module(mod); return mod

base_dir = load("base_directory", "/tmp/base_directory.py")
base_lim = load("base_web_limits", "/tmp/base_web_limits.py")
from tenantry.web.limits import CatalogLimits

s = ScratchCatalog(SYSTEM_URL).create()
tn = Tenantry(s.settings())
try:
    tn.schema.init()
    a = tn.tenants.create("micro-a"); b = tn.tenants.create("micro-b")
    tn.tenants.limits_set("micro-b", statement_timeout_ms=1234, requests_per_second=5000)
    tn.plane.listen(); time.sleep(0.3)
    new_d = tn.directory
    old_d = base_dir.Directory(tn.plane)
    new_l = CatalogLimits(tn)
    old_l = base_lim.CatalogLimits(tn)
    for d in (new_d, old_d):
        d.bind("micro-a"); d.bind("micro-b")
    ra = new_d.resolved("micro-a")[0]; rb = new_d.resolved("micro-b")[0]
    new_l.load(ra); new_l.load(rb); old_l.load(ra)
    def run(fn, n=50000):
        t0 = time.perf_counter()
        for _ in range(n): fn()
        return (time.perf_counter() - t0) / n * 1e9
    cases = {
        "bind base": lambda: old_d.bind("micro-a"),
        "bind branch": lambda: new_d.bind("micro-a"),
        "bind branch (tenant with overrides)": lambda: new_d.bind("micro-b"),
        "edge limits base": lambda: old_l.cached(ra),
        "edge limits branch": lambda: new_l.cached(ra),
        "edge limits branch (tenant with overrides)": lambda: new_l.cached(rb),
    }
    assert new_d.bind("micro-b").settings != old_d.bind("micro-b").settings
    results = {k: [] for k in cases}
    for _ in range(15):
        for k, fn in cases.items():
            results[k].append(run(fn))
    for k, v in results.items():
        print(f"{k:45s} {statistics.median(v):7.0f} ns (min {min(v):.0f})")
    print(f"bind_ratio_branch_over_base={statistics.median(results['bind branch'])/statistics.median(results['bind base']):.3f}")
    print(f"edge_ratio_branch_over_base={statistics.median(results['edge limits branch'])/statistics.median(results['edge limits base']):.3f}")
finally:
    tn.close(); s.drop()
