"""``tenantry cells …``: the PostgreSQL servers that hold tenant data."""

from __future__ import annotations

from typing import Annotated

import typer

from tenantry.cli.output import console, emit_json, table
from tenantry.cli.state import get_state
from tenantry.errors import InvalidInput

__all__ = ["app", "parse_labels"]

app = typer.Typer(help="Register, list, show and drain cells (PostgreSQL servers).", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Name = Annotated[str, typer.Argument(help="Cell name.", show_default=False)]


def parse_labels(pairs: list[str] | None) -> dict[str, str]:
    """``["region=eu", "tier=ssd"]`` -> ``{"region": "eu", "tier": "ssd"}``."""
    labels: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"label {pair!r} must look like key=value")
        labels[key] = value
    return labels


@app.command("add")
def add(
    ctx: typer.Context,
    name: Name,
    dsn: Annotated[str, typer.Argument(help="Admin connection string of the server.", show_default=False)],
    capacity: Annotated[int, typer.Option("--capacity", min=1, help="Tenants the cell should hold.")] = 1000,
    label: Annotated[list[str] | None, typer.Option("--label", help="key=value, repeatable.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a server as a cell: creates tenantry's roles there. Adding it again is a no-op."""
    cell = get_state(ctx).tenantry().cells.add(name, dsn, capacity=capacity, labels=parse_labels(label))
    if as_json:
        emit_json(cell.to_dict())
    else:
        console.print(f"cell [bold]{cell.name}[/] ready ({cell.to_dict()['server']})")


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List cells with their load."""
    cells = get_state(ctx).tenantry().cells.list()
    if as_json:
        emit_json([c.to_dict() for c in cells])
        return
    table(
        None,
        ["name", "server", "status", "placements", "capacity", "labels"],
        [
            (
                c.name,
                c.to_dict()["server"],
                c.status,
                c.placements,
                c.capacity,
                ", ".join(f"{k}={v}" for k, v in sorted(c.labels.items())),
            )
            for c in cells
        ],
    )


@app.command("show")
def show(ctx: typer.Context, name: Name, as_json: JsonFlag = False) -> None:
    """Show one cell."""
    cell = get_state(ctx).tenantry().cells.get(name)
    if as_json:
        emit_json(cell.to_dict())
        return
    table(None, ["field", "value"], list(cell.to_dict().items()))


@app.command("drain")
def drain(
    ctx: typer.Context,
    name: Name,
    undo: Annotated[bool, typer.Option("--undo", help="Let the cell take new tenants again.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Stop placing new tenants on a cell (or, with --undo, start again)."""
    tn = get_state(ctx).tenantry()
    cell = tn.cells.undrain(name) if undo else tn.cells.drain(name)
    if as_json:
        emit_json(cell.to_dict())
    else:
        console.print(f"cell [bold]{cell.name}[/] is {cell.status}")
