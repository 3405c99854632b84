"""``tenantry plugins …``: list plugins, switch them on and off per plan and tenant, see errors.

The CLI knows the plugins installed in its environment (``tenantry.plugins`` entry points) and
those ``TENANTRY_PLUGINS`` names; it can switch on any of them without loading the app. A
change reaches every running process within a second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli import plugin_hooks
from tenantry.cli.output import console, emit_json, table
from tenantry.cli.state import get_state

if TYPE_CHECKING:
    from tenantry.db.catalog.plugins import EnablementChange
    from tenantry.plugins.registry import PluginInfo

__all__ = ["app"]

app = typer.Typer(
    help="List plugins, switch them on or off for plans and tenants, see what they raised.", no_args_is_help=True
)
app.add_typer(plugin_hooks.app, name="hooks")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
NameArg = Annotated[str, typer.Argument(help="The plugin's name.", show_default=False)]
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="One tenant (slug or id); wins over its plan.")]
PlanOpt = Annotated[str | None, typer.Option("--plan", help="Every tenant on the plan.")]


def _enabled_for(info: PluginInfo) -> str:
    parts = [f"{'+' if s.enabled else '-'}{s.scope} {s.target}" for s in info.settings]
    if len(parts) > 6:
        parts = parts[:6] + [f"... {len(parts) - 6} more"]
    return ", ".join(parts) or "off everywhere"


@app.command("list")
def list_(
    ctx: typer.Context,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Also say whether each runs for this tenant, and why.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Known plugins: where they come from, what they can do, where they are switched on."""
    tn = get_state(ctx).tenantry()
    infos = tn.plugins.list()
    resolved = {i.name: tn.plugins.resolve(i.name, tenant=tenant) for i in infos} if tenant is not None else {}
    errors: dict[str, int] = {}
    for failure in tn.plugins.errors(limit=10_000):
        errors[failure.plugin] = errors.get(failure.plugin, 0) + failure.count
    if as_json:
        out = []
        for info in infos:
            item = info.to_dict() | {"errors": errors.get(info.name, 0)}
            if tenant is not None:
                item["tenant"] = {"tenant": tenant, **resolved[info.name].to_dict()}
            out.append(item)
        emit_json(out)
        return
    if not infos:
        console.print("no plugins: register them with Tenantry(plugins=[...]) or install a package that provides one")
        return
    columns = ["plugin", "source", "capabilities", "enabled for", "errors"]
    if tenant is not None:
        columns.append(tenant)
    rows = []
    for info in infos:
        row = [
            info.name,
            info.source if info.error is None else f"{info.source} (error: {info.error})",
            ", ".join(info.capabilities),
            _enabled_for(info),
            errors.get(info.name, 0),
        ]
        if tenant is not None:
            r = resolved[info.name]
            row.append(f"{'on' if r.enabled else 'off'} ({r.source})")
        rows.append(row)
    table(None, columns, rows)


def _print(change: EnablementChange, as_json: bool) -> None:
    if as_json:
        emit_json(change.to_dict())
        return
    where = f"{change.scope.kind} {change.scope.target}"
    state = {True: "on", False: "off", None: "not set"}
    if not change.changed:
        console.print(f"{change.plugin} for {where}: already {state[change.after]}; nothing changed", markup=False)
    else:
        console.print(f"{change.plugin} for {where}: {state[change.before]} -> {state[change.after]}", markup=False)


@app.command("enable")
def enable(
    ctx: typer.Context, name: NameArg, tenant: TenantOpt = None, plan: PlanOpt = None, as_json: JsonFlag = False
) -> None:
    """Switch a plugin on for one tenant or every tenant of a plan."""
    _print(get_state(ctx).tenantry().plugins.enable(name, tenant=tenant, plan=plan), as_json)


@app.command("disable")
def disable(
    ctx: typer.Context, name: NameArg, tenant: TenantOpt = None, plan: PlanOpt = None, as_json: JsonFlag = False
) -> None:
    """Switch a plugin off for one tenant (even if its plan has it on) or a plan."""
    _print(get_state(ctx).tenantry().plugins.disable(name, tenant=tenant, plan=plan), as_json)


@app.command("reset")
def reset(
    ctx: typer.Context, name: NameArg, tenant: TenantOpt = None, plan: PlanOpt = None, as_json: JsonFlag = False
) -> None:
    """Remove a tenant's (or plan's) own setting: its plan's (or off) applies again."""
    _print(get_state(ctx).tenantry().plugins.reset(name, tenant=tenant, plan=plan), as_json)


@app.command("errors")
def errors(
    ctx: typer.Context,
    plugin: Annotated[str | None, typer.Option("--plugin", help="Only this plugin's.")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only those about this tenant.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """What plugins raised (hooks, routes, background work), counted, newest first."""
    found = get_state(ctx).tenantry().plugins.errors(plugin=plugin, tenant=tenant, limit=limit)
    if as_json:
        emit_json([f.to_dict() for f in found])
        return
    if not found:
        console.print("no plugin has raised")
        return
    table(
        None,
        ["plugin", "where", "tenant", "count", "last", "error"],
        [
            (f.plugin, f.hook, f.tenant or "-", f.count, f.last_at.strftime("%Y-%m-%d %H:%M:%S"), f.last_error[:120])
            for f in found
        ],
    )


@app.command("deploy")
def deploy(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Create the plugins' tables in placements built before the plugins were added
    (needs the plugins: TENANTRY_PLUGINS). Idempotent. Plugins that ship their own
    migrations are left to `tenantry migrate`."""
    tn = get_state(ctx).tenantry()
    chained = list(tn.plugins.migrations())
    done = tn.plugins.deploy()
    if as_json:
        emit_json(done)
        return
    if chained:
        console.print(
            f"plugin(s) {', '.join(chained)} ship their own migrations: `tenantry migrate` deploys their tables"
        )
    if not done:
        if not chained:
            console.print("no registered plugin has tables (name them in TENANTRY_PLUGINS)")
        return
    created = sum(len(d["created"]) for d in done)
    console.print(f"plugin tables in {len(done)} placements: {created} created, the rest were there")
