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
from typing import TYPE_CHECKING

from tenantry.core.events import EventKind
from tenantry.core.hostnames import normalise_hostname
from tenantry.core.model import Status
from tenantry.db.catalog import audit, require_catalog
from tenantry.db.catalog import tenants as catalog_tenants
from tenantry.db.catalog.domains import (
    Domain,
    delete_domain,
    get_domain,
    insert_domain,
    list_domains,
    mark_verified,
    read_domain,
)
from tenantry.db.catalog.events import notify_domain
from tenantry.errors import Conflict, DomainTaken, TenantNotFound, VerificationFailed
from tenantry.services.domain_checks import DomainChecker, checker_for

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = ["DomainService", "add_domain", "remove_domain", "verify_domain"]


def add_domain(tn: ControlPlane, hostname: str, tenant: str | uuid.UUID) -> Domain:
    """Register ``hostname`` for ``tenant`` as pending; adding it again to the same tenant is a
    no-op that returns it as it is."""
    host = normalise_hostname(hostname, base_domain=tn.settings.base_domain)
    with tn.admin() as conn, conn.transaction():
        owner = catalog_tenants.get_tenant(conn, tenant)
        if owner.status is Status.DELETED:
            raise TenantNotFound(f"tenant {str(tenant)!r} is deleted")
        existing = read_domain(conn, host, for_update=True)
        if existing is not None:
            if existing.tenant_id == owner.id:
                return existing
            holder = catalog_tenants.get_tenant(conn, existing.tenant_id)
            if holder.status is not Status.DELETED:
                raise DomainTaken(f"domain {host!r} belongs to another tenant")
            delete_domain(conn, host)
            audit.record(
                conn,
                actor=tn.actor,
                action="domain.release",
                target_type="domain",
                target=host,
                before=existing.to_dict(),
            )
        if not insert_domain(
            conn, host, owner.id, secrets.token_urlsafe(24)
        ):  # added concurrently: ours if it went to the same tenant
            raced = read_domain(conn, host)
            if raced is not None and raced.tenant_id == owner.id:
                return raced
            raise DomainTaken(f"domain {host!r} belongs to another tenant")
        added = read_domain(conn, host)
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
        verified = mark_verified(conn, domain.hostname, domain.token, checker.method)
        after = read_domain(conn, domain.hostname)
        if not verified:
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
        before = read_domain(conn, host, for_update=True)
        if before is None:
            return None
        delete_domain(conn, host)
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
