"""The one SSRF guard: requests to hosts that tenants choose go to public addresses only.

Webhook endpoints and the hostnames of custom domains are the tenants' choice, so a request
to them must not become a way into the control plane's own network (loopback, private
networks, the cloud metadata service at 169.254.169.254). :class:`Egress` makes every such
request in two steps, with nothing in between that could resolve the name again:

1. :meth:`Egress.pin` resolves the hostname once, through dnspython with a time limit (the
   system resolver has none), and refuses it unless *every* address it got is public
   (:func:`is_public`);
2. :meth:`Egress.send` connects to that checked address itself, with the hostname in the
   ``Host`` header and, for HTTPS, as the TLS server name (httpx's ``sni_hostname`` request
   extension), so the certificate is still checked against the hostname.

A DNS answer that changes after the check (rebinding) therefore changes nothing: the
connection goes to the address that was checked. ::

    egress = Egress(timeout=5.0)
    with httpx.Client(follow_redirects=False) as client:
        response = egress.send(client, "POST", "https://hooks.acme.example/in", content=body)

``allow_private`` lets tests and local demos reach loopback and private addresses; it still
resolves once and connects to what it resolved.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tenantry.errors import ConfigurationError, UnsafeAddress

if TYPE_CHECKING:
    import httpx

__all__ = ["Egress", "PinnedTarget", "Resolver", "dns_resolver", "is_public"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

Resolver = Callable[[str, float], Sequence[str]]
"""Resolves a hostname within a number of seconds to its addresses (text); raises
:class:`TimeoutError` when it runs out of time and :class:`LookupError` when there are none."""

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_REFUSED_V6 = (
    ipaddress.ip_network("::/96"),  # IPv4-compatible (deprecated): ::127.0.0.1
    ipaddress.ip_network("::ffff:0:0/96"),  # IPv4-mapped: ::ffff:10.0.0.1 reaches 10.0.0.1
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use NAT64 (RFC 8215): the operator's own network
    ipaddress.ip_network("2002::/16"),  # 6to4 (deprecated, RFC 7526): 2002:7f00:1:: is 127.0.0.1's
    ipaddress.ip_network("2001::/32"),  # Teredo: tunnels to an embedded IPv4 address
)


def is_public(address: str | Address) -> bool:
    """Whether ``address`` is a public unicast address a request may go to.

    Refused: loopback, private and unique-local, link-local, CGNAT (100.64.0.0/10), multicast,
    reserved and documentation ranges (everything :attr:`ipaddress.IPv4Address.is_global`
    refuses), and the IPv6 forms that reach an IPv4 address through a translator or tunnel:
    IPv4-mapped and -compatible, 6to4, Teredo, local-use NAT64, and well-known NAT64
    (``64:ff9b::/96``) unless the IPv4 address it embeds is public itself.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    if ip.is_multicast or not ip.is_global:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64:
            return is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if any(ip in net for net in _REFUSED_V6):
            return False
    return True


