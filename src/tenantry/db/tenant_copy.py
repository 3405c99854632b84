"""Copying one tenant's rows between placements: bulk copy, delta, checksums, write freeze.

The mover works on admin connections acting as the owner role with the tenant bound
(:func:`act_as_tenant`), so row-level security confines every read and write to the tenant
even here. Rows travel with binary COPY through a temporary table (PostgreSQL has no
``COPY FROM`` into tables under RLS). Rows are compared by primary key and an md5 of the whole
row: the delta after a bulk copy is only what changed meanwhile, and a placement's per-table
checksum is the md5 of its row hashes in key order.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql

__all__ = [
    "TableSpec",
    "act_as_tenant",
    "bulk_copy",
    "checksum",
    "delete_missing",
    "freeze_writes",
    "row_hashes",
    "specs",
    "sync_sequences",
    "thaw_writes",
    "upsert_changed",
]

_FREEZE = "tenantry_freeze"


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A tenant table's name, columns and primary key, from the app's metadata."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]

    def cols(self) -> sql.Composable:
        return sql.SQL(", ").join(sql.Identifier(c) for c in self.columns)

    def key_cols(self) -> sql.Composable:
        return sql.SQL(", ").join(sql.Identifier(c) for c in self.key)


def specs(metadata: sa.MetaData) -> list[TableSpec]:
    """Tables parents first (the order inserts need; deletes go in reverse)."""
    return [
        TableSpec(t.name, tuple(c.name for c in t.columns), tuple(c.name for c in t.primary_key.columns))
        for t in metadata.sorted_tables
    ]


def act_as_tenant(conn: psycopg.Connection[Any], *, owner: str, signed: tuple[str, str, str]) -> None:
    """In the open transaction: become the owner, bind the tenant to its schema (``signed``
    is :meth:`Binder.signed`'s ``(id, schema, signature)``) and look in that schema."""
    tenant_id, schema, sig = signed
    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
    conn.execute(
        "SELECT set_config('tenantry.tenant_id', %s, true), set_config('tenantry.tenant_schema', %s, true),"
        " set_config('tenantry.tenant_sig', %s, true), set_config('search_path', %s, true)",
        (tenant_id, schema, sig, f'"{schema}", public, pg_temp'),
    )


def _temp_like(conn: psycopg.Connection[Any], spec: TableSpec, columns: Iterable[str]) -> sql.Identifier:
    temp = sql.Identifier(f"tenantry_copy_{secrets.token_hex(6)}")
    conn.execute(
        sql.SQL("CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            temp, sql.SQL(", ").join(sql.Identifier(c) for c in columns), sql.Identifier(spec.name)
        )
    )
    return temp


def _stream(source: psycopg.Connection[Any], select: sql.Composable, target: psycopg.Connection[Any], into: sql.Composable) -> None:
    with source.cursor().copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(select)) as out:
        with target.cursor().copy(sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(into)) as inp:
            for block in out:
                inp.write(block)


def _insert_from(conn: psycopg.Connection[Any], spec: TableSpec, temp: sql.Identifier, *, upsert: bool) -> int:
    query = sql.SQL("INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {}").format(
        sql.Identifier(spec.name), spec.cols(), spec.cols(), temp
    )
    others = [c for c in spec.columns if c not in spec.key]
    if upsert:
        action = (
            sql.SQL("DO UPDATE SET {}").format(
                sql.SQL(", ").join(sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in others)
            )
            if others
            else sql.SQL("DO NOTHING")
        )
        query = sql.SQL("{} ON CONFLICT ({}) {}").format(query, spec.key_cols(), action)
    return conn.execute(query).rowcount


def bulk_copy(source: psycopg.Connection[Any], target: psycopg.Connection[Any], spec: TableSpec) -> int:
    """Replace the target's rows of the bound tenant with the source's; returns rows copied."""
    target.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(spec.name)))
    temp = _temp_like(target, spec, spec.columns)
    select = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(spec.cols(), sql.Identifier(spec.name), spec.key_cols())
    _stream(source, select, target, temp)
    return _insert_from(target, spec, temp, upsert=False)


def row_hashes(conn: psycopg.Connection[Any], spec: TableSpec) -> dict[tuple[Any, ...], str]:
    """Primary key -> md5 of the whole row, for the bound tenant's rows."""
    rows = conn.execute(
        sql.SQL("SELECT {}, md5(ROW({})::text) FROM {}").format(spec.key_cols(), spec.cols(), sql.Identifier(spec.name))
    ).fetchall()
    width = len(spec.key)
    return {tuple(row[:width]): row[width] for row in rows}


