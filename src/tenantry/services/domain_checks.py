"""Ownership checks for custom domains: the pluggable :class:`DomainChecker` and two of them.

* :class:`HttpChecker` fetches ``http://<hostname>/.well-known/tenantry/<token>`` and expects
  the token as the body. This proves the hostname reaches the app; tenantry's middleware
  answers that path for pending domains, so pointing DNS at the app is all a tenant does.
  It goes through the one SSRF guard (:class:`tenantry.services.egress.Egress`): the hostname
  is resolved once, with a time limit, and the request goes to that address (so a second,
  rebound answer cannot redirect it); addresses that are not public are refused (the check
  must not become a way to probe the control plane's network), and redirects are followed
  only within the same hostname, to the same address.
* :class:`DnsChecker` looks for a TXT record ``_tenantry.<hostname>`` with the value
  ``tenantry-verification=<token>``: proof of control over the zone, before any traffic.
  It needs ``dnspython`` (the ``web`` extra).

A checker answers with a :class:`Verdict`, never by raising for a failed check; the service
turns a negative verdict into :class:`tenantry.VerificationFailed` with instructions.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable
from urllib.parse import urljoin, urlsplit

from tenantry.core.hostnames import DNS_PREFIX, DNS_VALUE_PREFIX, WELL_KNOWN, host_of
from tenantry.errors import ConfigurationError, InvalidInput, UnsafeAddress
from tenantry.services.egress import Egress, PinnedTarget, Resolver

__all__ = [
    "DnsChecker",
    "DomainChecker",
    "HttpChecker",
    "Verdict",
    "checker_for",
]


Method = Literal["http", "dns"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a check: ``proven``, and a one-line ``detail`` for people."""

    proven: bool
    detail: str


@runtime_checkable
class DomainChecker(Protocol):
    """Decides whether ``hostname`` proves ``token``. ``method`` is recorded on the domain."""

    method: Method

    def check(self, hostname: str, token: str) -> Verdict: ...


class HttpChecker:
    """The HTTP token check.

    ``connect_to`` (``"host:port"``) sends the request to that address instead of the
    hostname's own (the ``Host`` header still names the hostname), as ``curl --connect-to``
    does: for a check through a load balancer, or a test server on 127.0.0.1. It is an
    operator's explicit choice, so private addresses are allowed there. ``resolver``
    replaces the guard's dnspython lookup (see :class:`~tenantry.services.egress.Egress`).
    """

    method: Method = "http"

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        connect_to: str | None = None,
        port: int = 80,
        max_redirects: int = 3,
        max_bytes: int = 1024,
        resolver: Resolver | None = None,
    ) -> None:
        self.timeout = timeout
        self.connect_to = connect_to
        self.port = port
        self.max_redirects = max_redirects
        self.max_bytes = max_bytes
        self.egress = Egress(timeout=timeout, resolver=resolver)
        if connect_to is not None:
            host, sep, number = connect_to.rpartition(":")
            if not sep or not host or not number.isdigit():
                raise InvalidInput(f"connect-to address {connect_to!r} must look like host:port")

    def _target(self, hostname: str) -> PinnedTarget | Verdict:
        url = f"http://{hostname}/" if self.port == 80 else f"http://{hostname}:{self.port}/"
        if self.connect_to is not None:
            host, _, port = self.connect_to.rpartition(":")
            return PinnedTarget(url, hostname, host.strip("[]"), int(port))
        try:
            return self.egress.pin(url)
        except UnsafeAddress as err:
            return Verdict(False, str(err))

    def check(self, hostname: str, token: str) -> Verdict:
        try:
            import httpx
        except ImportError as err:  # pragma: no cover - depends on the installed extras
            raise ConfigurationError("the HTTP domain check needs httpx: pip install 'tenantry[web]'") from err
        pinned = self._target(hostname)
        if isinstance(pinned, Verdict):
            return pinned
        path = f"{WELL_KNOWN}{token}"
        shown = f"http://{hostname}{path}"
        try:
            with httpx.Client(timeout=self.timeout, follow_redirects=False, trust_env=False) as client:
                for _ in range(self.max_redirects + 1):
                    request = pinned.request(client, "GET", path)
                    response = client.send(request, stream=True)
                    try:
                        if response.is_redirect:
                            target = urlsplit(urljoin(shown, response.headers.get("location", "")))
                            if target.scheme != "http" or host_of(target.netloc) != hostname:
                                return Verdict(False, f"{shown} redirects away from http://{hostname}")
                            path = (target.path or "/") + (f"?{target.query}" if target.query else "")
                            shown = f"http://{hostname}{path}"
                            continue
                        if response.status_code != 200:
                            return Verdict(False, f"{shown} answered HTTP {response.status_code}")
                        body = b""
                        for chunk in response.iter_bytes():
                            body += chunk
                            if len(body) > self.max_bytes:
                                return Verdict(False, f"{shown} answered more than {self.max_bytes} bytes")
                    finally:
                        response.close()
                    if hmac.compare_digest(body.strip(), token.encode()):
                        return Verdict(True, f"{shown} served the token")
                    return Verdict(False, f"{shown} did not serve the expected token")
        except httpx.HTTPError as err:
            return Verdict(False, f"{shown} could not be fetched ({type(err).__name__}: {err})")
        return Verdict(False, f"{shown} redirects more than {self.max_redirects} times")


class DnsChecker:
    """The DNS TXT check. ``nameservers`` (and ``port``) query those servers instead of the
    system's resolvers."""

    method: Method = "dns"

    def __init__(self, *, nameservers: Sequence[str] | None = None, port: int = 53, timeout: float = 5.0) -> None:
        self.nameservers = list(nameservers) if nameservers else None
        self.port = port
        self.timeout = timeout

    def check(self, hostname: str, token: str) -> Verdict:
        try:
            import dns.exception
            import dns.resolver
        except ImportError as err:  # pragma: no cover - depends on the installed extras
            raise ConfigurationError("the DNS domain check needs dnspython: pip install 'tenantry[web]'") from err
        resolver = dns.resolver.Resolver(configure=self.nameservers is None)
        if self.nameservers is not None:
            resolver.nameservers = self.nameservers
            resolver.port = self.port
        resolver.lifetime = self.timeout
        name = f"{DNS_PREFIX}.{hostname}"
        try:
            answer = resolver.resolve(name, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return Verdict(False, f"there is no TXT record at {name}")
        except dns.exception.DNSException as err:
            return Verdict(False, f"the TXT lookup of {name} failed ({type(err).__name__})")
        expected = f"{DNS_VALUE_PREFIX}{token}".encode()
        for rdata in answer:
            value = b"".join(getattr(rdata, "strings", ()))
            if hmac.compare_digest(value.strip(), expected):
                return Verdict(True, f"the TXT record at {name} holds the token")
        return Verdict(False, f"no TXT record at {name} holds the expected value")


def checker_for(method: str) -> DomainChecker:
    """The default checker of a method (``http`` or ``dns``)."""
    if method == "http":
        return HttpChecker()
    if method == "dns":
        return DnsChecker()
    raise InvalidInput(f"verification method {method!r} must be 'http' or 'dns'")
