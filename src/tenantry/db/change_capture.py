"""The triggers of a tenant on the move, and its rows' removal from shared tables.

Before the bulk copy, :func:`capture_changes` installs triggers that log the keys of the rows
the tenant writes (``tenantry.move_changes``; :func:`tenantry.db.tenant_copy.apply_changes`
copies them again); for the last round, :func:`freeze_writes` refuses the tenant's writes in
the source, and :func:`thaw` lets them through again. DDL on a shared table takes its lock a
short wait at a time (:func:`_locking`), so it never queues other tenants' queries behind it.
:func:`delete_rows` removes a tenant's rows from shared tables in short batches.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from psycopg import sql

from tenantry.db import tenant_copy
from tenantry.db.binding import Signed
from tenantry.db.tenant_copy import TableSpec, act_as_tenant
from tenantry.errors import Conflict

__all__ = [
    "DELETE_BATCH",
    "FREEZE_LOCK_CLASS",
    "FREEZE_WAIT",
    "LOCK_PATIENCE",
    "LOCK_WAIT",
    "capture_changes",
    "delete_rows",
    "drop_move_triggers",
    "drop_tenant_triggers",
    "freeze_writes",
    "install_freeze",
    "tenant_triggers",
    "thaw",
]

#: how long one attempt at a shared table's lock waits in its queue (see :func:`_locking`)
LOCK_WAIT = "50ms"
#: how long a table's lock is tried for before the step gives up (a rerun goes on)
LOCK_PATIENCE = 120.0
#: rows deleted per transaction when a tenant leaves shared tables
DELETE_BATCH = 2000
#: advisory lock class of the freeze: (this class, hashtext(tenant id)), in the source's
#: database (see :func:`freeze_writes` and ``tenantry.move_frozen`` in ``sql/local.sql``)
FREEZE_LOCK_CLASS = 0x747A
#: how long one attempt at the freeze waits for the tenant's writes in flight; the tenant's
#: new writes are refused meanwhile, so an attempt that times out lets them through again
FREEZE_WAIT = "500ms"


def _trigger(tenant_id: str, kind: str) -> str:
    # one set per tenant, so tenants moving out of one shared table at once do not collide
    return f"tenantry_{kind}_{tenant_id.replace('-', '')}"


#: (trigger kind, timing and events, the row whose tenant decides, trigger function)
_Kinds = tuple[tuple[str, str, str, str], ...]
_CAPTURE: _Kinds = (
    ("capture_new", "AFTER INSERT OR UPDATE", "NEW", "capture_change"),
    ("capture_old", "AFTER UPDATE OR DELETE", "OLD", "capture_change"),
)
_FREEZE: _Kinds = (
    ("freeze_ins", "BEFORE INSERT", "NEW", "refuse_write_while_moving"),
    ("freeze_upd", "BEFORE UPDATE OR DELETE", "OLD", "refuse_write_while_moving"),
)


def _create_triggers(
    schema: str, table: str, tenant_id: str, kinds: _Kinds, args: Callable[[str, str], list[str]]
) -> sql.Composable:
    # CREATE OR REPLACE TRIGGER takes the table's SHARE ROW EXCLUSIVE lock (as CREATE does):
    # it waits for transactions writing the table, and lets every reader through
    return sql.SQL("; ").join(
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
            sql.SQL(", ").join(sql.Literal(a) for a in args(function, row)),
        )
        for kind, events, row, function in kinds
    )


def _own_transactions(conn: psycopg.Connection[Any]) -> None:
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        # a lock won in the caller's transaction would be kept while the next table's is
        # awaited: app transactions locking the tables in another order would then livelock
        raise AssertionError("move triggers are changed on an autocommit connection, outside any transaction")


def _locking(
    conn: psycopg.Connection[Any], owner: str, what: str, ddl: sql.Composable, *, wait: str = LOCK_WAIT
) -> None:
    """Run ``ddl`` (on one table) as ``owner`` in a short transaction of its own, sent in one
    round trip (no parameters: its values are quoted literals).

    The table's lock is awaited for ``wait`` at most: every writer (for a drop,
    every reader too) of the table queues behind a waiting DDL statement, so it gives way,
    pauses (growing, jittered) and tries again, up to :data:`LOCK_PATIENCE` seconds; then
    :class:`Conflict`. No other table's lock is held meanwhile.
    """
    statement = sql.SQL("BEGIN; SET LOCAL ROLE {}; SET LOCAL lock_timeout = {}; {}; COMMIT").format(
        sql.Identifier(owner), sql.Literal(wait), ddl
    )
    deadline = time.monotonic() + LOCK_PATIENCE
    pause = 0.01
    while True:
        try:
            conn.execute(statement)
            return
        except psycopg.errors.LockNotAvailable as err:
            conn.execute("ROLLBACK")
            if time.monotonic() + pause > deadline:
                raise Conflict(
                    f"{what}: the table stayed locked by other transactions for {LOCK_PATIENCE:g} s; run it again"
                ) from err
            time.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 2, 0.5)
        except BaseException:
            if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                conn.execute("ROLLBACK")
            raise


def _install(
    conn: psycopg.Connection[Any],
    schema: str,
    specs: Iterable[TableSpec],
    tenant_id: str,
    kinds: _Kinds,
    args: Callable[[TableSpec, str, str], list[str]],
    owner: str,
) -> None:
    """Create ``kinds`` of triggers on every table, one table per transaction; on failure the
    ones created are dropped again (nothing keeps firing on other tenants' writes)."""
    _own_transactions(conn)
    done: list[str] = []
    try:
        for spec in specs:
            _locking(
                conn,
                owner,
                f"installing move triggers on {schema}.{spec.name}",
                _create_triggers(schema, spec.name, tenant_id, kinds, lambda function, row: args(spec, function, row)),  # noqa: B023 - called here
            )
            done.append(spec.name)
    except BaseException:
        for table in done:
            try:
                _drop(conn, schema, table, [_trigger(tenant_id, kind) for kind, *_ in kinds], owner)
            except Exception:  # noqa: BLE001 - the first error is the one to report; a rerun drops the rest
                break
        raise


def capture_changes(
    conn: psycopg.Connection[Any], schema: str, specs: Iterable[TableSpec], tenant_id: str, *, owner: str
) -> None:
    """Log the keys of the tenant's rows of ``schema``'s tables written from now on (into
    ``tenantry.move_changes``, for :func:`apply_changes`); other tenants' writes are not logged.
    The freeze's triggers go in with them: they refuse nothing until :func:`freeze_writes`.

    ``conn`` is autocommit: each table gets its triggers in a transaction of its own, which
    waits for the transactions writing that table, so every write to it that commits after
    this returns is logged. Copy only after this returns (then every table logs).
    """

    def args(spec: TableSpec, function: str, row: str) -> list[str]:
        if function == "refuse_write_while_moving":
            return [owner, tenant_id, str(FREEZE_LOCK_CLASS)]
        return [tenant_id, row.lower(), *spec.key]

    thaw(conn, tenant_id, owner=owner)  # a freeze an earlier move left would refuse at once
    _install(conn, schema, specs, tenant_id, _CAPTURE + _FREEZE, args, owner)


def install_freeze(
    conn: psycopg.Connection[Any],
    schema: str,
    specs: Iterable[TableSpec],
    tenant_id: str,
    *,
    owner: str,
    function: str = "refuse_write_while_moving",
) -> None:
    """The freeze's triggers alone (no change capture), calling ``function`` (a trigger
    function of the same arguments as ``tenantry.refuse_write_while_moving``, whose error the
    tenant's refused writes get): they refuse nothing until :func:`freeze_writes`. A restore
    in place uses them; :func:`drop_tenant_triggers` drops them."""
    kinds = tuple((kind, events, row, function) for kind, events, row, _ in _FREEZE)
    thaw(conn, tenant_id, owner=owner)
    _install(
        conn, schema, specs, tenant_id, kinds, lambda _s, _f, _r: [owner, tenant_id, str(FREEZE_LOCK_CLASS)], owner
    )


def freeze_writes(conn: psycopg.Connection[Any], tenant_id: str, *, owner: str) -> None:
    """Refuse the tenant's writes to ``conn``'s database, every table at once (other tenants
    write on, and the ``owner`` role, which the mover acts as, passes); the triggers
    :func:`capture_changes` put in do it.

    One short transaction: it takes the freeze's advisory lock, which waits for the tenant's
    transactions that wrote already (the triggers hold it shared until they end) while its new
    writes are refused, and records the freeze (``tenantry.move_freezes``), which outlives
    the mover. The freeze is complete (no write of the tenant can slip past it) when this
    returns. ``conn`` is autocommit and holds the lock until it is closed: keep it open until the copy is gone, so that no transaction whose snapshot
    predates the record writes meanwhile.
    """
    _own_transactions(conn)
    _locking(
        conn,
        owner,
        "freezing the tenant's writes",
        sql.SQL(
            "SELECT pg_advisory_lock({}, hashtext({})); "
            "INSERT INTO tenantry.move_freezes (tenant_id) VALUES ({}) ON CONFLICT DO NOTHING"
        ).format(sql.Literal(FREEZE_LOCK_CLASS), sql.Literal(tenant_id), sql.Literal(tenant_id)),
        wait=FREEZE_WAIT,
    )


def thaw(conn: psycopg.Connection[Any], tenant_id: str, *, owner: str) -> None:
    """Undo :func:`freeze_writes`'s record in ``conn``'s database (its lock goes with the
    connection that holds it)."""
    _own_transactions(conn)
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
        conn.execute("DELETE FROM tenantry.move_freezes WHERE tenant_id = %s", (tenant_id,))


def forget_moves(conn: psycopg.Connection[Any], tenant_id: uuid.UUID, *, freezes: bool = True) -> None:
    """Forget what moves of the tenant logged in ``conn``'s database (the keys of its changed
    rows) and, with ``freezes``, its freeze record."""
    conn.execute("DELETE FROM tenantry.move_changes WHERE tenant_id = %s", (tenant_id,))
    if freezes:
        conn.execute("DELETE FROM tenantry.move_freezes WHERE tenant_id = %s", (tenant_id,))


def _drop(conn: psycopg.Connection[Any], schema: str, table: str, names: list[str], owner: str) -> None:
    present = [
        name
        for (name,) in conn.execute(
            "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s AND t.tgname = ANY(%s)",
            (schema, table, names),
        ).fetchall()
    ]
    if not present:
        return

    ddl = sql.SQL("; ").join(
        sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(name), sql.Identifier(schema, table))
        for name in present
    )
    _locking(conn, owner, f"dropping move triggers from {schema}.{table}", ddl)


