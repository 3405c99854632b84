"""Custom domains: a tenant's own hostnames, served once the tenant proves them.

``add`` records a hostname (normalised, see :mod:`tenantry.core.hostnames`) as *pending* with a
random token. ``verify`` asks a :class:`~tenantry.services.domain_checks.DomainChecker` whether
the hostname serves that token at ``/.well-known/tenantry/<token>`` (the tenant points the
hostname at the app, whose middleware answers for pending domains) or publishes it in a DNS TXT
record; only then is it *verified*, and only verified domains route requests. Every change is
audited and NOTIFYs ``domain:<hostname>`` in its transaction, so each process's edge cache
drops the entry when the change commits.

A hostname belongs to one tenant at a time (it is the primary key). The domain of a deleted
tenant is released when another tenant adds it.
"""

from __future__ import annotations

import builtins
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

from tenantry.core.events import EventKind
from tenantry.core.hostnames import normalise_hostname
from tenantry.core.model import Status
from tenantry.db.catalog import audit, require_catalog
from tenantry.db.catalog import tenants as catalog_tenants
from tenantry.db.catalog.events import notify_domain
from tenantry.errors import Conflict, DomainNotFound, DomainTaken, TenantNotFound, VerificationFailed
from tenantry.services.domain_checks import DNS_PREFIX, DNS_VALUE_PREFIX, WELL_KNOWN, DomainChecker, checker_for

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = [
    "DomainService",
    "Domain",
    "HostRoute",
    "UNKNOWN_HOST",
    "add_domain",
    "get_domain",
    "list_domains",
    "lookup_host",
    "remove_domain",
    "verify_domain",
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


def _read(conn: psycopg.Connection[Any], hostname: str, *, for_update: bool = False) -> Domain | None:
    lock = " FOR UPDATE OF d" if for_update else ""
    row = conn.execute(f"SELECT {_COLUMNS} FROM {_FROM} WHERE d.hostname = %s{lock}", (hostname,)).fetchone()
    return None if row is None else _domain(row)


def get_domain(conn: psycopg.Connection[Any], hostname: str) -> Domain:
    """The domain with this hostname (any spelling), or :class:`DomainNotFound`."""
    host = normalise_hostname(hostname)
    found = _read(conn, host)
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


def add_domain(tn: ControlPlane, hostname: str, tenant: str | uuid.UUID) -> Domain:
    """Register ``hostname`` for ``tenant`` as pending; adding it again to the same tenant is a
    no-op that returns it as it is."""
    host = normalise_hostname(hostname, base_domain=tn.settings.base_domain)
    with tn.admin() as conn, conn.transaction():
        owner = catalog_tenants.get_tenant(conn, tenant)
        if owner.status is Status.DELETED:
            raise TenantNotFound(f"tenant {str(tenant)!r} is deleted")
        existing = _read(conn, host, for_update=True)
        if existing is not None:
            if existing.tenant_id == owner.id:
                return existing
            holder = catalog_tenants.get_tenant(conn, existing.tenant_id)
            if holder.status is not Status.DELETED:
                raise DomainTaken(f"domain {host!r} belongs to another tenant")
            conn.execute("DELETE FROM tenantry.domains WHERE hostname = %s", (host,))
            audit.record(
                conn,
                actor=tn.actor,
                action="domain.release",
                target_type="domain",
                target=host,
                before=existing.to_dict(),
            )
        inserted = conn.execute(
            "INSERT INTO tenantry.domains (hostname, tenant_id, token) VALUES (%s, %s, %s)"
            " ON CONFLICT (hostname) DO NOTHING RETURNING hostname",
            (host, owner.id, secrets.token_urlsafe(24)),
        ).fetchone()
        if inserted is None:  # added concurrently: ours if it went to the same tenant
            raced = _read(conn, host)
            if raced is not None and raced.tenant_id == owner.id:
                return raced
            raise DomainTaken(f"domain {host!r} belongs to another tenant")
        added = _read(conn, host)
        assert added is not None
        notify_domain(conn, host)
        audit.record(
            conn, actor=tn.actor, action="domain.add", target_type="domain", target=host, after=added.to_dict()
        )
    return added


def verify_domain(
    tn: ControlPlane, hostname: str, *, method: str = "http", checker: DomainChecker | None = None
) -> Domain:
    """Check ownership and mark the domain verified; a verified domain is returned as it is.

    The check runs outside any transaction (it waits on the network); the domain is then
    marked verified only if it still has the token that was checked.
    """
    with tn.admin() as conn:
        domain = get_domain(conn, hostname)
    if domain.verified:
        return domain
    checker = checker if checker is not None else checker_for(method)
    verdict = checker.check(domain.hostname, domain.token)
    if not verdict.proven:
        name, value = domain.txt_record
        how = (
            f"serve {domain.token} at {domain.http_url}"
            if checker.method == "http"
            else f"publish a TXT record {name} = {value}"
        )
        raise VerificationFailed(f"domain {domain.hostname!r} is not verified: {verdict.detail}; {how}")
    with tn.admin() as conn, conn.transaction():
        row = conn.execute(
            "UPDATE tenantry.domains SET status = 'verified', method = %s, verified_at = now(), updated_at = now()"
            " WHERE hostname = %s AND token = %s AND status = 'pending' RETURNING hostname",
            (checker.method, domain.hostname, domain.token),
        ).fetchone()
        after = _read(conn, domain.hostname)
        if row is None:
            if after is not None and after.verified and after.token == domain.token:
                return after  # verified concurrently
            raise Conflict(f"domain {domain.hostname!r} changed while it was being verified; run verify again")
        assert after is not None
        notify_domain(conn, domain.hostname)
        audit.record(
            conn,
            actor=tn.actor,
            action="domain.verify",
            target_type="domain",
            target=domain.hostname,
            before=domain.to_dict(),
            after=after.to_dict(),
        )
    return after


def remove_domain(tn: ControlPlane, hostname: str) -> Domain | None:
    """Remove a domain (it stops routing at once); ``None`` when there was none."""
    host = normalise_hostname(hostname)
    with tn.admin() as conn, conn.transaction():
        before = _read(conn, host, for_update=True)
        if before is None:
            return None
        conn.execute("DELETE FROM tenantry.domains WHERE hostname = %s", (host,))
        notify_domain(conn, host)
        audit.record(
            conn, actor=tn.actor, action="domain.remove", target_type="domain", target=host, before=before.to_dict()
        )
    return before


class DomainService:
    """``tn.domains``: tenants' custom hostnames.

    >>> tn.domains.add("Shop.Acme.com", "acme").token   # doctest: +SKIP
    """

    def __init__(self, plane: ControlPlane) -> None:
        self._plane = plane

    def add(self, hostname: str, tenant: str | uuid.UUID) -> Domain:
        """Register a custom hostname for a tenant; it routes once :meth:`verify` passes.
        Adding it again to the same tenant returns it unchanged."""
        with self._plane.admin() as conn:
            require_catalog(conn)
        domain = add_domain(self._plane, hostname, tenant)
        self._plane.publish(EventKind.DOMAIN, domain.hostname)  # this process at once; others by NOTIFY
        return domain

    def verify(self, hostname: str, *, method: str = "http", checker: DomainChecker | None = None) -> Domain:
        """Check a pending domain (``http``: the token at ``/.well-known/tenantry/<token>``,
        ``dns``: a TXT record; or your own ``checker``) and mark it verified, or raise
        :class:`~tenantry.errors.VerificationFailed` saying what to publish."""
        domain = verify_domain(self._plane, hostname, method=method, checker=checker)
        self._plane.publish(EventKind.DOMAIN, domain.hostname)
        return domain

    def list(self, tenant: str | uuid.UUID | None = None) -> builtins.list[Domain]:
        """Custom domains, of one tenant or of all."""
        with self._plane.admin() as conn:
            require_catalog(conn)
            owner = None if tenant is None else catalog_tenants.get_tenant(conn, tenant).id
            return list_domains(conn, owner)

    def get(self, hostname: str) -> Domain:
        with self._plane.admin() as conn:
            return get_domain(conn, hostname)

    def remove(self, hostname: str) -> Domain | None:
        """Stop serving a custom domain; returns it, or ``None`` when it was not registered."""
        removed = remove_domain(self._plane, hostname)
        if removed is not None:
            self._plane.publish(EventKind.DOMAIN, removed.hostname)
        return removed
