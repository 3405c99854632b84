"""``/v1/plugins``: the plugins the API process knows, where they are switched on, what runs
for a tenant and what they raised, as ``tenantry plugins`` shows and changes them.

A plugin is known when it is registered with the API's Tenantry, installed (a
``tenantry.plugins`` entry point), or only set in the catalog (switched on or off somewhere,
but neither registered nor installed here). ``PUT .../plans/{plan}`` and ``PUT
.../tenants/{tenant}`` with ``{"enabled": true|false}`` switch a plugin on or off for every
tenant of a plan or for one tenant (the tenant's own setting wins over its plan's); ``DELETE``
of the same path removes that setting, so the one below shows through. Every write answers
the change (``before``, ``after``, ``changed``): setting what is set, or resetting what is not
set, changes nothing and writes no audit entry. Switching a plugin on or off needs it
registered or installed; a reset only needs it known.

``GET /v1/tenants/{tenant}/plugins`` answers, for one tenant, whether each plugin is on and by
which setting (``tenant``, ``plan`` or ``default``: off); ``GET /v1/plugin-errors`` what plugins
raised (a path of its own: ``errors`` could be a plugin's name).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field, StrictBool

from tenantry.api.auth import Principal, require
from tenantry.api.deps import TN, problems
from tenantry.api.schemas import In, Text
from tenantry.app import Tenantry
from tenantry.core.model import Status, Tenant
from tenantry.core.naming import PLUGIN_NAME, check_plugin_name
from tenantry.db.catalog.plugins import Enablement, EnablementChange
from tenantry.errors import PluginNotFound, TenantNotFound
from tenantry.plugins.registry import PluginInfo

__all__ = [
    "EnablementIn",
    "PluginChangeOut",
    "PluginErrorOut",
    "PluginErrorPage",
    "PluginOut",
    "PluginPage",
    "PluginSettingOut",
    "PluginSettingsOut",
    "TenantPluginOut",
    "TenantPluginsOut",
    "router",
]

router = APIRouter(tags=["plugins"])

Read = Annotated[Principal, Depends(require("plugins:read"))]
Write = Annotated[Principal, Depends(require("plugins:write"))]
Name = Annotated[
    str,
    Path(
        pattern=f"^{PLUGIN_NAME.pattern}$",
        max_length=40,
        description="The plugin's name: a-z, 0-9 and '-', starting with a letter, at most 40 characters.",
        examples=["webhooks"],
    ),
]
TenantKey = Annotated[Text, Path(max_length=100, description="The tenant's slug or id.", examples=["acme"])]
PlanName = Annotated[Text, Path(max_length=100, description="The plan's name.", examples=["free"])]


class PluginSettingOut(BaseModel):
    plugin: str
    scope: Literal["plan", "tenant"] = Field(description="Set for every tenant of a plan, or for one tenant.")
    target: str = Field(description="The plan's name, or the tenant's slug.")
    tenant_id: uuid.UUID | None = Field(description="The tenant's id (tenants only).")
    enabled: bool = Field(description="Switched on (`true`) or off (`false`) by this setting.")
    updated_at: datetime
    updated_by: str


class PluginOut(BaseModel):
    name: str
    source: str = Field(
        description="`explicit`, `TENANTRY_PLUGINS`, the distribution whose entry point names it, "
        "or `unknown (not installed here)` for a plugin only set in the catalog."
    )
    registered: bool = Field(description="Whether it runs in the API's process (registered with its Tenantry).")
    capabilities: list[str] = Field(description="`lifecycle`, `config`, `tables`, `routes`, `flags`.")
    description: str
    error: str | None = Field(description="Why an installed plugin could not be loaded to be described.")
    settings: list[PluginSettingOut] = Field(description="The plans and tenants it is switched on or off for.")


class PluginPage(BaseModel):
    items: list[PluginOut]


class PluginSettingsOut(BaseModel):
    plugin: str
    items: list[PluginSettingOut] = Field(description="Plans first (by name), then tenants (by slug).")


class EnablementIn(In):
    enabled: StrictBool = Field(
        description="`true` switches the plugin on, `false` off (even where the plan has it on)."
    )


class PluginChangeOut(BaseModel):
    plugin: str
    scope: Literal["plan", "tenant"]
    target: str = Field(description="The plan's name, or the tenant's slug.")
    plan: str = Field(description="The plan (a tenant's: its plan).")
    tenant_id: uuid.UUID | None = Field(None, description="The tenant's id (tenants only).")
    before: bool | None = Field(description="The setting before (`null`: none).")
    after: bool | None = Field(description="The setting now (`null`: none, after a reset).")
    changed: bool = Field(description="`false`: it was so already; nothing was written or audited.")


class TenantPluginOut(BaseModel):
    plugin: str
    enabled: bool = Field(description="Whether the catalog switches it on for the tenant.")
    source: Literal["tenant", "plan", "default"] = Field(
        description="The setting that decides: the tenant's own, its plan's, or none (`default`: off)."
    )
    registered: bool = Field(description="Whether it runs in the API's process (an app runs the plugins it registers).")


class TenantPluginsOut(BaseModel):
    tenant: str = Field(description="The tenant's slug.")
    tenant_id: uuid.UUID
    plan: str
    items: list[TenantPluginOut] = Field(description="Every known plugin, by name.")


class PluginErrorOut(BaseModel):
    plugin: str
    hook: str = Field(description="Where it raised: a lifecycle hook, a route, background work.")
    tenant_id: uuid.UUID | None
    tenant: str | None = Field(description="The tenant's slug, when it raised for one.")
    count: int = Field(description="How many times it raised there.")
    first_at: datetime
    last_at: datetime
    last_error: str = Field(description="The last exception's type and message.")


class PluginErrorPage(BaseModel):
    items: list[PluginErrorOut] = Field(description="The most recent first.")


def _setting_out(setting: Enablement) -> PluginSettingOut:
    return PluginSettingOut.model_validate(setting.to_dict())


def _plugin_out(info: PluginInfo) -> PluginOut:
    return PluginOut(
        name=info.name,
        source=info.source,
        registered=info.registered,
        capabilities=list(info.capabilities),
        description=info.description,
        error=info.error,
        settings=[_setting_out(s) for s in info.settings],
    )


def _change_out(change: EnablementChange) -> PluginChangeOut:
    return PluginChangeOut.model_validate(change.to_dict())


def _not_found(name: str) -> PluginNotFound:
    return PluginNotFound(f"no plugin {name!r} is registered, installed or set in the catalog")


def _require_known(tn: Tenantry, name: str) -> None:
    """Refuse a name that is not registered, installed or set anywhere (a typo)."""
    check_plugin_name(name)
    if name not in tn.plugins.known() and not tn.plugins.settings(name):
        raise _not_found(name)


def _tenant(tn: Tenantry, key: str) -> Tenant:
    found = tn.tenants.get(key)
    if found.status is Status.DELETED:
        raise TenantNotFound(f"tenant {found.slug!r} is deleted")
    return found


_READ_ERRORS = problems(404)
_WRITE_ERRORS = problems(400, 404)


@router.get("/plugins", response_model=PluginPage, responses=problems())
def list_plugins(tn: TN, _: Read) -> PluginPage:
    """Every plugin known here, by name (a short list: not paged): registered in the API's
    process, installed, or only set in the catalog; with where each comes from, what it can
    do and where it is switched on or off. Scope: `plugins:read`."""
    return PluginPage(items=[_plugin_out(info) for info in tn.plugins.list()])


@router.get("/plugins/{name}", response_model=PluginOut, responses=_READ_ERRORS)
def get_plugin(tn: TN, _: Read, name: Name) -> PluginOut:
    """One plugin. Scope: `plugins:read`."""
    check_plugin_name(name)
    for info in tn.plugins.list():
        if info.name == name:
            return _plugin_out(info)
    raise _not_found(name)


@router.get("/plugins/{name}/settings", response_model=PluginSettingsOut, responses=_READ_ERRORS)
def plugin_settings(tn: TN, _: Read, name: Name) -> PluginSettingsOut:
    """The plans and tenants the plugin is switched on or off for. Scope: `plugins:read`."""
    check_plugin_name(name)
    settings = tn.plugins.settings(name)
    if not settings and name not in tn.plugins.known():
        raise _not_found(name)
    return PluginSettingsOut(plugin=name, items=[_setting_out(s) for s in settings])


@router.put("/plugins/{name}/plans/{plan}", response_model=PluginChangeOut, responses=_WRITE_ERRORS)
def set_for_plan(tn: TN, _: Write, name: Name, plan: PlanName, body: EnablementIn) -> PluginChangeOut:
    """Switch the plugin on or off for every tenant of the plan (a tenant's own setting still
    wins). The plugin must be registered or installed. Scope: `plugins:write`."""
    if body.enabled:
        return _change_out(tn.plugins.enable(name, plan=plan))
    return _change_out(tn.plugins.disable(name, plan=plan))


@router.delete("/plugins/{name}/plans/{plan}", response_model=PluginChangeOut, responses=_READ_ERRORS)
def reset_for_plan(tn: TN, _: Write, name: Name, plan: PlanName) -> PluginChangeOut:
    """Remove the plan's setting: its tenants without one of their own are off again.
    Resetting what is not set changes nothing. Scope: `plugins:write`."""
    _require_known(tn, name)
    return _change_out(tn.plugins.reset(name, plan=plan))


@router.put("/plugins/{name}/tenants/{tenant}", response_model=PluginChangeOut, responses=_WRITE_ERRORS)
def set_for_tenant(tn: TN, _: Write, name: Name, tenant: TenantKey, body: EnablementIn) -> PluginChangeOut:
    """Switch the plugin on or off for one tenant, whatever its plan says. The plugin must be
    registered or installed. Scope: `plugins:write`."""
    if body.enabled:
        return _change_out(tn.plugins.enable(name, tenant=tenant))
    return _change_out(tn.plugins.disable(name, tenant=tenant))


@router.delete("/plugins/{name}/tenants/{tenant}", response_model=PluginChangeOut, responses=_READ_ERRORS)
def reset_for_tenant(tn: TN, _: Write, name: Name, tenant: TenantKey) -> PluginChangeOut:
    """Remove the tenant's own setting: its plan's (or off) applies again. Resetting what is
    not set changes nothing. Scope: `plugins:write`."""
    _require_known(tn, name)
    return _change_out(tn.plugins.reset(name, tenant=tenant))


@router.get("/tenants/{tenant}/plugins", response_model=TenantPluginsOut, responses=_READ_ERRORS)
def tenant_plugins(tn: TN, _: Read, tenant: TenantKey) -> TenantPluginsOut:
    """Whether each known plugin is on for the tenant, and by which setting, read from the
    catalog now. Scope: `plugins:read`."""
    found = _tenant(tn, tenant)
    registered = set(tn.plugins.names())
    items = [
        TenantPluginOut(plugin=r.plugin, enabled=r.enabled, source=r.source, registered=r.plugin in registered)
        for r in tn.plugins.resolve_all(tenant=found.id).values()
    ]
    return TenantPluginsOut(tenant=found.slug, tenant_id=found.id, plan=found.plan, items=items)


@router.get("/plugin-errors", response_model=PluginErrorPage, responses=_READ_ERRORS)
def plugin_errors(
    tn: TN,
    _: Read,
    plugin: Annotated[
        str | None, Query(pattern=f"^{PLUGIN_NAME.pattern}$", max_length=40, description="Only this plugin's.")
    ] = None,
    tenant: Annotated[
        Text | None, Query(max_length=100, description="Only those about this tenant (slug or id).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many, 1 to 500.")] = 100,
) -> PluginErrorPage:
    """What plugins raised (lifecycle hooks, routes, background work), counted per plugin,
    place and tenant, the most recent first. Scope: `plugins:read`."""
    tenant_id = None if tenant is None else tn.tenants.get(tenant).id
    found = tn.plugins.errors(plugin=plugin, tenant=tenant_id, limit=limit)
    return PluginErrorPage(items=[PluginErrorOut.model_validate(f.to_dict()) for f in found])
