"""Catalog SQL of backups: the ``tenantry.backups`` records, and a tenant's catalog state as
an archive keeps it (its config layer, plugin switches, brand and assets, domains).

Plain functions on a psycopg connection; :mod:`tenantry.services.backups` composes them.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

__all__ = [
    "BACKUP_COLUMNS",
    "complete_backup",
    "delete_backup",
    "due_tenants",
    "prunable",
    "read_schedules",
    "set_schedule",
    "fail_backup",
    "get_backup",
    "insert_backup",
    "insert_imported",
    "list_backups",
    "made_since",
    "read_state",
    "running_restore",
    "slug_taken",
    "write_state",
]

BACKUP_COLUMNS = (
    "id, tenant_id, tenant_slug, plan, isolation, status, storage, location, encrypted, rows, size,"
    " manifest, error, created_by, created_at, completed_at"
)


def insert_backup(
    conn: psycopg.Connection[Any],
    *,
    backup_id: uuid.UUID,
    tenant_id: uuid.UUID,
    slug: str,
    plan: str,
    isolation: str,
    storage: str,
    location: str,
    encrypted: bool,
    actor: str,
) -> tuple[Any, ...]:
    row = conn.execute(
        f"INSERT INTO tenantry.backups (id, tenant_id, tenant_slug, plan, isolation, storage, location, encrypted,"
        f" created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {BACKUP_COLUMNS}",
        (backup_id, tenant_id, slug, plan, isolation, storage, location, encrypted, actor),
    ).fetchone()
    assert row is not None
    return tuple(row)


def insert_imported(
    conn: psycopg.Connection[Any],
    *,
    backup_id: uuid.UUID,
    tenant_id: uuid.UUID,
    slug: str,
    plan: str,
    isolation: str,
    storage: str,
    location: str,
    encrypted: bool,
    rows: int,
    size: int,
    manifest: dict[str, Any],
    created_at: str,
    actor: str,
) -> tuple[Any, ...] | None:
    """Record a complete backup found in storage (``None``: a record of that id exists)."""
    return conn.execute(
        f"INSERT INTO tenantry.backups (id, tenant_id, tenant_slug, plan, isolation, status, storage, location,"
        f" encrypted, rows, size, manifest, created_by, created_at, completed_at)"
        f" VALUES (%s, %s, %s, %s, %s, 'complete', %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        f" ON CONFLICT (id) DO NOTHING RETURNING {BACKUP_COLUMNS}",
        (
            backup_id, tenant_id, slug, plan, isolation, storage, location, encrypted, rows, size,
            Jsonb(manifest), actor, created_at, created_at,
        ),
    ).fetchone()  # fmt: skip


def complete_backup(
    conn: psycopg.Connection[Any], backup_id: uuid.UUID, *, rows: int, size: int, manifest: dict[str, Any]
) -> tuple[Any, ...] | None:
    return conn.execute(
        f"UPDATE tenantry.backups SET status = 'complete', rows = %s, size = %s, manifest = %s, error = NULL,"
        f" completed_at = now() WHERE id = %s RETURNING {BACKUP_COLUMNS}",
        (rows, size, Jsonb(manifest), backup_id),
    ).fetchone()


def fail_backup(conn: psycopg.Connection[Any], backup_id: uuid.UUID, error: str) -> None:
    conn.execute(
        "UPDATE tenantry.backups SET status = 'failed', error = %s WHERE id = %s AND status = 'running'",
        (error[:2000], backup_id),
    )


def get_backup(conn: psycopg.Connection[Any], backup_id: uuid.UUID) -> tuple[Any, ...] | None:
    return conn.execute(f"SELECT {BACKUP_COLUMNS} FROM tenantry.backups WHERE id = %s", (backup_id,)).fetchone()


def list_backups(
    conn: psycopg.Connection[Any], tenant_id: uuid.UUID | None, *, limit: int = 100
) -> list[tuple[Any, ...]]:
    if tenant_id is None:
        return conn.execute(
            f"SELECT {BACKUP_COLUMNS} FROM tenantry.backups ORDER BY created_at DESC, id LIMIT %s", (limit,)
        ).fetchall()
    return conn.execute(
        f"SELECT {BACKUP_COLUMNS} FROM tenantry.backups WHERE tenant_id = %s ORDER BY created_at DESC, id LIMIT %s",
        (tenant_id, limit),
    ).fetchall()


def delete_backup(conn: psycopg.Connection[Any], backup_id: uuid.UUID) -> bool:
    return conn.execute("DELETE FROM tenantry.backups WHERE id = %s", (backup_id,)).rowcount > 0


def _exists(conn: psycopg.Connection[Any], table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", (f"tenantry.{table}",)).fetchone()
    return row is not None and row[0] is not None


def read_state(conn: psycopg.Connection[Any], tenant_id: uuid.UUID) -> dict[str, Any]:
    """The tenant's catalog state as an archive keeps it: its config layer as stored (secret
    values stay sealed), its plugin switches, its brand with the bytes of its images, its
    domains. Read in the caller's transaction."""
    state: dict[str, Any] = {}
    layer = conn.execute(
        "SELECT version, document, overrides FROM tenantry.config_layers WHERE tenant_id = %s", (tenant_id,)
    ).fetchone()
    state["config"] = None if layer is None else {"version": layer[0], "document": layer[1], "overrides": layer[2]}
    state["plugins"] = [
        {"plugin": p, "enabled": e}
        for p, e in conn.execute(
            "SELECT plugin, enabled FROM tenantry.plugin_enablement WHERE tenant_id = %s ORDER BY plugin", (tenant_id,)
        ).fetchall()
    ]
    brand = conn.execute(
        "SELECT theme, logo, favicon, version FROM tenantry.brands WHERE tenant_id = %s", (tenant_id,)
    ).fetchone()
    if brand is None:
        state["brand"] = None
    else:
        assets = {}
        for sha in {s for s in brand[1:3] if s is not None}:
            found = conn.execute(
                "SELECT content_type, bytes FROM tenantry.brand_assets WHERE sha256 = %s", (sha,)
            ).fetchone()
            if found is not None:
                assets[sha] = {"content_type": found[0], "base64": base64.b64encode(bytes(found[1])).decode()}
        state["brand"] = {
            "theme": brand[0],
            "logo": brand[1],
            "favicon": brand[2],
            "version": brand[3],
            "assets": assets,
        }
    state["domains"] = [
        {"hostname": h, "verified": v is not None}
        for h, v in conn.execute(
            "SELECT hostname, verified_at FROM tenantry.domains WHERE tenant_id = %s ORDER BY hostname", (tenant_id,)
        ).fetchall()
    ]
    return state


