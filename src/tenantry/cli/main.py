"""``tenantry``: the root command, global options, ``init``, ``check``, ``credentials``, and error handling.

Every tenantry error becomes one line on stderr and the error's exit code; a traceback never
reaches the user (set ``TENANTRY_DEBUG=1`` to see one). The driver's own warnings about a
broken connection (psycopg's "error ignored in rollback of <psycopg.Transaction …>",
psycopg_pool's "discarding closed connection: …") are dropped too, unless logging is configured
or ``TENANTRY_DEBUG`` is set: the error they accompany is reported once, in words.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
import typer.main

from tenantry.appspec import load_metadata
from tenantry.cli import api as api_cli
from tenantry.cli import audit as audit_cli
from tenantry.cli import brand as brand_cli
from tenantry.cli import cells as cells_cli
from tenantry.cli import demo as demo_cli
from tenantry.cli import config as config_cli
from tenantry.cli import flags as flags_cli
from tenantry.cli import domains as domains_cli
from tenantry.cli import migrate as migrate_cli
from tenantry.cli import plans as plans_cli
from tenantry.cli import plugins as plugins_cli
from tenantry.cli import server as server_cli
from tenantry.cli import spares as spares_cli
from tenantry.cli import tenants as tenants_cli
from tenantry.cli import tokens as tokens_cli
from tenantry.cli.output import console, emit_json, error, failure
from tenantry.cli.state import State, get_state
from tenantry.errors import ConfigurationError, TablesDiffer, TenantryError, UnsafeRuntimeRole
from tenantry.services import placement_tables

__all__ = ["app", "command", "main"]

app = typer.Typer(
    name="tenantry",
    help="Multi-tenancy for SaaS on PostgreSQL: tenants, plans, isolation, the embedded server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(tenants_cli.app, name="tenants")
app.add_typer(plans_cli.app, name="plans")
app.add_typer(server_cli.app, name="server")
app.add_typer(audit_cli.app, name="audit")
app.add_typer(cells_cli.app, name="cells")
app.add_typer(migrate_cli.app, name="migrate")
app.add_typer(tokens_cli.app, name="tokens")
app.add_typer(api_cli.app, name="api")
app.add_typer(brand_cli.app, name="brand")
app.command(name="demo")(demo_cli.demo)
app.add_typer(spares_cli.app, name="spares")
app.add_typer(config_cli.app, name="config")
app.add_typer(flags_cli.app, name="flags")
app.add_typer(domains_cli.app, name="domains")
app.add_typer(plugins_cli.app, name="plugins")


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
) -> None:
    state = State(database_url=database_url, data_dir=data_dir)
    ctx.obj = state
    ctx.call_on_close(state.close)


@app.command()
def init(
    ctx: typer.Context,
    app_spec: Annotated[
        str | None,
        typer.Option(
            "--app",
            envvar="TENANTRY_APP",
            help="The app's tenant tables to deploy, as 'module:Base' or 'module:metadata'.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Create the catalog, the owner and runtime roles, and the app's tables. Rerunning is a no-op."""
    tn = get_state(ctx).tenantry()
    report = tn.init()
    result: dict[str, Any] = report.to_dict()
    if app_spec:
        result["app"] = tn.deploy(load_metadata(app_spec)).to_dict()
    if as_json:
        emit_json(result)
        return
    if report.migrations_applied or report.roles_created:
        console.print(f"catalog ready at version {report.version}")
        for role in report.roles_created:
            console.print(f"  created role {role}")
        for name in report.migrations_applied:
            console.print(f"  applied {name}")
    else:
        console.print(f"catalog already at version {report.version}; nothing to do")
    if app_spec:
        deployed = result["app"]
        console.print(
            f"app tables in schema {deployed['schema']}: {len(deployed['secured'])} secured,"
            f" {len(deployed['created'])} created"
        )


