"""``tenantry tenants …``: create, list, show and move tenants along their lifecycle."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tenantry.cli import tenant_limits
from tenantry.cli.output import console, emit_json, table
from tenantry.cli.state import get_state
from tenantry.core.model import Status
from tenantry.errors import InvalidInput

__all__ = ["app"]

app = typer.Typer(help="Create, list, show, suspend, resume, archive and delete tenants.", no_args_is_help=True)
app.add_typer(tenant_limits.app, name="limits")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Key = Annotated[str, typer.Argument(help="The tenant's slug or id.", show_default=False)]


@app.command("create")
def create(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="DNS label: a-z, 0-9 and '-', 1 to 63 characters.", show_default=False)],
    name: Annotated[str | None, typer.Option("--name", help="Display name (default: the slug).")] = None,
    plan: Annotated[str, typer.Option("--plan", help="Plan to put the tenant on.")] = "free",
    cell: Annotated[str | None, typer.Option("--cell", help="Cell for a database-tier tenant.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a tenant on its plan's tier and make it active. Rerun to finish an interrupted one."""
    tn = get_state(ctx).tenantry(app_plugins=True)
    tenant = tn.tenants.create(slug, name=name, plan=plan, cell=cell)
    if as_json:
        emit_json(tenant.to_dict())
    else:
        console.print(f"created tenant [bold]{tenant.slug}[/] ({tenant.id}) on plan {tenant.plan}")


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[Status | None, typer.Option("--status", help="Only tenants with this status.")] = None,
    plan: Annotated[str | None, typer.Option("--plan", help="Only tenants on this plan.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include deleted tenants.")] = False,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Only tenants whose slug starts with this.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100000, help="At most this many.")] = 1000,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Skip this many.")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """List tenants, by slug."""
    tn = get_state(ctx).tenantry()
    tenants = tn.tenants.list(status=status, plan=plan, include_deleted=all_, prefix=prefix, limit=limit, offset=offset)
    if as_json:
        emit_json([t.to_dict() for t in tenants])
        return
    if not tenants:
        console.print("no tenants yet: create one with `tenantry tenants create SLUG`")
        return
    table(
        None,
        ["slug", "name", "plan", "status", "id", "created"],
        [(t.slug, t.name, t.plan, t.status.value, t.id, t.created_at.strftime("%Y-%m-%d %H:%M")) for t in tenants],
    )


@app.command("show")
def show(ctx: typer.Context, key: Key, as_json: JsonFlag = False) -> None:
    """Show one tenant, with its plan's isolation and its placement."""
    tn = get_state(ctx).tenantry()
    tenant = tn.tenants.get(key)
    placement = tn.tenants.placement(tenant.id)
    data = tenant.to_dict()
    data["isolation"] = tn.plans.get(tenant.plan).isolation.value
    data["placement"] = None if placement is None else placement.to_dict()
    if as_json:
        emit_json(data)
        return
    table(None, ["field", "value"], [(k, v) for k, v in data.items() if k != "placement"])
    if placement is None:
        console.print("placement: none active (being built or deleted)")
    else:
        where = f"database {placement.database}" if placement.database else "the shared database"
        console.print(
            f"placement: {placement.isolation.value}, schema {placement.schema} in {where} on cell {placement.cell}"
        )


def _status_command(name: str, verb: str, helptext: str) -> None:
    def command(ctx: typer.Context, key: Key, as_json: JsonFlag = False) -> None:
        tn = get_state(ctx).tenantry()
        tenant = getattr(tn.tenants, verb)(key)
        if as_json:
            emit_json(tenant.to_dict())
        else:
            console.print(f"tenant [bold]{tenant.slug}[/] is {tenant.status.value}")

    command.__doc__ = helptext
    app.command(name)(command)


_status_command("suspend", "suspend", "Stop a tenant from serving traffic; its data stays.")
_status_command("resume", "resume", "Let a suspended or archived tenant serve traffic again.")
_status_command("archive", "archive", "Retire a tenant: no traffic; it can be resumed or deleted.")


