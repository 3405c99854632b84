"""Copying one tenant's rows between placements: bulk copy, change capture, checksums, freeze.

The mover works on admin connections acting as the owner role with the tenant bound
(:func:`act_as_tenant`), so row-level security confines every read and write to the tenant
even here. Rows travel with binary COPY through a temporary table (PostgreSQL has no
``COPY FROM`` into tables under RLS).

While the bulk copy runs, the tenant keeps writing: triggers installed before it
(:func:`tenantry.db.change_capture.capture_changes`) log the keys of the rows the tenant
writes, and :func:`apply_changes` copies those rows again, round after round, until little is
left. Only then are the tenant's writes frozen (:func:`tenantry.db.change_capture.freeze_writes`)
for the last round and the checksums, so the write block does not grow with the tenant's size.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql

from tenantry.db import rls
from tenantry.db.binding import Signed

__all__ = [
    "Changes",
    "TableSpec",
    "act_as_tenant",
    "apply_changes",
    "bulk_copy",
    "CHECKSUM_V2",
    "checksum",
    "counts",
    "hashed_as_is",
    "pause_after",
    "differences",
    "placement_specs",
    "specs",
    "sync_sequences",
]

#: rows per statement when the bulk copy fills the target from its temporary table
COPY_BATCH = 5000
#: after each batch of the bulk copy, or of the deletion, the mover pauses this share of the
#: time the batch took, so that it never holds a core of the server for long: on a small
#: server, the neighbours' transactions then wait for a batch at most, not for the whole copy
#: (``bench/tier_move.py`` measures their p99 during a move)
YIELD_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A tenant table's name, columns and primary key: what a placement holds
    (:func:`placement_specs`), or what the app's metadata declares (:func:`specs`)."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    types: tuple[str, ...] = ()
    """The columns' types as PostgreSQL prints them (``format_type``); empty when read from
    metadata."""

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


_HELD_COLUMNS = """
SELECT c.relname, a.attname,
       -- a type of the placement's own schema (an enum) is named without it, so that
       -- placements compare
       CASE WHEN tn.nspname = r.schema_name THEN t.typname::text ELSE format_type(a.atttypid, a.atttypmod) END
  FROM tenantry.app_tables r
  JOIN pg_namespace n ON n.nspname = r.schema_name
  JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = r.table_name
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
  JOIN pg_type t ON t.oid = a.atttypid JOIN pg_namespace tn ON tn.oid = t.typnamespace
 WHERE r.schema_name = %s
 ORDER BY c.relname, a.attnum
"""

_HELD_KEYS = """
SELECT c.relname, a.attname
  FROM tenantry.app_tables r
  JOIN pg_namespace n ON n.nspname = r.schema_name
  JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = r.table_name
  JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
  CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
 WHERE r.schema_name = %s
 ORDER BY c.relname, k.ord