def drop_move_triggers(
    conn: psycopg.Connection[Any],
    schema: str,
    tables: Iterable[str],
    tenant_id: str,
    *,
    owner: str,
    capture: bool = True,
    freeze: bool = True,
) -> None:
    """Drop a move's triggers from ``schema``'s ``tables``; touches (and locks) a table only
    when one is there.

    Dropping a trigger takes the table's ACCESS EXCLUSIVE lock, which every other tenant of a
    shared table queues behind: ``conn`` is autocommit, and each table's drops are one short
    transaction that gives way after a moment's wait and tries again (:func:`_locking`), so
    the mover never holds one table while it waits for another.
    """
    _own_transactions(conn)
    kinds = (_CAPTURE if capture else ()) + (_FREEZE if freeze else ())
    names = [_trigger(tenant_id, kind) for kind, *_ in kinds]
    for table in tables:
        _drop(conn, schema, table, names, owner)


def delete_rows(
    conn: psycopg.Connection[Any], schema: str, table: str, *, owner: str, signed: Signed, batch: int = DELETE_BATCH
) -> int:
    """Delete the tenant's rows of ``schema.table`` (``signed`` binds it, as for
    :func:`act_as_tenant`) ``batch`` rows per transaction, so no row lock is held for long;
    returns the rows deleted. ``conn`` is autocommit."""
    _own_transactions(conn)
    ident = sql.Identifier(schema, table)
    query = sql.SQL("DELETE FROM {} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {} WHERE tenant_id = %s LIMIT %s))").format(
        ident, ident
    )
    total = 0
    while True:
        started = time.monotonic()
        with conn.transaction():
            act_as_tenant(conn, owner=owner, signed=signed)
            n = conn.execute(query, (signed[0], batch)).rowcount
        total += n
        if n < batch:
            return total
        tenant_copy.pause_after(started)  # (through the module: tests slow it down there)


