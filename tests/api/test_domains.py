"""``/v1/domains``: add, read, list by pages, verify against real servers on 127.0.0.1 (the
edge's own well-known answer over HTTP, a TXT record over DNS), remove; every error as a
problem document, and verification kept off the event loop."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from anyio.from_thread import BlockingPortal
from fastapi import FastAPI

from tenantry import DnsChecker, HttpChecker, Tenantry, Verdict
from tenantry.api import create_admin_app
from tenantry.services.domain_checks import Method
from tenantry.web import CustomDomainResolver, SubdomainResolver, TenantMiddleware
from tests.api.support import Client, MakeToken
from tests.api.test_auth import _problem
from tests.net_servers import AsgiServer, TxtDnsServer
from tests.web.edge_app import BASE, starlette_app


def _host(prefix: str = "shop") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}.customer.test"


class SlowChecker:
    """Takes ``seconds`` to answer, then refuses: a host that is slow to reach."""

    method: Method = "http"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = 0

    def check(self, hostname: str, token: str) -> Verdict:
        self.calls += 1
        time.sleep(self.seconds)
        return Verdict(False, f"{hostname} took {self.seconds} s and said nothing")


@pytest.fixture(scope="module")
def net(tn: Tenantry) -> Iterator[tuple[str, dict[str, list[str]]]]:
    """The edge (the tenant middleware, which answers pending domains' tokens) served over
    HTTP on 127.0.0.1, and a DNS server whose TXT records a test may add."""
    edge = TenantMiddleware(
        starlette_app(tn, []), tenantry=tn, resolvers=[SubdomainResolver(BASE), CustomDomainResolver()]
    )
    records: dict[str, list[str]] = {}
    with AsgiServer(edge) as http_server, TxtDnsServer(records) as dns_server:
        yield f"{http_server.address}|{dns_server.port}", records


@pytest.fixture(scope="module")
def checked_app(tn: Tenantry, net: tuple[str, dict[str, list[str]]]) -> Iterator[FastAPI]:
    """The admin app with checkers that reach the local servers (as an operator would point
    them at a load balancer)."""
    address, port = net[0].split("|")
    app = create_admin_app(
        tn,
        domain_checkers={
            "http": HttpChecker(connect_to=address, timeout=3),
            "dns": DnsChecker(nameservers=["127.0.0.1"], port=int(port), timeout=2),
        },
    )
    yield app
    app.state.jobs.close()


@pytest.fixture
def checked(portal: BlockingPortal, checked_app: FastAPI, admin_secret: str) -> Client:
    return Client(portal, checked_app, admin_secret)


def test_add_answers_how_to_prove_it(api: Client, tn: Tenantry, make_tenant, make_token: MakeToken) -> None:
    tenant = make_tenant("dom")
    token, secret = make_token("domains:write", prefix="domainer")
    host = _host()
    added = api.as_token(secret).post("/v1/domains", json={"hostname": host.upper() + ".", "tenant": tenant.slug})
    assert added.status_code == 201, added.text
    body = added.json()
    assert added.headers["location"] == f"/v1/domains/{host}"
    assert body["hostname"] == host and body["tenant"] == tenant.slug and body["tenant_id"] == str(tenant.id)
    assert body["status"] == "pending" and body["method"] is None and body["verified_at"] is None
    assert len(body["token"]) >= 16
    assert body["http_path"] == f"/.well-known/tenantry/{body['token']}"
    assert body["http_check"] == f"http://{host}{body['http_path']}"
    assert body["dns_check"] == {
        "name": f"_tenantry.{host}",
        "type": "TXT",
        "value": f"tenantry-verification={body['token']}",
    }
    # again, to the same tenant (by id this time): 200, unchanged
    again = api.post("/v1/domains", json={"hostname": host, "tenant": str(tenant.id)})
    assert again.status_code == 200 and again.json() == body
    [entry] = tn.audit.list(target_type="domain", target=host)
    assert entry.action == "domain.add" and entry.actor == f"token:{token.name}"


def test_any_spelling_of_a_hostname_finds_it(api: Client, make_tenant) -> None:
    tenant = make_tenant("dom")
    label = f"shop-{uuid.uuid4().hex[:8]}"
    api.post("/v1/domains", json={"hostname": f"{label}.acme.com", "tenant": tenant.slug}).raise_for_status()
    for spelling in (f"{label.capitalize()}.Acme.COM.", f"{label.upper()}.ACME.COM", f"{label}.acme.com"):
        got = api.get(f"/v1/domains/{spelling}")
        assert got.status_code == 200 and got.json()["hostname"] == f"{label}.acme.com", spelling
    idn = api.post("/v1/domains", json={"hostname": f"Bücher-{label}.example", "tenant": tenant.slug}).json()
    assert idn["hostname"].startswith("xn--bcher-") and idn["hostname"].endswith(".example")
    assert api.get(f"/v1/domains/{quote(f'bücher-{label}.example')}").json()["hostname"] == idn["hostname"]
    removed = api.delete(f"/v1/domains/{label.upper()}.Acme.COM.")
    assert removed.status_code == 200 and removed.json()["hostname"] == f"{label}.acme.com"
    _problem(api.get(f"/v1/domains/{label}.acme.com"), 404)


def test_refusals(api: Client, make_tenant) -> None:
    a, b = make_tenant("dom"), make_tenant("dom")
    host = _host()
    api.post("/v1/domains", json={"hostname": host, "tenant": a.slug}).raise_for_status()
    taken = _problem(api.post("/v1/domains", json={"hostname": host.upper(), "tenant": b.slug}), 409)
    assert taken["type"] == "urn:tenantry:problem:domain-taken"
    assert api.get(f"/v1/domains/{host}").json()["tenant"] == a.slug  # still a's
    unknown = _problem(api.post("/v1/domains", json={"hostname": _host(), "tenant": "no-such-tenant"}), 404)
    assert unknown["type"] == "urn:tenantry:problem:tenant-not-found"
    for bad in ("localhost", "127.0.0.1", "*.acme.com", "a..b.com", "exa mple.com", "x" * 64 + ".com", 'a"; drop.com'):
        problem = _problem(api.post("/v1/domains", json={"hostname": bad, "tenant": a.slug}), 422)
        assert problem["type"] == "urn:tenantry:problem:invalid-hostname", bad
    _problem(api.post("/v1/domains", json={"hostname": "nul\x00.com", "tenant": a.slug}), 422)
    _problem(api.post("/v1/domains", json={"hostname": host}), 422)
    _problem(api.post("/v1/domains", json={"hostname": host, "tenant": a.slug, "verified": True}), 422)
    missing = _host()
    for method, path in (
        ("GET", f"/v1/domains/{missing}"),
        ("DELETE", f"/v1/domains/{missing}"),
        ("POST", f"/v1/domains/{missing}/verify"),
    ):
        problem = _problem(api.request(method, path, json={} if method == "POST" else None), 404)
        assert problem["type"] == "urn:tenantry:problem:domain-not-found"
    _problem(api.get("/v1/domains/not_a_host"), 422)
    _problem(api.post(f"/v1/domains/{host}/verify", json={"method": "carrier-pigeon"}), 422)


def test_list_pages_and_filters_by_tenant(api: Client, make_tenant) -> None:
    a, b = make_tenant("dom"), make_tenant("dom")
    mine = sorted(_host(f"p{i}") for i in range(5))
    for host in mine:
        api.post("/v1/domains", json={"hostname": host, "tenant": a.slug}).raise_for_status()
    api.post("/v1/domains", json={"hostname": _host(), "tenant": b.slug}).raise_for_status()
    first = api.get("/v1/domains", params={"tenant": a.slug, "limit": 2})
    body = first.json()
    assert len(body["items"]) == 2 and body["next"] and first.headers["link"].endswith('rel="next"')
    seen = [d["hostname"] for d in body["items"]]
    while body["next"]:
        body = api.get(body["next"]).json()
        seen += [d["hostname"] for d in body["items"]]
    assert seen == mine  # by hostname, only a's, each once
    by_id = api.get("/v1/domains", params={"tenant": str(a.id), "limit": 500}).json()
    assert [d["hostname"] for d in by_id["items"]] == mine and by_id["next"] is None
    everyone = api.get("/v1/domains", params={"limit": 500}).json()["items"]
    assert set(mine) <= {d["hostname"] for d in everyone} and len(everyone) >= 6
    _problem(api.get("/v1/domains", params={"tenant": "no-such-tenant"}), 404)
    for query in ("limit=0", "limit=501", "cursor=abc", "cursor=WzFd", "tenant=x&tenant=y", "tenatn=x"):
        _problem(api.get(f"/v1/domains?{query}"), 422)


def test_http_verification_through_the_edge(checked: Client, tn: Tenantry, make_tenant, make_token: MakeToken) -> None:
    tenant = make_tenant("dom")
    token, secret = make_token("domains:write", prefix="verifier")
    host = _host()
    client = checked.as_token(secret)
    added = client.post("/v1/domains", json={"hostname": host, "tenant": tenant.slug}).json()
    verified = client.post(f"/v1/domains/{host.upper()}./verify", json={"method": "http"})
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert body["status"] == "verified" and body["method"] == "http" and body["verified_at"] is not None
    assert body["token"] == added["token"]
    again = client.post(f"/v1/domains/{host}/verify", json={})  # verified already: as it is
    assert again.status_code == 200 and again.json() == body
    removed = client.delete(f"/v1/domains/{host}")
    assert removed.status_code == 200 and removed.json()["status"] == "verified"
    actions = [(e.action, e.actor) for e in tn.audit.list(target_type="domain", target=host)]
    assert actions == [(a, f"token:{token.name}") for a in ("domain.remove", "domain.verify", "domain.add")]


def test_dns_verification_and_a_failed_check(
    checked: Client, net: tuple[str, dict[str, list[str]]], tn: Tenantry, make_tenant
) -> None:
    records = net[1]
    tenant = make_tenant("dom")
    host = _host()
    added = checked.post("/v1/domains", json={"hostname": host, "tenant": tenant.slug}).json()
    failed = _problem(checked.post(f"/v1/domains/{host}/verify", json={"method": "dns"}), 422)
    assert failed["type"] == "urn:tenantry:problem:verification-failed"
    assert f"_tenantry.{host}" in failed["detail"] and added["dns_check"]["value"] in failed["detail"]
    assert checked.get(f"/v1/domains/{host}").json()["status"] == "pending"
    records[f"_tenantry.{host}"] = ["tenantry-verification=not-the-token"]
    _problem(checked.post(f"/v1/domains/{host}/verify", json={"method": "dns"}), 422)
    records[f"_tenantry.{host}"] = [added["dns_check"]["value"]]
    verified = checked.post(f"/v1/domains/{host}/verify", json={"method": "dns"})
    assert verified.status_code == 200 and verified.json()["method"] == "dns"
    assert [e.action for e in tn.audit.list(target_type="domain", target=host)] == ["domain.verify", "domain.add"]


def test_http_check_of_a_host_that_does_not_serve_the_token(
    api: Client, portal: BlockingPortal, tn: Tenantry, admin_secret: str, make_tenant
) -> None:
    """The default checker with a hostname that cannot resolve: a 422 saying what to serve,
    answered within the checker's timeout."""
    tenant = make_tenant("dom")
    host = _host()
    api.post("/v1/domains", json={"hostname": host, "tenant": tenant.slug}).raise_for_status()
    app = create_admin_app(tn, domain_checkers={"http": HttpChecker(connect_to="127.0.0.1:1", timeout=2)})
    try:
        started = time.monotonic()
        problem = _problem(Client(portal, app, admin_secret).post(f"/v1/domains/{host}/verify", json={}), 422)
        assert time.monotonic() - started < 10
    finally:
        app.state.jobs.close()
    assert "/.well-known/tenantry/" in problem["detail"] and "could not be fetched" in problem["detail"]


def test_verification_runs_off_the_event_loop(
    portal: BlockingPortal, tn: Tenantry, admin_secret: str, make_tenant
) -> None:
    """While slow checks wait on the network, the same app answers other requests at once."""
    tenant = make_tenant("dom")
    slow = SlowChecker(1.5)
    app = create_admin_app(tn, domain_checkers={"http": slow})
    client = Client(portal, app, admin_secret)
    hosts = [_host() for _ in range(3)]
    for host in hosts:
        client.post("/v1/domains", json={"hostname": host, "tenant": tenant.slug}).raise_for_status()
    answers: list[int] = []
    workers = [
        threading.Thread(
            target=lambda h=host: answers.append(client.post(f"/v1/domains/{h}/verify", json={}).status_code)
        )
        for host in hosts
    ]
    try:
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 5
        while slow.calls < len(hosts) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert slow.calls == len(hosts)  # all three checks are waiting now
        started = time.monotonic()
        listed = client.get("/v1/domains", params={"tenant": tenant.slug})
        took = time.monotonic() - started
        assert listed.status_code == 200 and took < 1.0, took
        for worker in workers:
            worker.join()
    finally:
        app.state.jobs.close()
    assert answers == [422, 422, 422]


def test_scopes(api: Client, make_tenant, make_token: MakeToken) -> None:
    tenant = make_tenant("dom")
    host = _host()
    api.post("/v1/domains", json={"hostname": host, "tenant": tenant.slug}).raise_for_status()
    _, reader = make_token("domains:read")
    _, other = make_token("tenants:write", "flags:write", "config:write", "brands:write")
    as_reader, as_other = api.as_token(reader), api.as_token(other)
    assert as_reader.get(f"/v1/domains/{host}").status_code == 200
    assert as_reader.get("/v1/domains").status_code == 200
    writes: list[tuple[str, str, Any]] = [
        ("POST", "/v1/domains", {"hostname": _host(), "tenant": tenant.slug}),
        ("POST", f"/v1/domains/{host}/verify", {"method": "http"}),
        ("DELETE", f"/v1/domains/{host}", None),
    ]
    for method, path, body in writes:
        assert _problem(as_reader.request(method, path, json=body), 403)["scope"] == "domains:write"
        assert _problem(as_other.request(method, path, json=body), 403)["scope"] == "domains:write"
    for path in ("/v1/domains", f"/v1/domains/{host}"):
        assert _problem(as_other.get(path), 403)["scope"] == "domains:read"
        _problem(api.as_token(None).get(path), 401)
    assert api.get(f"/v1/domains/{host}").json()["status"] == "pending"  # nothing changed
