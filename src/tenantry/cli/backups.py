"""``tenantry backups …``: take, list, show, verify, import, delete and restore per-tenant backups."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

import typer

from tenantry.cli.output import console, emit_json, progress_bar, table
from tenantry.cli.state import get_state
from tenantry.errors import InvalidInput

__all__ = ["app"]

app = typer.Typer(
    help="Take, list, show, verify, delete and restore per-tenant backups (every tier); schedules per plan.",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Id = Annotated[str, typer.Argument(help="The backup's id (from `tenantry backups list`).", show_default=False)]


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@app.command("create")
def create(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Argument(help="The tenant's slug or id.", show_default=False)],
    as_json: JsonFlag = False,
) -> None:
    """Back up one tenant (its rows from one snapshot, and its catalog state) while it keeps serving."""
    tn = get_state(ctx).tenantry(app_plugins=True)
    with progress_bar(not as_json, f"backing up {tenant}") as bar:
        backup = tn.backups.create(tenant, progress=(lambda _t, done, total: bar(done, total)) if bar else None)
    if as_json:
        emit_json(backup.to_dict())
        return
    console.print(
        f"backed up [bold]{backup.tenant}[/]: backup {backup.id}, {backup.rows} rows, {_size(backup.size)}"
        f"{' (encrypted)' if backup.encrypted else ''}"
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Argument(help="Only this tenant's backups.", show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000, help="At most this many.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List backups, newest first."""
    tn = get_state(ctx).tenantry()
    found = tn.backups.list(tenant, limit=limit)
    if as_json:
        emit_json([b.to_dict() for b in found])
        return
    table(
        None,
        ["id", "tenant", "created", "status", "rows", "size"],
        [
            (str(b.id), b.tenant, b.created_at.strftime("%Y-%m-%d %H:%M:%S"), b.status, b.rows or "-", _size(b.size))
            for b in found
        ],
    )


@app.command("show")
def show(ctx: typer.Context, backup_id: Id, as_json: JsonFlag = False) -> None:
    """Show one backup and its manifest (tables, row counts, checksums, migration head)."""
    tn = get_state(ctx).tenantry()
    backup = tn.backups.get(backup_id)
    if as_json:
        emit_json(backup.to_dict(manifest=True))
        return
    for key, value in backup.to_dict().items():
        console.print(f"{key}: {value}")
    if backup.manifest:
        table(
            "tables",
            ["table", "rows", "bytes", "checksum"],
            [(t["name"], t["rows"], t["bytes"], t["checksum"]) for t in backup.manifest.get("tables", [])],
        )


@app.command("verify")
def verify(ctx: typer.Context, backup_id: Id, as_json: JsonFlag = False) -> None:
    """Read a backup's archive back and check it against its manifest (sizes, SHA-256, counts, checksums)."""
    tn = get_state(ctx).tenantry()
    with progress_bar(not as_json, "verifying") as bar:
        report = tn.backups.verify(backup_id, progress=(lambda _t, done, total: bar(done, total)) if bar else None)
    if as_json:
        emit_json(report.to_dict())
        return
    console.print(f"backup {report.id} is sound: {sum(report.tables.values())} rows in {len(report.tables)} tables")