def dns_resolver(nameservers: Sequence[str] | None = None, port: int = 53) -> Resolver:
    """A :data:`Resolver` asking for A and AAAA records through dnspython (``nameservers``:
    those servers instead of the system's); both queries share one time limit."""

    def resolve(hostname: str, timeout: float) -> list[str]:
        try:
            import dns.exception
            import dns.resolver
        except ImportError as err:  # pragma: no cover - depends on the installed extras
            raise ConfigurationError("requests to tenants' hosts need dnspython: pip install 'tenantry[web]'") from err
        resolver = dns.resolver.Resolver(configure=nameservers is None)
        if nameservers is not None:
            resolver.nameservers = list(nameservers)
            resolver.port = port
        deadline = time.monotonic() + timeout
        found: list[str] = []
        for kind in ("A", "AAAA"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{hostname} did not resolve within {timeout:g} s")
            try:
                answer = resolver.resolve(hostname, kind, lifetime=left, search=False)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
                continue
            except dns.exception.Timeout as err:
                raise TimeoutError(f"{hostname} did not resolve within {timeout:g} s") from err
            except dns.exception.DNSException as err:
                raise LookupError(f"{hostname} does not resolve ({type(err).__name__})") from err
            found.extend(str(record.address) for record in answer)
        if not found:
            raise LookupError(f"{hostname} has no A or AAAA record")
        return found

    return resolve


@dataclass(frozen=True, slots=True)
class PinnedTarget:
    """A URL whose hostname was resolved and checked once: requests go to :attr:`address`."""

    url: str
    """The URL as given."""
    hostname: str
    address: str
    """The checked address every request to this target connects to."""
    port: int | None = None
    """Connect to this port instead of the URL's (``curl --connect-to``); ``Host`` still
    names the URL's."""

    def request(self, client: httpx.Client, method: str, path: str | None = None, **kwargs: Any) -> httpx.Request:
        """A request of ``client`` to the pinned address (``path``: another path and query
        on the same host, for a redirect followed by hand)."""
        import httpx

        url = httpx.URL(self.url)
        if path is not None:
            url = url.join(path)
        pinned = (
            url.copy_with(host=self.address, port=self.port)
            if self.port is not None
            else url.copy_with(host=self.address)
        )
        headers: dict[str, str] = {**dict(kwargs.pop("headers", None) or {}), "Host": url.netloc.decode("ascii")}
        extensions: dict[str, Any] = dict(kwargs.pop("extensions", None) or {})
        if url.scheme == "https":
            extensions["sni_hostname"] = self.hostname
        return client.build_request(method, pinned, headers=headers, extensions=extensions, **kwargs)


class Egress:
    """Requests to tenants' hosts: resolved once, public addresses only, connected to as
    checked. ``resolver`` replaces dnspython (tests; a resolver of one's own); ``timeout``
    bounds the lookup."""

    def __init__(self, *, timeout: float = 5.0, allow_private: bool = False, resolver: Resolver | None = None) -> None:
        if timeout <= 0:
            raise ConfigurationError("the lookup timeout must be positive")
        self.timeout = timeout
        self.allow_private = allow_private
        self.resolver = resolver or dns_resolver()

    def addresses(self, hostname: str) -> list[str]:
        """The addresses of ``hostname`` (an address literal is its own), all of them checked;
        :class:`~tenantry.UnsafeAddress` when it does not resolve or one is not public."""
        host = hostname.strip("[]")
        try:
            found = [str(ipaddress.ip_address(host))]
        except ValueError:
            try:
                found = [str(a) for a in self.resolver(host, self.timeout)]
            except TimeoutError:
                raise UnsafeAddress(f"{host} did not resolve within {self.timeout:g} s") from None
            except (LookupError, OSError) as err:
                raise UnsafeAddress(f"cannot resolve {host}: {err}") from None
            if not found:
                raise UnsafeAddress(f"{host} has no address") from None
        if not self.allow_private:
            refused = sorted({a for a in found if not _public_text(a)})
            if refused:
                raise UnsafeAddress(f"refused: {host} resolves to {', '.join(refused)}, which is not a public address")
        return found

    def pin(self, url: str) -> PinnedTarget:
        """Resolve and check the host of ``url`` (``http``/``https``) once."""
        import httpx

        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as err:
            raise UnsafeAddress(f"{url[:200]!r} is not a URL: {err}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise UnsafeAddress(f"{url[:200]!r} is not an http(s) URL with a host")
        return PinnedTarget(url, parsed.host, self.addresses(parsed.host)[0])

    def send(
        self,
        client: httpx.Client,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """Send one request to ``url`` through the guard (redirects are the caller's: pass a
        client that does not follow them)."""
        if client.follow_redirects:
            # a redirect would be resolved and followed by httpx, past the guard
            raise ConfigurationError("requests through the SSRF guard need a client with follow_redirects=False")
        target = self.pin(url)
        return client.send(target.request(client, method, headers=headers, content=content))


def _public_text(address: str) -> bool:
    try:
        return is_public(address)
    except ValueError:
        return False
