"""The durable queue of plugins' lifecycle hooks, in the catalog (``tenantry.plugin_hooks``).

A tenant's change (created, suspended, resumed, archived, deleted, moved) queues one row per
plugin that handles the event and is switched on for the tenant, *in the transaction that
makes the change*: a committed change always has its hook calls queued, whichever process
made it (the app, the CLI, the admin API) and whether or not that process runs the plugin.
Which plugins handle which events is what processes running them subscribe
(:func:`subscribe`); which tenants they are on for is the enablement in the catalog.

Rows are delivered by processes that run the plugin (:mod:`tenantry.plugins.hooks`), at
least once:

* **claimed** with ``FOR UPDATE SKIP LOCKED`` and a lease, so two deliverers never take the
  same row, and a deliverer that dies mid-call loses its lease and the row is taken again;
* **in order** per plugin and tenant: a row is not taken while an earlier row of the same
  plugin and tenant is unfinished (waiting for a retry included), so ``suspended`` never
  overtakes the ``created`` before it;
* **retried** after a backoff when the hook raises, until the plugin's retries are spent
  (``failed``: kept, listed, retried by hand with :func:`retry`);
* **first to the process that made the change**: a row for a plugin that process runs is
  reserved for it for :data:`RESERVE_SECONDS`, so the hook runs there right after the commit
  (as a plain call would) and elsewhere only if that process dies first.

Finished rows (``done``, ``skipped``, ``failed``) are removed by :func:`purge`.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from tenantry.core.hooks import LIFECYCLE_EVENTS, STATUSES
from tenantry.db.catalog import audit
from tenantry.db.catalog.events import CHANNEL, EventKind, notify
from tenantry.errors import InvalidInput

if TYPE_CHECKING:
    from tenantry.core.model import Tenant

__all__ = [
    "EVENTS",
    "RESERVE_SECONDS",
    "STATUSES",
    "Claimed",
    "Origin",
    "QueuedHook",
    "claim",
    "enqueue",
    "finish",
    "list_hooks",
    "purge",
    "retry",
    "retry_later",
    "subscribe",
    "subscribed",
    "summary",
    "unsubscribe",
]

#: the lifecycle events, as in ``on_tenant_<event>``
EVENTS = LIFECYCLE_EVENTS

#: seconds a new row is kept for the process that made the change (if it runs the plugin)
RESERVE_SECONDS = 30.0
#: most characters of a hook's error kept
_ERROR_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Origin:
    """The process making a change: its deliverer's id and the plugins it runs."""

    worker: str
    plugins: frozenset[str]


@dataclass(frozen=True, slots=True)
class Claimed:
    """A row a deliverer holds: call the hook, then :func:`finish` or :func:`retry_later`."""

    id: int
    plugin: str
    event: str
    tenant_id: uuid.UUID
    tenant: dict[str, Any]
    """The tenant as it was when the change committed (``Tenant.to_dict()``)."""
    extra: dict[str, Any]
    """The event's other arguments (``report`` of a move, as ``MoveReport.to_dict()``)."""
    attempts: int
    """Including this one."""


@dataclass(frozen=True, slots=True)
class QueuedHook:
    """A queued hook call as ``tenantry plugins hooks`` shows it."""

    id: int
    plugin: str
    event: str
    tenant_id: uuid.UUID
    tenant: str
    status: str
    attempts: int
    run_after: datetime
    created_at: datetime
    finished_at: datetime | None
    claimed_by: str | None
    last_error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "plugin": self.plugin,
            "event": self.event,
            "tenant_id": str(self.tenant_id),
            "tenant": self.tenant,
            "status": self.status,
            "attempts": self.attempts,
            "run_after": self.run_after.isoformat(),
            "created_at": self.created_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
            "claimed_by": self.claimed_by,
            "last_error": self.last_error,
        }


def _check_event(event: str) -> str:
    if event not in EVENTS:
        raise InvalidInput(f"unknown lifecycle event {event!r}; events: {', '.join(EVENTS)}")
    return event


# -- writes in the changing transaction ------------------------------------------------------

