"""tenantry: multi-tenancy for SaaS on PostgreSQL.

Pooled tables guarded by PostgreSQL Row-Level Security, a tenant context bound to every
transaction, and a control plane (catalog, lifecycle, audit) behind one root object::

    from tenantry import Settings, Tenantry

    tn = Tenantry(Settings.from_env(), metadata=Base.metadata)
    tn.schema.init()
    tn.tenants.create("acme")
    with tn.tenant("acme"), tn.connection() as conn:
        conn.execute("SELECT count(*) FROM projects").fetchone()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from tenantry.errors import (
    AuthenticationFailed,
    BackupInvalid,
    BackupNotFound,
    CatalogNotInitialised,
    ConcurrencyLimited,
    ConfigInvalid,
    ConfigurationError,
    Conflict,
    ControlPlaneOnly,
    DatabaseUnavailable,
    DomainNotFound,
    DomainTaken,
    FlagExists,
    FlagNotFound,
    IdleInTransactionTimeout,
    InvalidBrand,
    InvalidHostname,
    InvalidInput,
    InvalidSecret,
    InvalidSlug,
    InvalidTransition,
    IsolationError,
    LimitExceeded,
    LowContrast,
    MigrationFailed,
    NoTenantBound,
    NotFound,
    Overloaded,
    PermissionDenied,
    PlanExists,
    PlanInUse,
    PlanNotFound,
    PluginNotFound,
    RateLimited,
    StatementTimeout,
    StorageQuotaExceeded,
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
    TooManyConnections,
    UnsafeAddress,
    UnsafeRuntimeRole,
    VerificationFailed,
)

if TYPE_CHECKING:  # the names, for type checkers; at run time each is imported on first use
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
    from tenantry.core.hostnames import normalise_hostname
    from tenantry.core.limit_schema import Limits
    from tenantry.core.limits import EdgeLimits
    from tenantry.core.model import Isolation, Plan, Status, Tenant
    from tenantry.core.naming import RESERVED_SLUGS, validate_slug
    from tenantry.core.placement import Placement
    from tenantry.core.secrets import Keyring
    from tenantry.db.alchemy import TenantScoped, tenant_id_column
    from tenantry.db.bulk import acopy_rows, copy_rows
    from tenantry.db.catalog import InitReport
    from tenantry.db.catalog.audit import AuditEntry
    from tenantry.db.catalog.cells import Cell
    from tenantry.db.catalog.domains import Domain
    from tenantry.db.catalog.spares import Spare
    from tenantry.db.catalog.tokens import ApiToken
    from tenantry.db.connections import AsyncTenantConnection, TenantConnection
    from tenantry.db.rls import DeployReport
    from tenantry.db.server import EmbeddedServer
    from tenantry.migrations.report import MigrationReport, PlacementResult, StatusReport
    from tenantry.observability import TenantLogFilter, TenantryMetrics, install_log_filter
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
    from tenantry.services.audit import AuditService
    from tenantry.services.backups import Backup, BackupService, VerifyReport
    from tenantry.services.cells import CellService
    from tenantry.services.domain_checks import DnsChecker, DomainChecker, HttpChecker, Verdict
    from tenantry.services.domains import DomainService
    from tenantry.services.egress import Egress
    from tenantry.services.lifecycle import PlanService, TenantService
    from tenantry.services.moves import MoveReport
    from tenantry.services.schema import CheckReport, SchemaService
    from tenantry.services.spares import SpareReport, SpareService
    from tenantry.services.storage import StorageReport
    from tenantry.services.tenant_limits import TenantLimits
    from tenantry.services.tokens import TokenService
    from tenantry.services.usage import UsageService
    from tenantry.settings import Settings
    from tenantry.tenant_config import (
        ConfigChange,
        ConfigDiff,
        ConfigSections,
        ConfigValue,
        ConfigVersion,
        Evaluation,
        FlagRecord,
        Flags,
        FlagSpec,
        TenantConfig,
    )
    from tenantry.tenant_config.openfeature import TenantryProvider
    from tenantry.web import (
        CustomDomainResolver,
        EdgeLimiter,
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
    "AuditEntry",
    "AuditService",
    "AuthenticationFailed",
    "Backup",
    "BackupInvalid",
    "BackupNotFound",
    "BackupService",
    "BoundTenant",
    "Brand",
    "BrandChange",
    "BrandRoutes",
    "BrandView",
    "BrandWarning",
    "Branding",
    "CatalogNotInitialised",
    "Cell",
    "CellService",
    "CheckReport",
    "ConcurrencyLimited",
    "ConfigChange",
    "ConfigDiff",
    "ConfigInvalid",
    "ConfigSection",
    "ConfigSections",
    "ConfigValue",
    "ConfigVersion",
    "ConfigurationError",
    "Conflict",
    "ControlPlaneOnly",
    "CustomDomainResolver",
    "DatabaseUnavailable",
    "DeployReport",
    "DnsChecker",
    "Domain",
    "DomainChecker",
    "DomainNotFound",
    "DomainService",
    "DomainTaken",
    "EdgeLimiter",
    "EdgeLimits",
    "Egress",
    "EmbeddedServer",
    "Evaluation",
    "FlagExists",
    "FlagNotFound",
    "FlagProvider",
    "FlagRecord",
    "FlagSpec",
    "Flags",
    "HeaderResolver",
    "HttpChecker",
    "IdleInTransactionTimeout",
    "InitReport",
    "InvalidBrand",
    "InvalidHostname",
    "InvalidInput",
    "InvalidSecret",
    "InvalidSlug",
    "InvalidTransition",
    "Isolation",
    "IsolationError",
    "JwtClaimResolver",
    "Keyring",
    "LifecycleHooks",
    "LimitExceeded",
    "Limits",
    "LowContrast",
    "MigrationFailed",
    "MigrationReport",
    "MoveReport",
    "NoTenantBound",
    "NotFound",
    "Overloaded",
    "PathPrefixResolver",
    "PermissionDenied",
    "Placement",
    "PlacementResult",
    "Plan",
    "PlanExists",
    "PlanInUse",
    "PlanNotFound",
    "PlanService",
    "Plugin",
    "PluginInfo",
    "PluginNotFound",
    "PluginRoutes",
    "Plugins",
    "RESERVED_SLUGS",
    "RateLimited",
    "SchemaService",
    "Settings",
    "Spare",
    "SpareReport",
    "SpareService",
    "StatementTimeout",
    "Status",
    "StatusReport",
    "StorageQuotaExceeded",
    "StorageReport",
    "SubdomainResolver",
    "TablesDiffer",
    "Tenant",
    "TenantConfig",
    "TenantConnection",
    "TenantContextError",
    "TenantExists",
    "TenantLimits",
    "TenantLogFilter",
    "TenantMiddleware",
    "TenantMoved",
    "TenantMoving",
    "TenantNotActive",
    "TenantNotFound",
    "TenantRestoring",
    "TenantScope",
    "TenantScoped",
    "TenantService",
    "TenantSuspended",
    "Tenantry",
    "TenantryError",
    "TenantryMetrics",
    "TenantryProvider",
    "Theme",
    "TokenService",
    "TooManyConnections",
    "UnsafeAddress",
    "UnsafeRuntimeRole",
    "Upload",
    "UsageService",
    "Verdict",
    "VerificationFailed",
    "VerifyReport",
    "acopy_rows",
    "copy_rows",
    "current_tenant",
    "install_brand_helpers",
    "install_log_filter",
    "mount_plugins",
    "normalise_hostname",
    "tenant_id_column",
    "validate_slug",
]


# where each name of __all__ that is not an error lives: the package imports in milliseconds, and
# a name loads its module (SQLAlchemy, psycopg, pydantic, ...) when first used; the
# ``TYPE_CHECKING`` imports above say the same to type checkers (a test keeps the two in step)
_LAZY: dict[str, tuple[str, ...]] = {
    "tenantry.app": ("Tenantry", "TenantScope"),
    "tenantry.branding": (
        "Brand",
        "BrandChange",
        "BrandRoutes",
        "BrandView",
        "BrandWarning",
        "Branding",
        "Theme",
        "Upload",
        "install_brand_helpers",
    ),
    "tenantry.context": ("BoundTenant", "current_tenant"),
    "tenantry.core.hostnames": ("normalise_hostname",),
    "tenantry.core.limit_schema": ("Limits",),
    "tenantry.core.limits": ("EdgeLimits",),
    "tenantry.core.model": ("Isolation", "Plan", "Status", "Tenant"),
    "tenantry.core.naming": ("RESERVED_SLUGS", "validate_slug"),
    "tenantry.core.placement": ("Placement",),
    "tenantry.core.secrets": ("Keyring",),
    "tenantry.db.alchemy": ("TenantScoped", "tenant_id_column"),
    "tenantry.db.connections": ("AsyncTenantConnection", "TenantConnection"),
    "tenantry.db.bulk": ("acopy_rows", "copy_rows"),
    "tenantry.db.catalog": ("InitReport",),
    "tenantry.db.catalog.audit": ("AuditEntry",),
    "tenantry.db.rls": ("DeployReport",),
    "tenantry.db.server": ("EmbeddedServer",),
    "tenantry.migrations.report": ("MigrationReport", "PlacementResult", "StatusReport"),
    "tenantry.observability": ("TenantLogFilter", "TenantryMetrics", "install_log_filter"),
    "tenantry.plugins": (
        "AppTables",
        "AsgiRoutes",
        "ConfigSection",
        "FlagProvider",
        "LifecycleHooks",
        "Plugin",
        "PluginInfo",
        "PluginRoutes",
        "Plugins",
        "mount_plugins",
    ),
    "tenantry.services.audit": ("AuditService",),
    "tenantry.services.backups": ("Backup", "BackupService", "VerifyReport"),
    "tenantry.db.catalog.cells": ("Cell",),
    "tenantry.db.catalog.domains": ("Domain",),
    "tenantry.db.catalog.spares": ("Spare",),
    "tenantry.db.catalog.tokens": ("ApiToken",),
    "tenantry.services.cells": ("CellService",),
    "tenantry.services.domain_checks": ("DnsChecker", "DomainChecker", "HttpChecker", "Verdict"),
    "tenantry.services.domains": ("DomainService",),
    "tenantry.services.egress": ("Egress",),
    "tenantry.services.moves": ("MoveReport",),
    "tenantry.services.lifecycle": ("PlanService", "TenantService"),
    "tenantry.services.schema": ("CheckReport", "SchemaService"),
    "tenantry.services.spares": ("SpareReport", "SpareService"),
    "tenantry.services.storage": ("StorageReport",),
    "tenantry.services.tenant_limits": ("TenantLimits",),
    "tenantry.services.tokens": ("TokenService",),
    "tenantry.services.usage": ("UsageService",),
    "tenantry.settings": ("Settings",),
    "tenantry.tenant_config": (
        "ConfigChange",
        "ConfigDiff",
        "ConfigSections",
        "ConfigValue",
        "ConfigVersion",
        "Evaluation",
        "FlagRecord",
        "FlagSpec",
        "Flags",
        "TenantConfig",
    ),
    # the OpenFeature provider needs the optional openfeature-sdk
    "tenantry.tenant_config.openfeature": ("TenantryProvider",),
    "tenantry.web": (
        "CustomDomainResolver",
        "EdgeLimiter",
        "HeaderResolver",
        "JwtClaimResolver",
        "PathPrefixResolver",
        "SubdomainResolver",
        "TenantMiddleware",
    ),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}
_RENAMED = {"current_tenant": "current"}


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'tenantry' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), _RENAMED.get(name, name))
    globals()[name] = value  # once loaded, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
