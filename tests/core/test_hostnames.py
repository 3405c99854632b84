"""Hostname normalisation: one spelling per domain, and what a custom domain may not be."""

from __future__ import annotations

import pytest

from tenantry import InvalidHostname, normalise_hostname
from tenantry.core.hostnames import host_of, normalise_base_domain


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("shop.example.com", "shop.example.com"),
        ("Shop.EXAMPLE.com", "shop.example.com"),
        ("shop.example.com.", "shop.example.com"),
        ("  shop.example.com ", "shop.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
        # IDNA 2008, as browsers resolve it: ß is kept (IDNA 2003 would say fass.de)
        ("faß.de", "xn--fa-hia.de"),
        # full-width letters map to ASCII (UTS 46), as a browser's address bar does
        ("ａｃｍｅ.com", "acme.com"),
        ("a-b.c-d.example", "a-b.c-d.example"),
    ],
)
def test_normalises(given: str, stored: str) -> None:
    assert normalise_hostname(given) == stored


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ("", "empty"),
        (".", "empty"),
        ("localhost", "single label"),
        ("127.0.0.1", "IP address"),
        ("::1", "address"),
        ("[::1]", "address"),
        ("10.0.0.1.", "IP address"),
        ("1.2.3", "reads as an IP"),
        ("0x7f.1", "reads as an IP"),
        ("shop.example.123", "reads as an IP"),
        ("*.example.com", "wildcard"),
        ("shop.example.com:8080", "port"),
        ("http://shop.example.com", "URL"),
        ("shop.example.com/x", "URL"),
        ("user@shop.example.com", "URL"),
        ("sh op.example.com", "URL"),
        ("a_b.example.com", "not a valid hostname"),
        ("-shop.example.com", "not a valid hostname"),
        ("shop..example.com", "not a valid hostname"),
        ("x" * 64 + ".example.com", "not a valid hostname"),
        (".".join(["abcdefghi"] * 26) + ".com", "too long"),
        ("xn--zz.example", "not a valid hostname"),
    ],
)
def test_refuses(given: str, fragment: str) -> None:
    with pytest.raises(InvalidHostname, match=fragment):
        normalise_hostname(given)


def test_base_domain_and_its_subdomains_are_refused() -> None:
    for host in ("app.example", "acme.app.example", "a.b.APP.example.", "app.example"):
        with pytest.raises(InvalidHostname, match="base domain"):
            normalise_hostname(host, base_domain="App.Example")
    assert normalise_hostname("myapp.example", base_domain="app.example") == "myapp.example"
    assert normalise_base_domain("localhost") == "localhost"


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("acme.example.com", "acme.example.com"),
        ("ACME.Example.com:8000", "acme.example.com"),
        ("acme.localhost:8000", "acme.localhost"),
        ("acme.example.com.", "acme.example.com"),
        ("[::1]:8000", None),
        ("acme.example.com:x", None),
        ("acme.example.com/evil", None),
        ("evil.com@acme.example.com", None),
        ("bücher.example", None),
        ("", None),
        (".example.com", None),
        ("a..example.com", None),
    ],
)
def test_host_header(header: str, host: str | None) -> None:
    assert host_of(header) == host