_ENQUEUE_SQL = """
WITH queued AS (
INSERT INTO tenantry.plugin_hooks (plugin, event, tenant_id, tenant, extra, reserved_for, reserved_until)
SELECT s.plugin, s.event, t.id, %(tenant)s, %(extra)s,
       CASE WHEN s.plugin = ANY (%(mine)s) THEN %(worker)s END,
       CASE WHEN s.plugin = ANY (%(mine)s) THEN now() + make_interval(secs => %(reserve)s) END
  FROM tenantry.plugin_subscriptions s
  JOIN tenantry.tenants t ON t.id = %(tenant_id)s
 WHERE s.event = %(event)s
   AND coalesce(
         (SELECT e.enabled FROM tenantry.plugin_enablement e WHERE e.plugin = s.plugin AND e.tenant_id = t.id),
         (SELECT e.enabled FROM tenantry.plugin_enablement e WHERE e.plugin = s.plugin AND e.plan = t.plan),
         false)
 ORDER BY s.plugin
RETURNING plugin
)
SELECT plugin, pg_notify(%(channel)s, %(kind)s::text || ':' || plugin) FROM queued
"""


def enqueue(
    conn: psycopg.Connection[Any],
    event: str,
    tenant: Tenant,
    *,
    origin: Origin | None = None,
    extra: dict[str, Any] | None = None,
) -> list[str]:
    """Queue ``event`` of ``tenant`` for every subscribed plugin switched on for it; call it
    inside the transaction that makes the change. Returns the plugins queued for. The rows of
    plugins ``origin`` runs are reserved for it; every queued plugin's deliverers are woken
    (``NOTIFY``, sent on commit)."""
    _check_event(event)
    mine = sorted(origin.plugins) if origin is not None else []
    rows = conn.execute(
        _ENQUEUE_SQL,
        {
            "tenant": Jsonb(tenant.to_dict()),
            "extra": Jsonb(extra or {}),
            "mine": mine,
            "worker": None if origin is None else origin.worker,
            "reserve": RESERVE_SECONDS,
            "tenant_id": tenant.id,
            "event": event,
            "channel": CHANNEL,
            "kind": EventKind.HOOK.value,
        },
    ).fetchall()
    return [str(r[0]) for r in rows]  # (one statement: the rows and their NOTIFY, sent on commit)


def subscribe(conn: psycopg.Connection[Any], plugin: str, events: Collection[str]) -> None:
    """Record that ``plugin`` handles ``events`` (and no others): changes made from now on
    queue calls for it."""
    wanted = sorted(_check_event(e) for e in events)
    with conn.transaction():
        conn.execute(
            "DELETE FROM tenantry.plugin_subscriptions WHERE plugin = %s AND NOT (event = ANY (%s))",
            (plugin, wanted),
        )
        conn.execute(
            """
            INSERT INTO tenantry.plugin_subscriptions (plugin, event)
            SELECT %s, unnest(%s::text[])
            ON CONFLICT (plugin, event) DO UPDATE SET seen_at = now()
            """,
            (plugin, wanted),
        )


def unsubscribe(conn: psycopg.Connection[Any], plugin: str, *, actor: str) -> tuple[int, int]:
    """Forget that ``plugin`` handles any event (a plugin no app process runs any more):
    changes stop queueing calls for it, and its pending calls are marked ``skipped``.
    Audited (``plugin.hooks.unsubscribe``) when it changed something. Returns (events
    forgotten, calls skipped). A process that still runs the plugin subscribes it again."""
    with conn.transaction():
        events = conn.execute(
            "WITH gone AS (DELETE FROM tenantry.plugin_subscriptions WHERE plugin = %s RETURNING 1)"
            " SELECT count(*) FROM gone",
            (plugin,),
        ).fetchone()
        skipped = conn.execute(
            "WITH done AS (UPDATE tenantry.plugin_hooks SET status = 'skipped', finished_at = now(),"
            " last_error = 'unsubscribed' WHERE plugin = %s AND status = 'pending' RETURNING 1)"
            " SELECT count(*) FROM done",
            (plugin,),
        ).fetchone()
        counts = (int(events[0]) if events else 0, int(skipped[0]) if skipped else 0)
        if any(counts):
            audit.record(
                conn,
                actor=actor,
                action="plugin.hooks.unsubscribe",
                target_type="plugin",
                target=plugin,
                after={"events": counts[0], "skipped": counts[1]},
            )
    return counts


def subscribed(conn: psycopg.Connection[Any]) -> set[str]:
    """The plugins some process has subscribed to lifecycle events."""
    return {str(r[0]) for r in conn.execute("SELECT DISTINCT plugin FROM tenantry.plugin_subscriptions").fetchall()}


