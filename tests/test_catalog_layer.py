"""One catalog layer: every statement on the control catalog's tables and routing views is in
``tenantry.db.catalog`` (issue 13); the services, the edge and the rest compose its functions.

The tables and views are read off the catalog's own migrations, so a new table is covered the
day it is added; the statements are found in every string literal of ``src/`` (f-strings'
literal parts included).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import tenantry

SRC = Path(tenantry.__file__).parent
CATALOG_SQL = SRC / "db" / "sql" / "catalog"
HOME = SRC / "db" / "catalog"


def _catalog_relations() -> set[str]:
    found: set[str] = set()
    for path in CATALOG_SQL.glob("*.sql"):
        text = path.read_text()
        found |= {
            f"{schema}.{name}"
            for schema, name in re.findall(
                r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:TABLE|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?(tenantry(?:_routing)?)\.(\w+)",
                text,
                flags=re.IGNORECASE,
            )
        }
    return found


RELATIONS = _catalog_relations()
STATEMENT = re.compile(
    r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+(" + "|".join(re.escape(r) for r in sorted(RELATIONS)) + r")\b",
    re.IGNORECASE,
)


#: the names of the catalog's schemas in tenantry.db.catalog (a statement that spells a
#: relation through them, f"FROM {ROUTING_SCHEMA}.plans", is a catalog statement too)
SCHEMA_NAMES = {"CATALOG_SCHEMA", "ROUTING_SCHEMA"}


def _strings(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module, with each f-string's catalog schema spelled out."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    inner = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    for node in ast.walk(tree):
        if id(node) in inner:
            continue
        if isinstance(node, ast.JoinedStr):
            parts = []
            for part in node.values:
                if isinstance(part, ast.Constant):
                    parts.append(str(part.value))
                elif isinstance(part, ast.FormattedValue) and ast.unparse(part.value).split(".")[-1] in SCHEMA_NAMES:
                    parts.append("tenantry_routing" if "ROUTING" in ast.unparse(part.value) else "tenantry")
                else:
                    parts.append("?")
            found.append((node.lineno, "".join(parts)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))
    return found


def _statements_outside_home(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if HOME in path.parents:
            continue
        for line, text in _strings(path):
            for match in STATEMENT.finditer(text):
                found.append(f"{path.relative_to(root.parent)}:{line}: {match.group(0)}")
    return found


def test_the_catalog_tables_are_known() -> None:
    assert {"tenantry.tenants", "tenantry.placements", "tenantry.plans", "tenantry_routing.tenants"} <= RELATIONS


def test_catalog_sql_lives_in_db_catalog_only() -> None:
    assert _statements_outside_home(SRC) == []


def test_the_check_sees_a_statement_outside_the_home(tmp_path: Path) -> None:
    """Negative control: a module with catalog SQL outside db/catalog is reported."""
    rogue = tmp_path / "tenantry" / "services" / "rogue.py"
    rogue.parent.mkdir(parents=True)
    rogue.write_text(
        'Q = f"SELECT slug FROM tenantry.tenants WHERE id = {1}"\n'
        'R = "UPDATE tenantry_routing.plans"\n'
        'S = f"SELECT limits FROM {catalog.ROUTING_SCHEMA}.plans"\n'
    )
    assert len(_statements_outside_home(tmp_path / "tenantry")) == 3
