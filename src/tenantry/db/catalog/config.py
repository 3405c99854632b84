"""The catalog's config layers: ``tenantry.config_layers`` (each plan's and tenant's layer
now), its append-only history ``tenantry.config_versions``, and the one query the per-process
cache loads a tenant's view with (flags: :mod:`tenantry.db.catalog.flags`).

Only SQL lives here: what is sealed stays sealed (the services open and seal), and nothing
here validates, audits or announces (the services do, in the same transaction).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from tenantry.db.catalog.scopes import Scope, scope_of
from tenantry.errors import InvalidInput, NotFound, TenantNotFound

__all__ = [
    "Layer",
    "Scope",
    "StoredVersion",
    "TenantRow",
    "append_version",
    "ensure_layer",
    "layers_for_reseal",
    "lock_scope",
    "read_history",
    "read_layer",
    "read_plan_document",
    "read_version",
    "read_view",
    "rewrite_sealed",
    "scope_of",
    "tenant_layers_of_plan",
    "write_layer",
]

_LOCK_NAMESPACE = "tenantry.config.plan:"

Layer = tuple[int, dict[str, Any], dict[str, Any]]
"""A layer as stored: (version, document, overrides); version 0 and empty when there is none."""


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One row of a layer's history, as stored (sealed values sealed)."""

    version: int
    document: dict[str, Any]
    overrides: dict[str, Any]
    actor: str | None
    message: str
    created_at: datetime | None


# -- scopes ---------------------------------------------------------------------------------


def lock_scope(conn: psycopg.Connection[Any], *, tenant: str | uuid.UUID | None, plan: str | None) -> Scope:
    """Resolve the scope and take its locks (in the caller's transaction): the tenant row (so
    its plan cannot change meanwhile) and the plan's advisory lock, shared for a tenant write
    and alone for a plan write, so the two are judged one after the other."""
    scope = scope_of(conn, tenant=tenant, plan=plan)
    if scope.kind == "tenant":
        row = conn.execute(
            "SELECT plan FROM tenantry.tenants WHERE id = %s AND status <> 'deleted' FOR SHARE", (scope.tenant_id,)
        ).fetchone()
        if row is None:
            raise TenantNotFound(f"tenant {scope.target!r} is deleted")
        scope = Scope("tenant", scope.target, row[0], scope.tenant_id)
        conn.execute("SELECT pg_advisory_xact_lock_shared(hashtext(%s))", (_LOCK_NAMESPACE + scope.plan,))
    else:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_LOCK_NAMESPACE + scope.plan,))
    return scope


# -- layers ---------------------------------------------------------------------------------


def read_layer(conn: psycopg.Connection[Any], scope: Scope, *, lock: bool = False) -> Layer:
    row = conn.execute(
        sql.SQL("SELECT version, document, overrides FROM tenantry.config_layers WHERE {} = %s{}").format(
            scope.column, sql.SQL(" FOR UPDATE" if lock else "")
        ),
        (scope.value,),
    ).fetchone()
    return (0, {}, {}) if row is None else (int(row[0]), row[1], row[2])


def read_plan_document(conn: psycopg.Connection[Any], plan: str) -> dict[str, Any]:
    """The plan layer's values as stored (``{}`` when it has none)."""
    row = conn.execute("SELECT document FROM tenantry.config_layers WHERE plan = %s", (plan,)).fetchone()
    return {} if row is None else dict(row[0])


def ensure_layer(conn: psycopg.Connection[Any], scope: Scope) -> None:
    """Make the scope's layer row if it has none (version 0, empty), so it can be locked."""
    conn.execute(
        sql.SQL(
            "INSERT INTO tenantry.config_layers ({0}) VALUES (%s) ON CONFLICT ({0}) WHERE {0} IS NOT NULL DO NOTHING"
        ).format(scope.column),
        (scope.value,),
    )


def write_layer(
    conn: psycopg.Connection[Any], scope: Scope, version: int, document: dict[str, Any], overrides: dict[str, Any]
) -> None:
    conn.execute(
        sql.SQL(
            "UPDATE tenantry.config_layers SET version = %s, document = %s, overrides = %s, updated_at = now() WHERE {} = %s"
        ).format(scope.column),
        (version, Jsonb(document), Jsonb(overrides), scope.value),
    )


def append_version(
    conn: psycopg.Connection[Any],
    scope: Scope,
    version: int,
    document: dict[str, Any],
    overrides: dict[str, Any],
    *,
    actor: str,
    message: str,
) -> None:
    """Add a version to the layer's history (:class:`psycopg.errors.UniqueViolation` if it is there)."""
    conn.execute(
        "INSERT INTO tenantry.config_versions (plan, tenant_id, version, document, overrides, actor, message)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            scope.plan if scope.kind == "plan" else None,
            scope.tenant_id,
            version,
            Jsonb(document),
            Jsonb(overrides),
            actor,
            message,
        ),
    )


