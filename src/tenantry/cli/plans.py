"""``tenantry plans …``: the tiers tenants are placed on."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from tenantry.cli.cells import parse_labels
from tenantry.cli.output import console, emit_json, table
from tenantry.cli.state import get_state

__all__ = ["app"]

app = typer.Typer(help="List and show plans (tiers).", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List plans with their isolation tier."""
    plans = get_state(ctx).tenantry().plans.list()
    if as_json:
        emit_json([p.to_dict() for p in plans])
        return
    table(None, ["name", "isolation", "description"], [(p.name, p.isolation.value, p.description) for p in plans])


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Plan name.", show_default=False)],
    as_json: JsonFlag = False,
) -> None:
    """Show one plan, with its limits and defaults."""
    plan = get_state(ctx).tenantry().plans.get(name)
    if as_json:
        emit_json(plan.to_dict())
        return
    table(
        None,
        ["field", "value"],
        [
            ("name", plan.name),
            ("isolation", plan.isolation.value),
            ("description", plan.description),
            ("limits", json.dumps(plan.limits)),
            ("defaults", json.dumps(plan.defaults)),
        ],
    )
    console.print()


@app.command("pin")
def pin(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Plan name.", show_default=False)],
    cell: Annotated[str | None, typer.Option("--cell", help="Place the plan's tenants on this cell.")] = None,
    label: Annotated[list[str] | None, typer.Option("--label", help="key=value a cell must carry; repeatable.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Set where the plan's database-tier tenants go: a cell, or cells with labels (none: clear)."""
    plan = get_state(ctx).tenantry().plans.pin(name, cell=cell, labels=parse_labels(label))
    if as_json:
        emit_json(plan.to_dict())
    else:
        console.print(f"plan [bold]{plan.name}[/]: cell {plan.cell or 'any'}, labels {plan.cell_labels or 'none'}")