def checksum(conn: psycopg.Connection[Any], spec: TableSpec) -> tuple[int, str]:
    """``(rows, md5 of the row hashes in key order)`` of the bound tenant's rows."""
    row = conn.execute(
        sql.SQL(
            "SELECT count(*), coalesce(md5(string_agg(md5(ROW({})::text), '' ORDER BY {})), '') FROM {}"
        ).format(spec.cols(), spec.key_cols(), sql.Identifier(spec.name))
    ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def upsert_changed(
    source: psycopg.Connection[Any],
    target: psycopg.Connection[Any],
    spec: TableSpec,
    source_hashes: dict[tuple[Any, ...], str],
    target_hashes: dict[tuple[Any, ...], str],
) -> int:
    """Copy the source's rows that the target lacks or holds otherwise; returns their number.

    Run it parents first (and :func:`delete_missing` children first, before), so foreign keys
    hold at every statement.
    """
    changed = [k for k, h in source_hashes.items() if target_hashes.get(k) != h]
    if not changed:
        return 0
    keys = _keys_table(source, spec, changed)
    select = sql.SQL("SELECT {} FROM {} JOIN {} USING ({})").format(
        sql.SQL(", ").join(sql.Identifier(spec.name, c) for c in spec.columns),
        sql.Identifier(spec.name),
        keys,
        spec.key_cols(),
    )
    temp = _temp_like(target, spec, spec.columns)
    _stream(source, select, target, temp)
    return _insert_from(target, spec, temp, upsert=True)


def _keys_table(conn: psycopg.Connection[Any], spec: TableSpec, keys: list[tuple[Any, ...]]) -> sql.Identifier:
    """A temporary table holding ``keys`` (primary keys of ``spec``), to join against."""
    temp = _temp_like(conn, spec, spec.key)
    with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(temp)) as copy:
        for key in keys:
            copy.write_row(key)
    return temp


def delete_missing(
    target: psycopg.Connection[Any],
    spec: TableSpec,
    source_hashes: dict[tuple[Any, ...], str],
    target_hashes: dict[tuple[Any, ...], str],
) -> int:
    """Delete the target's rows whose keys the source no longer has."""
    gone = [k for k in target_hashes if k not in source_hashes]
    if not gone:
        return 0
    keys = _keys_table(target, spec, gone)
    return target.execute(
        sql.SQL("DELETE FROM {} t USING {} k WHERE {}").format(
            sql.Identifier(spec.name),
            keys,
            sql.SQL(" AND ").join(sql.SQL("t.{} = k.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in spec.key),
        )
    ).rowcount


def sync_sequences(conn: psycopg.Connection[Any], schema: str, spec: TableSpec) -> None:
    """Advance the target's sequences past the copied ids, so new rows get fresh keys."""
    table = f'"{schema}"."{spec.name}"'
    owned = conn.execute(
        "SELECT a.attname, pg_get_serial_sequence(%s, a.attname) FROM pg_attribute a"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
        (table, table),
    ).fetchall()
    for column, seq in owned:
        if seq is None:
            continue
        conn.execute(
            sql.SQL(
                "SELECT setval(%s::regclass, greatest((SELECT max({}) FROM {}), pg_sequence_last_value(%s::regclass), 1))"
            ).format(sql.Identifier(column), sql.Identifier(schema, spec.name)),
            (seq, seq),
        )


def _trigger(tenant_id: str, suffix: str) -> str:
    # one pair per tenant, so tenants moving out of one shared table at once do not collide
    return f"{_FREEZE}_{tenant_id.replace('-', '')}_{suffix}"


def freeze_writes(conn: psycopg.Connection[Any], schema: str, table: str, tenant_id: str) -> None:
    """Refuse the tenant's writes to ``schema.table`` (a trigger; other tenants write on).

    Creating the trigger waits for transactions writing the table to finish, so once this
    commits no write of the tenant can slip past it.
    """
    target = sql.Identifier(schema, table)
    for suffix, events, row in (("ins", "INSERT", "NEW"), ("upd", "UPDATE OR DELETE", "OLD")):
        name = sql.Identifier(_trigger(tenant_id, suffix))
        conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(name, target))
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER {} BEFORE {} ON {} FOR EACH ROW WHEN ({}.tenant_id = {})"
                " EXECUTE FUNCTION tenantry.refuse_write_while_moving()"
            ).format(name, sql.SQL(events), target, sql.SQL(row), sql.Literal(tenant_id))
        )


def thaw_writes(conn: psycopg.Connection[Any], schema: str, table: str, tenant_id: str) -> None:
    """Undo :func:`freeze_writes`. Touches the table (and locks it) only when it is frozen."""
    target = sql.Identifier(schema, table)
    for suffix in ("ins", "upd"):
        name = _trigger(tenant_id, suffix)
        exists = conn.execute(
            "SELECT 1 FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname = %s",
            (f'"{schema}"."{table}"', name),
        ).fetchone()
        if exists is not None:
            conn.execute(sql.SQL("DROP TRIGGER {} ON {}").format(sql.Identifier(name), target))
