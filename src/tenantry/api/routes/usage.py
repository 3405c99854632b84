"""``/v1/tenants/{key}/usage``, ``/v1/usage/top`` and ``/v1/usage/hot``: what tenants use, as
the app's processes flushed it (``tn.usage``), with their last measured storage."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from tenantry.api.auth import Principal, require
from tenantry.api.deps import TN, problems
from tenantry.core.durations import parse_since

__all__ = ["router"]

router = APIRouter(tags=["usage"])

Read = Annotated[Principal, Depends(require("usage:read"))]
Key = Annotated[str, Path(description="The tenant's slug or id.", max_length=100)]
Since = Annotated[
    str, Query(max_length=60, description="From how long ago (90s, 15m, 2h, 1d) or an ISO 8601 time with a zone.")
]
By = Literal["requests", "request_ms", "transactions", "db_ms", "rows_written", "requests_4xx", "requests_5xx"]


class UsageOut(BaseModel):
    """One tenant's usage over a period, summed over the app's processes."""

    tenant: str
    tenant_id: str
    plan: str
    cell: str | None
    requests: int
    requests_2xx: int
    requests_3xx: int
    requests_4xx: int
    requests_5xx: int
    request_ms: float
    transactions: int
    db_ms: float
    rows_written: int
    storage_bytes: int | None
    first_at: str
    last_at: str


class StorageOut(BaseModel):
    """A tenant's last measured storage and its plan's quota."""

    bytes: int
    method: str
    measured_at: str
    storage_mb: float | None
    over_quota: bool


class TenantUsageOut(BaseModel):
    tenant: str
    since: str
    usage: UsageOut | None
    storage: StorageOut | None


class UsageTopOut(BaseModel):
    since: str
    by: str
    items: list[UsageOut]


class HotOut(BaseModel):
    tenant: str
    plan: str
    cell: str
    by: str
    value: float
    cell_total: float
    share: float
    suggestion: str


class HotPage(BaseModel):
    since: str
    share: float
    by: str
    items: list[HotOut]


def _since(text: str) -> datetime:
    return parse_since(text, datetime.now(UTC))


@router.get("/tenants/{key}/usage", response_model=TenantUsageOut, responses=problems(404, 422))
def tenant_usage(tn: TN, _: Read, key: Key, since: Since = "1h") -> TenantUsageOut:
    """The tenant's usage since `since` (requests by status class, request time, transactions,
    database time) and its last measured storage. Scope: `usage:read`."""
    moment = _since(since)
    tenant = tn.tenants.get(key)
    found = tn.usage.usage(tenant.id, since=moment)
    stored = tn.usage.storage(tenant.id)
    return TenantUsageOut(
        tenant=tenant.slug,
        since=moment.isoformat(),
        usage=UsageOut.model_validate(found[0]) if found else None,
        storage=StorageOut.model_validate(stored[0]) if stored else None,
    )


@router.get("/usage/top", response_model=UsageTopOut, responses=problems(422))
def top(
    tn: TN,
    _: Read,
    n: Annotated[int, Query(ge=1, le=10_000, description="How many tenants.")] = 10,
    since: Since = "1h",
    by: By = "requests",
) -> UsageTopOut:
    """The `n` tenants that used the most of `by` since `since`. Scope: `usage:read`."""
    moment = _since(since)
    rows = tn.usage.top(n, since=moment, by=by)
    return UsageTopOut(since=moment.isoformat(), by=by, items=[UsageOut.model_validate(r) for r in rows])


@router.get("/usage/hot", response_model=HotPage, responses=problems(422))
def hot(
    tn: TN,
    _: Read,
    share: Annotated[
        float, Query(gt=0, le=1, description="The share of its cell's load that makes a tenant hot.")
    ] = 0.2,
    since: Since = "1h",
    by: By = "db_ms",
) -> HotPage:
    """Tenants that took at least `share` of their cell's `by` since `since`, each with a
    suggested plan or cell move (text only: nothing is moved). Scope: `usage:read`."""
    moment = _since(since)
    found = tn.usage.hot(share, since=moment, by=by)
    return HotPage(since=moment.isoformat(), share=share, by=by, items=[HotOut.model_validate(h) for h in found])
