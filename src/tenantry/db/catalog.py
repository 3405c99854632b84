"""The catalog schema ``tenantry``: versioned migrations, run once and idempotently.

Migrations are ``.sql`` files in ``db/sql/catalog`` named ``NNNN_name.sql``, applied in order
in one transaction under an advisory lock, as the owner role. Rerunning applies nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets as _secrets
from dataclasses import dataclass, field
from importlib import resources

import psycopg
from psycopg import sql

from tenantry.errors import CatalogNotInitialised

__all__ = ["CATALOG_SCHEMA", "InitReport", "catalog_version", "context_keys", "head_version", "migrate_catalog"]

CATALOG_SCHEMA = "tenantry"
LOCK_KEY = 0x74656E61  # "tena": serialises concurrent inits
_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


@dataclass(slots=True)
class InitReport:
    """What ``tenantry init`` did; empty lists mean it was a no-op."""

    roles_created: list[str] = field(default_factory=list)
    migrations_applied: list[str] = field(default_factory=list)
    version: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "roles_created": self.roles_created,
            "migrations_applied": self.migrations_applied,
            "version": self.version,
        }


def _migrations() -> list[tuple[int, str, str]]:
    folder = resources.files("tenantry.db").joinpath("sql/catalog")
    found = []
    for entry in folder.iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def head_version() -> int:
    """The newest catalog version this tenantry knows."""
    return _migrations()[-1][0]


def catalog_version(conn: psycopg.Connection) -> int:
    """The catalog's applied version; 0 when there is no catalog."""
    exists = conn.execute("SELECT to_regclass('tenantry.schema_migrations')").fetchone()
    if exists is None or exists[0] is None:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM tenantry.schema_migrations").fetchone()
    return int(row[0]) if row else 0


def require_catalog(conn: psycopg.Connection) -> None:
    """Raise :class:`CatalogNotInitialised` unless the catalog is at this tenantry's head."""
    version = catalog_version(conn)
    if version == 0:
        raise CatalogNotInitialised("the tenantry catalog does not exist here; run `tenantry init`")
    if version < head_version():
        raise CatalogNotInitialised(
            f"the catalog is at version {version}, this tenantry needs {head_version()};"
            " run `tenantry init` to upgrade it"
        )


def migrate_catalog(
    conn: psycopg.Connection,
    *,
    owner: str,
    runtime: str,
    pooled_schema: str,
    runtime_password: str | None,
) -> list[str]:
    """Create or upgrade the catalog; return the names of the migrations applied."""
    ids = {
        "owner": sql.Identifier(owner),
        "runtime": sql.Identifier(runtime),
        "pooled": sql.Identifier(pooled_schema),
    }
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS tenantry AUTHORIZATION {owner}").format(**ids)
        )
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {pooled} AUTHORIZATION {owner}").format(**ids)
        )
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {db} TO {runtime}").format(
                db=sql.Identifier(conn.info.dbname), **ids
            )
        )
        # the secure schema usage pattern: nobody but owners creates objects in public
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        conn.execute(sql.SQL("SET LOCAL ROLE {owner}").format(**ids))
        conn.execute(
            """
            CREATE TABLE IF NOT EXISTS tenantry.schema_migrations (
                version     integer PRIMARY KEY,
                name        text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        current = catalog_version(conn)
        for version, name, text in _migrations():
            if version <= current:
                continue
            conn.execute(sql.SQL(text).format(**ids))
            conn.execute(
                "INSERT INTO tenantry.schema_migrations (version, name) VALUES (%s, %s)",
                (version, name),
            )
            applied.append(name)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {pooled} TO {runtime}").format(**ids))
        key = _secrets.token_bytes(64)
        conn.execute(
            """
            INSERT INTO tenantry.secrets (name, value)
            VALUES ('context_ipad', %s), ('context_opad', %s)
            ON CONFLICT (name) DO NOTHING
            """,
            (bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)),
        )
        if runtime_password is not None:
            conn.execute(
                """
                INSERT INTO tenantry.secrets (name, value) VALUES ('runtime_password', %s)
                ON CONFLICT (name) DO UPDATE SET value = excluded.value
                """,
                (runtime_password.encode(),),
            )
        conn.execute("RESET ROLE")
    return applied


@dataclass(frozen=True, slots=True)
class ContextKeys:
    """The padded HMAC keys that sign the tenant context (see ``0001_catalog.sql``)."""

    ipad: bytes
    opad: bytes

    def sign(self, tenant_id: str) -> str:
        """HMAC-SHA256 of ``tenant_id``, computed as PostgreSQL checks it."""
        inner = hashlib.sha256(self.ipad + tenant_id.encode()).digest()
        return hashlib.sha256(self.opad + inner).hexdigest()


def context_keys(conn: psycopg.Connection) -> ContextKeys:
    """Read the context-signing keys (needs the owner's or an admin's privileges)."""
    rows: dict[str, bytes] = dict(
        conn.execute(
            "SELECT name, value FROM tenantry.secrets WHERE name IN ('context_ipad', 'context_opad')"
        ).fetchall()
    )
    if len(rows) != 2:
        raise CatalogNotInitialised("the tenant context keys are missing; run `tenantry init`")
    keys = ContextKeys(ipad=bytes(rows["context_ipad"]), opad=bytes(rows["context_opad"]))
    # the stored pads must come from one key, or no signature could ever verify
    if not hmac.compare_digest(
        bytes(a ^ 0x5C for a in keys.opad), bytes(b ^ 0x36 for b in keys.ipad)
    ):
        raise CatalogNotInitialised("the tenant context keys are inconsistent; check tenantry.secrets")
    return keys


def runtime_password(conn: psycopg.Connection) -> str | None:
    row = conn.execute(
        "SELECT value FROM tenantry.secrets WHERE name = 'runtime_password'"
    ).fetchone()
    return bytes(row[0]).decode() if row else None