@app.command()
def check(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Verify every app table has row-level security enabled, forced and its policy in place,
    and that every unique index on one includes tenant_id; that the runtime and reader roles
    can do no more than their part; with the app's tables (TENANTRY_APP), that every placement
    holds the app's tables and columns, no fewer and no more."""
    tn = get_state(ctx).tenantry(app_plugins=True)
    bad = tn.unprotected_tables()
    leaky = tn.unscoped_unique_indexes()
    roles = tn.role_problems()
    with_app = tn.metadata is not None or bool(tn.settings.app)
    differ = placement_tables.drift(tn) if with_app else {}
    if as_json:
        emit_json({"unprotected": bad, "unscoped_unique": leaky, "roles": roles, "differ": differ,
                   "ok": not bad and not leaky and not roles and not differ})
    else:
        for name in bad:
            error(f"{name} is not protected by row-level security")
        for index in leaky:
            error(
                f"{index} -- a unique index without tenant_id: a duplicate-key error tells one"
                " tenant which values another uses; recreate it with tenant_id among its keys"
            )
        for role, problems in roles.items():
            error(f"role {role} " + "; ".join(problems))
        for placement, problems in differ.items():
            error(f"placement {placement} differs from the app's tables: " + "; ".join(problems))
        if not bad and not leaky:
            console.print("every app table is protected by row-level security, and its unique keys include tenant_id")
        if not roles:
            console.print("the runtime and reader roles can do no more than their part")
        if not differ and with_app:
            console.print("every placement holds the app's tables and columns")
    if bad or leaky:
        raise typer.Exit(9)
    if roles:
        raise typer.Exit(UnsafeRuntimeRole.exit_code)
    if differ:
        raise typer.Exit(TablesDiffer.exit_code)


@app.command()
def credentials(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print them as a JSON object.")] = False,
) -> None:
    """Print the data plane's connection strings, as environment variables: the runtime
    role's (TENANTRY_RUNTIME_URL, and TENANTRY_CELL_RUNTIME_URLS for the other cells) and the
    reader role's (TENANTRY_READER_URL), with the passwords `tenantry init` gave them. Give
    them, and not TENANTRY_DATABASE_URL, to the processes that serve tenant traffic. They are
    secrets: redirect them into a secret store, not a terminal log."""
    tn = get_state(ctx).tenantry()
    plane = tn.data_plane_settings()
    assert plane.runtime_url is not None and plane.reader_url is not None
    found = {
        "TENANTRY_RUNTIME_URL": plane.runtime_url.get_secret_value(),
        "TENANTRY_READER_URL": plane.reader_url.get_secret_value(),
    }
    if plane.cell_runtime_urls:
        found["TENANTRY_CELL_RUNTIME_URLS"] = json.dumps(
            {name: url.get_secret_value() for name, url in plane.cell_runtime_urls.items()}
        )
    if as_json:
        emit_json(found)
        return
    for name, value in found.items():
        typer.echo(f"{name}={shlex.quote(value)}")


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
    with _driver_warnings_dropped(), _working_directory_importable():
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
    except psycopg.Error as err:
        if os.environ.get("TENANTRY_DEBUG"):
            raise
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return failure(f"database error: {first}", code="database-error", exit_code=1, as_json=as_json)
    except KeyboardInterrupt:
        return failure("interrupted", code="interrupted", exit_code=130, as_json=as_json)


@contextmanager
def _working_directory_importable() -> Iterator[None]:
    """The working directory on ``sys.path`` while a command runs, as ``python -m`` puts it
    there: ``TENANTRY_APP=myapp.models:Base`` (``TENANTRY_CONFIG``, ``TENANTRY_PLUGINS``)
    names modules of the project the CLI is run from. Last, so it shadows no installed
    package."""
    cwd = os.getcwd()
    if "" in sys.path or cwd in sys.path:
        yield
        return
    sys.path.append(cwd)
    try:
        yield
    finally:
        if cwd in sys.path:
            sys.path.remove(cwd)


def command() -> Any:
    """The ``tenantry`` command tree, its help tidied: a flag shows no ``<bool>`` type (it
    takes no value), and a command's line in its group's list is its first paragraph
    unwrapped (a docstring's line breaks are not the terminal's)."""
    built = typer.main.get_command(app)
    _tidy_help(built)
    return built


def _tidy_help(cmd: Any) -> None:
    # (Typer's own click: the click package's classes are not these)
    help_option = cmd.get_help_option(typer.Context(cmd))
    for param in [*cmd.params, *([help_option] if help_option is not None else [])]:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    if cmd.help and not cmd.short_help:
        first = inspect.cleandoc(cmd.help).split("\n\n")[0]
        cmd.short_help = " ".join(first.split())
    for sub in getattr(cmd, "commands", {}).values():
        _tidy_help(sub)


def run() -> None:  # pragma: no cover - console script shim
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
