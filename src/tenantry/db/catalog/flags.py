"""The catalog's feature flags (``tenantry.flags``): rows as plain mappings of their columns;
:mod:`tenantry.tenant_config.records` turns them into validated definitions."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

__all__ = ["delete_flag", "insert_flag", "list_flags", "load_flags", "read_flag", "update_flag"]

_COLUMNS = (
    "key, kind, description, variants, default_variant, off_variant, rules, rollout, killed,"
    " enable_at, disable_at, created_at, updated_at, updated_by"
)


def load_flags(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every flag, in one query (the per-process cache loads them so), from the routing view."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT {_COLUMNS} FROM tenantry_routing.flags ORDER BY key").fetchall()


def list_flags(conn: psycopg.Connection[Any], *, after: str | None, limit: int | None) -> list[dict[str, Any]]:
    """Flags by key, ``after`` a key, at most ``limit`` of them."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_COLUMNS} FROM tenantry.flags WHERE %(after)s::text IS NULL OR key > %(after)s"
            " ORDER BY key LIMIT %(limit)s",
            {"after": after, "limit": limit},
        ).fetchall()


def read_flag(conn: psycopg.Connection[Any], key: str, *, lock: bool = False) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_COLUMNS} FROM tenantry.flags WHERE key = %s{' FOR UPDATE' if lock else ''}", (key,)
        ).fetchone()


def insert_flag(conn: psycopg.Connection[Any], values: dict[str, Any], *, actor: str) -> dict[str, Any]:
    """Store a new flag from its columns' ``values`` (:class:`psycopg.errors.UniqueViolation`
    if its key is taken); returns the row."""
    columns = ", ".join(values)
    placeholders = ", ".join(f"%({name})s" for name in values)
    conn.execute(
        f"INSERT INTO tenantry.flags ({columns}, updated_by) VALUES ({placeholders}, %(actor)s)",
        {**values, "actor": actor},
    )
    created = read_flag(conn, values["key"])
    assert created is not None
    return created


def update_flag(conn: psycopg.Connection[Any], values: dict[str, Any], *, actor: str) -> dict[str, Any]:
    """Store a flag's new definition (its columns' ``values``); returns the row."""
    assignments = ", ".join(f"{name} = %({name})s" for name in values if name != "key")
    conn.execute(
        f"UPDATE tenantry.flags SET {assignments}, updated_at = now(), updated_by = %(actor)s WHERE key = %(key)s",
        {**values, "actor": actor},
    )
    after = read_flag(conn, values["key"])
    assert after is not None
    return after


def delete_flag(conn: psycopg.Connection[Any], key: str) -> None:
    conn.execute("DELETE FROM tenantry.flags WHERE key = %s", (key,))
