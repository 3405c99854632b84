"""Every cache of catalog facts in the package is a CatalogCache: no other module keeps its own
staleness rules (expiry times, generation counters, a check of the listener, TTL constants) or
an ordered-dict cache, except the few below that hold no catalog facts. Pure: reads the source."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import tenantry

SRC = Path(tenantry.__file__).parent
CACHE_MODULE = "core/caches.py"
#: ordered dicts that are not caches of catalog facts, and why
NOT_CATALOG_FACTS = {
    "db/pools.py": "connection pools by route, least recently used",
    "db/binding.py": "prepared binding statements by bound tenant (the binding carries its own epoch)",
    "migrations/runner.py": "SQLAlchemy engines by URL",
    "branding/service.py": "stylesheets by (tenant id, version) and images by content address: immutable",
}
#: counters named "generation" that are not a cache's guard, and what they count
OTHER_GENERATIONS = {"db/liveness.py": "the pools of a server that went down and came back"}
#: what a cache constant of a module's own would be named
CACHE_CONSTANT = re.compile(r"(^|_)(TTL|UNTRUSTED|MISSING|CACHE)(_|$)")
#: where the catalog listener's state may be read: the listener itself, and the one place
#: that tells every CatalogCache whether it is connected (Plane.trusted, tn.plane.trusted)
LISTENER_STATE = {"db/catalog/events.py": None, "services/connections.py": "trusted"}


def _modules() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(SRC)): ast.parse(path.read_text(), str(path))
        for path in sorted(SRC.rglob("*.py"))
        if str(path.relative_to(SRC)) != CACHE_MODULE
    }


def _functions(tree: ast.Module) -> dict[ast.AST, str]:
    """Each node of ``tree`` -> the name of the function it is in ("" at module level)."""
    owner: dict[ast.AST, str] = {}

    def visit(node: ast.AST, name: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else name
            owner[child] = inner
            visit(child, inner)

    visit(tree, "")
    return owner


def test_no_module_keeps_its_own_staleness_rules() -> None:
    found: list[str] = []
    for name, tree in _modules().items():
        owner = _functions(tree)
        for node in ast.walk(tree):
            where = f"{name}:{getattr(node, 'lineno', '?')}"
            # a generation counter bumped by hand
            bumped = isinstance(node, ast.AugAssign) and "generation" in ast.unparse(node.target)
            if bumped and name not in OTHER_GENERATIONS:
                found.append(f"{where}: a generation counter of its own ({ast.unparse(node)})")
            # an expiry computed from the cache settings or the untrusted rule
            if isinstance(node, ast.Name | ast.Attribute):
                text = ast.unparse(node)
                if text.endswith(("UNTRUSTED_SECONDS", "expires_at")) and "caches" in text + name:
                    found.append(f"{where}: {text}")
            # the listener's state read outside the listener and Tenantry._trusted
            if isinstance(node, ast.Attribute) and node.attr == "listening":
                allowed = LISTENER_STATE.get(name, "-")
                if allowed is not None and owner.get(node) != allowed:
                    found.append(f"{where}: reads the listener's state in {owner.get(node) or 'module'}")
            # an ordered-dict cache
            if isinstance(node, ast.Name) and node.id == "OrderedDict" and name not in NOT_CATALOG_FACTS:
                found.append(f"{where}: an OrderedDict")
            # TTL constants of its own
            if isinstance(node, ast.Assign) and owner.get(node) == "" and name not in NOT_CATALOG_FACTS:
                for target in node.targets:
                    if isinstance(target, ast.Name) and CACHE_CONSTANT.search(target.id):
                        found.append(f"{where}: a cache constant of its own ({target.id})")
        for module in (n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)):
            if module.module == "tenantry.core.caches":
                names = {a.name for a in module.names}
                if not names <= {"CatalogCache", "UNKNOWN_SIZE", "UNKNOWN_TTL"}:
                    found.append(f"{name}: imports {sorted(names)} from the cache module")
    assert found == []


def test_the_cache_settings_reach_only_catalog_caches() -> None:
    """``tenant_cache_ttl`` is read only to build CatalogCaches (``tenant_cache_size`` also
    bounds the immutable stylesheets)."""
    readers = {
        name
        for name, tree in _modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "tenant_cache_ttl"
    }
    builders = {
        name
        for name, tree in _modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "CatalogCache"
    }
    assert readers and readers <= builders
    assert builders == {
        "services/connections.py",
        "services/directory.py",
        "tenant_config/live.py",
        "plugins/enablement.py",
        "branding/service.py",
        "web/limits.py",
    }
