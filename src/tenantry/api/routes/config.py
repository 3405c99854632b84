"""``/v1/config``: per-tenant configuration in layers, as ``tenantry config`` shows and
changes it: ``/v1/config/tenants/{tenant}`` and ``/v1/config/plans/{plan}``.

Each layer answers ``GET`` (its own values, its live temporary overrides, and what it resolves
to with the schema's defaults and the layers below), ``GET .../keys/{key}`` (one value and the
layer it comes from), ``PATCH`` (set keys, in one version; for a tenant, optionally as
temporary overrides that expire), ``PUT`` (replace the layer's values), ``DELETE
.../keys/{key}`` (unset: the layers below show through), ``GET .../history`` (versions,
newest first, paged), ``GET .../diff?from=&to=`` and ``POST .../rollback``.

Every write is validated against the app's config schema for every tenant it reaches before
anything is saved (:mod:`tenantry.tenant_config.config`): a value that does not validate is a 422
problem whose ``problems`` lists each ``"path: message"``. Writing what is there already
changes nothing (``changed: false``, no new version).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, TypedDict

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, Field

from tenantry.api.auth import Principal, require
from tenantry.api.deps import TN, problems
from tenantry.api.paging import Cursor, Limit, decode_cursor, id_key, paginate
from tenantry.api.schemas import In, JsonValue, Text
from tenantry.app import Tenantry
from tenantry.tenant_config import ConfigChange

__all__ = [
    "ChangeOut",
    "ConfigChangeOut",
    "ConfigDiffOut",
    "ConfigKeyOut",
    "ConfigLayerOut",
    "ConfigPlanPatch",
    "ConfigPut",
    "ConfigTenantPatch",
    "ConfigVersionOut",
    "ConfigVersionPage",
    "RollbackIn",
    "router",
]

router = APIRouter(prefix="/config", tags=["config"])

Read = Annotated[Principal, Depends(require("config:read"))]
Write = Annotated[Principal, Depends(require("config:write"))]
TenantKey = Annotated[Text, Path(max_length=100, description="The tenant's slug or id.")]
PlanName = Annotated[Text, Path(max_length=100, description="The plan's name.")]
Key = Annotated[Text, Path(max_length=300, description="A dotted key, like `limits.max_projects`.")]
Message = Annotated[Text, Field(max_length=1000, description="Why: kept with the version.")]
Version = Annotated[int, Field(ge=0, le=2**31 - 1, description="A version of the layer (0: empty).")]
Values = Annotated[
    dict[Text, JsonValue],
    Field(
        min_length=1, max_length=100, description='Dotted keys and their JSON values: `{"limits.max_projects": 50}`.'
    ),
]

#: a temporary override lasts at most this long
MAX_OVERRIDE = timedelta(days=366)


class _Scoped(BaseModel):
    scope: Literal["tenant", "plan"] = Field(description="Whose layer this is.")
    target: str = Field(description="The tenant's slug, or the plan's name.")
    plan: str = Field(description="The plan (a tenant's: its plan).")
    tenant_id: uuid.UUID | None = Field(None, description="The tenant's id (tenants only).")


class ConfigLayerOut(_Scoped):
    version: int = Field(description="The layer's version (0: never written).")
    document: dict[str, Any] = Field(description="The layer's own values.")
    overrides: dict[str, Any] = Field(description="Live temporary overrides by dotted key (tenants only).")
    effective: dict[str, Any] = Field(
        description="What it resolves to: schema defaults, then the plan's values, the tenant's, its overrides."
    )


class ConfigKeyOut(_Scoped):
    version: int
    key: str
    value: Any = Field(description="The effective value.")
    source: Literal["override", "tenant", "plan", "default"] = Field(description="The layer the value comes from.")


class ChangeOut(BaseModel):
    path: str
    layer: Literal["value", "override"]
    change: Literal["added", "removed", "changed"]
    before: Any = Field(None, description="Absent when the key was added.")
    after: Any = Field(None, description="Absent when the key was removed.")


class ConfigChangeOut(_Scoped):
    version: int = Field(description="The layer's version now.")
    changed: bool = Field(description="`false`: it was so already; no version was written.")
    changes: list[ChangeOut]


class ConfigVersionOut(BaseModel):
    version: int
    document: dict[str, Any]
    overrides: dict[str, Any]
    actor: str | None
    message: str
    created_at: datetime | None


class ConfigVersionPage(BaseModel):
    items: list[ConfigVersionOut]
    next: str | None = Field(None, description="URL of the next page; absent on the last one.")
    next_cursor: str | None = None


class ConfigDiffOut(_Scoped):
    from_version: int
    to_version: int
    changes: list[ChangeOut]


class ConfigPlanPatch(In):
    values: Values
    message: Message = ""


class ConfigTenantPatch(ConfigPlanPatch):
    expires_in: int | None = Field(
        None,
        ge=1,
        le=int(MAX_OVERRIDE.total_seconds()),
        description="Seconds: set the values as temporary overrides that end then.",
    )
    expires_at: AwareDatetime | None = Field(None, description="Or the moment the temporary overrides end.")


class ConfigPut(In):
    document: dict[Text, JsonValue] = Field(description="The layer's new values, whole (its overrides stay).")
    message: Message = ""


class RollbackIn(In):
    version: Version
    message: Message = ""


class Layer(TypedDict, total=False):
    """Whose layer a call is about: ``{"tenant": slug}`` or ``{"plan": name}``."""

    tenant: str
    plan: str


def _layer_out(tn: Tenantry, layer: Layer) -> ConfigLayerOut:
    return ConfigLayerOut.model_validate(tn.config.get(**layer).to_dict())


def _key_out(tn: Tenantry, layer: Layer, key: str) -> ConfigKeyOut:
    found = tn.config.get(key=key, **layer)
    return ConfigKeyOut.model_validate(
        {**found.scope.to_dict(), "version": found.version, "key": key, "value": found.value, "source": found.source}
    )


def _change_out(change: ConfigChange) -> ConfigChangeOut:
    return ConfigChangeOut.model_validate(change.to_dict())


def _set(tn: Tenantry, layer: Layer, body: ConfigPlanPatch) -> ConfigChangeOut:
    expires_in = expires_at = None
    if isinstance(body, ConfigTenantPatch):
        expires_in = None if body.expires_in is None else timedelta(seconds=body.expires_in)
        expires_at = body.expires_at
    change = tn.config.set_many(
        body.values, expires_in=expires_in, expires_at=expires_at, message=body.message, **layer
    )
    return _change_out(change)


def _history(
    tn: Tenantry, layer: Layer, request: Request, response: Response, limit: int, cursor: str | None
) -> ConfigVersionPage:
    before = None if cursor is None else decode_cursor(cursor, id_key)[0]
    found = tn.config.history(limit=limit + 1, before=before, **layer)
    page, url, next_cursor = paginate(request, response, found, limit, lambda v: (v.version,))
    return ConfigVersionPage(
        items=[ConfigVersionOut.model_validate(v.to_dict()) for v in page], next=url, next_cursor=next_cursor
    )


def _diff(tn: Tenantry, layer: Layer, from_version: int, to_version: int) -> ConfigDiffOut:
    return ConfigDiffOut.model_validate(tn.config.diff(from_version, to_version, **layer).to_dict())


FromVersion = Annotated[int, Query(alias="from", ge=0, le=2**31 - 1, description="The older version (0: empty).")]
ToVersion = Annotated[int, Query(alias="to", ge=0, le=2**31 - 1, description="The newer version.")]
_READ_ERRORS = problems(404)
_WRITE_ERRORS = problems(400, 404, 409)


# -- tenants ----------------------------------------------------------------------------------


@router.get(
    "/tenants/{tenant}", response_model=ConfigLayerOut, response_model_exclude_unset=True, responses=_READ_ERRORS
)
def get_tenant_config(tn: TN, _: Read, tenant: TenantKey) -> ConfigLayerOut:
    """The tenant's layer (its values and live overrides) and what it resolves to.
    Scope: `config:read`."""
    return _layer_out(tn, {"tenant": tenant})


@router.get(
    "/tenants/{tenant}/keys/{key}",
    response_model=ConfigKeyOut,
    response_model_exclude_unset=True,
    responses=_READ_ERRORS,
)
def get_tenant_key(tn: TN, _: Read, tenant: TenantKey, key: Key) -> ConfigKeyOut:
    """One effective value of the tenant's config, and the layer it comes from; a key the
    config has not is a 404. Scope: `config:read`."""
    return _key_out(tn, {"tenant": tenant}, key)


@router.patch(
    "/tenants/{tenant}", response_model=ConfigChangeOut, response_model_exclude_unset=True, responses=_WRITE_ERRORS
)
def set_tenant_values(tn: TN, _: Write, tenant: TenantKey, body: ConfigTenantPatch) -> ConfigChangeOut:
    """Set keys of the tenant's layer in one version, or (with `expires_in` or `expires_at`)
    as temporary overrides. Validated first: a value the schema refuses saves nothing (422
    with `problems`). Scope: `config:write`."""
    return _set(tn, {"tenant": tenant}, body)


@router.put(
    "/tenants/{tenant}", response_model=ConfigChangeOut, response_model_exclude_unset=True, responses=_WRITE_ERRORS
)
def replace_tenant_layer(tn: TN, _: Write, tenant: TenantKey, body: ConfigPut) -> ConfigChangeOut:
    """Replace the tenant's values with `document` (its temporary overrides stay).
    Scope: `config:write`."""
    return _change_out(tn.config.replace(body.document, tenant=tenant, message=body.message))


@router.delete(
    "/tenants/{tenant}/keys/{key}",
    response_model=ConfigChangeOut,
    response_model_exclude_unset=True,
    responses=_WRITE_ERRORS,
)
def unset_tenant_key(
    tn: TN,
    _: Write,
    tenant: TenantKey,
    key: Key,
    override: Annotated[bool, Query(description="End the temporary override of the key instead.")] = False,
    message: Annotated[Text, Query(max_length=1000, description="Why: kept with the version.")] = "",
) -> ConfigChangeOut:
    """Remove a key from the tenant's layer, so the plan's value or the default shows
    through; unsetting an absent key changes nothing. Scope: `config:write`."""
    return _change_out(tn.config.unset(key, tenant=tenant, override=override, message=message))


@router.get("/tenants/{tenant}/history", response_model=ConfigVersionPage, responses=_READ_ERRORS)
def tenant_history(
    tn: TN, _: Read, tenant: TenantKey, request: Request, response: Response, limit: Limit = 100, cursor: Cursor = None
) -> ConfigVersionPage:
    """The tenant layer's versions, newest first: who changed what, when and why.
    Scope: `config:read`."""
    return _history(tn, {"tenant": tenant}, request, response, limit, cursor)


@router.get(
    "/tenants/{tenant}/diff", response_model=ConfigDiffOut, response_model_exclude_unset=True, responses=_READ_ERRORS
)
def tenant_diff(tn: TN, _: Read, tenant: TenantKey, from_version: FromVersion, to_version: ToVersion) -> ConfigDiffOut:
    """What changed in the tenant's layer between two versions. Scope: `config:read`."""
    return _diff(tn, {"tenant": tenant}, from_version, to_version)


