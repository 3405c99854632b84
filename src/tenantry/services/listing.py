"""Catalog lists in pages by key (keyset paging), for the admin API and other long lists.

Each page is read with ``WHERE key > last`` in the list's order, so a page costs the same
wherever it is in the list, and rows added or removed meanwhile shift nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from tenantry.core.model import Status, Tenant
from tenantry.db.catalog.audit import AuditEntry, list_entries
from tenantry.db.catalog.tenants import list_tenants

__all__ = ["audit_page", "tenants_page"]


def tenants_page(
    conn: psycopg.Connection[Any],
    *,
    status: Status | None = None,
    plan: str | None = None,
    include_deleted: bool = False,
    prefix: str | None = None,
    after: tuple[str, uuid.UUID] | None = None,
    limit: int = 100,
) -> list[Tenant]:
    """Tenants by (slug, id), after the (slug, id) of the previous page's last one."""
    return list_tenants(
        conn, status=status, plan=plan, include_deleted=include_deleted, prefix=prefix, after=after, limit=limit
    )


def audit_page(
    conn: psycopg.Connection[Any],
    *,
    target_type: str | None = None,
    target: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Audit entries newest first, older than entry ``before`` (the previous page's last)."""
    return list_entries(
        conn, target_type=target_type, target=target, actor=actor, action=action, before=before, limit=limit
    )
