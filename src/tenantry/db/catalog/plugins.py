"""The catalog's plugin settings: which plans and tenants each plugin is switched on for, and
what plugins raised.

A plugin is off unless switched on. A plan's setting applies to every tenant on the plan; a
tenant's own setting wins over its plan's (so a tenant can be switched off on a plan that has
the plugin on, and on where its plan has it off); :func:`reset` removes a setting so the one
below shows through. Every change is validated first (a known plugin, an existing plan or a
live tenant), then written in one transaction with its audit entry (``plugin.enable``,
``plugin.disable``, ``plugin.reset``) and a ``NOTIFY`` so that every process drops what it
cached (:func:`tenantry.services.plugins.set_enabled`). Setting what is already set is a
no-op: no audit entry, no notice.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg import sql

from tenantry.db.catalog.scopes import Scope

__all__ = [
    "Enablement",
    "EnablementChange",
    "PluginFailure",
    "Resolution",
    "enabled_tenants",
    "list_enablement",
    "list_errors",
    "record_error",
    "read_setting",
    "resolve_for_tenant",
    "write_setting",
]

Source = Literal["tenant", "plan", "default"]

#: most characters of an error message kept in the catalog
_ERROR_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Enablement:
    """One setting: a plugin switched on or off for a plan or a tenant."""

    plugin: str
    scope: Literal["plan", "tenant"]
    target: str
    """The plan's name or the tenant's slug."""
    tenant_id: uuid.UUID | None
    enabled: bool
    updated_at: datetime
    updated_by: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugin": self.plugin,
            "scope": self.scope,
            "target": self.target,
            "tenant_id": None if self.tenant_id is None else str(self.tenant_id),
            "enabled": self.enabled,
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
        }


@dataclass(frozen=True, slots=True)
class EnablementChange:
    """What a write did: the setting now (``None``: none, after a reset) and whether it changed."""

    plugin: str
    scope: Scope
    before: bool | None
    after: bool | None

    @property
    def changed(self) -> bool:
        return self.before is not self.after

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugin": self.plugin,
            **self.scope.to_dict(),
            "before": self.before,
            "after": self.after,
            "changed": self.changed,
        }


@dataclass(frozen=True, slots=True)
class Resolution:
    """Whether a plugin runs for a tenant, and which setting says so."""

    plugin: str
    enabled: bool
    source: Source

    def to_dict(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "enabled": self.enabled, "source": self.source}


@dataclass(frozen=True, slots=True)
class PluginFailure:
    """What a plugin raised, counted per (plugin, hook, tenant)."""

    plugin: str
    hook: str
    tenant_id: uuid.UUID | None
    tenant: str | None
    count: int
    first_at: datetime
    last_at: datetime
    last_error: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugin": self.plugin,
            "hook": self.hook,
            "tenant_id": None if self.tenant_id is None else str(self.tenant_id),
            "tenant": self.tenant,
            "count": self.count,
            "first_at": self.first_at.isoformat(),
            "last_at": self.last_at.isoformat(),
            "last_error": self.last_error,
        }


# -- reads ------------------------------------------------------------------------------------

_RESOLVE_SQL = """
SELECT t.plan, e.plugin, e.enabled, e.tenant_id IS NOT NULL
  FROM tenantry_routing.tenants t
  LEFT JOIN tenantry_routing.plugin_enablement e ON e.tenant_id = t.id OR e.plan = t.plan
 WHERE t.id = %s