@router.post(
    "/tenants/{tenant}/rollback",
    response_model=ConfigChangeOut,
    response_model_exclude_unset=True,
    responses=_WRITE_ERRORS,
)
def tenant_rollback(tn: TN, _: Write, tenant: TenantKey, body: RollbackIn) -> ConfigChangeOut:
    """Make the tenant's layer what it was at `version`, as a new version (validated first;
    overrides that expired since stay gone). Scope: `config:write`."""
    return _change_out(tn.config.rollback(body.version, tenant=tenant, message=body.message))


# -- plans ------------------------------------------------------------------------------------


@router.get("/plans/{plan}", response_model=ConfigLayerOut, response_model_exclude_unset=True, responses=_READ_ERRORS)
def get_plan_config(tn: TN, _: Read, plan: PlanName) -> ConfigLayerOut:
    """The plan's layer, and what its tenants without values of their own resolve to.
    Scope: `config:read`."""
    return _layer_out(tn, {"plan": plan})


@router.get(
    "/plans/{plan}/keys/{key}", response_model=ConfigKeyOut, response_model_exclude_unset=True, responses=_READ_ERRORS
)
def get_plan_key(tn: TN, _: Read, plan: PlanName, key: Key) -> ConfigKeyOut:
    """One effective value of the plan's config, and the layer it comes from.
    Scope: `config:read`."""
    return _key_out(tn, {"plan": plan}, key)


