"""``tenantry audit``: read the audit log of control-plane changes."""

from __future__ import annotations

from typing import Annotated

import typer

from tenantry.cli.output import emit_json, table
from tenantry.cli.state import get_state

__all__ = ["app"]

app = typer.Typer(help="Read the audit log.", no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only entries about this tenant slug.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Newest entries first."""
    entries = get_state(ctx).tenantry().audit.list(target_type="tenant" if tenant else None, target=tenant, limit=limit)
    if as_json:
        emit_json([e.to_dict() for e in entries])
        return
    table(
        None,
        ["at", "actor", "action", "target"],
        [(e.at.strftime("%Y-%m-%d %H:%M:%S"), e.actor, e.action, f"{e.target_type}:{e.target}") for e in entries],
    )