@app.command("import")
def import_(
    ctx: typer.Context,
    location: Annotated[
        str,
        typer.Argument(help="Where the archive is inside the storage: <tenant slug>/<backup id>.", show_default=False),
    ],
    storage: Annotated[
        str | None,
        typer.Option("--storage", help="The storage holding it (default: TENANTRY_BACKUP_URL).", show_default=False),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Record an archive found in storage whose backup this catalog does not know (after the
    catalog was lost or rebuilt): then list, verify and restore it (--as) as any other."""
    tn = get_state(ctx).tenantry()
    backup = tn.backups.import_archive(location, storage=storage)
    if as_json:
        emit_json(backup.to_dict())
        return
    console.print(
        f"recorded backup {backup.id} of [bold]{backup.tenant}[/] ({backup.rows} rows, {_size(backup.size)});"
        f" check it with `tenantry backups verify {backup.id}`"
    )


@app.command("delete")
def delete(
    ctx: typer.Context,
    backup_id: Id,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Confirm: the archive is removed.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete a backup and its archive. Asks for --yes."""
    if not yes:
        raise InvalidInput("deleting a backup removes its archive for good; pass --yes to confirm")
    tn = get_state(ctx).tenantry()
    deleted = tn.backups.delete(backup_id)
    if as_json:
        emit_json({"id": backup_id, "deleted": deleted})
    else:
        console.print(f"deleted backup {backup_id}" if deleted else f"no backup {backup_id}")


@app.command("restore")
def restore(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Argument(help="The backed-up tenant's slug.", show_default=False)],
    from_: Annotated[str | None, typer.Option("--from", help="The backup's id.")] = None,
    as_: Annotated[str | None, typer.Option("--as", help="Restore into a new tenant of this slug (a clone).")] = None,
    plan: Annotated[
        str | None, typer.Option("--plan", help="The new tenant's plan (default: the backed-up one's).")
    ] = None,
    cell: Annotated[
        str | None, typer.Option("--cell", help="With --as on a database-tier plan: the cell (server) to restore onto.")
    ] = None,
    abort: Annotated[
        bool, typer.Option("--abort", help="Undo an interrupted restore (into --as, or over the tenant).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Restore a backup: over the tenant itself (its writes refused only for the swap), or into a new
    tenant (--as SLUG, on any plan). Rerun to finish an interrupted one; --abort to undo it."""
    tn = get_state(ctx).tenantry(app_plugins=True)
    if abort:
        aborted = tn.backups.abort_restore(as_ or tenant)
        if as_json:
            emit_json({"aborted": aborted})
        else:
            console.print("restore aborted" if aborted else "no restore in progress")
        return
    if from_ is None:
        raise InvalidInput("--from: name the backup to restore (`tenantry backups list` shows them)")
    backup = tn.backups.get(from_)
    if backup.tenant != tenant and str(backup.tenant_id) != tenant:
        raise InvalidInput(f"--from: backup {backup.id} is of tenant {backup.tenant!r}, not {tenant!r}")
    with progress_bar(not as_json, f"restoring {as_ or tenant}") as bar:
        report = tn.backups.restore(
            backup.id,
            as_slug=as_,
            plan=plan,
            cell=cell,
            progress=(lambda _s, done, total: bar(done, total)) if bar else None,
        )
    if as_json:
        emit_json(report)
        return
    if report.get("in_place"):
        console.print(
            f"restored [bold]{report['tenant']}[/] from backup {backup.id}: {sum(report['rows'].values())} rows"
            f" verified, writes paused {report['write_block_seconds'] * 1000:.0f} ms, {report['seconds']:.1f} s"
        )
        return
    console.print(
        f"restored backup {backup.id} of {report['from']} as [bold]{report['tenant']}[/] on plan {report['plan']}:"
        f" {sum(report['rows'].values())} rows verified, {report['seconds']:.1f} s"
    )


def _interval(text: str) -> dt.timedelta:
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if not match:
        raise InvalidInput(f"--every: {text!r} is not an interval such as 30m, 6h, 1d or 1w")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
    return dt.timedelta(**{unit: int(match.group(1))})


@app.command("schedule")
def schedule(
    ctx: typer.Context,
    plan: Annotated[str, typer.Argument(help="The plan whose tenants are backed up.", show_default=False)],
    every: Annotated[str | None, typer.Option("--every", help="How often: 30m, 6h, 1d, 1w.")] = None,
    keep: Annotated[int | None, typer.Option("--keep", min=1, help="How many complete backups to keep.")] = None,
    off: Annotated[bool, typer.Option("--off", help="Remove the plan's schedule.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Back up a plan's tenants on a schedule (taken by `tenantry backups run-due`), keeping the newest --keep."""
    tn = get_state(ctx).tenantry()
    if off:
        tn.backups.schedule(plan, every=None)
    else:
        if every is None or keep is None:
            raise InvalidInput("--every and --keep: say how often and how many to keep (or --off)")
        tn.backups.schedule(plan, every=_interval(every), keep=keep)
    found = [s for s in tn.backups.schedules() if s["plan"] == plan]
    if as_json:
        emit_json(found[0] if found else {"plan": plan, "every_seconds": None, "keep": None})
    else:
        console.print(f"plan {plan}: " + (f"every {every}, keeping {keep}" if found else "no scheduled backups"))


@app.command("run-due")
def run_due(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Take the scheduled backups that are due and prune old ones; safe from cron on several machines at once."""
    tn = get_state(ctx).tenantry(app_plugins=True)
    report = tn.backups.run_due()
    if as_json:
        emit_json(report)
        return
    console.print(
        f"took {len(report['taken'])} backups, skipped {len(report['skipped'])} (taken elsewhere or busy),"
        f" {len(report['failed'])} failed, pruned {len(report['pruned'])}"
    )
    for slug, error in report["failed"].items():
        console.print(f"  {slug}: {error}")


@app.command("prune")
def prune(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Argument(help="Only this tenant's backups.", show_default=False)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Delete the backups outside their plan's --keep (and failed ones older than the newest complete one)."""
    tn = get_state(ctx).tenantry()
    removed = tn.backups.prune(tenant)
    if as_json:
        emit_json({"pruned": removed})
    else:
        console.print(f"pruned {len(removed)} backups")