@router.patch(
    "/plans/{plan}", response_model=ConfigChangeOut, response_model_exclude_unset=True, responses=_WRITE_ERRORS
)
def set_plan_values(tn: TN, _: Write, plan: PlanName, body: ConfigPlanPatch) -> ConfigChangeOut:
    """Set keys of the plan's layer in one version. Validated for the plan and for every
    tenant on it with a layer of its own (the `problems` name the tenant). Scope: `config:write`."""
    return _set(tn, {"plan": plan}, body)


@router.put("/plans/{plan}", response_model=ConfigChangeOut, response_model_exclude_unset=True, responses=_WRITE_ERRORS)
def replace_plan_layer(tn: TN, _: Write, plan: PlanName, body: ConfigPut) -> ConfigChangeOut:
    """Replace the plan's values with `document`. Scope: `config:write`."""
    return _change_out(tn.config.replace(body.document, plan=plan, message=body.message))


@router.delete(
    "/plans/{plan}/keys/{key}",
    response_model=ConfigChangeOut,
    response_model_exclude_unset=True,
    responses=_WRITE_ERRORS,
)
def unset_plan_key(
    tn: TN,
    _: Write,
    plan: PlanName,
    key: Key,
    message: Annotated[Text, Query(max_length=1000, description="Why: kept with the version.")] = "",
) -> ConfigChangeOut:
    """Remove a key from the plan's layer. Scope: `config:write`."""
    return _change_out(tn.config.unset(key, plan=plan, message=message))


