"""Which tenant a request is for: tenantry's own edge.

This is the only module of the tracker that knows how a request finds its tenant.
``install_tenancy`` wraps the app in :class:`tenantry.TenantMiddleware` with two resolvers:
the subdomain of the app's base domain (``acme.localhost:8000`` → ``acme``), then the
tenant's verified custom domains (``tenantry domains add tracker.acme.example --tenant
acme``, then ``verify``). The middleware binds the tenant with ``tn.tenant(slug)`` around the
whole downstream call, body streaming and background tasks included, and undoes the binding
when the call ends, however it ends. Unknown hosts get a 404, a suspended or archived tenant
a 403, as RFC 9457 problem documents; browsers get a page instead: for a suspended tenant one
in its brand that tells its users what to do, for a host that names no tenant a neutral page,
or the one ``no_tenant_page`` makes (the demo lists its tenants' sites there).
Downstream, ``request_tenant()`` is the tenant it bound.
"""

from __future__ import annotations

from typing import Any

from tenantry import (
    BoundTenant,
    CustomDomainResolver,
    SubdomainResolver,
    TenantMiddleware,
    Tenantry,
    current_tenant,
)
from tenantry.web import NoTenantPage

__all__ = ["install_tenancy", "request_tenant"]


def install_tenancy(app: Any, tn: Tenantry, base_domain: str, *, no_tenant_page: NoTenantPage | None = None) -> None:
    """Serve each tenant at ``<slug>.<base_domain>`` and at its verified custom domains;
    ``no_tenant_page`` makes the page browsers get at a host that names no tenant."""
    app.add_middleware(
        TenantMiddleware,
        tenantry=tn,
        resolvers=[SubdomainResolver(base_domain), CustomDomainResolver(base_domain)],
        no_tenant_page=no_tenant_page,
    )


def request_tenant() -> BoundTenant:
    """The tenant this request is for (the middleware binds one for every request it passes on)."""
    bound = current_tenant()
    assert bound is not None, "the tenancy middleware binds a tenant for every request"
    return bound
