"""``tenantry migrate …``: the app's Alembic migrations (and the branches of plugins that ship
their own) on every placement, and where they are."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli.output import console, emit_json, progress_bar, table
from tenantry.cli.state import get_state

if TYPE_CHECKING:
    from tenantry.migrations.report import MigrationReport, PlacementResult

__all__ = ["app"]

app = typer.Typer(
    help="Apply the app's Alembic migrations, and plugins' own, to every placement (pooled, schema and database tiers).",
    no_args_is_help=False,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Migrations = Annotated[
    str | None,
    typer.Option(
        "--migrations",
        envvar="TENANTRY_MIGRATIONS",
        show_envvar=True,
        help="The app's Alembic script directory (default: the TENANTRY_MIGRATIONS setting).",
    ),
]
Jobs = Annotated[
    int, typer.Option("--jobs", "-j", min=1, max=256, help="Placements migrated at once (one connection each).")
]
Tenants = Annotated[
    list[str] | None,
    typer.Option(
        "--tenant", help="Only this tenant's placement (repeatable); a pooled tenant means the pooled schema."
    ),
]
_SHOWN = 50


def _rows(results: list[PlacementResult]) -> list[tuple[object, ...]]:
    return [
        (r.label, r.tier, r.from_revision or "untracked", r.to_revision or "", " ".join(r.steps), r.error or "")
        for r in results[:_SHOWN]
    ]


def _print_report(report: MigrationReport, verb: str) -> None:
    head = report.head or "base"
    if report.dry_run:
        if report.results:
            table(None, ["placement", "tier", "from", "to", "revisions", "note"], _rows(report.results))
        console.print(f"{len(report.results)} of {report.total} placement(s) would move to {head}; nothing was changed")
    elif report.from_catalog:
        console.print(f"all {report.total} placement(s) are at {head} (from the catalog); nothing to do")
    else:
        if report.failed or report.skipped:
            table(
                None, ["placement", "tier", "at", "target", "applied", "error"], _rows(report.failed + report.skipped)
            )
        done = len(report.results) - len(report.failed) - len(report.skipped)
        console.print(
            f"{verb} {done} placement(s) in {report.seconds:.1f} s ({report.jobs} at a time);"
            f" {report.up_to_date} already there, {len(report.failed)} failed, {len(report.skipped)} skipped"
        )
    if len(report.results) > _SHOWN:
        console.print(f"… and {len(report.results) - _SHOWN} more (see --json)")


@app.callback(invoke_without_command=True)
def migrate(
    ctx: typer.Context,
    jobs: Jobs = 4,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would run (from -> to); change nothing.")
    ] = False,
    tenant: Tenants = None,
    as_json: JsonFlag = False,
    migrations: Migrations = None,
) -> None:
    """Upgrade every placement to the head revision, --jobs at a time.

    Placements the catalog records at the head are not connected to. A placement whose
    migration fails is rolled back and reported; the others go on, and the command exits 10.
    Rerunning retries only the placements still behind.
    """
    if ctx.invoked_subcommand is not None:
        return
    from tenantry.services import app_migrations

    tn = get_state(ctx).tenantry()
    with progress_bar(not as_json and not dry_run, "migrating") as progress:
        report = app_migrations.migrate(
            tn.plane, jobs=jobs, dry_run=dry_run, tenants=tenant or None, progress=progress, directory=migrations
        )
    if as_json:
        emit_json(report.to_dict())
    else:
        _print_report(report, f"migrated to {report.head or 'base'}:")
    report.raise_for_failures()


@app.command("status")
def status(ctx: typer.Context, as_json: JsonFlag = False, migrations: Migrations = None) -> None:
    """Where the placements are, from the catalog: counts per revision, who is behind, who failed."""
    from tenantry.services import app_migrations

    report = app_migrations.status(get_state(ctx).tenantry().plane, directory=migrations)
    if as_json:
        emit_json(report.to_dict())
        return
    console.print(f"head: {report.head or 'unknown (no migrations directory)'}")
    table(None, ["revision", "placements"], sorted(report.revisions.items()))
    if report.behind:
        console.print(f"{len(report.behind)} placement(s) behind the head:")
        table(None, ["placement", "tier", "at", "head", "revisions", ""], _rows(report.behind))
    if report.failed:
        console.print(f"{len(report.failed)} placement(s) failed their last migration:")
        table(
            None,
            ["placement", "attempts", "at", "error"],
            [(f.slug or "pooled", f.attempts, f.at.strftime("%Y-%m-%d %H:%M"), f.error) for f in report.failed],
        )
    if not report.behind and not report.failed and report.head:
        console.print("every placement is at the head")


@app.command("stamp")
def stamp(
    ctx: typer.Context,
    revision: Annotated[str | None, typer.Argument(help="Revision the tables are at (default: head).")] = None,
    tenant: Tenants = None,
    jobs: Jobs = 4,
    as_json: JsonFlag = False,
    migrations: Migrations = None,
) -> None:
    """Record the revision placements are at, running nothing.

    Without --tenant: the untracked placements (deployed before migrations were tracked).
    With --tenant: those tenants' placements, whatever they had.
    """
    from tenantry.services import app_migrations

    tn = get_state(ctx).tenantry()
    with progress_bar(not as_json, "stamping") as progress:
        report = app_migrations.stamp_placements(
            tn.plane, revision, tenants=tenant or None, jobs=jobs, progress=progress, directory=migrations
        )
    if as_json:
        emit_json(report.to_dict())
    else:
        _print_report(report, f"recorded {revision or report.head or 'base'} for")
    report.raise_for_failures()