"""


def resolve_for_tenant(conn: psycopg.Connection[Any], tenant_id: uuid.UUID) -> tuple[str, dict[str, Resolution]] | None:
    """The tenant's plan and every plugin that has a setting reaching it, resolved (the
    tenant's own setting over its plan's), in one query; ``None`` when there is no such tenant."""
    rows = conn.execute(_RESOLVE_SQL, (tenant_id,)).fetchall()
    if not rows:
        return None
    plan = str(rows[0][0])
    found: dict[str, Resolution] = {}
    for _plan, plugin, enabled, own in rows:
        if plugin is None:
            continue
        if own or plugin not in found:
            found[plugin] = Resolution(plugin, bool(enabled), "tenant" if own else "plan")
    return plan, found


def list_enablement(conn: psycopg.Connection[Any], plugin: str | None = None) -> list[Enablement]:
    """Every setting (of ``plugin``), plans first, then tenants by slug."""
    rows = conn.execute(
        """
        SELECT e.plugin, CASE WHEN e.plan IS NULL THEN 'tenant' ELSE 'plan' END,
               coalesce(e.plan, t.slug), e.tenant_id, e.enabled, e.updated_at, e.updated_by
          FROM tenantry.plugin_enablement e
          LEFT JOIN tenantry.tenants t ON t.id = e.tenant_id
         WHERE (%(plugin)s::text IS NULL OR e.plugin = %(plugin)s)
           AND (t.id IS NULL OR t.status <> 'deleted')
         ORDER BY e.plugin, e.plan IS NULL, 3
        """,
        {"plugin": plugin},
    ).fetchall()
    return [Enablement(*row) for row in rows]


def enabled_tenants(
    conn: psycopg.Connection[Any], plugin: str, *, statuses: Collection[str]
) -> list[tuple[uuid.UUID, str]]:
    """``(id, slug)`` of the tenants in one of ``statuses`` the plugin is switched on for."""
    rows = conn.execute(
        """
        SELECT t.id, t.slug
          FROM tenantry.tenants t
          LEFT JOIN tenantry.plugin_enablement own ON own.plugin = %(plugin)s AND own.tenant_id = t.id
          LEFT JOIN tenantry.plugin_enablement byplan ON byplan.plugin = %(plugin)s AND byplan.plan = t.plan
         WHERE t.status = ANY(%(statuses)s) AND coalesce(own.enabled, byplan.enabled, false)
         ORDER BY t.slug
        """,
        {"plugin": plugin, "statuses": list(statuses)},
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def list_errors(
    conn: psycopg.Connection[Any], *, plugin: str | None = None, tenant_id: uuid.UUID | None = None, limit: int = 100
) -> list[PluginFailure]:
    """What plugins raised, the most recent first."""
    rows = conn.execute(
        """
        SELECT e.plugin, e.hook, e.tenant_id, t.slug, e.count, e.first_at, e.last_at, e.last_error
          FROM tenantry.plugin_errors e
          LEFT JOIN tenantry.tenants t ON t.id = e.tenant_id
         WHERE (%(plugin)s::text IS NULL OR e.plugin = %(plugin)s)
           AND (%(tenant)s::uuid IS NULL OR e.tenant_id = %(tenant)s)
         ORDER BY e.last_at DESC, e.plugin, e.hook
         LIMIT %(limit)s
        """,
        {"plugin": plugin, "tenant": tenant_id, "limit": limit},
    ).fetchall()
    return [PluginFailure(*row) for row in rows]


# -- writes -----------------------------------------------------------------------------------


def record_error(
    conn: psycopg.Connection[Any], plugin: str, hook: str, tenant_id: uuid.UUID | None, error: str
) -> None:
    """Count one failure of ``plugin`` in ``hook`` (for ``tenant_id``)."""
    conn.execute(
        """
        INSERT INTO tenantry.plugin_errors (plugin, hook, tenant_id, last_error) VALUES (%s, %s, %s, %s)
        ON CONFLICT (plugin, hook, tenant_id) DO UPDATE
           SET count = tenantry.plugin_errors.count + 1, last_at = now(), last_error = excluded.last_error
        """,
        (plugin, hook[:100], tenant_id, error[:_ERROR_CHARS]),
    )


def read_setting(conn: psycopg.Connection[Any], plugin: str, scope: Scope) -> bool | None:
    """The plugin's own setting in ``scope`` (``None``: none there)."""
    row = conn.execute(
        sql.SQL("SELECT enabled FROM tenantry.plugin_enablement WHERE plugin = %s AND {} = %s").format(scope.column),
        (plugin, scope.value),
    ).fetchone()
    return None if row is None else bool(row[0])


def write_setting(
    conn: psycopg.Connection[Any], plugin: str, scope: Scope, enabled: bool | None, *, before: bool | None, actor: str
) -> None:
    """Set the plugin's setting in ``scope`` from ``before`` (as :func:`read_setting` gave
    it) to ``enabled`` (``None``: remove it)."""
    if enabled is None:
        conn.execute(
            sql.SQL("DELETE FROM tenantry.plugin_enablement WHERE plugin = %s AND {} = %s").format(scope.column),
            (plugin, scope.value),
        )
    elif before is None:
        conn.execute(
            sql.SQL(
                "INSERT INTO tenantry.plugin_enablement (plugin, {}, enabled, updated_by) VALUES (%s, %s, %s, %s)"
            ).format(scope.column),
            (plugin, scope.value, enabled, actor),
        )
    else:
        conn.execute(
            sql.SQL(
                "UPDATE tenantry.plugin_enablement SET enabled = %s, updated_at = now(), updated_by = %s"
                " WHERE plugin = %s AND {} = %s"
            ).format(scope.column),
            (enabled, actor, plugin, scope.value),
        )
