"""``tenantry domains …``: tenants' custom hostnames, served once verified."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli.output import console, emit_json, table
from tenantry.cli.state import get_state
from tenantry.errors import InvalidInput

if TYPE_CHECKING:
    from tenantry.db.catalog.domains import Domain
    from tenantry.services.domain_checks import DomainChecker

__all__ = ["app"]

app = typer.Typer(help="Add, verify, list and remove tenants' custom domains.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Host = Annotated[str, typer.Argument(help="The hostname, e.g. shop.acme.com.", show_default=False)]


def _how_to_verify(domain: Domain) -> None:
    name, value = domain.txt_record
    console.print("prove it, then run `tenantry domains verify " + domain.hostname + "`:")
    console.print(f"  http: point {domain.hostname} at the app (its tenantry middleware serves {domain.http_url})")
    console.print(f"  dns:  add a TXT record {name} with the value {value}  (then verify --method dns)")


@app.command("add")
def add(
    ctx: typer.Context,
    hostname: Host,
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant's slug or id.", show_default=False)],
    as_json: JsonFlag = False,
) -> None:
    """Register a custom domain for a tenant (pending until verified). Adding it again is a no-op."""
    domain = get_state(ctx).tenantry().domains.add(hostname, tenant)
    if as_json:
        emit_json(domain.to_dict())
        return
    console.print(f"domain [bold]{domain.hostname}[/] of tenant {domain.tenant} is {domain.status}")
    if not domain.verified:
        _how_to_verify(domain)


@app.command("verify")
def verify(
    ctx: typer.Context,
    hostname: Host,
    method: Annotated[
        str, typer.Option("--method", help="http (token at /.well-known/tenantry/) or dns (TXT record).")
    ] = "http",
    connect_to: Annotated[
        str | None,
        typer.Option(
            "--connect-to", help="http: connect to HOST:PORT instead of the domain's address (Host header unchanged)."
        ),
    ] = None,
    nameserver: Annotated[
        list[str] | None,
        typer.Option("--nameserver", help="dns: ask this server (IP, repeatable) instead of the system's."),
    ] = None,
    dns_port: Annotated[int, typer.Option("--dns-port", min=1, max=65535, help="dns: port of --nameserver.")] = 53,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds to wait for the check.")] = 5.0,
    as_json: JsonFlag = False,
) -> None:
    """Check a pending domain and mark it verified; a verified domain is left as it is."""
    from tenantry.services.domain_checks import DnsChecker, HttpChecker

    checker: DomainChecker
    if method == "http":
        checker = HttpChecker(timeout=timeout, connect_to=connect_to)
    elif method == "dns":
        checker = DnsChecker(nameservers=nameserver, port=dns_port, timeout=timeout)
    else:
        raise InvalidInput(f"--method {method!r} must be 'http' or 'dns'")
    domain = get_state(ctx).tenantry().domains.verify(hostname, checker=checker)
    if as_json:
        emit_json(domain.to_dict())
    else:
        console.print(f"domain [bold]{domain.hostname}[/] of tenant {domain.tenant} is verified ({domain.method})")


@app.command("list")
def list_(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's domains.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List custom domains, by hostname."""
    domains = get_state(ctx).tenantry().domains.list(tenant)
    if as_json:
        emit_json([d.to_dict() for d in domains])
        return
    if not domains:
        console.print("no custom domains: add one with `tenantry domains add HOST --tenant SLUG`")
        return
    table(
        None,
        ["hostname", "tenant", "status", "method", "verified"],
        [
            (
                d.hostname,
                d.tenant,
                d.status,
                d.method,
                None if d.verified_at is None else d.verified_at.strftime("%Y-%m-%d %H:%M"),
            )
            for d in domains
        ],
    )


@app.command("remove")
def remove(ctx: typer.Context, hostname: Host, as_json: JsonFlag = False) -> None:
    """Stop serving a custom domain. Removing one that is not registered is a no-op."""
    removed = get_state(ctx).tenantry().domains.remove(hostname)
    if as_json:
        emit_json(
            {
                "hostname": hostname,
                "removed": removed is not None,
                "domain": None if removed is None else removed.to_dict(),
            }
        )
    elif removed is None:
        console.print(f"no domain {hostname} is registered; nothing to do")
    else:
        console.print(f"removed domain [bold]{removed.hostname}[/] of tenant {removed.tenant}")
