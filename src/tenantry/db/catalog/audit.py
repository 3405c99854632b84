"""The audit log: every control-plane change, written in the transaction that makes it.

Every entry is also logged at INFO on the ``tenantry.audit`` logger (the one place every
lifecycle operation passes: create, move, suspend, migrate, plugin enablement, domain
checks), with ``action``, ``target_type``, ``target`` and ``actor`` as the record's
attributes. The line is written when the entry is, inside the change's transaction: a change
that then rolls back has logged a line and left no entry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

__all__ = ["AuditEntry", "list_entries", "record"]

_log = logging.getLogger("tenantry.audit")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change: who did what to which target, with the state before and after."""

    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target_type": self.target_type,
            "target": self.target,
            "before": self.before,
            "after": self.after,
        }


def record(
    conn: psycopg.Connection[Any],
    *,
    actor: str,
    action: str,
    target_type: str,
    target: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Append an entry; call it inside the transaction of the change it records."""
    _log.info(
        "%s %s %s by %s",
        action,
        target_type,
        target,
        actor,
        extra={"action": action, "target_type": target_type, "target": target, "actor": actor},
    )
    conn.execute(
        """
        INSERT INTO tenantry.audit_log (actor, action, target_type, target, before, after)
        VALUES (%s, %s, %s, %s, %s, %s)
        """,
        (
            actor,
            action,
            target_type,
            target,
            None if before is None else Jsonb(before),
            None if after is None else Jsonb(after),
        ),
    )


def list_entries(
    conn: psycopg.Connection[Any],
    *,
    target_type: str | None = None,
    target: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Entries newest first, optionally of one target, actor or action, older than entry
    ``before`` (for paging: the previous page's last id)."""
    rows = conn.execute(
        """
        SELECT id, at, actor, action, target_type, target, before, after
          FROM tenantry.audit_log
         WHERE (%(tt)s::text IS NULL OR target_type = %(tt)s)
           AND (%(t)s::text IS NULL OR target = %(t)s)
           AND (%(actor)s::text IS NULL OR actor = %(actor)s)
           AND (%(action)s::text IS NULL OR action = %(action)s)
           AND (%(before)s::bigint IS NULL OR id < %(before)s)
         ORDER BY id DESC
         LIMIT %(limit)s
        """,
        {"tt": target_type, "t": target, "actor": actor, "action": action, "before": before, "limit": limit},
    ).fetchall()
    return [AuditEntry(*row) for row in rows]