"""


def placement_specs(conn: psycopg.Connection[Any], schema: str) -> list[TableSpec]:
    """What the placement ``schema`` of ``conn``'s database actually holds, parents first: its
    registered app tables (``tenantry.app_tables``) with their real columns (generated ones
    left out: they are computed again) and primary keys, from the system catalogs."""
    columns: dict[str, list[tuple[str, str]]] = {}
    for table, column, type_ in conn.execute(_HELD_COLUMNS, (schema,)).fetchall():
        columns.setdefault(table, []).append((column, type_))
    keys: dict[str, list[str]] = {}
    for table, column in conn.execute(_HELD_KEYS, (schema,)).fetchall():
        keys.setdefault(table, []).append(column)
    return [
        TableSpec(
            table,
            tuple(c for c, _ in columns[table]),
            tuple(keys.get(table, ())),
            tuple(t for _, t in columns[table]),
        )
        for _schema, table in reversed(rls.table_order(conn, schema))
        if table in columns  # registered, but gone: nothing to carry
    ]


def differences(source: Iterable[TableSpec], target: Iterable[TableSpec], where: str) -> list[str]:
    """What of ``source`` the ``target`` tables cannot hold: a table or column it lacks, a
    column of another type (when both sides know types), a primary key of other columns (the
    same columns in another order are no difference). Extra tables and columns of the target
    are no difference (they stay empty, or take their defaults)."""
    theirs = {spec.name: spec for spec in target}
    problems: list[str] = []
    for spec in source:
        other = theirs.get(spec.name)
        if other is None:
            problems.append(f"{spec.name}: no such table {where}")
            continue
        missing = [c for c in spec.columns if c not in other.columns]
        if missing:
            problems.append(f"{spec.name}: no column {', '.join(missing)} {where}")
        if spec.types and other.types:
            types = dict(zip(other.columns, other.types))
            problems += [
                f"{spec.name}.{c}: {t} here, {types[c]} {where}"
                for c, t in zip(spec.columns, spec.types)
                if c in types and types[c] != t
            ]
        # a key is the set of columns that names a row (the copy joins and upserts on it);
        # its order shapes only the index, which each side keeps as its own DDL built it
        # (SQLAlchemy puts an explicit ``autoincrement=True`` column first)
        if spec.key and other.key and set(spec.key) != set(other.key):
            problems.append(f"{spec.name}: primary key ({', '.join(spec.key)}), ({', '.join(other.key)}) {where}")
    return problems


def act_as_tenant(conn: psycopg.Connection[Any], *, owner: str, signed: Signed) -> None:
    """In the open transaction: become the owner, bind the tenant to its schema (``signed``
    is :meth:`Binder.signed`'s context) and look in that schema."""
    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
    conn.execute(
        "SELECT set_config('tenantry.tenant_id', %s, true), set_config('tenantry.tenant_schema', %s, true),"
        " set_config('tenantry.tenant_sig', %s, true), set_config('search_path', %s, true),"
        " set_config('tenantry.tenant_epoch', %s, true)",
        (signed.tenant_id, signed.schema, signed.signature, f'"{signed.schema}", public, pg_temp', signed.epoch),
    )
    # rows are hashed through their text form: make it the same on both servers
    conn.execute(
        "SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, MDY', true),"
        " set_config('IntervalStyle', 'postgres', true), set_config('extra_float_digits', '1', true),"
        " set_config('bytea_output', 'hex', true)"
    )


def _temp_like(conn: psycopg.Connection[Any], spec: TableSpec, columns: Iterable[str]) -> sql.Identifier:
    temp = sql.Identifier(f"tenantry_copy_{secrets.token_hex(6)}")
    conn.execute(
        sql.SQL("CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            temp, sql.SQL(", ").join(sql.Identifier(c) for c in columns), sql.Identifier(spec.name)
        )
    )
    return temp


def _stream(
    source: psycopg.Connection[Any], select: sql.Composable, target: psycopg.Connection[Any], into: sql.Composable
) -> int:
    """COPY the rows ``select`` reads on ``source`` into ``into`` on ``target``; returns their number."""
    cursor = target.cursor()
    with source.cursor().copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(select)) as out:
        with cursor.copy(sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(into)) as inp:
            for block in out:
                inp.write(block)
    return cursor.rowcount


def pause_after(started: float) -> None:
    """Yield the server for :data:`YIELD_SHARE` of the time since ``started``."""
    time.sleep((time.monotonic() - started) * YIELD_SHARE)


def _insert_from(
    conn: psycopg.Connection[Any],
    spec: TableSpec,
    temp: sql.Identifier,
    *,
    upsert: bool,
    pages: tuple[int, int | None] | None = None,
) -> int:
    """INSERT the rows of ``temp`` (of its pages ``[first, last)`` only, if given; ``last``
    None: to the end) into the table."""
    query = sql.SQL("INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {}").format(
        sql.Identifier(spec.name), spec.cols(), spec.cols(), temp
    )
    if pages is not None:
        first, last = pages
        query = sql.SQL("{} WHERE ctid >= {}::tid").format(query, sql.Literal(f"({first},0)"))
        if last is not None:
            query = sql.SQL("{} AND ctid < {}::tid").format(query, sql.Literal(f"({last},0)"))
    others = [c for c in spec.columns if c not in spec.key]
    if upsert:
        action = (
            sql.SQL("DO UPDATE SET {}").format(
                sql.SQL(", ").join(
                    sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in others
                )
            )
            if others
            else sql.SQL("DO NOTHING")
        )
        query = sql.SQL("{} ON CONFLICT ({}) {}").format(query, spec.key_cols(), action)
    return conn.execute(query).rowcount