# -- delivery -------------------------------------------------------------------------------

_CLAIM_SQL = """
WITH chosen AS (
    SELECT h.id
      FROM tenantry.plugin_hooks h
     WHERE h.plugin = ANY (%(plugins)s)
       AND (%(tenant_id)s::uuid IS NULL OR h.tenant_id = %(tenant_id)s::uuid)
       AND ((h.status = 'pending' AND h.run_after <= now()
             AND (h.reserved_for IS NULL OR h.reserved_for = %(reserved)s OR h.reserved_until <= now()))
            OR (h.status = 'running' AND h.lease_until <= now()))
       AND NOT EXISTS (
             SELECT 1 FROM tenantry.plugin_hooks e
              WHERE e.plugin = h.plugin AND e.tenant_id = h.tenant_id AND e.id < h.id
                AND e.status IN ('pending', 'running'))
     ORDER BY h.id
     LIMIT %(limit)s
       FOR UPDATE OF h SKIP LOCKED
)
UPDATE tenantry.plugin_hooks h
   SET status = 'running', claimed_by = %(worker)s, attempts = h.attempts + 1,
       lease_until = now() + make_interval(secs => %(lease)s)
  FROM chosen
 WHERE h.id = chosen.id
RETURNING h.id, h.plugin, h.event, h.tenant_id, h.tenant, h.extra, h.attempts
"""


def claim(
    conn: psycopg.Connection[Any],
    plugins: Sequence[str],
    *,
    worker: str,
    reserved: str | None,
    lease: float,
    tenant_id: uuid.UUID | None = None,
    limit: int = 50,
) -> list[Claimed]:
    """Take up to ``limit`` due rows of ``plugins`` (of one tenant, if given) for ``worker``,
    oldest first, at most one per plugin and tenant; rows reserved for ``reserved`` count as
    due. Commits before returning, so the claim holds no lock while the hooks run."""
    if not plugins:
        return []
    with conn.transaction():
        rows = conn.execute(
            _CLAIM_SQL,
            {
                "plugins": list(plugins),
                "tenant_id": tenant_id,
                "reserved": reserved,
                "worker": worker,
                "lease": lease,
                "limit": limit,
            },
        ).fetchall()
    claimed = [Claimed(int(r[0]), r[1], r[2], r[3], r[4], r[5], int(r[6])) for r in rows]
    return sorted(claimed, key=lambda c: c.id)


def finish(
    conn: psycopg.Connection[Any],
    hook_id: int,
    worker: str,
    status: Literal["done", "skipped", "failed"],
    error: str | None = None,
) -> bool:
    """Mark a claimed row finished; ``False`` when ``worker`` no longer holds it (its lease
    ran out and another deliverer took it)."""
    row = conn.execute(
        "UPDATE tenantry.plugin_hooks SET status = %s, finished_at = now(), lease_until = NULL,"
        " last_error = %s WHERE id = %s AND claimed_by = %s AND status = 'running' RETURNING id",
        (status, None if error is None else error[:_ERROR_CHARS], hook_id, worker),
    ).fetchone()
    return row is not None


def retry_later(conn: psycopg.Connection[Any], hook_id: int, worker: str, error: str, delay: float) -> bool:
    """Put a claimed row back, due in ``delay`` seconds, with the error it raised."""
    row = conn.execute(
        "UPDATE tenantry.plugin_hooks SET status = 'pending', run_after = now() + make_interval(secs => %s),"
        " lease_until = NULL, reserved_for = NULL, reserved_until = NULL, last_error = %s"
        " WHERE id = %s AND claimed_by = %s AND status = 'running' RETURNING id",
        (delay, error[:_ERROR_CHARS], hook_id, worker),
    ).fetchone()
    return row is not None


# -- operators ------------------------------------------------------------------------------


def _filters(
    *, plugin: str | None, tenant_id: uuid.UUID | None, status: str | None, ids: Sequence[int] | None = None
) -> sql.Composable:
    parts: list[sql.Composable] = [sql.SQL("true")]
    if plugin is not None:
        parts.append(sql.SQL("h.plugin = {}").format(sql.Literal(plugin)))
    if tenant_id is not None:
        parts.append(sql.SQL("h.tenant_id = {}").format(sql.Literal(tenant_id)))
    if status is not None:
        if status not in STATUSES:
            raise InvalidInput(f"unknown status {status!r}; statuses: {', '.join(STATUSES)}")
        parts.append(sql.SQL("h.status = {}").format(sql.Literal(status)))
    if ids is not None:
        parts.append(sql.SQL("h.id = ANY ({})").format(sql.Literal(list(ids))))
    return sql.SQL(" AND ").join(parts)


