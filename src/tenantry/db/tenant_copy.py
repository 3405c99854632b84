"""Copying one tenant's rows between placements: bulk copy, change capture, checksums, freeze.

The mover works on admin connections acting as the owner role with the tenant bound
(:func:`act_as_tenant`), so row-level security confines every read and write to the tenant
even here. Rows travel with binary COPY through a temporary table (PostgreSQL has no
``COPY FROM`` into tables under RLS).

While the bulk copy runs, the tenant keeps writing: triggers installed before it
(:func:`capture_changes`) log the keys of the rows the tenant writes, and
:func:`apply_changes` copies those rows again, round after round, until little is left. Only
then are the tenant's writes frozen (:func:`freeze_writes`) for the last round and the
checksums, so the write block does not grow with the tenant's size.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql

from tenantry.db.binding import Signed

__all__ = [
    "Changes",
    "TableSpec",
    "act_as_tenant",
    "apply_changes",
    "bulk_copy",
    "capture_changes",
    "checksum",
    "count",
    "drop_move_triggers",
    "freeze_writes",
    "specs",
    "sync_sequences",
]

_DROP_ATTEMPTS = 100


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


def checksum(conn: psycopg.Connection[Any], spec: TableSpec, keys: sql.Composable | None = None) -> tuple[int, str]:
    """``(rows, checksum)`` of the bound tenant's rows (of those whose key ``keys`` selects).

    The checksum is the sum of the rows' md5 hashes taken as two 64-bit halves: independent of
    row order, so one pass over the table with no sort (half the time of hashing in key order).
    """
    rows: sql.Composable = sql.Identifier(spec.name)
    if keys is not None:
        rows = sql.SQL("{} JOIN ({}) k USING ({})").format(rows, keys, spec.key_cols())
    row = conn.execute(
        sql.SQL(
            "SELECT count(*), coalesce(sum(('x' || left(h, 16))::bit(64)::bigint::numeric), 0)::text"
            " || '/' || coalesce(sum(('x' || right(h, 16))::bit(64)::bigint::numeric), 0)::text"
            " FROM (SELECT md5(ROW({})::text) AS h FROM {}) hashed"
        ).format(sql.SQL(", ").join(sql.Identifier(spec.name, c) for c in spec.columns), rows)
    ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def count(conn: psycopg.Connection[Any], spec: TableSpec) -> int:
    """The bound tenant's rows in ``spec``'s table."""
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(spec.name))).fetchone()
    assert row is not None
    return int(row[0])


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
        keys_sql = sql.SQL("SELECT {} FROM {} c, jsonb_populate_record(NULL::{}, c.key) r WHERE c.table_name = {}").format(
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


def _trigger(tenant_id: str, kind: str) -> str:
    # one set per tenant, so tenants moving out of one shared table at once do not collide
    return f"tenantry_{kind}_{tenant_id.replace('-', '')}"


#: (trigger kind, timing and events, the row whose tenant decides, trigger function)
_CAPTURE = (
    ("capture_new", "AFTER INSERT OR UPDATE", "NEW", "capture_change"),
    ("capture_old", "AFTER UPDATE OR DELETE", "OLD", "capture_change"),
)
_FREEZE = (
    ("freeze_ins", "BEFORE INSERT", "NEW", "refuse_write_while_moving"),
    ("freeze_upd", "BEFORE UPDATE OR DELETE", "OLD", "refuse_write_while_moving"),
)


def _create_triggers(
    conn: psycopg.Connection[Any],
    schema: str,
    table: str,
    tenant_id: str,
    kinds: tuple[tuple[str, str, str, str], ...],
    args: dict[str, list[str]],
) -> None:
    # CREATE OR REPLACE TRIGGER takes the table's SHARE ROW EXCLUSIVE lock (as CREATE does):
    # it waits for transactions writing the table, and lets every reader through
    for kind, events, row, function in kinds:
        conn.execute(
            sql.SQL(
                "CREATE OR REPLACE TRIGGER {} {} ON {} FOR EACH ROW WHEN ({}.tenant_id = {})"
                " EXECUTE FUNCTION tenantry.{}({})"
            ).format(
                sql.Identifier(_trigger(tenant_id, kind)),
                sql.SQL(events),
                sql.Identifier(schema, table),
                sql.SQL(row),
                sql.Literal(tenant_id),
                sql.Identifier(function),
                sql.SQL(", ").join(sql.Literal(a) for a in args[row]),
            )
        )


def capture_changes(conn: psycopg.Connection[Any], schema: str, spec: TableSpec, tenant_id: str) -> None:
    """Log the keys of the tenant's rows of ``schema.spec`` written from now on (into
    ``tenantry.move_changes``, for :func:`apply_changes`); other tenants' writes are not logged.

    Creating the triggers waits for transactions writing the table, so every write that
    commits after this commits is logged.
    """
    keys = list(spec.key)
    args = {"NEW": [tenant_id, "new", *keys], "OLD": [tenant_id, "old", *keys]}
    _create_triggers(conn, schema, spec.name, tenant_id, _CAPTURE, args)


def freeze_writes(conn: psycopg.Connection[Any], schema: str, table: str, tenant_id: str, *, owner: str) -> None:
    """Refuse the tenant's writes to ``schema.table`` (a trigger; other tenants write on, and
    the ``owner`` role, which the mover acts as, passes).

    Creating the trigger waits for transactions writing the table to finish, so once this
    commits no write of the tenant can slip past it.
    """
    _create_triggers(conn, schema, table, tenant_id, _FREEZE, {"NEW": [owner], "OLD": [owner]})


def drop_move_triggers(
    conn: psycopg.Connection[Any], schema: str, table: str, tenant_id: str, *, capture: bool = True, freeze: bool = True
) -> None:
    """Drop a move's triggers from ``schema.table``; touches (and locks) the table only when
    one is there.

    Dropping a trigger takes the table's ACCESS EXCLUSIVE lock, which every other tenant of a
    shared table queues behind: each drop is its own short transaction (a savepoint when the
    caller holds one open) that gives up after a moment's wait and tries again, so it never
    parks in the lock queue in front of the other tenants behind a long reader.
    """
    kinds = (_CAPTURE if capture else ()) + (_FREEZE if freeze else ())
    names = [_trigger(tenant_id, kind) for kind, *_ in kinds]
    present = [
        name
        for (name,) in conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname = ANY(%s)",
            (f'"{schema}"."{table}"', names),
        ).fetchall()
    ]
    for name in present:
        for attempt in itertools.count():
            try:
                with conn.transaction():
                    conn.execute("SET LOCAL lock_timeout = '100ms'")
                    conn.execute(
                        sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                            sql.Identifier(name), sql.Identifier(schema, table)
                        )
                    )
                    conn.execute("SET LOCAL lock_timeout TO DEFAULT")  # outlives a savepoint
                break
            except psycopg.errors.LockNotAvailable:
                if attempt >= _DROP_ATTEMPTS:
                    raise
                time.sleep(min(0.05 * (attempt + 1), 0.5))
