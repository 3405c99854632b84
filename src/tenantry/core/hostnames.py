"""Hostnames: the one spelling of a domain that the catalog stores and the edge looks up.

Pure: no driver, no I/O. A hostname is normalised the way browsers do before they send it:
case folded, one trailing dot dropped, Unicode labels mapped (UTS #46) and encoded as IDNA 2008
A-labels (``xn--...``). So ``Bücher.Example.`` and ``xn--bcher-kva.example`` are one domain,
stored once.

IDNA goes through the ``idna`` package, not Python's ``"idna"`` codec: the codec implements
IDNA 2003, which maps ``ß`` to ``ss`` (``faß.de`` would become ``fass.de``, someone else's
domain) and accepts labels IDNA 2008 forbids. Browsers resolve the IDNA 2008 name, so that is
the one a tenant proves and the one the edge must match.

Custom domains are refused when they are IP addresses (or anything a URL parser would read as
one), wildcards, single labels, longer than DNS allows, or under the app's own base domain
(those are subdomains, served by slug).
"""

from __future__ import annotations

import ipaddress
import re

import idna

from tenantry.errors import InvalidHostname

__all__ = [
    "DNS_PREFIX",
    "DNS_VALUE_PREFIX",
    "WELL_KNOWN",
    "host_of",
    "is_under",
    "normalise_base_domain",
    "normalise_hostname",
]

_LDH = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# what a Host header may carry after lowering: anything else names no domain of ours
_HOST_CHARS = re.compile(r"[a-z0-9.-]{1,253}")
# the last label of a name a URL parser reads as an IPv4 address (WHATWG URL: numeric, 0x..)
_NUMERIC_LABEL = re.compile(r"(?:[0-9]+|0x[0-9a-f]*)")


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def _encode(text: str, what: str) -> str:
    """Lowercase IDNA 2008 A-labels of ``text`` (one trailing dot dropped), validated."""
    if not isinstance(text, str):
        raise InvalidHostname(f"{what} must be a string")
    host = text.strip()
    if host.endswith("."):
        host = host[:-1]
    if not host:
        raise InvalidHostname(f"{what} must not be empty")
    if any(c in host for c in "/:@?#[]\\ \t") or "*" in host:
        kind = "a wildcard" if "*" in host else "a URL, address or host with a port"
        raise InvalidHostname(f"{what} {_shown(text)} is {kind}; give a bare hostname like shop.example.com")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise InvalidHostname(f"{what} {_shown(text)} is an IP address; give a hostname")
    try:
        encoded = idna.encode(host, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError) as err:
        raise InvalidHostname(f"{what} {_shown(text)} is not a valid hostname: {err}") from err
    encoded = encoded.lower()
    if len(encoded) > 253:
        raise InvalidHostname(f"{what} {_shown(text)} is longer than 253 characters")
    for label in encoded.split("."):
        if not _LDH.fullmatch(label):
            raise InvalidHostname(f"{what} {_shown(text)} has an invalid label {label!r}: use letters, digits and '-'")
    return encoded


def normalise_hostname(hostname: str, *, base_domain: str | None = None) -> str:
    """The canonical form of a custom domain, or :class:`InvalidHostname`.

    >>> normalise_hostname("Shop.Example.COM.")
    'shop.example.com'
    >>> normalise_hostname("bücher.example")
    'xn--bcher-kva.example'
    """
    host = _encode(hostname, "hostname")
    labels = host.split(".")
    if len(labels) < 2:
        raise InvalidHostname(f"hostname {_shown(hostname)} is a single label; a custom domain needs a dot")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        raise InvalidHostname(f"hostname {_shown(hostname)} reads as an IP address; give a hostname")
    if base_domain is not None:
        base = normalise_base_domain(base_domain)
        if is_under(host, base) or host == base:
            raise InvalidHostname(
                f"hostname {_shown(hostname)} is under the app's base domain {base!r}:"
                f" tenants get those as <slug>.{base} without adding a domain"
            )
    return host


def normalise_base_domain(base_domain: str) -> str:
    """The app's own domain, normalised (a single label such as ``localhost`` is allowed)."""
    return _encode(base_domain, "base domain")


def is_under(host: str, base: str) -> bool:
    """Whether normalised ``host`` is a subdomain (at any depth) of normalised ``base``."""
    return host.endswith("." + base)


def host_of(header: str) -> str | None:
    """The normalised hostname of a ``Host`` header (port and trailing dot dropped), or
    ``None`` when it names no hostname we could serve (an IP literal, junk, Unicode).

    Browsers send IDNA A-labels, so this is a cheap ASCII check on the hot path rather than a
    full IDNA normalisation; a name that would only match after mapping does not match.

    >>> host_of("Acme.Example.com:8000")
    'acme.example.com'
    """
    if header.startswith("["):  # an IPv6 literal
        return None
    host, _, port = header.partition(":")
    if port and not port.isdigit():
        return None
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    if not _HOST_CHARS.fullmatch(host) or ".." in host or host.startswith("."):
        return None
    return host


# how a custom domain's ownership is proven (tenantry.services.domain_checks)
#: the path prefix the HTTP check fetches, and the middleware answers
WELL_KNOWN = "/.well-known/tenantry/"
#: the label in front of the hostname that holds the TXT record
DNS_PREFIX = "_tenantry"
#: the TXT record's value is this followed by the token
DNS_VALUE_PREFIX = "tenantry-verification="
