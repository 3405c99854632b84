"""``tenantry api serve``: the admin HTTP API, served by uvicorn (the ``web`` extra)."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from tenantry.cli.output import console
from tenantry.cli.state import get_state
from tenantry.errors import ConfigurationError

__all__ = ["app"]

app = typer.Typer(help="Serve the admin HTTP API.", no_args_is_help=True)


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8765,
    workers: Annotated[int, typer.Option("--job-workers", min=1, max=32, help="Long operations run at once.")] = 2,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn's log level.")] = "info",
) -> None:
    """Serve the admin API until interrupted: / (links), /v1 (token auth), /docs, /redoc, /openapi.json."""
    try:
        import uvicorn

        from tenantry.api import create_admin_app
    except ImportError as err:
        raise ConfigurationError(
            f"the admin API needs the web extra ({err.name} is missing): pip install 'tenantry[web]'"
        ) from err
    # it creates and moves tenants: it must know every table the app has, its plugins' too
    tn = get_state(ctx).tenantry(app_plugins=True)
    tn.actor = f"api@{getpass.getuser()}"  # only what no token does: requests act as their token
    with tn.admin():
        pass  # fail now, with a one-line error, if PostgreSQL is unreachable
    admin = create_admin_app(tn, job_workers=workers)
    shown = f"[{host}]" if ":" in host else host
    console.print(f"tenantry admin API on http://{shown}:{port}/ (the API under /v1, docs at /docs)")
    uvicorn.run(admin, host=host, port=port, log_level=log_level)
