"""The web edge: ASGI middleware that resolves, checks and binds each request's tenant.

Pure ASGI: nothing here imports Starlette, FastAPI or Litestar, and it works under all three::

    from tenantry.web import PathPrefixResolver, SubdomainResolver, TenantMiddleware

    app.add_middleware(
        TenantMiddleware, tenantry=tn,
        resolvers=[SubdomainResolver("example.com"), PathPrefixResolver("/t")],
    )

:mod:`tenantry.problems` builds the RFC 9457 problem documents of every HTTP face of tenantry;
:mod:`tenantry.web.pages` the pages browsers get instead (``no_tenant_page`` to show your own);
:mod:`tenantry.web.limits` each tenant's rate and concurrency limits.
"""

from tenantry.web.limits import CatalogLimits, EdgeLimiter, MemoryRates, RedisRates
from tenantry.web.middleware import TenantMiddleware, default_resolvers
from tenantry.web.pages import NoTenantPage
from tenantry.web.resolvers import (
    CustomDomainResolver,
    HeaderResolver,
    JwtClaimResolver,
    Match,
    PathPrefixResolver,
    Refusal,
    RequestInfo,
    Resolver,
    SubdomainResolver,
)

__all__ = [
    "CatalogLimits",
    "CustomDomainResolver",
    "EdgeLimiter",
    "HeaderResolver",
    "JwtClaimResolver",
    "Match",
    "MemoryRates",
    "NoTenantPage",
    "PathPrefixResolver",
    "RedisRates",
    "Refusal",
    "RequestInfo",
    "Resolver",
    "SubdomainResolver",
    "TenantMiddleware",
    "default_resolvers",
]
