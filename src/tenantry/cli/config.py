"""``tenantry config …``: per-tenant configuration in layers, with history and rollback.

The app's config schema is found through ``TENANTRY_CONFIG=module:Model``, or the
``TENANTRY_CONFIG`` attribute of the module ``TENANTRY_APP`` names; plugins' sections
(``webhooks``) come with the plugins the app runs: those ``TENANTRY_PLUGINS`` names, else the
installed ones the catalog shows the app runs (their tables deployed, or switched on for a plan
or a tenant).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tenantry.cli.output import console, emit_json, table
from tenantry.cli.state import get_state
from tenantry.core.durations import parse_moment

if TYPE_CHECKING:
    from tenantry.tenant_config import ConfigChange, Scope

__all__ = ["app", "parse_expiry"]

app = typer.Typer(
    help="Read and change per-tenant configuration: layers, history, diff, rollback.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="The tenant's layer (slug or id).")]
PlanOpt = Annotated[str | None, typer.Option("--plan", help="The plan's layer (its name).")]
MessageOpt = Annotated[str, typer.Option("--message", "-m", help="Why: kept with the version.")]
KeyArg = Annotated[str, typer.Argument(help="Dotted key, like limits.max_projects.", show_default=False)]


def parse_expiry(text: str) -> tuple[timedelta | None, datetime | None]:
    """``2h`` (a duration from now) or an ISO 8601 time with a zone."""
    return parse_moment(text, field="--expires")


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _where(result: Scope) -> str:
    return f"{result.kind} {result.target}"


def _print_change(change: ConfigChange, as_json: bool) -> None:
    if as_json:
        emit_json(change.to_dict())
        return
    if not change.changed:
        console.print(f"{_where(change.scope)}: no change (version {change.version})", markup=False)
        return
    console.print(f"{_where(change.scope)}: version {change.version}", markup=False)
    for item in change.changes:
        data = item.to_dict()
        what = "override " if item.layer == "override" else ""
        before = json.dumps(data.get("before")) if "before" in data else "(unset)"
        after = json.dumps(data.get("after")) if "after" in data else "(unset)"
        console.print(f"  {what}{item.path}: {before} -> {after}", markup=False)


@app.command("get")
def get(
    ctx: typer.Context,
    key: Annotated[str | None, typer.Argument(help="Dotted key; none: the whole config.", show_default=False)] = None,
    tenant: TenantOpt = None,
    plan: PlanOpt = None,
    layer: Annotated[bool, typer.Option("--layer", help="Show the layer's own values and overrides instead.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show what a tenant (or a plan) resolves to: defaults, plan, tenant, overrides."""
    result = get_state(ctx).tenantry(app_plugins=True).config.get(tenant=tenant, plan=plan, key=key)
    if as_json:
        if key is not None and not layer:
            emit_json({**result.scope.to_dict(), "key": key, "value": result.value, "source": result.source})
        elif layer:
            emit_json(
                {
                    **result.scope.to_dict(),
                    "version": result.version,
                    "document": result.document,
                    "overrides": result.overrides,
                }
            )
        else:
            emit_json(result.to_dict())
        return
    if layer:
        typer.echo(f"# {_where(result.scope)}, version {result.version}")
        typer.echo(_dump(result.document))
        if result.overrides:
            typer.echo("# temporary overrides")
            typer.echo(_dump(result.overrides))
    elif key is not None:
        typer.echo(f"{_dump(result.value)}    # from {result.source}")
    else:
        typer.echo(_dump(result.effective))


@app.command("set")
def set_(
    ctx: typer.Context,
    key: KeyArg,
    value: Annotated[
        str, typer.Argument(help='JSON (50, true, "x", {...}); other text is a string.', show_default=False)
    ],
    tenant: TenantOpt = None,
    plan: PlanOpt = None,
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="A temporary override of the tenant's config until then (2h, 1d, or a time)."),
    ] = None,
    message: MessageOpt = "",
    as_json: JsonFlag = False,
) -> None:
    """Set a value in a layer; validated against the app's schema before anything is saved."""
    from tenantry.tenant_config.layers import parse_value

    expires_in, expires_at = parse_expiry(expires) if expires else (None, None)
    change = (
        get_state(ctx)
        .tenantry(app_plugins=True)
        .config.set(
            key,
            parse_value(value),
            tenant=tenant,
            plan=plan,
            expires_in=expires_in,
            expires_at=expires_at,
            message=message,
        )
    )
    _print_change(change, as_json)


@app.command("unset")
def unset(
    ctx: typer.Context,
    key: KeyArg,
    tenant: TenantOpt = None,
    plan: PlanOpt = None,
    override: Annotated[bool, typer.Option("--override", help="End the temporary override of KEY instead.")] = False,
    message: MessageOpt = "",
    as_json: JsonFlag = False,
) -> None:
    """Remove a value from a layer, so the layers below show through."""
    change = (
        get_state(ctx)
        .tenantry(app_plugins=True)
        .config.unset(key, tenant=tenant, plan=plan, override=override, message=message)
    )
    _print_change(change, as_json)


@app.command("history")
def history(
    ctx: typer.Context,
    tenant: TenantOpt = None,
    plan: PlanOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """A layer's versions, newest first: who changed what, when, and why."""
    versions = get_state(ctx).tenantry(app_plugins=True).config.history(tenant=tenant, plan=plan, limit=limit)
    if as_json:
        emit_json([v.to_dict() for v in versions])
        return
    if not versions:
        console.print("no versions yet")
        return
    table(
        None,
        ["version", "at", "actor", "message"],
        [
            (v.version, v.created_at.strftime("%Y-%m-%d %H:%M:%S") if v.created_at else "", v.actor, v.message)
            for v in versions
        ],
    )


@app.command("diff")
def diff(
    ctx: typer.Context,
    from_version: Annotated[int, typer.Argument(help="Older version (0: empty).", min=0, show_default=False)],
    to_version: Annotated[int, typer.Argument(help="Newer version.", min=0, show_default=False)],
    tenant: TenantOpt = None,
    plan: PlanOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """What changed in a layer between two versions."""
    result = get_state(ctx).tenantry(app_plugins=True).config.diff(from_version, to_version, tenant=tenant, plan=plan)
    if as_json:
        emit_json(result.to_dict())
        return
    if not result.changes:
        console.print(f"versions {from_version} and {to_version} are the same")
        return
    for item in result.changes:
        data = item.to_dict()
        what = "override " if item.layer == "override" else ""
        before = json.dumps(data["before"]) if "before" in data else "(unset)"
        after = json.dumps(data["after"]) if "after" in data else "(unset)"
        typer.echo(f"{data['change']:>8}  {what}{item.path}: {before} -> {after}")


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    version: Annotated[int, typer.Argument(help="The version to return to (0: empty).", min=0, show_default=False)],
    tenant: TenantOpt = None,
    plan: PlanOpt = None,
    message: MessageOpt = "",
    as_json: JsonFlag = False,
) -> None:
    """Make a layer what it was at VERSION, as a new version (validated first)."""
    change = (
        get_state(ctx).tenantry(app_plugins=True).config.rollback(version, tenant=tenant, plan=plan, message=message)
    )
    _print_change(change, as_json)


@app.command("reseal")
def reseal(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Seal every stored secret value with the first key of TENANTRY_SECRET_KEYS (after a key
    rotation put a new key first); values do not change, no version is added."""
    count = get_state(ctx).tenantry(app_plugins=True).config.reseal()
    if as_json:
        emit_json({"resealed_layers": count})
        return
    console.print(f"resealed {count} layer{'' if count == 1 else 's'}", markup=False)
