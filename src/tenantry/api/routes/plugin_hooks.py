"""``/v1/plugin-hooks``: the queue of plugins' lifecycle hook calls, as ``tenantry plugins
hooks`` shows it: every tenant change queues one call per plugin that handles the event and is
on for the tenant; app processes deliver them (see :mod:`tenantry.db.catalog.hooks`).

``GET /v1/plugin-hooks`` lists calls (newest first) with a count per plugin and state;
``POST /v1/plugin-hooks/retry`` queues failed calls again (by id, or every failed call of a
plugin or tenant), audited as the token.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, model_validator

from tenantry.api.auth import Principal, require
from tenantry.api.deps import TN, problems
from tenantry.api.schemas import In, Text
from tenantry.core.naming import PLUGIN_NAME

__all__ = ["HookCallOut", "HookPage", "HookRetryIn", "HookRetryOut", "router"]

router = APIRouter(tags=["plugins"])

Read = Annotated[Principal, Depends(require("plugins:read"))]
Write = Annotated[Principal, Depends(require("plugins:write"))]
HookStatus = Literal["pending", "running", "done", "failed", "skipped"]
PluginName = Annotated[str, Field(pattern=f"^{PLUGIN_NAME.pattern}$", max_length=40)]


class HookCallOut(BaseModel):
    id: int
    plugin: str
    event: Literal["created", "suspended", "resumed", "archived", "deleted", "moved"]
    tenant_id: uuid.UUID
    tenant: str = Field(description="The tenant's slug.")
    status: HookStatus = Field(
        description="`pending` (due at `run_after`), `running` (claimed by `claimed_by`), `done`,"
        " `failed` (retries spent: retry by hand), `skipped` (the plugin was off by then)."
    )
    attempts: int = Field(description="Calls made so far.")
    run_after: datetime
    created_at: datetime = Field(description="When the change committed.")
    finished_at: datetime | None
    claimed_by: str | None = Field(description="The process that took it last (host:pid:id).")
    last_error: str | None = Field(description="What the hook raised last.")


class HookPage(BaseModel):
    counts: dict[str, dict[str, int]] = Field(description="Calls per plugin and state (the whole queue).")
    items: list[HookCallOut] = Field(description="The newest first.")


class HookRetryIn(In):
    ids: list[Annotated[int, Field(ge=1)]] | None = Field(None, max_length=1000, description="Ids of failed calls.")
    plugin: PluginName | None = Field(None, description="Every failed call of this plugin.")
    tenant: Text | None = Field(None, max_length=100, description="Every failed call about this tenant (slug or id).")

    @model_validator(mode="after")
    def _something(self) -> HookRetryIn:
        if self.ids is None and self.plugin is None and self.tenant is None:
            raise ValueError("say which failed calls to retry: ids, plugin or tenant")
        return self


class HookRetryOut(BaseModel):
    retried: list[int] = Field(description="The ids queued again (failed calls only; others are left as they are).")


@router.get("/plugin-hooks", response_model=HookPage, responses=problems(404))
def list_hook_calls(
    tn: TN,
    _: Read,
    plugin: Annotated[
        str | None, Query(pattern=f"^{PLUGIN_NAME.pattern}$", max_length=40, description="Only this plugin's.")
    ] = None,
    tenant: Annotated[
        Text | None, Query(max_length=100, description="Only those about this tenant (slug or id).")
    ] = None,
    status: Annotated[HookStatus | None, Query(description="Only calls in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many, 1 to 500.")] = 100,
) -> HookPage:
    """Queued lifecycle hook calls, the newest first. Scope: `plugins:read`."""
    tenant_id = None if tenant is None else tn.tenants.get(tenant).id
    found = tn.plugins.hooks(plugin=plugin, tenant=tenant_id, status=status, limit=limit)
    return HookPage(counts=tn.plugins.hook_summary(), items=[HookCallOut.model_validate(h.to_dict()) for h in found])


@router.post("/plugin-hooks/retry", response_model=HookRetryOut, responses=problems(400, 404))
def retry_hook_calls(tn: TN, _: Write, body: HookRetryIn) -> HookRetryOut:
    """Queue failed calls again, due now with fresh retries; audited. Calls that are not
    failed are left as they are. Scope: `plugins:write`."""
    tenant_id = None if body.tenant is None else tn.tenants.get(body.tenant).id
    return HookRetryOut(retried=tn.plugins.retry_hooks(body.ids, plugin=body.plugin, tenant=tenant_id))