def tenant_layers_of_plan(
    conn: psycopg.Connection[Any], plan: str
) -> list[tuple[str, uuid.UUID, dict[str, Any], dict[str, Any]]]:
    """``(slug, id, document, overrides)`` of the live tenants on ``plan`` with a layer of their own."""
    rows = conn.execute(
        """
        SELECT t.slug, t.id, l.document, l.overrides
          FROM tenantry.config_layers l JOIN tenantry.tenants t ON t.id = l.tenant_id
         WHERE t.plan = %s AND t.status <> 'deleted'
         ORDER BY t.slug
        """,
        (plan,),
    ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def layers_for_reseal(
    conn: psycopg.Connection[Any],
) -> list[tuple[str | None, uuid.UUID | None, dict[str, Any], dict[str, Any]]]:
    """Every layer, ``(plan, tenant id, document, overrides)``, locked for the transaction."""
    rows = conn.execute(
        "SELECT plan, tenant_id, document, overrides FROM tenantry.config_layers ORDER BY plan, tenant_id FOR UPDATE"
    ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def rewrite_sealed(
    conn: psycopg.Connection[Any],
    plan: str | None,
    tenant_id: uuid.UUID | None,
    document: dict[str, Any],
    overrides: dict[str, Any],
) -> None:
    """Store a layer's values sealed anew, its version unchanged."""
    conn.execute(
        "UPDATE tenantry.config_layers SET document = %s, overrides = %s"
        " WHERE plan IS NOT DISTINCT FROM %s AND tenant_id IS NOT DISTINCT FROM %s",
        (Jsonb(document), Jsonb(overrides), plan, tenant_id),
    )


# -- history --------------------------------------------------------------------------------


def read_version(conn: psycopg.Connection[Any], scope: Scope, version: int) -> StoredVersion:
    """One version of the layer (0: empty); :class:`NotFound` naming the versions there are."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise InvalidInput(f"version {version!r} must be a whole number >= 0")
    if version == 0:
        return StoredVersion(0, {}, {}, None, "empty", None)
    row = conn.execute(
        sql.SQL(
            "SELECT version, document, overrides, actor, message, created_at FROM tenantry.config_versions"
            " WHERE {} = %s AND version = %s"
        ).format(scope.column),
        (scope.value, version),
    ).fetchone()
    if row is None:
        latest = read_layer(conn, scope)[0]
        raise NotFound(
            f"{scope.kind} {scope.target}'s config has no version {version}"
            f" ({'versions 1 to ' + str(latest) if latest else 'no versions yet'})"
        )
    return StoredVersion(*row)


def read_history(
    conn: psycopg.Connection[Any], scope: Scope, *, limit: int, before: int | None = None
) -> list[StoredVersion]:
    """The layer's versions, newest first; ``before``: only those older than that one."""
    rows = conn.execute(
        sql.SQL(
            "SELECT version, document, overrides, actor, message, created_at FROM tenantry.config_versions"
            " WHERE {} = %s AND (%s::bigint IS NULL OR version < %s) ORDER BY version DESC LIMIT %s"
        ).format(scope.column),
        (scope.value, before, before, limit),
    ).fetchall()
    return [StoredVersion(*row) for row in rows]


# -- a tenant's view, for the per-process cache ---------------------------------------------


@dataclass(frozen=True, slots=True)
class TenantRow:
    """What the cache loads of one tenant (from the routing views): its attributes and the
    plan's and its own layers, as stored."""

    id: uuid.UUID
    slug: str
    plan: str
    status: str
    created_at: datetime
    cell: str | None
    tier: str | None
    labels: dict[str, Any] | None
    plan_doc: dict[str, Any]
    tenant_doc: dict[str, Any]
    overrides: dict[str, Any]


_VIEW_SQL = """
SELECT t.id, t.slug, t.plan, t.status, t.created_at, p.cell, p.isolation, c.labels,
       coalesce(pl.document, '{}'::jsonb), coalesce(tl.document, '{}'::jsonb), coalesce(tl.overrides, '{}'::jsonb)
  FROM tenantry_routing.tenants t
  LEFT JOIN tenantry_routing.placements p ON p.tenant_id = t.id AND p.status = 'active'
  LEFT JOIN tenantry_routing.cells c ON c.name = p.cell
  LEFT JOIN tenantry_routing.config_layers pl ON pl.plan = t.plan
  LEFT JOIN tenantry_routing.config_layers tl ON tl.tenant_id = t.id
 WHERE t.id = %s
"""


def read_view(conn: psycopg.Connection[Any], tenant_id: uuid.UUID) -> TenantRow | None:
    """The tenant's row for the cache, in one query; ``None`` when there is no such tenant."""
    row = conn.execute(_VIEW_SQL, (tenant_id,)).fetchone()
    return None if row is None else TenantRow(*row)
