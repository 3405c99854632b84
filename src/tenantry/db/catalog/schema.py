"""The catalog schema ``tenantry``: versioned migrations, run once and idempotently.

Migrations are ``.sql`` files in ``db/sql/catalog`` named ``NNNN_name.sql``, applied in order
in one transaction under an advisory lock, as the owner role. Rerunning applies nothing.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

from tenantry.db.local import install_local
from tenantry.errors import CatalogNotInitialised

__all__ = [
    "CATALOG_SCHEMA",
    "ROUTING_SCHEMA",
    "InitReport",
    "catalog_version",
    "head_version",
    "migrate_catalog",
    "require_catalog",
    "require_routing",
    "stored_password",
]

CATALOG_SCHEMA = "tenantry"
#: the views a data-plane process reads (sql/catalog/0010_routing.sql), and nothing else
ROUTING_SCHEMA = "tenantry_routing"
LOCK_KEY = 0x74656E61  # "tena": serialises concurrent inits
_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


@dataclass(slots=True)
class InitReport:
    """What ``tenantry init`` did; empty lists mean it was a no-op."""

    roles_created: list[str] = field(default_factory=list)
    migrations_applied: list[str] = field(default_factory=list)
    version: int = 0
    #: database-tier databases whose local objects (policy functions, context view) were
    #: older than this tenantry's and were refreshed
    databases_refreshed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "roles_created": self.roles_created,
            "migrations_applied": self.migrations_applied,
            "version": self.version,
            "databases_refreshed": self.databases_refreshed,
        }


@functools.cache
def _migrations() -> tuple[tuple[int, str, str], ...]:
    # read once per process: require_catalog() asks for the head on every control-plane call
    folder = resources.files("tenantry.db").joinpath("sql/catalog")
    found = []
    for entry in folder.iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return tuple(sorted(found))


def head_version() -> int:
    """The newest catalog version this tenantry knows."""
    return _migrations()[-1][0]


def catalog_version(conn: psycopg.Connection[Any]) -> int:
    """The catalog's applied version; 0 when there is no catalog."""
    exists = conn.execute("SELECT to_regclass('tenantry.schema_migrations')").fetchone()
    if exists is None or exists[0] is None:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM tenantry.schema_migrations").fetchone()
    return int(row[0]) if row else 0


def require_catalog(conn: psycopg.Connection[Any]) -> None:
    """Raise :class:`CatalogNotInitialised` unless the catalog is at this tenantry's head."""
    _require_version(catalog_version(conn))


def require_routing(conn: psycopg.Connection[Any]) -> None:
    """:func:`require_catalog` through the routing views, as the reader role sees them."""
    try:
        with conn.transaction():
            row = conn.execute("SELECT version FROM tenantry_routing.catalog").fetchone()
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        row = None  # a catalog older than the routing views, or none
    except psycopg.errors.InsufficientPrivilege as err:
        raise CatalogNotInitialised(
            f"role {conn.info.user!r} cannot read the routing views: is it the reader role? run `tenantry init`"
        ) from err
    _require_version(int(row[0]) if row else 0)


def _require_version(version: int) -> None:
    if version == 0:
        raise CatalogNotInitialised("the tenantry catalog does not exist here; run `tenantry init`")
    if version < head_version():
        raise CatalogNotInitialised(
            f"the catalog is at version {version}, this tenantry needs {head_version()};"
            " run `tenantry init` to upgrade it"
        )


def migrate_catalog(
    conn: psycopg.Connection[Any],
    *,
    owner: str,
    runtime: str,
    reader: str,
    pooled_schema: str,
    passwords: dict[str, str],
) -> list[str]:
    """Create or upgrade the catalog; return the names of the migrations applied.

    Installs the local objects (keys, policy functions, registry) first, then the control
    catalog's migrations, then grants the reader role the routing views (every time: a view
    added by an upgrade is granted too), all in one transaction under an advisory lock.
    ``passwords`` are the login roles' passwords to keep (``{"runtime": ..., "reader": ...}``,
    for the roles just created).
    """
    ids = {
        "owner": sql.Identifier(owner),
        "runtime": sql.Identifier(runtime),
        "reader": sql.Identifier(reader),
        "routing": sql.Identifier(ROUTING_SCHEMA),
        "db": sql.Identifier(conn.info.dbname),
    }
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        install_local(conn, owner=owner, runtime=runtime, data_schema=pooled_schema, keys=None)
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {routing} AUTHORIZATION {owner}").format(**ids))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {db} TO {reader}").format(**ids))
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
        # every version not recorded yet, not just those above the highest: a catalog built
        # by a branch that had a later migration but not an earlier one still gets the earlier
        done = {int(r[0]) for r in conn.execute("SELECT version FROM tenantry.schema_migrations").fetchall()}
        for version, name, text in _migrations():
            if version in done:
                continue
            conn.execute(sql.SQL(text).format(**ids))
            conn.execute(
                "INSERT INTO tenantry.schema_migrations (version, name) VALUES (%s, %s)",
                (version, name),
            )
            applied.append(name)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {routing} TO {reader}").format(**ids))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {routing} TO {reader}").format(**ids))
        for role, password in passwords.items():
            conn.execute(
                """
                INSERT INTO tenantry.secrets (name, value) VALUES (%s, %s)
                ON CONFLICT (name) DO UPDATE SET value = excluded.value
                """,
                (f"{role}_password", password.encode()),
            )
        conn.execute("RESET ROLE")
    return applied


def stored_password(conn: psycopg.Connection[Any], role: str) -> str | None:
    """The password ``tenantry init`` gave the ``runtime`` or ``reader`` role (admin only)."""
    row = conn.execute("SELECT value FROM tenantry.secrets WHERE name = %s", (f"{role}_password",)).fetchone()
    return bytes(row[0]).decode() if row else None
