"""The admin API's request and response bodies (pydantic models; they make the OpenAPI spec).

Requests forbid unknown fields. Free text refuses NUL characters and lone surrogates, which
PostgreSQL cannot store, so such input is a 422 rather than a driver error; so does free JSON
(:data:`JsonValue`, anywhere in it, keys included), which also refuses numbers that are not
finite (``NaN``, ``Infinity``: Python's JSON reads them, PostgreSQL's does not). The bodies of
resources added later (domains, config, flags, brands) live in their routers' modules.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

from tenantry.core.limit_schema import Limits
from tenantry.core.model import Isolation, Status

__all__ = [
    "AbortOut",
    "AuditEntryOut",
    "AuditPage",
    "CellIn",
    "CellOut",
    "CellPatch",
    "CellPage",
    "DeletedOut",
    "In",
    "JobOut",
    "JobPage",
    "JsonValue",
    "MigrationStatusOut",
    "MoveIn",
    "PlacementOut",
    "PlanOut",
    "PlanPage",
    "PlanPatch",
    "Problem",
    "RetryOut",
    "TenantIn",
    "TenantOut",
    "TenantPage",
    "TenantPatch",
    "TenantPlacementOut",
    "Text",
]


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


#: a string PostgreSQL can store
Text = Annotated[str, AfterValidator(_storable)]


def _storable_json(value: Any) -> Any:
    pending = [value]
    while pending:  # a loop, not recursion: nesting is as deep as the JSON parser allowed
        item = pending.pop()
        if isinstance(item, str):
            _storable(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        elif isinstance(item, dict):
            for key, inner in item.items():
                if isinstance(key, str):
                    _storable(key)
                pending.append(inner)
        elif isinstance(item, list):
            pending.extend(item)
    return value


#: any JSON value PostgreSQL's jsonb can store
JsonValue = Annotated[Any, AfterValidator(_storable_json)]
#: a label key or value of a cell or plan
Label = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_storable)]
_NAME = r"^[a-z][a-z0-9-]{0,62}$"


class In(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI naming the kind of problem (`urn:tenantry:problem:...`).")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(None, description="The path of the request.")


class TenantOut(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    plan: str
    status: Status
    created_at: datetime
    updated_at: datetime


class TenantPage(BaseModel):
    items: list[TenantOut]
    next: str | None = Field(None, description="URL of the next page; absent on the last one.")
    next_cursor: str | None = None


class TenantIn(In):
    slug: Text = Field(description="DNS label: a-z, 0-9 and '-', 1 to 63 characters.", examples=["acme"])
    name: Text | None = Field(None, description="Display name (default: the slug).")
    plan: Text = Field("free", description="The plan (tier) to put the tenant on.")
    cell: Text | None = Field(None, description="Cell of a database-tier tenant (default: chosen by the plan).")


class TenantPatch(In):
    status: Literal[Status.ACTIVE, Status.SUSPENDED, Status.ARCHIVED] = Field(
        description="`suspended` stops traffic, `archived` retires the tenant, `active` resumes it."
    )


class DeletedOut(BaseModel):
    id: uuid.UUID
    slug: str
    status: Literal["deleted"] = "deleted"
    rows_deleted: dict[str, int]


class PlacementOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    tier: Isolation
    cell: str
    database: str | None
    schema_name: str = Field(alias="schema")
    status: str


class TenantPlacementOut(BaseModel):
    tenant: str
    active: PlacementOut | None = Field(description="Where the tenant's rows are served from.")
    building: PlacementOut | None = Field(description="A placement being built (provisioning or a move).")


class MoveIn(In):
    plan: Text | None = Field(None, description="Plan (tier) to move to; default: the tenant's plan.")
    cell: Text | None = Field(None, description="Cell, for the database tier.")


class AbortOut(BaseModel):
    aborted: bool = Field(description="`false`: there was no move to abort.")


class RetryOut(BaseModel):
    method: str
    path: str
    body: dict[str, Any] | None


class JobOut(BaseModel):
    id: uuid.UUID
    kind: str = Field(description="`tenant.create`, `tenant.move` (run by the API), or `provision`, `move`, `migrate`.")
    status: Literal["running", "done", "failed"]
    tenant: str | None
    actor: str | None = None
    request: dict[str, Any] | None = None
    step: str | None = Field(None, description="The step running now.")
    steps: list[str] = Field(default_factory=list, description="Every step of the operation, in order.")
    steps_done: list[str] = Field(default_factory=list)
    result: dict[str, Any] | None = None
    error: str | None = None
    error_status: int | None = None
    resumable: bool = Field(
        False, description="Failed or interrupted midway, with its steps kept: `retry` finishes it."
    )
    retry: RetryOut | None = None
    abort: str | None = Field(None, description="Path to POST to undo an unfinished move instead.")
    attempts: int
    created_at: datetime
    updated_at: datetime
    links: dict[str, str] = Field(default_factory=dict)


class JobPage(BaseModel):
    items: list[JobOut]
    next: str | None = None
    next_cursor: str | None = None


class PlanOut(BaseModel):
    name: str
    isolation: Isolation
    description: str
    limits: dict[str, Any]
    defaults: dict[str, Any]
    cell: str | None
    cell_labels: dict[str, str]


class PlanPage(BaseModel):
    items: list[PlanOut]


class PlanPatch(In):
    isolation: Isolation | None = Field(None, description="The tier (only while no tenant is on the plan).")
    description: Annotated[Text, Field(max_length=500)] | None = None
    limits: Limits | None = Field(
        None,
        description="Limits to change: each key given replaces the plan's (`null` lifts it), others stay."
        " To replace them all: `PUT /v1/plans/{name}/limits`.",
    )
    cell: Annotated[str, Field(pattern=_NAME)] | None = Field(
        None, description="Pin the plan's new database-tier tenants to this cell (`null`: unpin)."
    )
    cell_labels: dict[Label, Label] | None = Field(
        None, description="Labels a cell must carry to take the plan's tenants (replaces the old ones)."
    )


class CellOut(BaseModel):
    name: str
    server: str = Field(description="user@host:port/database, without the password.")
    capacity: int
    labels: dict[str, str]
    status: Literal["active", "draining"]
    placements: int
    created_at: datetime


class CellPage(BaseModel):
    items: list[CellOut]


class CellIn(In):
    name: Annotated[str, Field(pattern=_NAME)] = Field(description="a-z, 0-9 and '-', starting with a letter.")
    dsn: SecretStr = Field(description="Admin connection string of the server (kept secret).")
    capacity: int = Field(1000, ge=1, le=10_000_000)
    labels: dict[Label, Label] = Field(default_factory=dict)


class CellPatch(In):
    status: Literal["active", "draining"] = Field(description="`draining`: no new tenants; `active`: take them again.")


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next: str | None = None
    next_cursor: str | None = None


class MigrationStatusOut(BaseModel):
    head: str | None = Field(description="The head revision of the app's migrations (`null`: none configured).")
    revisions: dict[str, int] = Field(description="Live placements at each revision (`untracked`: none recorded).")
    behind: list[dict[str, Any]]
    failed: list[dict[str, Any]]
