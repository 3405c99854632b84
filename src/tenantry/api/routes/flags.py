"""``/v1/flags``: feature flags: create, read, change, kill and delete them, and see what one
serves a tenant.

Definitions are validated whole by :class:`tenantry.FlagSpec` before anything is
saved (:mod:`tenantry.tenant_config.flags`): one that does not validate is a 422 problem whose
``problems`` lists each ``"path: message"`` (``rules[0].when[0].op: ...``). Creating a flag
that exists with the same definition answers 200 and changes nothing; with another
definition, 409. A boolean flag's rollout may be written as the percentage that gets ``on``
(``25``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from tenantry.api.auth import Principal, require
from tenantry.api.deps import TN, problems
from tenantry.api.paging import Cursor, Limit, decode_cursor, paginate, text_key
from tenantry.api.schemas import In, JsonValue, Text
from tenantry.core.model import Status
from tenantry.errors import FlagNotFound, InvalidInput, TenantNotFound
from tenantry.tenant_config import FlagRecord
from tenantry.tenant_config.evaluation import check_key

__all__ = [
    "EvaluationOut",
    "FlagDeletedOut",
    "FlagIn",
    "FlagOut",
    "FlagPage",
    "FlagPatch",
    "flag_out",
    "router",
]

router = APIRouter(prefix="/flags", tags=["flags"])

Read = Annotated[Principal, Depends(require("flags:read"))]
Write = Annotated[Principal, Depends(require("flags:write"))]
Key = Annotated[Text, Path(max_length=100, description="The flag's key.")]
Share = Annotated[float, Field(allow_inf_nan=False, description="A percentage, 0 to 100.")]


class FlagOut(BaseModel):
    key: str
    kind: Literal["boolean", "multivariate"]
    description: str
    variants: dict[str, Any] = Field(description="Variant names and the values they serve.")
    default: str = Field(description="Served when no rule matches and there is no rollout.")
    off: str = Field(description="Served while killed or outside the schedule.")
    rules: list[dict[str, Any]]
    rollout: dict[str, float] | None = Field(description="Shares of tenants by variant, in percent.")
    killed: bool
    enable_at: datetime | None
    disable_at: datetime | None
    created_at: datetime
    updated_at: datetime
    updated_by: str


class FlagPage(BaseModel):
    items: list[FlagOut]
    next: str | None = Field(None, description="URL of the next page; absent on the last one.")
    next_cursor: str | None = None


class _Definition(In):
    kind: Literal["boolean", "multivariate"] = Field("boolean", description="`boolean` (on/off) or `multivariate`.")
    description: Text = Field("", max_length=500, description="What the flag is for.")
    variants: dict[Text, JsonValue] | None = Field(
        None, description='Multivariate: names and values, `{"a": "blue", "b": "green"}` (boolean: fixed on/off).'
    )
    default: Text | None = Field(None, max_length=64, description="Variant served when no rule matches and no rollout.")
    off: Text | None = Field(
        None, max_length=64, description="Multivariate: variant served while killed or off schedule."
    )
    rules: list[dict[Text, JsonValue]] | None = Field(
        None,
        max_length=200,
        description='In order, the first that matches serves: `{"when": [{"attribute": "plan", "op": "in",'
        ' "value": ["business"]}], "variant": "on"}` (or a `rollout` instead of a variant).',
    )
    rollout: Share | dict[Text, Share] | None = Field(
        None, description='Percent of tenants on (boolean: `25`), or shares by variant (`{"a": 50, "b": 50}`).'
    )
    killed: bool = Field(False, description="Kill switch: serve the off variant everywhere.")
    enable_at: datetime | None = Field(None, description="When the flag turns on (with a time zone); `null`: no start.")
    disable_at: datetime | None = Field(None, description="When the flag turns off (with a time zone); `null`: no end.")


class FlagIn(_Definition):
    key: Text = Field(
        max_length=100,
        description="1-100 characters: a-z, 0-9, `_`, `-`, `.`, starting with a letter or digit.",
        examples=["new-dashboard"],
    )


class FlagPatch(_Definition):
    """Only the fields given change; `null` clears `rollout`, `enable_at`, `disable_at`."""


class FlagDeletedOut(BaseModel):
    key: str
    deleted: Literal[True] = True


class EvaluationOut(BaseModel):
    key: str
    tenant: str = Field(description="The tenant's slug.")
    user: str | None
    value: Any = Field(description="What the flag serves.")
    variant: str
    reason: Literal["DISABLED", "TARGETING_MATCH", "SPLIT", "DEFAULT"] = Field(
        description="`DISABLED` (killed or off schedule), `TARGETING_MATCH` (a rule), `SPLIT` (the rollout), `DEFAULT`."
    )
    rule: int | None = Field(description="Index of the rule that matched, if one did.")


def flag_out(record: FlagRecord) -> FlagOut:
    return FlagOut.model_validate(record.to_dict())


def _definition(body: _Definition) -> dict[str, Any]:
    # only what the request gave: the service fills in (create) or keeps (update) the rest
    return body.model_dump(exclude_unset=True, mode="json")


@router.get("", response_model=FlagPage, responses=problems())
def list_flags(
    tn: TN, _: Read, request: Request, response: Response, limit: Limit = 100, cursor: Cursor = None
) -> FlagPage:
    """Flags by key, a page at a time. Scope: `flags:read`."""
    after = None if cursor is None else decode_cursor(cursor, text_key)[0]
    found = tn.flags.list(after=after, limit=limit + 1)
    page, url, next_cursor = paginate(request, response, found, limit, lambda f: (f.key,))
    return FlagPage(items=[flag_out(f) for f in page], next=url, next_cursor=next_cursor)


@router.post(
    "",
    status_code=201,
    response_model=FlagOut,
    responses={
        200: {"model": FlagOut, "description": "The flag exists with this definition already."},
        **problems(400, 409),
    },
)
def create_flag(tn: TN, _: Write, body: FlagIn, response: Response) -> FlagOut:
    """Create a flag (a boolean flag starts off unless a rollout or rule says otherwise).
    Scope: `flags:write`."""
    try:
        existing: FlagRecord | None = tn.flags.get(body.key)
    except (FlagNotFound, InvalidInput):  # a bad key: the service's validation says why
        existing = None
    record = tn.flags.create(_definition(body))
    if existing is not None and record.updated_at == existing.updated_at:
        response.status_code = 200
    response.headers["Location"] = f"/v1/flags/{record.key}"
    return flag_out(record)


@router.get("/{key}", response_model=FlagOut, responses=problems(404))
def get_flag(tn: TN, _: Read, key: Key) -> FlagOut:
    """One flag's whole definition. Scope: `flags:read`."""
    return flag_out(tn.flags.get(key))


