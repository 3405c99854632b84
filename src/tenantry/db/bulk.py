"""Bulk loading into RLS-guarded tables.

PostgreSQL refuses ``COPY ... FROM`` into a table with row-level security for roles subject to
it ("COPY FROM not supported with row-level security"). :func:`copy_rows` keeps COPY's speed
anyway: it copies into a transaction-local temporary table, then moves the rows with one
``INSERT ... SELECT``, which the policy's ``WITH CHECK`` judges like any insert. Columns left
out (``tenant_id``, identity columns) take their defaults: the bound tenant, the next id.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

__all__ = ["acopy_rows", "copy_rows"]


def _statements(table: str, columns: Sequence[str]) -> tuple[sql.Composed, sql.Composed, sql.Composed]:
    if not columns:
        raise ValueError("copy_rows needs at least one column")
    temp = sql.Identifier(f"tenantry_copy_{secrets.token_hex(6)}")
    target = sql.Identifier(*table.split(".", 1)) if "." in table else sql.Identifier(table)
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    create = sql.SQL("CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
        temp, cols, target
    )
    copy = sql.SQL("COPY {} ({}) FROM STDIN").format(temp, cols)
    move = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(target, cols, cols, temp)
    return create, copy, move


def copy_rows(conn: psycopg.Connection[Any], table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """COPY ``rows`` into ``table`` under the bound tenant; returns the number inserted.

    >>> with tn.tenant("acme"), tn.connection() as conn:       # doctest: +SKIP
    ...     copy_rows(conn, "projects", ["name"], [("a",), ("b",)])
    2
    """
    create, copy_stmt, move = _statements(table, columns)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(create)
        with cur.copy(copy_stmt) as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(move)
        return cur.rowcount


async def acopy_rows(
    conn: psycopg.AsyncConnection[Any], table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """Async :func:`copy_rows`."""
    create, copy_stmt, move = _statements(table, columns)
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(create)
        async with cur.copy(copy_stmt) as copy:
            for row in rows:
                await copy.write_row(row)
        await cur.execute(move)
        return cur.rowcount
