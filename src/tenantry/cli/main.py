"""``tenantry``: the root command, its global options, the list of its commands, and error handling.

Every tenantry error becomes one line on stderr and the error's exit code; a traceback never
reaches the user (set ``TENANTRY_DEBUG=1`` to see one). The driver's own warnings about a
broken connection (psycopg's "error ignored in rollback of <psycopg.Transaction …>",
psycopg_pool's "discarding closed connection: …") are dropped too, unless logging is configured
or ``TENANTRY_DEBUG`` is set: the error they accompany is reported once, in words.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.main

from tenantry._imports import working_directory_importable
from tenantry.cli.lazy import LazyCommand, LazyGroup, tidy_help
from tenantry.cli.output import failure
from tenantry.cli.state import State
from tenantry.errors import TenantryError

__all__ = ["app", "command", "main"]

#: every command of ``tenantry``, in the order its help lists them: imported when it runs or
#: shows its help, so that ``tenantry --help`` imports none (tests/cli/test_cli_lazy.py checks
#: each line against the command's own help)
COMMANDS: dict[str, LazyCommand] = {
    "demo": LazyCommand(
        "tenantry.cli.demo:demo", "Run the example tracker with three tenants on three tiers, and the admin API."
    ),
    "init": LazyCommand(
        "tenantry.cli.init:init",
        "Create the catalog, the owner and runtime roles, and the app's tables. Rerunning is a no-op.",
    ),
    "check": LazyCommand(
        "tenantry.cli.init:check",
        "Verify every app table has row-level security enabled, forced and its policy in place, and that"
        " every unique index on one includes tenant_id; that the runtime and reader roles can do no more than"
        " their part; with the app's tables (TENANTRY_APP), that every placement holds the app's tables and"
        " columns, no fewer and no more.",
    ),
    "credentials": LazyCommand(
        "tenantry.cli.init:credentials",
        "Print the data plane's connection strings, as environment variables: the runtime role's"
        " (TENANTRY_RUNTIME_URL, and TENANTRY_CELL_RUNTIME_URLS for the other cells) and the reader role's"
        " (TENANTRY_READER_URL), with the passwords `tenantry init` gave them. Give them, and not"
        " TENANTRY_DATABASE_URL, to the processes that serve tenant traffic. They are secrets: redirect them"
        " into a secret store, not a terminal log.",
    ),
    "tenants": LazyCommand(
        "tenantry.cli.tenants:app", "Create, list, show, suspend, resume, archive and delete tenants."
    ),
    "plans": LazyCommand("tenantry.cli.plans:app", "Create, change, delete, list and show plans and their limits."),
    "server": LazyCommand("tenantry.cli.server:app", "Start, stop and inspect the embedded PostgreSQL server."),
    "audit": LazyCommand("tenantry.cli.audit:app", "Read the audit log."),
    "usage": LazyCommand(
        "tenantry.cli.usage:app",
        "Per-tenant usage (requests, time, transactions, storage), the top and hot tenants; measure storage.",
    ),
    "cells": LazyCommand("tenantry.cli.cells:app", "Register, list, show and drain cells (PostgreSQL servers)."),
    "migrate": LazyCommand(
        "tenantry.cli.migrate:app",
        "Apply the app's Alembic migrations, and plugins' own, to every placement (pooled, schema and database tiers).",
    ),
    "tokens": LazyCommand("tenantry.cli.tokens:app", "Create, list and revoke admin API tokens."),
    "api": LazyCommand("tenantry.cli.api:app", "Serve the admin HTTP API."),
    "brand": LazyCommand(
        "tenantry.cli.brand:app",
        "Set, show, preview and reset tenants' white-label brands; their history and rollback.",
    ),
    "spares": LazyCommand(
        "tenantry.cli.spares:app",
        "Build schemas (or databases) ahead of time, so that new tenants claim them instead of waiting for DDL.",
    ),
    "config": LazyCommand(
        "tenantry.cli.config:app", "Read and change per-tenant configuration: layers, history, diff, rollback."
    ),
    "flags": LazyCommand("tenantry.cli.flags:app", "Create, change, kill and evaluate feature flags."),
    "domains": LazyCommand("tenantry.cli.domains:app", "Add, verify, list and remove tenants' custom domains."),
    "backups": LazyCommand(
        "tenantry.cli.backups:app",
        "Take, list, show, verify, delete and restore per-tenant backups (every tier); schedules per plan.",
    ),
    "plugins": LazyCommand(
        "tenantry.cli.plugins:app",
        "List plugins, switch them on or off for plans and tenants, see what they raised.",
    ),
}


class _Root(LazyGroup):
    lazy = COMMANDS


app = typer.Typer(
    name="tenantry",
    help="Multi-tenancy for SaaS on PostgreSQL: tenants, plans, isolation, the embedded server.",
    cls=_Root,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(wanted: bool) -> None:
    if not wanted:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("tenantry")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from tenantry import __version__ as found
    typer.echo(f"tenantry {found}")
    raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="TENANTRY_DATABASE_URL",
            help="Admin connection to PostgreSQL. Unset: the embedded server.",
            show_envvar=True,
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            envvar="TENANTRY_DATA_DIR",
            help="Data directory of the embedded server.",
            show_envvar=True,
        ),
    ] = None,
    _version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version, help="Print tenantry's version and exit."),
    ] = False,
) -> None:
    state = State(database_url=database_url, data_dir=data_dir)
    ctx.obj = state
    ctx.call_on_close(state.close)


@contextmanager
def _driver_warnings_dropped() -> Iterator[None]:
    # with no handler configured anywhere, Python's last-resort handler prints the warnings
    # psycopg and psycopg_pool log about a dead connection, internal reprs and all, to stderr
    driver = logging.getLogger("psycopg")
    if os.environ.get("TENANTRY_DEBUG") or driver.handlers:
        yield
        return
    handler = logging.NullHandler()
    driver.addHandler(handler)
    try:
        yield
    finally:
        driver.removeHandler(handler)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tenantry`` script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    # TENANTRY_APP (TENANTRY_CONFIG, TENANTRY_PLUGINS) names modules of the project the CLI is
    # run from: importable for the whole command, whose worker processes inherit the path
    with _driver_warnings_dropped(), working_directory_importable():
        return _main(args)


def _wants_json(args: list[str]) -> bool:
    # --json is each command's own option, unknown when parsing fails: read it off the words
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def _main(args: list[str]) -> int:
    as_json = _wants_json(args)
    try:
        # not standalone: usage errors and aborts come here, to be printed in the house style
        code = command()(args=args, prog_name="tenantry", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except typer.TyperException as err:  # click's usage errors: --count -1, --status bogus
        if not err.format_message().strip():  # no arguments: the group printed its help
            return err.exit_code
        return failure(err.format_message(), code="usage", exit_code=err.exit_code, as_json=as_json)
    except typer.Abort:  # a confirmation answered no
        return failure("aborted", code="aborted", exit_code=1, as_json=as_json)
    except TenantryError as err:
        if os.environ.get("TENANTRY_DEBUG"):
            raise
        return failure(str(err), code=err.code, exit_code=err.exit_code, as_json=as_json)
    except Exception as err:
        # psycopg imported by the command that failed, if any: one that never imported it
        # cannot have raised its errors
        driver = sys.modules.get("psycopg")
        if driver is None or not isinstance(err, driver.Error) or os.environ.get("TENANTRY_DEBUG"):
            raise
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return failure(f"database error: {first}", code="database-error", exit_code=1, as_json=as_json)
    except KeyboardInterrupt:
        return failure("interrupted", code="interrupted", exit_code=130, as_json=as_json)


def command() -> Any:
    """The ``tenantry`` command tree, its help tidied (:func:`tenantry.cli.lazy.tidy_help`);
    each sub-command is imported when it is used."""
    built = typer.main.get_command(app)
    tidy_help(built)
    return built


def run() -> None:  # pragma: no cover - console script shim
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
