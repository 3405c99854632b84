"""The admin API's routers, one per resource; :data:`ROUTERS` is what the app mounts under
``/v1`` (a new resource is one more module and one more entry)."""

from __future__ import annotations

from fastapi import APIRouter

from tenantry.api.routes import (
    audit,
    backups,
    brands,
    cells,
    config,
    domains,
    flags,
    jobs,
    migrations,
    plans,
    plugin_hooks,
    plugins,
    tenant_limits,
    tenants,
    usage,
)

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (
    tenants.router,
    tenant_limits.router,
    backups.router,
    brands.router,
    jobs.router,
    plans.router,
    cells.router,
    domains.router,
    config.router,
    flags.router,
    plugins.router,
    plugin_hooks.router,
    migrations.router,
    audit.router,
    usage.router,
)