def drop_tenant_triggers(
    conn: psycopg.Connection[Any], tenant_id: str, *, owner: str, schema: str | None = None
) -> None:
    """Drop every move trigger of the tenant in ``conn``'s database (of ``schema`` only, if
    given), wherever a mover with whatever tables put them; one table per transaction. A
    table that stays locked does not keep the others' triggers: the first failure is raised
    once every table was tried."""
    by_table: dict[tuple[str, str], list[str]] = {}
    for nsp, table, trigger in tenant_triggers(conn, tenant_id):
        if schema is None or nsp == schema:
            by_table.setdefault((nsp, table), []).append(trigger)
    _own_transactions(conn)
    failed: Exception | None = None
    for (nsp, table), names in sorted(by_table.items()):
        try:
            _drop(conn, nsp, table, names, owner)
        except Exception as err:  # noqa: BLE001 - raised below, after the other tables
            failed = failed or err
    if failed is not None:
        raise failed


def tenant_triggers(conn: psycopg.Connection[Any], tenant_id: str) -> list[tuple[str, str, str]]:
    """``(schema, table, trigger)`` of every move trigger of the tenant in ``conn``'s database."""
    names = [_trigger(tenant_id, kind) for kind, *_ in _CAPTURE + _FREEZE]
    return [
        (n, c, t)
        for n, c, t in conn.execute(
            "SELECT n.nspname, c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE t.tgname = ANY(%s) ORDER BY 1, 2, 3",
            (names,),
        ).fetchall()
    ]
