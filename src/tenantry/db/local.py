"""The objects every database that holds tenant rows needs, and the keys that sign contexts.

``sql/local.sql`` defines them: the context keys, the policy functions, the registry of app
tables and the tenant marker. :func:`install_local` puts them into a database, idempotently:
into the catalog's database at ``init``, into each database-tier tenant's own database when it
is provisioned (with the catalog's keys, so one signature verifies everywhere). Their
:func:`local_digest` is recorded with each placement, so that ``init`` after an upgrade
refreshes exactly the databases whose objects are older than this tenantry's.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets
import uuid
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import psycopg
from psycopg import sql

from tenantry.errors import CatalogNotInitialised

__all__ = ["ContextKeys", "context_keys", "install_local", "last_value_readable", "local_digest"]

_LOCAL_SQL = "sql/local.sql"


@dataclass(frozen=True, slots=True)
class ContextKeys:
    """The padded HMAC keys that sign the tenant context (see ``sql/local.sql``)."""

    ipad: bytes
    opad: bytes

    @classmethod
    def generate(cls) -> ContextKeys:
        key = _secrets.token_bytes(64)
        return cls(ipad=bytes(b ^ 0x36 for b in key), opad=bytes(b ^ 0x5C for b in key))

    def sign(self, tenant_id: str) -> str:
        """HMAC-SHA256 of ``tenant_id``, computed as PostgreSQL checks it."""
        inner = hashlib.sha256(self.ipad + tenant_id.encode()).digest()
        return hashlib.sha256(self.opad + inner).hexdigest()


def context_keys(conn: psycopg.Connection[Any], schema: str = "tenantry") -> ContextKeys:
    """Read the context-signing keys of ``conn``'s database (needs owner or admin rights), or
    of the catalog through its routing view (``schema="tenantry_routing"``: the reader role)."""
    row = conn.execute(sql.SQL("SELECT ipad, opad FROM {}").format(sql.Identifier(schema, "context_key"))).fetchone()
    if row is None:
        raise CatalogNotInitialised("the tenant context keys are missing; run `tenantry init`")
    keys = ContextKeys(ipad=bytes(row[0]), opad=bytes(row[1]))
    # the stored pads must come from one key, or no signature could ever verify
    if not hmac.compare_digest(bytes(a ^ 0x5C for a in keys.opad), bytes(b ^ 0x36 for b in keys.ipad)):
        raise CatalogNotInitialised("the tenant context keys are inconsistent; check tenantry.secrets")
    return keys


_LAST_VALUE = sql.SQL("pg_catalog.pg_sequence_last_value(regclass)")


def _hide_sequence_positions(conn: psycopg.Connection[Any], owner: sql.Identifier) -> None:
    """Only the owner (the mover syncs sequences with it) and superusers may call
    ``pg_sequence_last_value`` here. Changing a catalog function's rights takes a superuser:
    with another admin it stays as PostgreSQL ships it (see docs/app-tables.md)."""
    row = conn.execute("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user").fetchone()
    if row is None or not row[0]:
        return
    conn.execute(sql.SQL("REVOKE EXECUTE ON FUNCTION {} FROM PUBLIC").format(_LAST_VALUE))
    conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(_LAST_VALUE, owner))


def last_value_readable(conn: psycopg.Connection[Any], role: str) -> bool:
    """Whether ``role`` may call ``pg_sequence_last_value`` in ``conn``'s database."""
    row = conn.execute(
        "SELECT has_function_privilege(%s, 'pg_catalog.pg_sequence_last_value(regclass)', 'EXECUTE')", (role,)
    ).fetchone()
    return bool(row and row[0])


def _local_sql() -> str:
    return resources.files("tenantry.db").joinpath(_LOCAL_SQL).read_text(encoding="utf-8")


def local_digest() -> str:
    """A digest of the local objects this tenantry installs (changes when they change)."""
    return hashlib.sha256(_local_sql().encode()).hexdigest()[:16]


def install_local(
    conn: psycopg.Connection[Any],
    *,
    owner: str,
    runtime: str,
    data_schema: str,
    keys: ContextKeys | None,
) -> ContextKeys:
    """Install the local objects and the schema for tenant tables into ``conn``'s database.

    ``conn`` is an admin connection. ``keys=None`` generates keys unless the database has
    some. Returns the keys the database holds. Runs in a transaction (or a savepoint of the
    caller's).
    """
    ids = {
        "owner": sql.Identifier(owner),
        "runtime": sql.Identifier(runtime),
        "data": sql.Identifier(data_schema),
        "db": sql.Identifier(conn.info.dbname),
    }
    text = _local_sql()
    wanted = keys or ContextKeys.generate()
    with conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS tenantry AUTHORIZATION {owner}").format(**ids))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {data} AUTHORIZATION {owner}").format(**ids))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {db} TO {runtime}").format(**ids))
        # the secure schema usage pattern: nobody but owners creates objects in public
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        # USAGE on a sequence (what inserts need) also lets pg_sequence_last_value() and the
        # pg_sequences view read how far a shared sequence went: other tenants' insert counts
        _hide_sequence_positions(conn, ids["owner"])
        conn.execute(sql.SQL("SET LOCAL ROLE {owner}").format(**ids))
        conn.execute(sql.SQL(text).format(**ids))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {data} TO {runtime}").format(**ids))
        conn.execute(
            "INSERT INTO tenantry.context_key (ipad, opad) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (wanted.ipad, wanted.opad),
        )
        held = context_keys(conn)
        conn.execute("RESET ROLE")
    if keys is not None and held != keys:
        raise CatalogNotInitialised(f"database {conn.info.dbname!r} holds other context keys than the catalog")
    return held


def record_marker(conn: psycopg.Connection[Any], tenant_id: uuid.UUID) -> None:
    """Mark ``conn``'s database as the tenant's own (the bind checks the marker)."""
    conn.execute("INSERT INTO tenantry.marker (tenant_id) VALUES (%s) ON CONFLICT DO NOTHING", (tenant_id,))


#: why a tenant's older bindings are refused
FenceReason = Literal["moved", "suspended", "archived", "deleted"]


def write_fence(
    conn: psycopg.Connection[Any], owner: str, tenant_id: uuid.UUID, epoch: int, reason: FenceReason
) -> None:
    """Refuse, in ``conn``'s database, every binding of the tenant made below ``epoch``.

    ``conn`` is an admin connection to that database; the fence is written as ``owner`` in a
    transaction of its own (or a savepoint of the caller's).
    """
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
        conn.execute(
            """
            INSERT INTO tenantry.fences (tenant_id, epoch, reason) VALUES (%s, %s, %s)
            ON CONFLICT (tenant_id) DO UPDATE
               SET epoch = greatest(tenantry.fences.epoch, excluded.epoch),
                   reason = CASE WHEN excluded.epoch >= tenantry.fences.epoch
                                 THEN excluded.reason ELSE tenantry.fences.reason END,
                   fenced_at = now()
            """,
            (tenant_id, epoch, reason),
        )
        # statements of transactions open now look at the fences again (see the context view)
        conn.execute("UPDATE tenantry.context_key SET fenced_at = clock_timestamp()")
        conn.execute("RESET ROLE")  # SET LOCAL outlives a savepoint: the caller's may be open