@app.command("delete")
def delete(
    ctx: typer.Context,
    key: Key,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Confirm: every row of the tenant is removed.")] = False,
    purge_backups: Annotated[
        bool, typer.Option("--purge-backups", help="Delete the tenant's backups (and their archives) too.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete a tenant and every row it owns (with --purge-backups, its backups too). Asks for --yes."""
    tn = get_state(ctx).tenantry()
    tenant = tn.tenants.get(key)
    if not yes:
        if not sys.stdin.isatty():
            raise InvalidInput(f"deleting {tenant.slug!r} removes all its rows; pass --yes to confirm")
        typer.confirm(f"Delete tenant {tenant.slug!r} and every row it owns?", abort=True)
    counts = tn.tenants.delete(tenant.id)
    purged = tn.backups.purge(tenant.id) if purge_backups else []
    # a schema or database tier's copy goes whole ("schema tenant_…": 1), the pooled tier's row by row
    dropped = [what for what in counts if what.startswith(("schema ", "database "))]
    if as_json:
        emit_json(
            {"slug": tenant.slug, "id": str(tenant.id), "status": "deleted", "rows_deleted": counts, "dropped": dropped}
            | ({"backups_purged": purged} if purge_backups else {})
        )
        return
    if purge_backups:
        console.print(f"deleted {len(purged)} backup(s) of [bold]{tenant.slug}[/]")
    if dropped:
        console.print(f"deleted tenant [bold]{tenant.slug}[/]: dropped its {' and '.join(dropped)}, every row with it")
    elif counts:
        console.print(
            f"deleted tenant [bold]{tenant.slug}[/] and {sum(counts.values())} row(s) in {len(counts)} table(s)"
        )
    else:
        console.print(f"tenant [bold]{tenant.slug}[/] was deleted already; nothing to do")


@app.command("export")
def export(
    ctx: typer.Context,
    key: Key,
    fmt: Annotated[str, typer.Option("--format", help="jsonl (one JSON object per row) or csv.")] = "jsonl",
    to: Annotated[str | None, typer.Option("--to", help="The directory to write (default: ./<slug>-export).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Export a tenant's rows for data portability: one file per table, JSON Lines or CSV (audited)."""
    if fmt not in ("jsonl", "csv"):
        raise InvalidInput(f"--format: {fmt!r} is not jsonl or csv")
    tn = get_state(ctx).tenantry(app_plugins=True)
    tenant = tn.tenants.get(key)
    report = tn.backups.export(tenant.id, to or f"{tenant.slug}-export", format=fmt)
    if as_json:
        emit_json(report)
        return
    console.print(
        f"exported [bold]{tenant.slug}[/]: {sum(report['files'].values())} rows in {len(report['files'])} files"
        f" to {report['directory']}"
    )


_STEP_TEXT = {
    "build": "building the new placement",
    "capture": "logging the tenant's writes from now on",
    "bulk_copy": "copying rows (reads and writes go on)",
    "catch_up": "copying the rows written meanwhile (reads and writes go on)",
    "freeze": "freezing writes for the cutover",
    "delta": "copying what changed meanwhile",
    "verify": "verifying row counts and checksums",
    "flip": "switching routing",
    "fence": "refusing bindings made before the switch",
    "cleanup": "removing the old copy",
}


@app.command("move")
def move(
    ctx: typer.Context,
    key: Key,
    plan: Annotated[str | None, typer.Option("--plan", help="Plan (tier) to move to.")] = None,
    cell: Annotated[str | None, typer.Option("--cell", help="Cell for the database tier.")] = None,
    abort: Annotated[bool, typer.Option("--abort", help="Undo a move that has not switched yet.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Move a tenant to another tier or cell without losing a row. Rerun to finish an
    interrupted move."""
    tn = get_state(ctx).tenantry(app_plugins=True)
    if abort:
        aborted = tn.tenants.abort_move(key)
        if as_json:
            emit_json({"aborted": aborted})
        else:
            console.print("move aborted" if aborted else "no move in progress")
        return
    if plan is None and cell is None:
        raise InvalidInput("say where to move: --plan PLAN and/or --cell CELL")
    if as_json or not sys.stderr.isatty():
        report = tn.tenants.move(key, plan=plan, cell=cell)
    else:
        with console.status("starting the move", spinner="dots") as status:
            report = tn.tenants.move(key, plan=plan, cell=cell, on_step=lambda s: status.update(_STEP_TEXT.get(s, s)))
    if as_json:
        emit_json(report.to_dict())
        return
    console.print(
        f"moved [bold]{report.slug}[/] from {report.source['isolation']} to {report.target['isolation']}"
        f" (cell {report.target['cell']}): {sum(report.rows.values())} rows verified,"
        f" writes paused {report.write_block_seconds * 1000:.0f} ms, {report.seconds:.1f} s in all"
    )
