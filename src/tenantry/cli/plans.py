"""``tenantry plans …``: the plans tenants are on (several per tier if you like), their limits."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli import limit_options as lo
from tenantry.cli.cells import parse_labels
from tenantry.cli.output import console, emit_json, table
from tenantry.cli.state import get_state
from tenantry.errors import InvalidInput

if TYPE_CHECKING:
    from tenantry.core.model import Plan

__all__ = ["app"]

app = typer.Typer(help="Create, change, delete, list and show plans and their limits.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Name = Annotated[
    str, typer.Argument(help="Plan name: a-z, 0-9, '_' and '-', starting with a letter.", show_default=False)
]
Description = Annotated[str | None, typer.Option("--description", help="What the plan is, for people.")]


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
    _show(plan)


def _show(plan: Plan) -> None:
    table(
        None,
        ["field", "value"],
        [
            ("name", plan.name),
            ("isolation", plan.isolation.value),
            ("description", plan.description),
            *[(f"limits.{k}", v) for k, v in lo.limit_rows(plan.limits)],
            ("defaults", json.dumps(plan.defaults)),
        ],
    )
    console.print()


@app.command("create")
def create(
    ctx: typer.Context,
    name: Name,
    isolation: Annotated[
        str, typer.Option("--isolation", help="Tier of its tenants: pooled, schema or database.")
    ] = "pooled",
    description: Description = None,
    rps: lo.Rps = None,
    burst: lo.Burst = None,
    concurrency: lo.Concurrency = None,
    db_connections: lo.DbConnections = None,
    statement_timeout_ms: lo.StatementTimeout = None,
    idle_timeout_ms: lo.IdleTimeout = None,
    work_mem: lo.WorkMem = None,
    storage_mb: lo.StorageMb = None,
    backup_every: lo.BackupEvery = None,
    keep: lo.Keep = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a plan on a tier, with its limits. A bad value is refused (exit 2), nothing saved."""
    limits = lo.collect(
        requests_per_second=rps,
        burst=burst,
        concurrency=concurrency,
        db_connections=db_connections,
        statement_timeout_ms=statement_timeout_ms,
        idle_in_transaction_timeout_ms=idle_timeout_ms,
        work_mem=work_mem,
        storage_mb=storage_mb,
        backup_every=backup_every,
        keep=keep,
    )
    plan = (
        get_state(ctx).tenantry().plans.create(name, isolation=isolation, description=description or "", limits=limits)
    )
    if as_json:
        emit_json(plan.to_dict())
    else:
        console.print(f"created plan [bold]{plan.name}[/] ({plan.isolation.value}), limits {json.dumps(plan.limits)}")


@app.command("update")
def update(
    ctx: typer.Context,
    name: Name,
    isolation: Annotated[
        str | None, typer.Option("--isolation", help="New tier (only while no tenant is on the plan).")
    ] = None,
    description: Description = None,
    rps: lo.Rps = None,
    burst: lo.Burst = None,
    concurrency: lo.Concurrency = None,
    db_connections: lo.DbConnections = None,
    statement_timeout_ms: lo.StatementTimeout = None,
    idle_timeout_ms: lo.IdleTimeout = None,
    work_mem: lo.WorkMem = None,
    storage_mb: lo.StorageMb = None,
    backup_every: lo.BackupEvery = None,
    keep: lo.Keep = None,
    replace_limits: Annotated[
        bool, typer.Option("--replace-limits", help="The limits given are all the plan has (others are lifted).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Change a plan: the limits given replace theirs, others stay ('none' lifts one).

    Every process applies the new limits within a second.
    """
    limits = lo.collect(
        requests_per_second=rps,
        burst=burst,
        concurrency=concurrency,
        db_connections=db_connections,
        statement_timeout_ms=statement_timeout_ms,
        idle_in_transaction_timeout_ms=idle_timeout_ms,
        work_mem=work_mem,
        storage_mb=storage_mb,
        backup_every=backup_every,
        keep=keep,
    )
    plan = (
        get_state(ctx)
        .tenantry()
        .plans.update(
            name,
            isolation=isolation,
            description=description,
            limits=limits if limits or replace_limits else None,
            replace_limits=replace_limits,
        )
    )
    if as_json:
        emit_json(plan.to_dict())
    else:
        console.print(f"plan [bold]{plan.name}[/] ({plan.isolation.value}): limits {json.dumps(plan.limits)}")


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Confirm: the plan is removed.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete a plan no tenant is on. Asks for --yes."""
    tn = get_state(ctx).tenantry()
    if not yes:
        if not sys.stdin.isatty():
            raise InvalidInput(f"deleting plan {name!r} removes it; pass --yes to confirm")
        typer.confirm(f"Delete plan {name!r}?", abort=True)
    plan = tn.plans.delete(name)
    if as_json:
        emit_json({**plan.to_dict(), "deleted": True})
    else:
        console.print(f"deleted plan [bold]{plan.name}[/]")


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
