"""The one SSRF guard (issue 11, finding 5): every address form refused, DNS through dnspython
with a time limit, and the connection made to the address that was checked.

No traffic leaves 127.0.0.0/8: DNS answers come from a server on 127.0.0.1, and requests to
public addresses go to an ``httpx.MockTransport`` that records where they would connect.
"""

from __future__ import annotations

import ipaddress
import socket
import time

import httpx
import pytest

from tenantry import ConfigurationError, UnsafeAddress
from tenantry.services.egress import Egress, dns_resolver, is_public
from tests.net_servers import TxtDnsServer

PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808"]  # the last: NAT64 of 8.8.8.8

#: address -> why it must be refused
REFUSED = {
    "127.0.0.1": "loopback",
    "::1": "IPv6 loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "169.254.169.254": "link-local (cloud metadata)",
    "fe80::1": "IPv6 link-local",
    "100.64.0.1": "CGNAT",
    "224.0.0.1": "multicast",
    "ff02::1": "IPv6 multicast",
    "ff0e::1": "IPv6 global-scope multicast",
    "fd00::1": "unique local",
    "fc00::1": "unique local",
    "0.0.0.0": "unspecified",
    "255.255.255.255": "broadcast",
    "::ffff:127.0.0.1": "IPv4-mapped loopback",
    "::ffff:8.8.8.8": "IPv4-mapped (never a real endpoint)",
    "::127.0.0.1": "IPv4-compatible loopback",
    "64:ff9b::7f00:1": "NAT64 of 127.0.0.1",
    "64:ff9b::a01:203": "NAT64 of 10.1.2.3",
    "64:ff9b::a9fe:a9fe": "NAT64 of 169.254.169.254",
    "64:ff9b:1::a01:203": "local-use NAT64",
    "2002:7f00:1::1": "6to4 of 127.0.0.1",
    "2002:a01:203::1": "6to4 of 10.1.2.3",
    "2002:808:808::1": "6to4 (deprecated, refused whole)",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2": "Teredo",
}


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert is_public(address)
    assert Egress(resolver=lambda host, timeout: [address]).pin("https://hooks.example/in").address == address


@pytest.mark.parametrize("address", list(REFUSED))
def test_every_non_public_form_is_refused(address: str) -> None:
    assert not is_public(address), REFUSED[address]
    egress = Egress(resolver=lambda host, timeout: [address])
    with pytest.raises(UnsafeAddress, match="not a public address"):
        egress.pin("https://hooks.example/in")
    # one bad answer among good ones is enough to refuse the host
    with pytest.raises(UnsafeAddress):
        Egress(resolver=lambda host, timeout: ["8.8.8.8", address]).pin("https://hooks.example/in")
    with pytest.raises(UnsafeAddress):  # and the address written as the URL's host
        egress.pin(f"http://[{address}]/" if ":" in address else f"http://{address}/")


def test_the_stdlib_check_alone_lets_the_disguised_forms_through() -> None:
    # negative control: what main relied on (``is_global``) passes these, so the test above
    # sees the gap it closes
    disguised = ["64:ff9b::7f00:1", "2002:7f00:1::1", "::ffff:8.8.8.8", "::127.0.0.1", "ff0e::1", "224.0.0.1"]
    assert all(ipaddress.ip_address(a).is_global for a in disguised)


def _recording() -> tuple[httpx.Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    return httpx.Client(transport=httpx.MockTransport(handler), follow_redirects=False), seen


def test_a_rebinding_dns_answer_never_reaches_the_connection() -> None:
    # first answer public, every later one loopback: a classic rebinding server
    with TxtDnsServer({}, addresses={"rebind.test": [["93.184.216.34"], ["127.0.0.1"]]}) as dns_server:
        resolver = dns_resolver(["127.0.0.1"], dns_server.port)
        egress = Egress(timeout=3, resolver=resolver)
        client, seen = _recording()
        with client:
            response = egress.send(
                client, "POST", "https://rebind.test:8443/hook?x=1", content=b"{}", headers={"x-a": "b"}
            )
        assert response.status_code == 204
        [request] = seen
        # the connection goes to the checked address, the name only in Host and SNI
        assert (request.url.host, request.url.port, request.url.path, request.url.query) == (
            "93.184.216.34",
            8443,
            "/hook",
            b"x=1",
        )
        assert request.headers["host"] == "rebind.test:8443" and request.headers["x-a"] == "b"
        assert request.extensions["sni_hostname"] == "rebind.test"
        assert dns_server.asked["rebind.test"] == 2  # one A and one AAAA query: resolved once
        # negative control: asked again, the server answers loopback, which the guard refuses
        assert list(resolver("rebind.test", 3)) == ["127.0.0.1"]
        with pytest.raises(UnsafeAddress, match="127.0.0.1"):
            egress.pin("https://rebind.test/hook")


def test_plain_http_gets_no_sni_and_ipv6_is_bracketed() -> None:
    client, seen = _recording()
    with client:
        Egress(resolver=lambda h, t: ["2606:4700:4700::1111"]).send(client, "GET", "http://v6.example/x")
    [request] = seen
    assert request.url.host == "2606:4700:4700::1111" and request.headers["host"] == "v6.example"
    assert "sni_hostname" not in request.extensions


def test_a_hung_resolver_gets_the_timeout_only() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a DNS server that never answers
    silent.bind(("127.0.0.1", 0))
    try:
        egress = Egress(timeout=0.3, resolver=dns_resolver(["127.0.0.1"], silent.getsockname()[1]))
        started = time.monotonic()
        with pytest.raises(UnsafeAddress, match=r"did not resolve within 0.3 s"):
            egress.pin("https://slow.example/")
        assert time.monotonic() - started < 2
    finally:
        silent.close()


def test_names_that_do_not_resolve_and_odd_urls_are_refused() -> None:
    with TxtDnsServer({}) as dns_server:
        egress = Egress(timeout=3, resolver=dns_resolver(["127.0.0.1"], dns_server.port))
        with pytest.raises(UnsafeAddress, match="cannot resolve nowhere.test"):
            egress.pin("https://nowhere.test/")
    for url in ("ftp://x.example/", "https:///nohost", "not a url"):
        with pytest.raises(UnsafeAddress):
            egress.pin(url)


def test_allow_private_still_resolves_once_and_pins() -> None:
    calls: list[str] = []

    def resolver(host: str, timeout: float) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    target = Egress(allow_private=True, resolver=resolver).pin("http://hooks.local:9/x")
    assert (target.address, calls) == ("127.0.0.1", ["hooks.local"])
    assert Egress(allow_private=True, resolver=resolver).pin("http://127.0.0.2:9/").address == "127.0.0.2"
    assert calls == ["hooks.local"]  # an address literal is not looked up


def test_a_client_that_follows_redirects_is_refused() -> None:
    with httpx.Client(follow_redirects=True) as client, pytest.raises(ConfigurationError, match="follow_redirects"):
        Egress(resolver=lambda h, t: ["8.8.8.8"]).send(client, "GET", "https://x.example/")
