"""Custom domains: registration, ownership checks against real servers, routing only once
verified, and every change reaching the edge's cache."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import httpx
import pytest

from tenantry import (
    Conflict,
    DnsChecker,
    DomainNotFound,
    DomainTaken,
    HttpChecker,
    InvalidHostname,
    TenantNotFound,
    Tenantry,
    Verdict,
    VerificationFailed,
)
from tenantry.services.domain_checks import DomainChecker
from tenantry.services.egress import dns_resolver
from tenantry.web import CustomDomainResolver, SubdomainResolver, TenantMiddleware
from tests.model_app import Base
from tests.net_servers import AsgiServer, ScriptedHttpServer, TxtDnsServer
from tests.web.edge_app import BASE, starlette_app


def _host(prefix: str = "shop") -> str:
    return f"{prefix}-{time.monotonic_ns() % 10**9}.customer.test"


def _edge(tn: Tenantry) -> TenantMiddleware:
    return TenantMiddleware(
        starlette_app(tn, []), tenantry=tn, resolvers=[SubdomainResolver(BASE), CustomDomainResolver()]
    )


def _get(app: Any, host: str, path: str = "/who") -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
            return await client.get(path, headers={"Host": host})

    return asyncio.run(call())


def test_add_normalises_and_is_idempotent(tn: Tenantry, make_tenant) -> None:
    a = make_tenant("dom")
    host = _host()
    added = tn.domains.add(f"{host.upper()}.", a.slug)
    assert added.hostname == host and added.tenant == a.slug and added.status == "pending"
    assert added.method is None and added.verified_at is None and len(added.token) >= 16
    assert tn.domains.add(host, str(a.id)) == added  # the same again: unchanged, same token
    assert tn.domains.get(host.upper()) == added
    assert [d.hostname for d in tn.domains.list(a.slug)] == [host]
    assert host in {d.hostname for d in tn.domains.list()}
    idn = tn.domains.add(f"Bücher.{host}", a.slug)
    assert idn.hostname == f"xn--bcher-kva.{host}"
    assert tn.domains.get(f"bücher.{host}") == tn.domains.get(f"xn--bcher-kva.{host}") == idn
    actions = [e.action for e in tn.audit.list(target_type="domain", target=host)]
    assert actions == ["domain.add"]


def test_hostname_belongs_to_one_tenant(tn: Tenantry, make_tenant) -> None:
    a, b = make_tenant("dom"), make_tenant("dom")
    host = _host()
    tn.domains.add(host, a.slug)
    with pytest.raises(DomainTaken):
        tn.domains.add(host.upper() + ".", b.slug)
    assert tn.domains.get(host).tenant == a.slug
    # a deleted tenant's domain is released to whoever adds it next
    tn.tenants.delete(a.slug)
    taken = tn.domains.add(host, b.slug)
    assert taken.tenant == b.slug and taken.status == "pending"
    assert [e.action for e in tn.audit.list(target_type="domain", target=host)][:2] == ["domain.add", "domain.release"]


@pytest.mark.parametrize(
    "bad", ["127.0.0.1", "*.customer.test", "localhost", "shop.customer.test:80", "http://x.test", "a_b.test", ""]
)
def test_bad_hostnames_are_refused(tn: Tenantry, make_tenant, bad: str) -> None:
    with pytest.raises(InvalidHostname):
        tn.domains.add(bad, make_tenant("dom").slug)


def test_unknown_tenant_and_domain(tn: Tenantry) -> None:
    with pytest.raises(TenantNotFound):
        tn.domains.add(_host(), "no-such-tenant-here")
    with pytest.raises(DomainNotFound):
        tn.domains.get(_host())
    with pytest.raises(DomainNotFound):
        tn.domains.verify(_host())
    assert tn.domains.remove(_host()) is None


def test_subdomains_of_the_base_domain_are_not_custom_domains(scratch, make_tenant) -> None:
    based = Tenantry(scratch.settings(base_domain="Example.TEST"), metadata=Base.metadata)
    try:
        t = make_tenant("dom")
        for host in ("example.test", "acme.example.test", "a.b.example.test."):
            with pytest.raises(InvalidHostname, match="base domain"):
                based.domains.add(host, t.slug)
        assert based.domains.add("example-shop.test", t.slug).hostname == "example-shop.test"
    finally:
        based.close()


def test_http_verification_end_to_end(tn: Tenantry, make_tenant) -> None:
    """Pending: not served (a spoofed Host gets 404), but the app answers its token; the check
    against the real server passes; then served; removed: 404 again."""
    a = make_tenant("dom")
    host = _host()
    domain = tn.domains.add(host, a.slug)
    edge = _edge(tn)
    assert _get(edge, host).status_code == 404  # pending domains route nowhere
    well_known = f"/.well-known/tenantry/{domain.token}"
    assert _get(edge, host, well_known).text == domain.token
    assert _get(edge, host, "/.well-known/tenantry/" + "x" * 32).status_code == 404
    assert _get(edge, _host("other"), well_known).status_code == 404  # the token of another hostname
    assert _get(edge, f"{a.slug}.{BASE}", well_known).status_code == 404

    with AsgiServer(edge) as server:
        verified = tn.domains.verify(host, checker=HttpChecker(connect_to=server.address))
    assert verified.verified and verified.method == "http" and verified.verified_at is not None
    assert tn.domains.verify(host) == verified  # verified already: no check, no change
    served = _get(edge, host.upper() + ":443")
    assert served.status_code == 200 and served.json()["tenant"] == a.slug
    assert _get(edge, host, well_known).text == domain.token  # still answered, for re-checks

    # a suspended tenant's domain is refused like its subdomain
    tn.tenants.suspend(a.slug)
    assert _get(edge, host).status_code == 403
    tn.tenants.resume(a.slug)
    assert _get(edge, host).status_code == 200

    removed = tn.domains.remove(host)
    assert removed is not None and removed.hostname == host
    assert _get(edge, host).status_code == 404
    assert _get(edge, host, well_known).status_code == 404
    assert [e.action for e in tn.audit.list(target_type="domain", target=host)] == [
        "domain.remove",
        "domain.verify",
        "domain.add",
    ]


def _scripted(token_of: dict[str, str], mode: str) -> Any:
    def reply(path: str, host: str) -> tuple[int, dict[str, str], bytes]:
        token = token_of["token"]
        if mode == "wrong-token":
            return 200, {}, b"not-the-token"
        if mode == "missing":
            return 404, {}, b"nope"
        if mode == "off-host":
            return 302, {"Location": f"http://attacker.test/.well-known/tenantry/{token}"}, b""
        if mode == "to-https":
            return 301, {"Location": f"https://{host}{path}"}, b""
        if mode == "huge":
            return 200, {}, token.encode() + b" " * 5000
        if mode == "same-host-redirect":
            if path.startswith("/.well-known/"):
                return 307, {"Location": f"/moved/{token}"}, b""
            return 200, {}, token.encode() + b"\n"
        if mode == "loop":
            return 302, {"Location": path}, b""
        raise AssertionError(mode)

    return reply


@pytest.mark.parametrize(
    ("mode", "fragment"),
    [
        ("wrong-token", "did not serve the expected token"),
        ("missing", "answered HTTP 404"),
        ("off-host", "redirects away"),
        ("to-https", "redirects away"),
        ("huge", "more than 1024 bytes"),
        ("loop", "redirects more than"),
    ],
)
def test_http_check_failures_leave_it_pending(tn: Tenantry, make_tenant, mode: str, fragment: str) -> None:
    host = _host()
    domain = tn.domains.add(host, make_tenant("dom").slug)
    with ScriptedHttpServer(_scripted({"token": domain.token}, mode)) as server:
        with pytest.raises(VerificationFailed, match=fragment) as caught:
            tn.domains.verify(host, checker=HttpChecker(connect_to=server.address))
    assert domain.token in str(caught.value) and "\n" not in str(caught.value)  # says what to serve
    assert all(h == host for _, h in server.requests)  # the Host header named the domain
    if mode == "off-host":
        assert len(server.requests) == 1  # never followed
    assert tn.domains.get(host).status == "pending"


def test_http_check_follows_redirects_on_the_same_host(tn: Tenantry, make_tenant) -> None:
    host = _host()
    domain = tn.domains.add(host, make_tenant("dom").slug)
    with ScriptedHttpServer(_scripted({"token": domain.token}, "same-host-redirect")) as server:
        assert tn.domains.verify(host, checker=HttpChecker(connect_to=server.address)).verified
    assert [p for p, _ in server.requests] == [f"/.well-known/tenantry/{domain.token}", f"/moved/{domain.token}"]


def test_http_check_refuses_private_addresses_and_unreachable_hosts() -> None:
    # without an explicit --connect-to, the check never goes to the control plane's own network
    verdict = HttpChecker(resolver=lambda host, timeout: ["127.0.0.1"]).check("shop.customer.test", "t" * 32)
    assert not verdict.proven and "not a public address" in verdict.detail
    # the NAT64 and 6to4 forms of loopback too (main's is_global check let them through)
    for disguised in ("64:ff9b::7f00:1", "2002:7f00:1::1"):
        verdict = HttpChecker(resolver=lambda host, timeout, a=disguised: [a]).check("shop.customer.test", "t" * 32)
        assert not verdict.proven and "not a public address" in verdict.detail
    refused = HttpChecker(connect_to="127.0.0.1:1", timeout=2).check("shop.customer.test", "t" * 32)
    assert not refused.proven and "could not be fetched" in refused.detail


def test_http_check_connects_to_the_address_it_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    # the shared guard: resolved once, the request sent to that address (a mock transport
    # records it: nothing leaves 127.0.0.0/8)
    host = _host("pinned")
    seen: list[tuple[str, str | None]] = []

    def resolver(name: str, timeout: float) -> list[str]:
        seen.append((name, None))
        return ["93.184.216.34"]

    checker = HttpChecker(resolver=resolver, timeout=1)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers["host"]))
        return httpx.Response(200, text="t" * 32)

    real = httpx.Client

    def recording(**kwargs: object) -> httpx.Client:
        return real(transport=httpx.MockTransport(handler), **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(httpx, "Client", recording)
    verdict = checker.check(host, "t" * 32)
    assert verdict.proven, verdict.detail
    assert seen == [(host, None), (f"http://93.184.216.34/.well-known/tenantry/{'t' * 32}", host)]


def test_http_check_gives_a_hung_resolver_its_timeout_only() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a DNS server that never answers
    silent.bind(("127.0.0.1", 0))
    try:
        started = time.monotonic()
        verdict = HttpChecker(timeout=0.3, resolver=dns_resolver(["127.0.0.1"], silent.getsockname()[1])).check(
            "shop.customer.test", "t" * 32
        )
        took = time.monotonic() - started
    finally:
        silent.close()
    assert not verdict.proven and "did not resolve within 0.3 s" in verdict.detail
    assert took < 2


def test_dns_verification_against_a_real_dns_server(tn: Tenantry, make_tenant) -> None:
    host, other = _host(), _host("other")
    domain = tn.domains.add(host, make_tenant("dom").slug)
    name, value = domain.txt_record
    assert name == f"_tenantry.{host}" and value == f"tenantry-verification={domain.token}"
    records = {name: ["v=spf1 -all", value], f"_tenantry.{other}": ["tenantry-verification=wrong"]}
    with TxtDnsServer(records) as dns_server:
        checker = DnsChecker(nameservers=["127.0.0.1"], port=dns_server.port, timeout=3)
        assert checker.check(other, domain.token) == Verdict(
            False, f"no TXT record at _tenantry.{other} holds the expected value"
        )
        assert not checker.check(_host("absent"), domain.token).proven
        verified = tn.domains.verify(host, checker=checker)
    assert verified.verified and verified.method == "dns"


def test_a_pluggable_checker(tn: Tenantry, make_tenant) -> None:
    class Fake:
        method = "dns"

        def __init__(self, proven: bool) -> None:
            self.proven = proven
            self.asked: list[tuple[str, str]] = []

        def check(self, hostname: str, token: str) -> Verdict:
            self.asked.append((hostname, token))
            return Verdict(self.proven, "the fake says so")

    assert isinstance(Fake(True), DomainChecker)
    host = _host()
    domain = tn.domains.add(host, make_tenant("dom").slug)
    no = Fake(False)
    with pytest.raises(VerificationFailed, match="the fake says so.*TXT record"):
        tn.domains.verify(host, checker=no)
    yes = Fake(True)
    assert tn.domains.verify(host.upper(), checker=yes).method == "dns"
    assert no.asked == yes.asked == [(host, domain.token)]


def test_a_domain_replaced_during_its_check_is_not_verified(tn: Tenantry, make_tenant) -> None:
    """The check proves one token; if the domain was removed and re-added meanwhile (a new
    token, maybe another tenant), the old proof must not verify the new registration."""
    a, b = make_tenant("dom"), make_tenant("dom")
    host = _host()
    tn.domains.add(host, a.slug)

    class Racing:
        method = "http"

        def check(self, hostname: str, token: str) -> Verdict:
            tn.domains.remove(hostname)
            tn.domains.add(hostname, b.slug)
            return Verdict(True, "proved the old token")

    with pytest.raises(Conflict, match="changed while"):
        tn.domains.verify(host, checker=Racing())
    now = tn.domains.get(host)
    assert now.tenant == b.slug and now.status == "pending"


def test_domain_changes_reach_another_process_within_a_second(scratch, tn: Tenantry, make_tenant) -> None:
    other = Tenantry(scratch.settings(tenant_cache_ttl=3600.0), metadata=Base.metadata)
    try:
        a = make_tenant("dom")
        host = _host()
        tn.domains.add(host, a.slug)
        edge = _edge(other)

        def status() -> int:
            return _get(edge, host).status_code

        def eventually(expected: int) -> None:
            deadline = time.monotonic() + 1.5
            while status() != expected:
                assert time.monotonic() < deadline, f"the edge still answers {status()}, not {expected}"
                time.sleep(0.02)

        assert status() == 404  # pending, cached as such for an hour
        assert other.plane._listener is not None and other.plane._listener.listening.wait(5)
        tn.domains.verify(host, checker=_AlwaysProven())
        eventually(200)
        tn.domains.remove(host)
        eventually(404)
    finally:
        other.close()


class _AlwaysProven:
    method = "http"

    def check(self, hostname: str, token: str) -> Verdict:
        return Verdict(True, "test")