def list_hooks(
    conn: psycopg.Connection[Any],
    *,
    plugin: str | None = None,
    tenant_id: uuid.UUID | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[QueuedHook]:
    """Queued calls, newest first."""
    if not 1 <= limit <= 10_000:
        raise InvalidInput("limit must be between 1 and 10000")
    rows = conn.execute(
        sql.SQL(
            "SELECT h.id, h.plugin, h.event, h.tenant_id, t.slug, h.status, h.attempts, h.run_after,"
            " h.created_at, h.finished_at, h.claimed_by, h.last_error"
            " FROM tenantry.plugin_hooks h JOIN tenantry.tenants t ON t.id = h.tenant_id"
            " WHERE {} ORDER BY h.id DESC LIMIT {}"
        ).format(_filters(plugin=plugin, tenant_id=tenant_id, status=status), sql.Literal(limit))
    ).fetchall()
    return [QueuedHook(*r) for r in rows]


def summary(conn: psycopg.Connection[Any]) -> dict[str, dict[str, int]]:
    """How many queued calls each plugin has in each status (statuses with none left out)."""
    found: dict[str, dict[str, int]] = {}
    for plugin, status, count in conn.execute(
        "SELECT plugin, status, count(*) FROM tenantry.plugin_hooks GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall():
        found.setdefault(plugin, {})[status] = int(count)
    return found


def retry(
    conn: psycopg.Connection[Any],
    *,
    actor: str,
    ids: Sequence[int] | None = None,
    plugin: str | None = None,
    tenant_id: uuid.UUID | None = None,
) -> list[int]:
    """Queue failed calls again (those of ``ids``, or every failed one of ``plugin`` /
    ``tenant_id``), due now, with their attempts reset; audited (``plugin.hooks.retry``).
    Returns the ids queued again; calls that are not failed are left as they are."""
    if ids is None and plugin is None and tenant_id is None:
        raise InvalidInput("say which failed calls to retry: ids, a plugin or a tenant")
    where = _filters(plugin=plugin, tenant_id=tenant_id, status="failed", ids=ids)
    with conn.transaction():
        rows = conn.execute(
            sql.SQL(
                "UPDATE tenantry.plugin_hooks h SET status = 'pending', attempts = 0, run_after = now(),"
                " finished_at = NULL, claimed_by = NULL, reserved_for = NULL, reserved_until = NULL"
                " WHERE {} RETURNING h.id, h.plugin"
            ).format(where)
        ).fetchall()
        retried = sorted(int(r[0]) for r in rows)
        if retried:
            for name in sorted({str(r[1]) for r in rows}):
                notify(conn, EventKind.HOOK, name)
            audit.record(
                conn,
                actor=actor,
                action="plugin.hooks.retry",
                target_type="plugin",
                target=plugin or ",".join(sorted({str(r[1]) for r in rows})),
                after={"ids": retried[:1000], "count": len(retried)},
            )
    return retried


def purge(
    conn: psycopg.Connection[Any], *, older_than: float, include_failed: bool = False, actor: str | None = None
) -> int:
    """Delete calls finished more than ``older_than`` seconds ago (``done`` and ``skipped``;
    ``failed`` too with ``include_failed``); returns how many. Audited when ``actor`` is given
    and something was deleted."""
    if older_than < 0:
        raise InvalidInput("older_than must not be negative")
    statuses = ["done", "skipped", "failed"] if include_failed else ["done", "skipped"]
    with conn.transaction():
        row = conn.execute(
            "WITH gone AS (DELETE FROM tenantry.plugin_hooks WHERE finished_at < now() - make_interval(secs => %s)"
            " AND status = ANY (%s) RETURNING 1) SELECT count(*) FROM gone",
            (older_than, statuses),
        ).fetchone()
        count = int(row[0]) if row else 0
        if count and actor is not None:
            audit.record(
                conn,
                actor=actor,
                action="plugin.hooks.purge",
                target_type="plugin",
                target="*",
                after={"deleted": count, "older_than_seconds": older_than, "statuses": statuses},
            )
    return count