def write_state(
    conn: psycopg.Connection[Any], tenant_id: uuid.UUID, state: dict[str, Any], *, actor: str, message: str
) -> list[str]:
    """Make the tenant's config layer, plugin switches and brand those of ``state`` (as
    :func:`read_state` gave it, sealed values already sealed for this tenant), each a new
    version of its history; in the caller's transaction. Returns what it changed (for the
    events to announce). Domains are not written: a hostname belongs to one tenant."""
    changed: list[str] = []
    config = state.get("config")
    if config is not None:
        row = conn.execute(
            "INSERT INTO tenantry.config_layers (tenant_id) VALUES (%s)"
            " ON CONFLICT (tenant_id) WHERE tenant_id IS NOT NULL DO UPDATE SET tenant_id = EXCLUDED.tenant_id"
            " RETURNING version",
            (tenant_id,),
        ).fetchone()
        assert row is not None
        version = int(row[0]) + 1
        conn.execute(
            "UPDATE tenantry.config_layers SET version = %s, document = %s, overrides = %s, updated_at = now()"
            " WHERE tenant_id = %s",
            (version, Jsonb(config["document"]), Jsonb(config["overrides"]), tenant_id),
        )
        conn.execute(
            "INSERT INTO tenantry.config_versions (tenant_id, version, document, overrides, actor, message)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (tenant_id, version, Jsonb(config["document"]), Jsonb(config["overrides"]), actor, message),
        )
        changed.append("config")
    plugins = state.get("plugins") or []
    conn.execute("DELETE FROM tenantry.plugin_enablement WHERE tenant_id = %s", (tenant_id,))
    for entry in plugins:
        conn.execute(
            "INSERT INTO tenantry.plugin_enablement (plugin, tenant_id, enabled, updated_by) VALUES (%s, %s, %s, %s)",
            (entry["plugin"], tenant_id, bool(entry["enabled"]), actor),
        )
    changed.append("plugins")
    brand = state.get("brand")
    if brand is not None:
        for sha, asset in (brand.get("assets") or {}).items():
            data = base64.b64decode(asset["base64"])
            conn.execute(
                "INSERT INTO tenantry.brand_assets (sha256, content_type, bytes, size) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (sha256) DO NOTHING",
                (sha, asset["content_type"], data, len(data)),
            )
        row = conn.execute(
            "SELECT version FROM tenantry.brands WHERE tenant_id = %s FOR UPDATE", (tenant_id,)
        ).fetchone()
        version = (int(row[0]) if row else 0) + 1
        conn.execute(
            "INSERT INTO tenantry.brands (tenant_id, theme, logo, favicon, version, updated_by)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (tenant_id) DO UPDATE SET theme = EXCLUDED.theme,"
            " logo = EXCLUDED.logo, favicon = EXCLUDED.favicon, version = EXCLUDED.version,"
            " updated_by = EXCLUDED.updated_by, updated_at = now()",
            (tenant_id, Jsonb(brand["theme"]), brand["logo"], brand["favicon"], version, actor),
        )
        if _exists(conn, "brand_versions"):
            conn.execute(
                "INSERT INTO tenantry.brand_versions (tenant_id, version, theme, logo, favicon, actor, message)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (tenant_id, version, Jsonb(brand["theme"]), brand["logo"], brand["favicon"], actor, message),
            )
        changed.append("brand")
    return changed


