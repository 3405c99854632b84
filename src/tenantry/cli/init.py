"""``tenantry init``, and the commands about what it sets up: ``check`` verifies the app's
tables and the roles, ``credentials`` prints the data plane's connection strings."""

from __future__ import annotations

import json
import shlex
from typing import Annotated, Any

import typer

from tenantry.cli.output import console, emit_json, error
from tenantry.cli.state import get_state
from tenantry.errors import TablesDiffer, UnsafeRuntimeRole

__all__ = ["check", "credentials", "init"]


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
    from tenantry.appspec import load_metadata

    tn = get_state(ctx).tenantry()
    report = tn.schema.init()
    result: dict[str, Any] = report.to_dict()
    if app_spec:
        result["app"] = tn.schema.deploy(load_metadata(app_spec)).to_dict()
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


def check(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Verify every app table has row-level security enabled, forced and its policy in place,
    and that every unique index on one includes tenant_id; that the runtime and reader roles
    can do no more than their part; with the app's tables (TENANTRY_APP), that every placement
    holds the app's tables and columns, no fewer and no more."""
    tn = get_state(ctx).tenantry(app_plugins=True)
    with_app = tn.metadata is not None or bool(tn.settings.app)
    report = tn.schema.check(tables=with_app)
    bad, leaky, roles, differ = report.unprotected, report.unscoped_unique, report.roles, report.differ
    if as_json:
        emit_json(report.to_dict())
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