@router.patch("/{key}", response_model=FlagOut, responses=problems(400, 404))
def update_flag(tn: TN, _: Write, key: Key, body: FlagPatch) -> FlagOut:
    """Change some of a flag's fields; the whole new definition is validated before anything
    is saved. Changing `kind` needs the other kind's variants anew. Scope: `flags:write`."""
    return flag_out(tn.flags.update(key, _definition(body)))


@router.delete("/{key}", response_model=FlagDeletedOut, responses=problems(404))
def delete_flag(tn: TN, _: Write, key: Key) -> FlagDeletedOut:
    """Delete a flag: apps then find no such flag (and use their defaults). Scope: `flags:write`."""
    if not tn.flags.delete(key):
        raise FlagNotFound(f"no flag {key!r}")
    return FlagDeletedOut(key=key)


@router.post("/{key}/kill", response_model=FlagOut, responses=problems(404))
def kill_flag(tn: TN, _: Write, key: Key) -> FlagOut:
    """Kill switch: the flag serves its off variant everywhere, within a second in every
    process. Killing a killed flag changes nothing. Scope: `flags:write`."""
    return flag_out(tn.flags.kill(key))


@router.post("/{key}/unkill", response_model=FlagOut, responses=problems(404))
def unkill_flag(tn: TN, _: Write, key: Key) -> FlagOut:
    """Undo the kill switch: the rules, rollout and schedule apply again. Scope: `flags:write`."""
    return flag_out(tn.flags.unkill(key))


@router.get("/{key}/evaluate", response_model=EvaluationOut, responses=problems(404))
def evaluate_flag(
    tn: TN,
    _: Read,
    key: Key,
    tenant: Annotated[Text, Query(max_length=100, description="The tenant's slug or id.")],
    user: Annotated[Text | None, Query(max_length=200, description="A user of the tenant (per-user rollouts).")] = None,
) -> EvaluationOut:
    """What the flag serves the tenant (and user) now, as its running app sees it, and why.
    Scope: `flags:read`."""
    found = tn.get_tenant(tenant)
    if found.status is Status.DELETED:
        raise TenantNotFound(f"tenant {found.slug!r} is deleted")
    result = tn.flags.evaluate(check_key(key), tenant=found.id, user=user)
    return EvaluationOut.model_validate({**result.to_dict(), "tenant": found.slug, "user": user})
