"""The catalog's brands: ``tenantry.brands`` (each tenant's brand now), its append-only
history ``tenantry.brand_versions`` and the content-addressed ``tenantry.brand_assets``.

Every write is one transaction under a single advisory lock for brand writes: it saves the
brand, appends the version to the history, writes the audit entry and sends
``NOTIFY tenantry_catalog, 'brand:<tenant id>'``, so every process drops its cached copy the
moment the change commits. An image stays stored while a version of any brand uses it (the
history refers to it by foreign key), so a rollback can bring it back.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb

from tenantry.core.model import Status, Tenant
from tenantry.db.catalog import audit
from tenantry.db.catalog.events import EventKind, notify
from tenantry.errors import Conflict, TenantNotFound

__all__ = [
    "Asset",
    "StoredBrand",
    "StoredVersion",
    "Write",
    "read_asset",
    "read_brand",
    "read_history",
    "read_version",
    "write_brand",
]

_LOCK = 0x74627264  # "tbrd": one brand write at a time


class Asset(Protocol):
    """An image a theme references (:class:`tenantry.branding.images.Image`)."""

    @property
    def sha256(self) -> str: ...
    @property
    def content_type(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def size(self) -> int: ...


@dataclass(frozen=True, slots=True)
class StoredBrand:
    """A tenant and its brand row as the catalog holds them (``theme`` ``None``: never set)."""

    tenant_id: uuid.UUID
    slug: str
    tenant_name: str
    status: Status
    theme: dict[str, Any] | None
    version: int
    updated_at: datetime | None
    updated_by: str | None


def read_brand(conn: psycopg.Connection[Any], tenant_id: uuid.UUID) -> StoredBrand | None:
    """The tenant's brand row (version 0 when it has none); ``None`` when there is no tenant."""
    row = conn.execute(
        """
        SELECT t.id, t.slug, t.name, t.status, b.theme, coalesce(b.version, 0), b.updated_at, b.updated_by
          FROM tenantry_routing.tenants t LEFT JOIN tenantry_routing.brands b ON b.tenant_id = t.id
         WHERE t.id = %s
        """,
        (tenant_id,),
    ).fetchone()
    if row is None:
        return None
    return StoredBrand(row[0], row[1], row[2], Status(row[3]), row[4], row[5], row[6], row[7])


def read_asset(conn: psycopg.Connection[Any], tenant_id: uuid.UUID, sha256: str) -> tuple[str, bytes] | None:
    """The image ``sha256`` — only if ``tenant_id``'s own brand uses it."""
    row = conn.execute(
        """
        SELECT a.content_type, a.bytes
          FROM tenantry_routing.brand_assets a
          JOIN tenantry_routing.brands b ON b.tenant_id = %s AND a.sha256 IN (b.logo, b.favicon)
         WHERE a.sha256 = %s
        """,
        (tenant_id, sha256),
    ).fetchone()
    return None if row is None else (row[0], bytes(row[1]))


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One version of a brand, as the history keeps it."""

    version: int
    theme: dict[str, Any]
    actor: str
    message: str
    created_at: datetime


def read_history(
    conn: psycopg.Connection[Any], tenant_id: uuid.UUID, *, limit: int, before: int | None = None
) -> list[StoredVersion]:
    """The tenant's brand versions, newest first; ``before``: only older ones than that."""
    rows = conn.execute(
        "SELECT version, theme, actor, message, created_at FROM tenantry.brand_versions"
        " WHERE tenant_id = %s AND (%s::integer IS NULL OR version < %s) ORDER BY version DESC LIMIT %s",
        (tenant_id, before, before, limit),
    ).fetchall()
    return [StoredVersion(*row) for row in rows]


def read_version(conn: psycopg.Connection[Any], tenant_id: uuid.UUID, version: int) -> StoredVersion | None:
    """One version of the tenant's brand, or ``None``."""
    row = conn.execute(
        "SELECT version, theme, actor, message, created_at FROM tenantry.brand_versions"
        " WHERE tenant_id = %s AND version = %s",
        (tenant_id, version),
    ).fetchone()
    return None if row is None else StoredVersion(*row)


@dataclass(frozen=True, slots=True)
class Write:
    """What :func:`write_brand` did: the version now, and whether anything changed."""

    version: int
    changed: bool


def write_brand(
    conn: psycopg.Connection[Any],
    tenant: Tenant,
    build: Callable[[dict[str, Any] | None], dict[str, Any]],
    images: Sequence[Asset],
    *,
    default: dict[str, Any],
    actor: str,
    action: str,
    message: str = "",
    expected_version: int | None = None,
) -> Write:
    """Store the theme ``build`` makes of the stored one (validated, as JSON; the stored
    theme is ``None`` when the tenant has none), with the new ``images`` it references, as a
    new version in the history (with ``message``), in one audited transaction. ``build`` runs
    under the write lock, so concurrent changes never overwrite each other; if it raises,
    nothing is written. An unchanged theme writes nothing, nor does the ``default`` theme
    (as JSON) of a tenant that has none."""
    if tenant.status is Status.DELETED:
        raise TenantNotFound(f"tenant {tenant.slug!r} is deleted")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        row = conn.execute(
            "SELECT theme, version FROM tenantry.brands WHERE tenant_id = %s FOR UPDATE",
            (tenant.id,),
        ).fetchone()
        before, version = (row[0], row[1]) if row else (None, 0)
        if expected_version is not None and expected_version != version:
            raise Conflict(
                f"the brand of {tenant.slug!r} is at version {version}, not {expected_version}:"
                " someone changed it meanwhile; read it again"
            )
        theme = build(before)
        if before == theme or (before is None and not images and theme == default):
            return Write(version=version, changed=False)
        for image in images:
            conn.execute(
                """
                INSERT INTO tenantry.brand_assets (sha256, content_type, bytes, size)
                VALUES (%s, %s, %s, %s) ON CONFLICT (sha256) DO NOTHING
                """,
                (image.sha256, image.content_type, image.data, image.size),
            )
        logo, favicon = (_sha(theme.get(k)) for k in ("logo", "favicon"))
        written = conn.execute(
            """
            INSERT INTO tenantry.brands (tenant_id, theme, logo, favicon, version, updated_by)
            VALUES (%(tenant)s, %(theme)s, %(logo)s, %(favicon)s, 1, %(actor)s)
            ON CONFLICT (tenant_id) DO UPDATE
               SET theme = excluded.theme, logo = excluded.logo, favicon = excluded.favicon,
                   version = tenantry.brands.version + 1, updated_at = now(), updated_by = excluded.updated_by
            RETURNING version
            """,
            {"tenant": tenant.id, "theme": Jsonb(theme), "logo": logo, "favicon": favicon, "actor": actor},
        ).fetchone()
        assert written is not None
        conn.execute(
            """
            INSERT INTO tenantry.brand_versions (tenant_id, version, theme, logo, favicon, actor, message)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            """,
            (tenant.id, written[0], Jsonb(theme), logo, favicon, actor, message),
        )
        notify(conn, EventKind.BRAND, str(tenant.id))
        audit.record(
            conn,
            actor=actor,
            action=action,
            target_type="tenant",
            target=tenant.slug,
            before=None if row is None else {"version": version, "theme": before},
            after={"version": written[0], "theme": theme} | ({"message": message} if message else {}),
        )
    return Write(version=written[0], changed=True)


def _sha(asset: Any) -> str | None:
    return asset["sha256"] if isinstance(asset, dict) else None
