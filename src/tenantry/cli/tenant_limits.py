"""``tenantry tenants limits …``: one tenant's overrides of its plan's limits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli import limit_options as lo
from tenantry.cli.output import console, emit_json, table
from tenantry.cli.state import get_state
from tenantry.errors import InvalidInput

if TYPE_CHECKING:
    from tenantry.services.tenant_limits import TenantLimits

__all__ = ["app"]

app = typer.Typer(help="Show, set and unset one tenant's overrides of its plan's limits.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Key = Annotated[str, typer.Argument(help="The tenant's slug or id.", show_default=False)]


def _print(found: TenantLimits, as_json: bool) -> None:
    if as_json:
        emit_json(found.to_dict())
        return
    rows = [(key, "none" if value is None else str(value), found.source(key)) for key, value in found.effective.items()]
    if not rows:
        console.print(f"tenant [bold]{found.tenant}[/] (plan {found.plan}): no limits")
        return
    table(f"{found.tenant} (plan {found.plan})", ["limit", "value", "from"], rows)


@app.command("show")
def show(ctx: typer.Context, key: Key, as_json: JsonFlag = False) -> None:
    """Show the tenant's effective limits: its plan's, with its own overrides winning."""
    _print(get_state(ctx).tenantry().tenants.limits(key), as_json)


@app.command("set")
def set_(
    ctx: typer.Context,
    key: Key,
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
    """Override limits of the tenant's plan for this tenant ('none' lifts one for it alone).

    Every process applies them within a second. A bad value is refused (exit 2), nothing saved.
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
    if not limits:
        raise InvalidInput("name at least one limit to set, such as --rps 50 (see --help)")
    _print(get_state(ctx).tenantry().tenants.limits_set(key, **limits), as_json)


@app.command("unset")
def unset(
    ctx: typer.Context,
    key: Key,
    limits: Annotated[
        list[str] | None,
        typer.Argument(
            help="Limits to unset: rps, burst, statement-timeout-ms, ... (or their keys).", show_default=False
        ),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Unset every override of the tenant.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Drop the tenant's overrides of the limits named: its plan's apply again."""
    keys = [lo.limit_key(name) for name in limits or []]
    if not keys and not all_:
        raise InvalidInput("name the limits to unset (such as rps), or pass --all")
    if keys and all_:
        raise InvalidInput("name limits to unset, or pass --all, not both")
    _print(get_state(ctx).tenantry().tenants.limits_unset(key, *keys), as_json)
