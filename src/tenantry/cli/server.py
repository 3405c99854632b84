"""``tenantry server …``: the embedded PostgreSQL server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli.output import console, emit_json
from tenantry.cli.state import get_state

if TYPE_CHECKING:
    from tenantry.db.server import EmbeddedServer

__all__ = ["app"]

app = typer.Typer(help="Start, stop and inspect the embedded PostgreSQL server.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _server(ctx: typer.Context) -> EmbeddedServer:
    from tenantry.db.server import EmbeddedServer

    return EmbeddedServer(get_state(ctx).settings().data_dir)


@app.command()
def start(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Start the embedded server (initialising its data directory on first use)."""
    server = _server(ctx)
    was_running = server.accepts_connections()
    url = server.ensure_running()
    if as_json:
        emit_json(server.status().to_dict() | {"was_running": was_running})
    else:
        console.print(("already running: " if was_running else "started: ") + url)


@app.command()
def stop(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Stop the embedded server."""
    stopped = _server(ctx).stop()
    if as_json:
        emit_json({"stopped": stopped})
    else:
        console.print("stopped" if stopped else "not running")


@app.command()
def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show whether the embedded server runs, where its data lives and its URL."""
    info = _server(ctx).status()
    if as_json:
        emit_json(info.to_dict())
        return
    console.print(f"data directory: {info.data_dir}")
    console.print(f"initialised:    {'yes, PostgreSQL ' + (info.version or '?') if info.initialised else 'no'}")
    console.print(f"running:        {'yes, pid ' + str(info.pid) if info.running else 'no'}")
    if info.url:
        typer.echo(f"url:            {info.url}")
    if not info.running:
        raise typer.Exit(1)


@app.command()
def url(ctx: typer.Context) -> None:
    """Print the server's connection URL (starting it if needed)."""
    typer.echo(_server(ctx).ensure_running())
