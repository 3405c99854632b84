"""The shape of ``tenantry.tenant_config``: it sits below the app (it imports nothing from
``tenantry.app`` nor from the interfaces above it, not even for type checkers), its modules
stay small, and ``Tenantry`` keeps no config or flag methods of its own. Pure: reads the source."""

from __future__ import annotations

import ast
from pathlib import Path

import tenantry
import tenantry.tenant_config

PACKAGE = Path(tenantry.tenant_config.__file__).parent
ABOVE = ("tenantry.app", "tenantry.cli", "tenantry.api", "tenantry.web")


def _imports(tree: ast.Module) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_package_imports_nothing_from_above() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        text = path.read_text()
        assert len(text.splitlines()) <= 550, path.name
        above = {m for m in _imports(ast.parse(text)) if m.startswith(ABOVE)}
        assert above == set(), f"{path.name} imports {sorted(above)}"


def test_tenantry_has_no_config_or_flag_methods() -> None:
    assert not {"config", "flags", "configure", "config_sections", "_forget_config", "_forget_flags"} & set(
        vars(tenantry.Tenantry)
    )
    tn = tenantry.Tenantry(tenantry.Settings(embedded=True))  # constructing does no I/O
    assert isinstance(tn.config, tenantry.TenantConfig) and isinstance(tn.flags, tenantry.Flags)
    assert tn.config.sections is tn._live.sections