def bulk_copy(
    source: psycopg.Connection[Any], target: psycopg.Connection[Any], spec: TableSpec, *, batch: int | None = None
) -> int:
    """Replace the target's rows of the bound tenant with the source's; returns rows copied.

    The rows reach a temporary table in one COPY, then the table in statements of about
    ``batch`` rows (ranges of the temporary table's pages), with a pause after each (see
    :data:`YIELD_SHARE`): the target may be shared tables that other tenants are using."""
    batch = batch or COPY_BATCH
    target.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(spec.name)))
    temp = _temp_like(target, spec, spec.columns)
    select = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(spec.cols(), sql.Identifier(spec.name), spec.key_cols())
    rows = _stream(source, select, target, temp)
    if rows <= batch:
        return _insert_from(target, spec, temp, upsert=False)
    pages = target.execute(
        "SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::int", (temp.as_string(target),)
    ).fetchone()[0]  # type: ignore[index]
    step = max(1, pages * batch // rows)
    copied = 0
    for first in range(0, max(pages, 1), step):
        started = time.monotonic()
        last = first + step if first + step < pages else None  # the last range is open: no row is left out
        copied += _insert_from(target, spec, temp, upsert=False, pages=(first, last))
        pause_after(started)
    return copied


#: the prefix of a checksum in its current form (see :func:`checksum`)
CHECKSUM_V2 = "v2:"
#: the built-in types whose values are hashed as they are (their hash functions are the same
#: on every server and database); any other column is hashed as its text form. Enums are not
#: among them: an enum value hashes by its OID, which differs from one schema's type to another
NATIVE_HASH_TYPES = frozenset(
    {
        "bigint", "boolean", "bytea", "character", "character varying", "date", "double precision",
        "integer", "jsonb", "numeric", "real", "smallint", "text", "time without time zone",
        "timestamp with time zone", "timestamp without time zone", "uuid",
    }
)  # fmt: skip
_COLUMN_TYPES = """
SELECT a.attname, format_type(a.atttypid, NULL)
  FROM pg_attribute a
 WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
"""


_TYPE_NAME = re.compile(r"(?P<head>[a-z ]+?)(?:\((?P<mod>\d+(?:,\d+)?)\))?(?P<tail>(?: with(?:out)? time zone)?)")


def hashed_as_is(type_name: str) -> bool:
    """Whether a column of ``type_name`` (as ``format_type`` prints it, with or without its
    modifier) is hashed as it is by :func:`checksum`, rather than as its text form. Only an
    exact name of :data:`NATIVE_HASH_TYPES`, with a numeric modifier at most, says yes."""
    found = _TYPE_NAME.fullmatch(type_name)
    return found is not None and (found["head"] + found["tail"]) in NATIVE_HASH_TYPES


def checksum(
    conn: psycopg.Connection[Any], spec: TableSpec, keys: sql.Composable | None = None, *, like: str | None = None
) -> tuple[int, str]:
    """``(rows, checksum)`` of the bound tenant's rows (of those whose key ``keys`` selects).

    The checksum is the sum over the rows of a 64-bit hash of each row
    (``hash_record_extended``): independent of row order, one pass over the table with no
    sort. A column of a common built-in type (:data:`NATIVE_HASH_TYPES`) is hashed as it is,
    any other as its text form, so the checksum compares across placements (an enum of each
    schema's own) and servers. ``like``: a checksum taken earlier (a backup's manifest), to
    take this one the same way: archives written before 2026-12-08 carry the older form, the
    sum of each row's ``md5(ROW(...)::text)`` as two 64-bit halves, which costs the server
    about eight times as much.
    """
    rows: sql.Composable = sql.Identifier(spec.name)
    if keys is not None:
        rows = sql.SQL("{} JOIN ({}) k USING ({})").format(rows, keys, spec.key_cols())
    if like is not None and not like.startswith(CHECKSUM_V2):
        query = sql.SQL(
            "SELECT count(*), coalesce(sum(('x' || left(h, 16))::bit(64)::bigint::numeric), 0)::text"
            " || '/' || coalesce(sum(('x' || right(h, 16))::bit(64)::bigint::numeric), 0)::text"
            " FROM (SELECT md5(ROW({columns})::text) AS h FROM {rows}) hashed"
        )
        columns = sql.SQL(", ").join(sql.Identifier(spec.name, c) for c in spec.columns)
    else:
        query = sql.SQL(
            "SELECT count(*), {prefix} || coalesce(sum(hash_record_extended(ROW({columns}), 0)), 0)::text FROM {rows}"
        )
        if len(spec.types) == len(spec.columns):  # (a placement's spec: no query for its types)
            types = dict(zip(spec.columns, spec.types, strict=True))
        else:
            types = dict(conn.execute(_COLUMN_TYPES, (sql.Identifier(spec.name).as_string(conn),)).fetchall())
        columns = sql.SQL(", ").join(
            sql.Identifier(spec.name, c)
            if hashed_as_is(types.get(c, "text"))
            else sql.SQL("{}::text").format(sql.Identifier(spec.name, c))
            for c in spec.columns
        )
    row = conn.execute(query.format(prefix=sql.Literal(CHECKSUM_V2), columns=columns, rows=rows)).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def counts(conn: psycopg.Connection[Any], specs: list[TableSpec]) -> list[int]:
    """The bound tenant's rows in each of ``specs``' tables, in one query."""
    if not specs:
        return []
    row = conn.execute(
        sql.SQL("SELECT {}").format(
            sql.SQL(", ").join(sql.SQL("(SELECT count(*) FROM {})").format(sql.Identifier(s.name)) for s in specs)
        )
    ).fetchone()
    assert row is not None
    return [int(n) for n in row]


@dataclass(frozen=True, slots=True)
class Changes:
    """What one round of :func:`apply_changes` copied: the keys it saw, per table, as a query
    on each side (valid until the round's transactions end)."""

    found: int
    keys: dict[str, tuple[sql.Composable, sql.Composable]]
    """table -> (select of the keys on the source, select of the keys on the target)"""


def apply_changes(
    source: psycopg.Connection[Any], target: psycopg.Connection[Any], specs: list[TableSpec], tenant_id: str
) -> Changes:
    """Copy again the rows the tenant changed since :func:`capture_changes` (or the last round).

    ``source`` runs in a repeatable-read transaction: the log entries it takes (and deletes)
    and the rows it reads come from one snapshot, so a change committed later stays logged for
    the next round. Commit ``target`` before ``source``: a crash in between leaves the entries
    logged and the next round copies them again (the copy is idempotent). Deletes run children
    first and upserts parents first, so foreign keys hold at every statement.
    """
    changed = _temp(source, "table_name text, key jsonb")
    source.execute(
        sql.SQL(
            "WITH taken AS (DELETE FROM tenantry.move_changes WHERE tenant_id = %s RETURNING table_name, key)"
            " INSERT INTO {} SELECT DISTINCT table_name, key FROM taken"
        ).format(changed),
        (tenant_id,),
    )
    counts = dict(
        source.execute(sql.SQL("SELECT table_name, count(*) FROM {} GROUP BY table_name").format(changed)).fetchall()
    )
    touched = [spec for spec in specs if counts.get(spec.name)]
    staged: dict[str, tuple[sql.Identifier, sql.Identifier]] = {}
    seen: dict[str, tuple[sql.Composable, sql.Composable]] = {}
    for spec in touched:
        keys_sql = sql.SQL(
            "SELECT {} FROM {} c, jsonb_populate_record(NULL::{}, c.key) r WHERE c.table_name = {}"
        ).format(
            sql.SQL(", ").join(sql.Identifier("r", k) for k in spec.key),
            changed,
            sql.Identifier(spec.name),
            sql.Literal(spec.name),
        )
        keys = _temp_like(target, spec, spec.key)
        _stream(source, keys_sql, target, keys)
        rows = _temp_like(target, spec, spec.columns)
        rows_sql = sql.SQL("SELECT {} FROM {} JOIN ({}) k USING ({})").format(
            sql.SQL(", ").join(sql.Identifier(spec.name, c) for c in spec.columns),
            sql.Identifier(spec.name),
            keys_sql,
            spec.key_cols(),
        )
        _stream(source, rows_sql, target, rows)
        staged[spec.name] = (keys, rows)
        seen[spec.name] = (keys_sql, sql.SQL("SELECT {} FROM {}").format(spec.key_cols(), keys))
    for spec in reversed(touched):
        keys, rows = staged[spec.name]
        same = sql.SQL(" AND ").join(sql.SQL("t.{0} = k.{0}").format(sql.Identifier(c)) for c in spec.key)
        still = sql.SQL(" AND ").join(sql.SQL("r.{0} = k.{0}").format(sql.Identifier(c)) for c in spec.key)
        target.execute(
            sql.SQL("DELETE FROM {} t USING {} k WHERE {} AND NOT EXISTS (SELECT 1 FROM {} r WHERE {})").format(
                sql.Identifier(spec.name), keys, same, rows, still
            )
        )
    for spec in touched:
        _insert_from(target, spec, staged[spec.name][1], upsert=True)
    return Changes(sum(counts.values()), seen)


def _temp(conn: psycopg.Connection[Any], columns: str) -> sql.Identifier:
    temp = sql.Identifier(f"tenantry_copy_{secrets.token_hex(6)}")
    conn.execute(sql.SQL("CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP").format(temp, sql.SQL(columns)))
    return temp


def sync_sequences(conn: psycopg.Connection[Any], schema: str, spec: TableSpec, *, shared: bool = False) -> None:
    """Advance the target's sequences past the copied ids, so new rows get fresh keys.

    ``shared``: the target is a shared (pooled) table, whose sequences other tenants draw
    from meanwhile. A sequence then only moves forward, by drawing values: ``setval`` could
    set it back below a value another tenant drew between the read and the write, and that
    tenant's next row would get a key it has already used (the mover's tenant is bound, so
    ``max`` reads its rows only)."""
    table = f'"{schema}"."{spec.name}"'
    owned = conn.execute(
        "SELECT a.attname, pg_get_serial_sequence(%s, a.attname) FROM pg_attribute a"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
        (table, table),
    ).fetchall()
    for column, seq in owned:
        if seq is None:
            continue
        top = sql.SQL("(SELECT max({}) FROM {})").format(sql.Identifier(column), sql.Identifier(schema, spec.name))
        if shared:
            _advance_shared(conn, seq, top)
        else:  # the tenant's own sequence: nobody else draws from it before the flip
            conn.execute(
                sql.SQL("SELECT setval(%s::regclass, greatest({}, pg_sequence_last_value(%s::regclass), 1))").format(
                    top
                ),
                (seq, seq),
            )


def _advance_shared(conn: psycopg.Connection[Any], seq: str, top: sql.Composable) -> None:
    """Draw values from ``seq`` until it has passed ``top`` (one draw when it has already)."""
    drawn, wanted = conn.execute(sql.SQL("SELECT nextval(%s::regclass), {}").format(top), (seq,)).fetchone()  # type: ignore[misc]
    if wanted is not None and wanted > drawn:
        conn.execute(
            "SELECT max(nextval(%s::regclass)) FROM generate_series(1, %s::bigint)", (seq, int(wanted) - int(drawn))
        )
