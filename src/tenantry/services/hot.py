"""Hot tenants: those that take a large share of their cell's load, with a move to suggest.

Pure (no I/O): works on the rows :func:`tenantry.db.catalog.usage.usage_by_tenant` reads.
A tenant's load is one usage column (``db_ms`` by default: the time its transactions held
the cell's database); its share is that over the sum of its cell's tenants. The suggestion
is text for an operator (a later tool acts on it):

* a pooled tenant: a plan of its own schema (its load and its tables apart from the rest);
* a schema-tier tenant: a plan of its own database;
* a database-tier tenant: the quietest other cell, or a new cell of its own.

>>> rows = [{"tenant": "a", "cell": "primary", "plan": "free", "db_ms": 80.0},
...         {"tenant": "b", "cell": "primary", "plan": "free", "db_ms": 20.0}]
>>> [(h["tenant"], h["share"]) for h in hot_tenants(rows, {"free": "pooled", "biz": "schema"}, ["primary"], share=0.5)]
[('a', 0.8)]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["hot_tenants"]

_STRONGER = {"pooled": "schema", "schema": "database"}


def hot_tenants(
    rows: Sequence[Mapping[str, Any]],
    plans: Mapping[str, str],
    cells: Sequence[str],
    *,
    share: float,
    by: str = "db_ms",
) -> list[dict[str, Any]]:
    """The tenants of ``rows`` with at least ``share`` of their cell's ``by``, largest share
    first, each with ``share``, ``cell_total`` and a ``suggestion``. ``plans``: each plan's
    isolation by name; ``cells``: the cells a tenant could move to."""
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        totals[row.get("cell") or "?"] += float(row.get(by) or 0)
    found = []
    for row in rows:
        cell = row.get("cell") or "?"
        total = totals[cell]
        value = float(row.get(by) or 0)
        if total <= 0 or value / total < share:
            continue
        part = value / total
        found.append(
            {
                "tenant": row["tenant"],
                "tenant_id": row.get("tenant_id"),
                "plan": row["plan"],
                "cell": cell,
                "by": by,
                "value": value,
                "cell_total": total,
                "share": round(part, 4),
                "suggestion": _suggest(row, plans, cells, totals, part),
            }
        )
    return sorted(found, key=lambda h: (-h["share"], h["tenant"]))


def _suggest(
    row: Mapping[str, Any], plans: Mapping[str, str], cells: Sequence[str], totals: Mapping[str, float], part: float
) -> str:
    slug, plan, cell = row["tenant"], row["plan"], row.get("cell") or "?"
    isolation = plans.get(plan, "pooled")
    stronger = _STRONGER.get(isolation)
    took = f"{slug} took {part:.0%} of cell {cell}'s load"
    if stronger is not None:
        choices = sorted(name for name, iso in plans.items() if iso == stronger)
        if choices:
            return f"{took}: move it to a plan of its own {stronger} (e.g. {choices[0]!r}) to keep it apart"
        return f"{took}: make a plan of {stronger} isolation and move it there to keep it apart"
    others = sorted((c for c in cells if c != cell), key=lambda c: (totals.get(c, 0.0), c))
    if others:
        return f"{took}: move it to the quietest other cell, {others[0]!r}, or to a cell of its own"
    return f"{took}: add a cell (`tenantry cells add`) and move it there"
