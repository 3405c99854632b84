"""``tn.audit``: the audit log, read (entries are written by the changes themselves, with
:func:`tenantry.db.catalog.audit.record`)."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

from tenantry.db.catalog.audit import AuditEntry, list_entries

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = ["AuditService"]


class AuditService:
    """``tn.audit``: the audit log."""

    def __init__(self, plane: ControlPlane) -> None:
        self._plane = plane

    def list(
        self,
        *,
        target_type: str | None = None,
        target: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> builtins.list[AuditEntry]:
        """Entries newest first, optionally of one target, actor or action, older than entry
        ``before`` (for paging: the previous page's last id)."""
        with self._plane.admin() as conn:
            return list_entries(
                conn, target_type=target_type, target=target, actor=actor, action=action, before=before, limit=limit
            )
