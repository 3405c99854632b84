"""Plugins: small classes, one per capability, gathered by ``tn.plugins``.

::

    from tenantry.plugins import AppTables, ConfigSection, LifecycleHooks

    class AuditExport(LifecycleHooks, ConfigSection, AppTables):
        name = "audit-export"
        config_model = AuditExportConfig
        metadata = AuditBase.metadata

        def on_tenant_archived(self, tn, tenant):
            ...

    tn = Tenantry(settings, metadata=Base.metadata, plugins=[AuditExport()])
    tn.plugins.enable("audit-export", plan="enterprise")

See docs/plugins.md.
"""

from tenantry.db.catalog.plugins import Enablement, EnablementChange, PluginFailure, Resolution
from tenantry.plugins.asgi import Authorize, PluginRoutes, mount_plugins
from tenantry.plugins.base import (
    LIFECYCLE_EVENTS,
    AppTables,
    AsgiRoutes,
    ConfigSection,
    FlagProvider,
    LifecycleHooks,
    Plugin,
    hookimpl,
)
from tenantry.plugins.discovery import ENTRY_POINT_GROUP, discover
from tenantry.plugins.registry import PluginInfo, Plugins

__all__ = [
    "ENTRY_POINT_GROUP",
    "LIFECYCLE_EVENTS",
    "AppTables",
    "AsgiRoutes",
    "Authorize",
    "ConfigSection",
    "Enablement",
    "EnablementChange",
    "FlagProvider",
    "LifecycleHooks",
    "Plugin",
    "PluginFailure",
    "PluginInfo",
    "PluginRoutes",
    "Plugins",
    "Resolution",
    "discover",
    "hookimpl",
    "mount_plugins",
]
