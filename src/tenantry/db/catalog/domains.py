"""The catalog's custom domains: a tenant's hostnames, pending until their ownership is
proven, and what the edge reads of them (``tenantry_routing.domains``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from tenantry.core.hostnames import DNS_PREFIX, DNS_VALUE_PREFIX, WELL_KNOWN, normalise_hostname
from tenantry.errors import DomainNotFound

__all__ = [
    "UNKNOWN_HOST",
    "Domain",
    "HostRoute",
    "delete_domain",
    "get_domain",
    "insert_domain",
    "list_domains",
    "lookup_host",
    "mark_verified",
    "read_domain",
]

_COLUMNS = """d.hostname, d.tenant_id, t.slug, d.token, d.status, d.method, d.verified_at, d.created_at"""
_FROM = "tenantry.domains d JOIN tenantry.tenants t ON t.id = d.tenant_id"


@dataclass(frozen=True, slots=True)
class Domain:
    """A custom hostname of a tenant. ``token`` is what proves it (public once served)."""

    hostname: str
    tenant_id: uuid.UUID
    tenant: str
    """The tenant's slug."""
    token: str
    status: str
    """``pending`` until verified, then ``verified``."""
    method: str | None
    """How it was verified: ``http`` or ``dns``."""
    verified_at: datetime | None
    created_at: datetime

    @property
    def verified(self) -> bool:
        return self.status == "verified"

    @property
    def http_url(self) -> str:
        """Where the HTTP check fetches the token."""
        return f"http://{self.hostname}{WELL_KNOWN}{self.token}"

    @property
    def txt_record(self) -> tuple[str, str]:
        """The DNS TXT record (name, value) the DNS check looks for."""
        return f"{DNS_PREFIX}.{self.hostname}", f"{DNS_VALUE_PREFIX}{self.token}"

    def to_dict(self) -> dict[str, Any]:
        name, value = self.txt_record
        return {
            "hostname": self.hostname,
            "tenant": self.tenant,
            "tenant_id": str(self.tenant_id),
            "status": self.status,
            "method": self.method,
            "verified_at": None if self.verified_at is None else self.verified_at.isoformat(),
            "created_at": self.created_at.isoformat(),
            "token": self.token,
            "http_check": self.http_url,
            "dns_check": {"name": name, "type": "TXT", "value": value},
        }


@dataclass(frozen=True, slots=True)
class HostRoute:
    """What the edge needs to know about a hostname: its tenant once verified, and the token
    to answer while it is pending. ``UNKNOWN_HOST`` for a hostname nobody registered."""

    tenant_id: uuid.UUID | None
    token: str | None
    verified: bool


UNKNOWN_HOST = HostRoute(tenant_id=None, token=None, verified=False)


def _domain(row: tuple[Any, ...]) -> Domain:
    return Domain(*row)


def read_domain(conn: psycopg.Connection[Any], hostname: str, *, for_update: bool = False) -> Domain | None:
    lock = " FOR UPDATE OF d" if for_update else ""
    row = conn.execute(f"SELECT {_COLUMNS} FROM {_FROM} WHERE d.hostname = %s{lock}", (hostname,)).fetchone()
    return None if row is None else _domain(row)


def get_domain(conn: psycopg.Connection[Any], hostname: str) -> Domain:
    """The domain with this hostname (any spelling), or :class:`DomainNotFound`."""
    host = normalise_hostname(hostname)
    found = read_domain(conn, host)
    if found is None:
        raise DomainNotFound(f"no domain {host!r} is registered")
    return found


def list_domains(
    conn: psycopg.Connection[Any],
    tenant_id: uuid.UUID | None = None,
    *,
    after: str | None = None,
    limit: int | None = None,
) -> list[Domain]:
    """Domains by hostname, of one tenant or all; ``after`` the previous page's last
    hostname, at most ``limit`` of them (keyset paging)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM {_FROM}"
        " WHERE (%(t)s::uuid IS NULL OR d.tenant_id = %(t)s) AND (%(after)s::text IS NULL OR d.hostname > %(after)s)"
        " ORDER BY d.hostname LIMIT %(limit)s",
        {"t": tenant_id, "after": after, "limit": limit},
    ).fetchall()
    return [_domain(r) for r in rows]


def lookup_host(conn: psycopg.Connection[Any], hostname: str) -> HostRoute:
    """The edge's question: which tenant (if verified) and which token (if pending)."""
    row = conn.execute(
        "SELECT tenant_id, token, status FROM tenantry_routing.domains WHERE hostname = %s", (hostname,)
    ).fetchone()
    if row is None:
        return UNKNOWN_HOST
    verified = row[2] == "verified"
    return HostRoute(tenant_id=row[0] if verified else None, token=row[1], verified=verified)


def insert_domain(conn: psycopg.Connection[Any], hostname: str, tenant_id: uuid.UUID, token: str) -> bool:
    """Record ``hostname`` as ``tenant_id``'s, pending; ``False`` when it is taken already."""
    inserted = conn.execute(
        "INSERT INTO tenantry.domains (hostname, tenant_id, token) VALUES (%s, %s, %s)"
        " ON CONFLICT (hostname) DO NOTHING RETURNING hostname",
        (hostname, tenant_id, token),
    ).fetchone()
    return inserted is not None


def mark_verified(conn: psycopg.Connection[Any], hostname: str, token: str, method: str) -> bool:
    """Mark a pending domain verified by ``method`` if it still has ``token``; ``False``
    when it changed meanwhile (verified, removed, or added anew)."""
    row = conn.execute(
        "UPDATE tenantry.domains SET status = 'verified', method = %s, verified_at = now(), updated_at = now()"
        " WHERE hostname = %s AND token = %s AND status = 'pending' RETURNING hostname",
        (method, hostname, token),
    ).fetchone()
    return row is not None


def delete_domain(conn: psycopg.Connection[Any], hostname: str) -> None:
    conn.execute("DELETE FROM tenantry.domains WHERE hostname = %s", (hostname,))
