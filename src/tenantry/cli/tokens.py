"""``tenantry tokens …``: admin API tokens (create, list, revoke). A token's secret is printed
once, when it is created; the catalog keeps only its hash."""

from __future__ import annotations

from typing import Annotated

import typer

from tenantry.cli.output import console, emit_json, table
from tenantry.cli.state import get_state
from tenantry.core.durations import parse_duration
from tenantry.core.scopes import SCOPES

__all__ = ["app"]

app = typer.Typer(help="Create, list and revoke admin API tokens.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

_SCOPE_HELP = "Scope to grant (repeatable): " + ", ".join(sorted(SCOPES)) + "."


def _when(value: object) -> str:
    return "" if value is None else str(value)[:16].replace("T", " ")


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(help="Name: a-z, 0-9, '.', '_', '-'; audited as token:NAME.", show_default=False)
    ],
    scope: Annotated[list[str], typer.Option("--scope", "-s", help=_SCOPE_HELP, show_default=False)],
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime, as 30d, 12h, 90m or 2w (default: none).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a token and print its secret: this is the only time it is shown."""
    lifetime = None if expires is None else parse_duration(expires)
    token, secret = get_state(ctx).tenantry().create_token(name, scope, expires_in=lifetime)
    if as_json:
        emit_json(token.to_dict() | {"token": secret})
        return
    console.print(
        f"created token [bold]{token.name}[/] with scopes {', '.join(token.scopes)}"
        + (f", expiring {_when(token.expires_at.isoformat())}" if token.expires_at else "")
    )
    console.print("its secret, shown only this once (send it as 'Authorization: Bearer <token>'):")
    console.print(secret, markup=False, highlight=False, soft_wrap=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List tokens (never their secrets)."""
    tokens = get_state(ctx).tenantry().tokens(include_revoked=all_)
    if as_json:
        emit_json([t.to_dict() for t in tokens])
        return
    if not tokens:
        console.print("no tokens yet: create one with `tenantry tokens create NAME --scope ...`")
        return
    columns = ["name", "scopes", "expires", "last used"] + (["revoked"] if all_ else [])
    table(
        None,
        columns,
        [
            (
                t.name,
                " ".join(t.scopes),
                _when(t.expires_at and t.expires_at.isoformat()),
                _when(t.last_used_at and t.last_used_at.isoformat()),
                *([_when(t.revoked_at and t.revoked_at.isoformat())] if all_ else []),
            )
            for t in tokens
        ],
    )


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The token's name or id.", show_default=False)],
    as_json: JsonFlag = False,
) -> None:
    """Revoke a token at once; revoking it again is a no-op."""
    token = get_state(ctx).tenantry().revoke_token(name)
    if as_json:
        emit_json(token.to_dict())
    else:
        console.print(f"token [bold]{token.name}[/] is revoked")