@router.get("/plans/{plan}/history", response_model=ConfigVersionPage, responses=_READ_ERRORS)
def plan_history(
    tn: TN, _: Read, plan: PlanName, request: Request, response: Response, limit: Limit = 100, cursor: Cursor = None
) -> ConfigVersionPage:
    """The plan layer's versions, newest first. Scope: `config:read`."""
    return _history(tn, {"plan": plan}, request, response, limit, cursor)


@router.get(
    "/plans/{plan}/diff", response_model=ConfigDiffOut, response_model_exclude_unset=True, responses=_READ_ERRORS
)
def plan_diff(tn: TN, _: Read, plan: PlanName, from_version: FromVersion, to_version: ToVersion) -> ConfigDiffOut:
    """What changed in the plan's layer between two versions. Scope: `config:read`."""
    return _diff(tn, {"plan": plan}, from_version, to_version)


@router.post(
    "/plans/{plan}/rollback",
    response_model=ConfigChangeOut,
    response_model_exclude_unset=True,
    responses=_WRITE_ERRORS,
)
def plan_rollback(tn: TN, _: Write, plan: PlanName, body: RollbackIn) -> ConfigChangeOut:
    """Make the plan's layer what it was at `version`, as a new version. Scope: `config:write`."""
    return _change_out(tn.config.rollback(body.version, plan=plan, message=body.message))
