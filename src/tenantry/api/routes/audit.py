"""``/v1/audit``: the audit log of control-plane changes, newest first, by pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from tenantry.api.auth import Principal, require
from tenantry.api.deps import TN, problems
from tenantry.api.paging import Cursor, Limit, decode_cursor, id_key, paginate
from tenantry.api.schemas import AuditEntryOut, AuditPage, Text
from tenantry.db.catalog import audit as catalog_audit

__all__ = ["router"]

router = APIRouter(prefix="/audit", tags=["audit"])

Read = Annotated[Principal, Depends(require("audit:read"))]
Filter = Annotated[Text | None, Query(max_length=300)]


@router.get("", response_model=AuditPage, responses=problems())
def list_entries(
    tn: TN,
    _: Read,
    request: Request,
    response: Response,
    limit: Limit = 100,
    cursor: Cursor = None,
    target_type: Filter = None,
    target: Filter = None,
    actor: Filter = None,
    action: Filter = None,
) -> AuditPage:
    """Changes newest first; filter by target (`target_type=tenant&target=acme`), by actor
    (`actor=token:ci`) or by action (`tenant.suspended`). Scope: `audit:read`."""
    before = None if cursor is None else decode_cursor(cursor, id_key)[0]
    with tn.admin() as conn:
        found = catalog_audit.list_entries(
            conn, target_type=target_type, target=target, actor=actor, action=action, before=before, limit=limit + 1
        )
    page, url, next_cursor = paginate(request, response, found, limit, lambda e: (e.id,))
    return AuditPage(items=[AuditEntryOut.model_validate(e.to_dict()) for e in page], next=url, next_cursor=next_cursor)