def set_schedule(
    conn: psycopg.Connection[Any], plan: str, every: dt.timedelta | None, keep: int | None, *, actor: str
) -> None:
    """Set (``every`` given) or remove a plan's backup schedule."""
    if every is None:
        conn.execute("DELETE FROM tenantry.backup_schedules WHERE plan = %s", (plan,))
        return
    conn.execute(
        "INSERT INTO tenantry.backup_schedules (plan, every, keep, updated_by) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (plan) DO UPDATE SET every = EXCLUDED.every, keep = EXCLUDED.keep,"
        " updated_by = EXCLUDED.updated_by, updated_at = now()",
        (plan, every, keep, actor),
    )


def read_schedules(conn: psycopg.Connection[Any]) -> list[tuple[str, dt.timedelta, int]]:
    return [
        (p, e, k)
        for p, e, k in conn.execute("SELECT plan, every, keep FROM tenantry.backup_schedules ORDER BY plan").fetchall()
    ]


def due_tenants(conn: psycopg.Connection[Any], tenant_id: uuid.UUID | None = None) -> list[tuple[uuid.UUID, str]]:
    """``(id, slug)`` of the active tenants on a scheduled plan whose newest backup (complete,
    or being taken) is older than the plan's interval, or who have none (of one tenant only,
    when ``tenant_id`` is given: for the check made again under its lock)."""
    return [
        (i, s)
        for i, s in conn.execute(
            """
            SELECT t.id, t.slug FROM tenantry.tenants t JOIN tenantry.backup_schedules s ON s.plan = t.plan
             WHERE t.status = 'active' AND (%(t)s::uuid IS NULL OR t.id = %(t)s::uuid)
               AND NOT EXISTS (SELECT 1 FROM tenantry.backups b WHERE b.tenant_id = t.id
                               AND b.status IN ('complete', 'running') AND b.created_at > now() - s.every)
             ORDER BY t.slug
            """,
            {"t": tenant_id},
        ).fetchall()
    ]


def prunable(conn: psycopg.Connection[Any], tenant_id: uuid.UUID | None) -> list[uuid.UUID]:
    """The backups a prune removes: of tenants on a scheduled plan, the complete ones past
    the newest ``keep``, and the failed ones older than the newest complete one."""
    return [
        r[0]
        for r in conn.execute(
            """
            WITH ranked AS (
                SELECT b.id, b.status, b.created_at, s.keep, b.tenant_id,
                       row_number() OVER (PARTITION BY b.tenant_id, b.status = 'complete'
                                          ORDER BY b.created_at DESC) AS n,
                       max(b.created_at) FILTER (WHERE b.status = 'complete')
                           OVER (PARTITION BY b.tenant_id) AS newest
                  FROM tenantry.backups b
                  JOIN tenantry.tenants t ON t.id = b.tenant_id
                  JOIN tenantry.backup_schedules s ON s.plan = t.plan
                 WHERE %(t)s::uuid IS NULL OR b.tenant_id = %(t)s::uuid
            )
            SELECT id FROM ranked
             WHERE (status = 'complete' AND n > keep) OR (status = 'failed' AND created_at < newest)
             ORDER BY created_at
            """,
            {"t": tenant_id},
        ).fetchall()
    ]


def running_restore(
    conn: psycopg.Connection[Any], slug: str, *, in_place: bool | None = None
) -> tuple[uuid.UUID, list[str], dict[str, Any]] | None:
    """``(id, steps done, payload)`` of the running restore into (or over) ``slug``, locked
    for the caller's transaction; ``in_place``: only restores in place (True), only clones
    (False), either (None)."""
    row = conn.execute(
        "SELECT id, steps_done, payload FROM tenantry.jobs WHERE kind = 'restore' AND status = 'running'"
        " AND payload->>'as' = %s AND (%s::boolean IS NULL OR coalesce((payload->>'in_place')::boolean, false) = %s)"
        " FOR UPDATE",
        (slug, in_place, in_place),
    ).fetchone()
    return None if row is None else (row[0], list(row[1]), dict(row[2]))


def slug_taken(conn: psycopg.Connection[Any], slug: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM tenantry.tenants WHERE slug = %s AND status <> 'deleted'", (slug,)).fetchone()
        is not None
    )


def made_since(conn: psycopg.Connection[Any], tenant_id: uuid.UUID, job_id: uuid.UUID) -> bool:
    """Whether the tenant was made after the job began (a rerun finds its own tenant)."""
    row = conn.execute(
        "SELECT t.created_at >= j.created_at FROM tenantry.tenants t, tenantry.jobs j WHERE t.id = %s AND j.id = %s",
        (tenant_id, job_id),
    ).fetchone()
    return bool(row and row[0])
