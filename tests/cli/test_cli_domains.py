"""``tenantry domains``: add, verify (against a real server), list, remove; --json; one-line
errors with the error's exit code."""

from __future__ import annotations

import json
import uuid

import pytest

from tenantry import Tenantry
from tenantry.web import CustomDomainResolver, TenantMiddleware
from tests.net_servers import AsgiServer, TxtDnsServer
from tests.web.edge_app import starlette_app


def _host() -> str:
    return f"cli-{uuid.uuid4().hex[:8]}.customer.test"


def test_add_verify_list_remove(cli, tn: Tenantry, make_tenant) -> None:
    a = make_tenant("cli")
    host = _host()
    code, out, err = cli("domains", "add", host.upper() + ".", "--tenant", a.slug, "--json")
    assert code == 0, err
    added = json.loads(out)
    assert added["hostname"] == host and added["status"] == "pending" and added["tenant"] == a.slug
    assert added["http_check"] == f"http://{host}/.well-known/tenantry/{added['token']}"
    assert added["dns_check"] == {
        "name": f"_tenantry.{host}",
        "type": "TXT",
        "value": f"tenantry-verification={added['token']}",
    }
    code, out, _ = cli("domains", "add", host, "--tenant", a.slug)
    assert code == 0 and "pending" in out and "TXT" in out and added["token"] in out

    app = TenantMiddleware(starlette_app(tn, []), tenantry=tn, resolvers=[CustomDomainResolver()])
    with AsgiServer(app) as server:
        code, out, err = cli("domains", "verify", host, "--connect-to", server.address, "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "verified" and json.loads(out)["method"] == "http"
    code, out, _ = cli("domains", "verify", host)  # already verified: nothing to check
    assert code == 0 and "verified" in out

    code, out, _ = cli("domains", "list", "--tenant", a.slug, "--json")
    assert code == 0 and [d["hostname"] for d in json.loads(out)] == [host]
    code, out, _ = cli("domains", "list")
    assert code == 0 and host[:16] in out and "verified" in out  # (Rich may shorten a long name)

    code, out, _ = cli("domains", "remove", host, "--json")
    assert code == 0 and json.loads(out)["removed"] is True
    code, out, _ = cli("domains", "remove", host, "--json")
    assert code == 0 and json.loads(out)["removed"] is False
    code, out, _ = cli("domains", "list", "--tenant", a.slug)
    assert code == 0 and "no custom domains" in out


def test_verify_by_dns(cli, make_tenant) -> None:
    host = _host()
    code, out, _ = cli("domains", "add", host, "--tenant", make_tenant("cli").slug, "--json")
    record = json.loads(out)["dns_check"]
    with TxtDnsServer({record["name"]: [record["value"]]}) as dns_server:
        code, out, err = cli(
            "domains",
            "verify",
            host,
            "--method",
            "dns",
            "--nameserver",
            "127.0.0.1",
            "--dns-port",
            str(dns_server.port),
            "--json",
        )
    assert code == 0, err
    assert json.loads(out)["method"] == "dns"


@pytest.mark.parametrize(
    ("args", "exit_code", "fragment"),
    [
        (("domains", "add", "10.0.0.1", "--tenant", "{slug}"), 2, "IP address"),
        (("domains", "add", "*.customer.test", "--tenant", "{slug}"), 2, "wildcard"),
        (("domains", "add", "{host}", "--tenant", "no-such-tenant-here"), 6, "no tenant"),
        (("domains", "verify", "{host}"), 6, "no domain"),
        (("domains", "verify", "{host}", "--method", "smoke"), 2, "http' or 'dns"),
        (
            ("domains", "verify", "{pending}", "--connect-to", "127.0.0.1:1", "--timeout", "2"),
            13,
            "could not be fetched",
        ),
        (("domains", "verify", "{pending}", "--connect-to", "nonsense"), 2, "host:port"),
        (("domains", "add", "{pending}", "--tenant", "{other}"), 7, "another tenant"),
    ],
)
def test_errors_are_one_line(cli, make_tenant, args: tuple[str, ...], exit_code: int, fragment: str) -> None:
    owner, other = make_tenant("cli"), make_tenant("cli")
    pending = _host()
    cli("domains", "add", pending, "--tenant", owner.slug)
    filled = [a.format(slug=owner.slug, host=_host(), pending=pending, other=other.slug) for a in args]
    code, out, err = cli(*filled)
    assert code == exit_code, (out, err)
    assert err.count("\n") == 1 and fragment in err and "Traceback" not in err
