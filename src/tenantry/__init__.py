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
from tenantry.branding import (
    Brand,
    BrandChange,
    Branding,
    BrandRoutes,
    BrandView,
    BrandWarning,
    Theme,
    Upload,
    install_brand_helpers,
)
from tenantry.context import BoundTenant
from tenantry.context import current as current_tenant
from tenantry.core.config import ConfigSections
from tenantry.core.flags import Evaluation, FlagSpec
from tenantry.core.model import Isolation, Plan, Status, Tenant
from tenantry.core.hostnames import normalise_hostname
from tenantry.core.naming import RESERVED_SLUGS, validate_slug
from tenantry.db.alchemy import TenantScoped, tenant_id_column
from tenantry.db.binding import AsyncTenantConnection, TenantConnection
from tenantry.db.bulk import acopy_rows, copy_rows
from tenantry.db.server import EmbeddedServer
from tenantry.errors import (
    AuthenticationFailed,
    CatalogNotInitialised,
    ConfigInvalid,
    ConfigurationError,
    Conflict,
    ControlPlaneOnly,
    DatabaseUnavailable,
    DomainNotFound,
    DomainTaken,
    FlagExists,
    FlagNotFound,
    InvalidBrand,
    InvalidHostname,
    InvalidInput,
    InvalidSecret,
    InvalidSlug,
    InvalidTransition,
    IsolationError,
    LowContrast,
    NoTenantBound,
    NotFound,
    PermissionDenied,
    PlanNotFound,
    PluginNotFound,
    TablesDiffer,
    TenantContextError,
    TenantExists,
    TenantMoved,
    TenantMoving,
    TenantNotActive,
    TenantNotFound,
    TenantRestoring,
    TenantryError,
    TenantSuspended,
    UnsafeAddress,
    UnsafeRuntimeRole,
    VerificationFailed,
)
from tenantry.live import Flags
from tenantry.plugins import (
    AppTables,
    AsgiRoutes,
    ConfigSection,
    FlagProvider,
    LifecycleHooks,
    Plugin,
    PluginInfo,
    PluginRoutes,
    Plugins,
    mount_plugins,
)
from tenantry.services.domain_checks import DnsChecker, DomainChecker, HttpChecker, Verdict
from tenantry.services.egress import Egress
from tenantry.services.domains import Domain
from tenantry.services.spares import Spare, SpareReport
from tenantry.services.tokens import ApiToken
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
    "ApiToken",
    "AppTables",
    "AsgiRoutes",
    "AsyncTenantConnection",
    "AuthenticationFailed",
    "BoundTenant",
    "Brand",
    "BrandChange",
    "BrandRoutes",
    "BrandView",
    "BrandWarning",
    "Branding",
    "CatalogNotInitialised",
    "ConfigInvalid",
    "ConfigSection",
    "ConfigSections",
    "ConfigurationError",
    "Conflict",
    "ControlPlaneOnly",
    "CustomDomainResolver",
    "DatabaseUnavailable",
    "DnsChecker",
    "Domain",
    "DomainChecker",
    "DomainNotFound",
    "DomainTaken",
    "Egress",
    "EmbeddedServer",
    "Evaluation",
    "FlagExists",
    "FlagNotFound",
    "FlagProvider",
    "FlagSpec",
    "Flags",
    "HeaderResolver",
    "HttpChecker",
    "InvalidBrand",
    "InvalidHostname",
    "InvalidInput",
    "InvalidSecret",
    "InvalidSlug",
    "InvalidTransition",
    "Isolation",
    "IsolationError",
    "JwtClaimResolver",
    "LifecycleHooks",
    "LowContrast",
    "NoTenantBound",
    "NotFound",
    "PathPrefixResolver",
    "PermissionDenied",
    "Plan",
    "PlanNotFound",
    "Plugin",
    "PluginInfo",
    "PluginNotFound",
    "PluginRoutes",
    "Plugins",
    "RESERVED_SLUGS",
    "Settings",
    "Spare",
    "SpareReport",
    "Status",
    "SubdomainResolver",
    "TablesDiffer",
    "Tenant",
    "TenantConnection",
    "TenantContextError",
    "TenantExists",
    "TenantMiddleware",
    "TenantMoved",
    "TenantMoving",
    "TenantNotActive",
    "TenantNotFound",
    "TenantRestoring",
    "TenantScope",
    "TenantScoped",
    "TenantSuspended",
    "Tenantry",
    "TenantryError",
    "TenantryProvider",
    "Theme",
    "UnsafeAddress",
    "UnsafeRuntimeRole",
    "Upload",
    "Verdict",
    "VerificationFailed",
    "acopy_rows",
    "copy_rows",
    "current_tenant",
    "install_brand_helpers",
    "mount_plugins",
    "normalise_hostname",
    "tenant_id_column",
    "validate_slug",
]


def __getattr__(name: str) -> object:
    # the OpenFeature provider loads the optional openfeature-sdk only when asked for
    if name == "TenantryProvider":
        from tenantry.openfeature import TenantryProvider

        return TenantryProvider
    raise AttributeError(f"module 'tenantry' has no attribute {name!r}")
