"""tenantry: multi-tenancy for SaaS on PostgreSQL.

Pooled tables guarded by PostgreSQL Row-Level Security, a tenant context bound to every
transaction, and a control plane (catalog, lifecycle, audit) behind one root object::

    from tenantry import Settings, Tenantry

    tn = Tenantry(Settings.from_env(), metadata=Base.metadata)
    tn.init()
    tn.create_tenant("acme")
    with tn.tenant("acme"), tn.connection() as conn:
        conn.execute("SELECT count(*) FROM projects").fetchone()
"""

from tenantry.app import Tenantry, TenantScope
from tenantry.context import BoundTenant
from tenantry.context import current as current_tenant
from tenantry.core.model import Isolation, Plan, Status, Tenant
from tenantry.core.hostnames import normalise_hostname
from tenantry.core.naming import RESERVED_SLUGS, validate_slug
from tenantry.db.alchemy import TenantScoped, tenant_id_column
from tenantry.db.binding import AsyncTenantConnection, TenantConnection
from tenantry.db.bulk import acopy_rows, copy_rows
from tenantry.db.server import EmbeddedServer
from tenantry.errors import (
    CatalogNotInitialised,
    ConfigurationError,
    Conflict,
    DatabaseUnavailable,
    DomainNotFound,
    DomainTaken,
    InvalidHostname,
    InvalidInput,
    InvalidSlug,
    InvalidTransition,
    IsolationError,
    NoTenantBound,
    NotFound,
    PlanNotFound,
    TenantContextError,
    TenantExists,
    TenantMoving,
    TenantNotActive,
    TenantNotFound,
    TenantryError,
    UnsafeRuntimeRole,
    VerificationFailed,
)
from tenantry.services.domain_checks import DnsChecker, DomainChecker, HttpChecker, Verdict
from tenantry.services.domains import Domain
from tenantry.settings import Settings
from tenantry.web import (
    CustomDomainResolver,
    HeaderResolver,
    JwtClaimResolver,
    PathPrefixResolver,
    SubdomainResolver,
    TenantMiddleware,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncTenantConnection",
    "BoundTenant",
    "CatalogNotInitialised",
    "ConfigurationError",
    "Conflict",
    "CustomDomainResolver",
    "DatabaseUnavailable",
    "DnsChecker",
    "Domain",
    "DomainChecker",
    "DomainNotFound",
    "DomainTaken",
    "EmbeddedServer",
    "HeaderResolver",
    "HttpChecker",
    "InvalidHostname",
    "InvalidInput",
    "InvalidSlug",
    "InvalidTransition",
    "Isolation",
    "IsolationError",
    "JwtClaimResolver",
    "NoTenantBound",
    "NotFound",
    "PathPrefixResolver",
    "Plan",
    "PlanNotFound",
    "RESERVED_SLUGS",
    "Settings",
    "Status",
    "SubdomainResolver",
    "Tenant",
    "TenantConnection",
    "TenantContextError",
    "TenantExists",
    "TenantMiddleware",
    "TenantMoving",
    "TenantNotActive",
    "TenantNotFound",
    "TenantScope",
    "TenantScoped",
    "Tenantry",
    "TenantryError",
    "UnsafeRuntimeRole",
    "Verdict",
    "VerificationFailed",
    "acopy_rows",
    "copy_rows",
    "current_tenant",
    "normalise_hostname",
    "tenant_id_column",
    "validate_slug",
]
