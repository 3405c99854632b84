"""``tenantry spares …``: placements built ahead of time, so that creating a schema- or
database-tier tenant is a catalog transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli.output import console, emit_json, progress_bar, table
from tenantry.cli.state import get_state

if TYPE_CHECKING:
    from tenantry.services.spares import SpareReport

__all__ = ["app"]

app = typer.Typer(
    help="Build schemas (or databases) ahead of time, so that new tenants claim them instead of waiting for DDL.",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Cell = Annotated[str | None, typer.Option("--cell", help="Cell (default: primary; database tier only).")]
_SHOWN = 50


def _summary(report: SpareReport) -> str:
    return (
        f"built {report.built}, finished {report.resumed} half-built, dropped {report.dropped} stale"
        f" in {report.seconds:.1f} s"
    )


@app.command("fill")
def fill(
    ctx: typer.Context,
    count: Annotated[
        int | None,
        typer.Option(
            "--count", "-n", min=0, help="Spares to keep ready (default: the TENANTRY_SPARE_SCHEMAS setting)."
        ),
    ] = None,
    tier: Annotated[str, typer.Option("--tier", help="schema or database.")] = "schema",
    cell: Cell = None,
    as_json: JsonFlag = False,
) -> None:
    """Top the pool up to --count ready spares. Idempotent: ready spares are kept, half-built
    ones finished, stale ones (built before a deploy or a migration) dropped and replaced.
    Run it after each deploy and from a periodic job."""
    tn = get_state(ctx).tenantry(app_plugins=True)
    with progress_bar(not as_json, "building spares") as progress:
        report = tn.spares.fill(count, tier=tier, cell=cell, progress=progress)
    if as_json:
        emit_json(report.to_dict())
        return
    console.print(f"{report.ready} {report.tier} spare(s) ready on cell {report.cell}: {_summary(report)}")


@app.command("list")
def list_(
    ctx: typer.Context,
    tier: Annotated[str | None, typer.Option("--tier", help="Only spares of this tier.")] = None,
    cell: Annotated[str | None, typer.Option("--cell", help="Only spares on this cell.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List spares, oldest first; 'current' says whether this app version would claim one."""
    spares = get_state(ctx).tenantry().spares.list(tier=tier, cell=cell)
    if as_json:
        emit_json([s.to_dict() for s in spares])
        return
    if not spares:
        console.print("no spares: build some with `tenantry spares fill --count N`")
        return
    shown = {True: "yes", False: "stale", None: "unknown"}
    table(
        None,
        ["id", "tier", "cell", "status", "current", "revision", "built"],
        [
            (
                s.id,
                s.tier.value,
                s.cell,
                s.status,
                shown[s.current],
                s.app_revision or "",
                s.created_at.strftime("%Y-%m-%d %H:%M"),
            )
            for s in spares[:_SHOWN]
        ],
    )
    if len(spares) > _SHOWN:
        console.print(f"… and {len(spares) - _SHOWN} more (see --json)")
    ready = sum(1 for s in spares if s.status == "ready" and s.current)
    console.print(f"{len(spares)} spare(s), {ready} ready to be claimed")


@app.command("drop")
def drop(
    ctx: typer.Context,
    stale: Annotated[bool, typer.Option("--stale", help="Only spares this app version would not claim.")] = False,
    tier: Annotated[str | None, typer.Option("--tier", help="Only spares of this tier.")] = None,
    cell: Annotated[str | None, typer.Option("--cell", help="Only spares on this cell.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Drop spares (all, or with --stale only the stale ones): their schemas or databases and
    their catalog rows. Spares hold no tenant's data."""
    report = get_state(ctx).tenantry(app_plugins=stale).spares.drop(tier=tier, cell=cell, stale_only=stale)
    if as_json:
        emit_json(report.to_dict())
        return
    console.print(f"dropped {report.dropped} spare(s) in {report.seconds:.1f} s; {report.ready} ready left")
