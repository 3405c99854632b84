"""Binding the tenant to each transaction, at no extra round trip.

Every transaction a tenant-bound connection runs starts with one libpq pipeline, flushed
as one network write and answered in one round trip::

    BEGIN
    EXECUTE tenantry_bind ($1, $2, $3, $4, $5)   -- prepared once per connection, in the pipeline:
    SELECT set_config('tenantry.tenant_id', $1, true),
           set_config('tenantry.tenant_sig', $2, true),
           set_config('search_path', $3, true),
           set_config('tenantry.tenant_schema', $4, true),
           set_config('tenantry.tenant_epoch', $5, true),
           tenantry.check_binding($1, $5)   -- refuses a binding older than a fence

sent in place of the ``BEGIN`` psycopg would otherwise send on its own, so binding the tenant
costs no round trip. Usually the transaction's first statement rides in the same pipeline
(:func:`fused_gen`, used by :mod:`tenantry.db.connections`): a one-query transaction then makes
two round trips where psycopg alone makes three. The signature covers the tenant's epoch: a binding made before the tenant
moved or was suspended is refused by the database (:class:`~tenantry.errors.TenantMoved`,
:class:`~tenantry.errors.TenantSuspended`), in every process, from its next statement on.

Hand-over. A connection handed back to a pool may carry session state its borrower left: a
temporary table, a holdable cursor, session settings (tenantry's own among them), LISTEN, an
advisory lock, ``lastval()``, a statement prepared from SQL. None of it is covered by RLS. The
pools mark a returned connection (:func:`mark_returned`, no I/O), and the next use resets its
session with ``tenantry.reset_session()`` before anything else runs: folded into the first
bind's pipeline, ahead of its ``BEGIN`` (so still one round trip), or, if the borrower's first
statement escapes the binder (a raw cursor, ``raw_connection()``), run on its own just before
it. The connections remember which transaction tenantry bound; one opened by a statement
outside tenantry is never taken for bound. The values travel as bound parameters: they never appear in query text,
so ``pg_stat_activity`` shows no other session's signature to replay. Everything is
transaction-local (``is_local = true``): it ends with the transaction, commit or rollback, and
nothing survives into the next use of a pooled connection (safe behind PgBouncer in
transaction mode). ``search_path`` puts ``pg_temp`` last, so a temporary table a previous user
of the connection left behind cannot shadow an app table. With no tenant bound,
``tenantry.tenant_id`` is the empty string: reads return nothing, inserts fail.

The signature (see ``0001_catalog.sql``) is why SQL running as the runtime role cannot bind a
tenant of its choosing: it cannot read the key.

The protocol is a generator that says what it waits for (:func:`begin_gen`, :func:`fused_gen`);
:func:`begin` and :func:`abegin` do the waiting, blocking or through the event loop, and
psycopg's own wait drives them inside a statement. Two integrations use them:
:class:`~tenantry.db.connections.TenantConnection` (raw psycopg through psycopg_pool, and the
connections SQLAlchemy engines are made of) and the SQLAlchemy event hooks in
:mod:`tenantry.db.alchemy`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator
from typing import Any, NamedTuple, TypeVar

import psycopg
from psycopg import pq, waiting

from tenantry.context import BoundTenant
from tenantry.core.metering import Meter
from tenantry.db.connect import stale_binding
from tenantry.db.local import ContextKeys
from tenantry.errors import DatabaseUnavailable, IsolationError

__all__ = [
    "CONTROL_EPOCH",
    "RouteKey",
    "Binder",
    "Statement",
    "abegin",
    "begin",
    "begin_gen",
    "fused_gen",
    "Signed",
    "areset_now",
    "mark_returned",
    "reset_due",
    "reset_now",
]

_IDLE = pq.TransactionStatus.IDLE
_CACHE_SIZE = 4096
_BEGIN = b"BEGIN"
_BIND_SQL = (
    b"SELECT set_config('tenantry.tenant_id', $1, true),"
    b" set_config('tenantry.tenant_sig', $2, true),"
    b" set_config('search_path', $3, true),"
    b" set_config('tenantry.tenant_schema', $4, true),"
    b" set_config('tenantry.tenant_epoch', $5, true),"
    b" tenantry.check_binding($1, $5)"
)
# (prepared statement name, text): parsed once per connection, then only bound and executed
_BIND = (b"tenantry_bind", _BIND_SQL)
# in a database-tier tenant's own database, the marker must name the tenant being bound
_BIND_OWN_DATABASE = (b"tenantry_bind_marker", _BIND_SQL + b", tenantry.check_marker($1)")
_RESET = b"SELECT tenantry.reset_session()"
_COMMIT = b"COMMIT"
#: the epoch control-plane work signs with: above every fence (only tenantry holds the key)
CONTROL_EPOCH = 2**63 - 1
_UNDEFINED_STATEMENT = b"26000"  # the prepared statement is gone (DISCARD ALL, DEALLOCATE)
_DUPLICATE_STATEMENT = b"42P05"  # it exists though we did not know (a lost Parse result)
# what the protocol generators yield: psycopg's own wait states, so that psycopg's (C) wait
# functions can drive them
_WAIT_READ, _WAIT_WRITE = waiting.WAIT_R, waiting.WAIT_W
# how long one wait on the socket blocks before waking (as psycopg's own Connection.wait): the
# wait functions' default, 0, polls, so a bind waiting for the server would spin on a core
_WAIT_INTERVAL = 0.1

_T = TypeVar("_T")
Params = list[bytes | None]
Statement = tuple[tuple[bytes, bytes], Params]


class Signed(NamedTuple):
    """A tenant context as the ``tenantry.*`` settings take it (see :meth:`Binder.signed`)."""

    tenant_id: str
    schema: str
    epoch: str
    signature: str


def _search_path(schema: str) -> bytes:
    quoted = '"' + schema.replace('"', '""') + '"'
    return f"{quoted}, public, pg_temp".encode()


class Binder:
    """Builds the statement that binds a tenant; shared by all connections of a Tenantry."""

    def __init__(self, keys: ContextKeys, default_schema: str, *, meter: Meter | None = None) -> None:
        self.keys = keys
        self.meter = meter  #: where bound transactions are counted (``tn.usage``), or None
        self._default_schema = default_schema
        self._unbound: Statement = (_BIND, [b"", b"", _search_path(default_schema), b"", b""])
        # by value, and by identity: the scopes of a cached tenant hand out one BoundTenant
        # object, and a dataclass hashes its fields (the route's too) at every lookup; an
        # identity entry holds the object, so its id is not reused while the entry lives.
        # Both are emptied when full (plain dicts: safe to share between threads)
        self._by_value: dict[BoundTenant, Statement] = {}
        self._same: dict[int, tuple[BoundTenant, Statement]] = {}

    def signed(self, tenant_id: uuid.UUID, schema: str, epoch: int = CONTROL_EPOCH) -> Signed:
        """The context as the ``tenantry.*`` settings take it: the signature covers the schema
        the tenant's rows live in and the epoch the binding was made at. Control-plane work
        (the default epoch) passes every fence."""
        ident = str(tenant_id)
        return Signed(ident, schema, str(epoch), self.keys.sign(f"{ident}/{schema}/{epoch}"))

    def statement(self, bound: BoundTenant | None) -> Statement:
        """The bind statement and its parameters for ``bound`` (``None``: no tenant)."""
        if bound is None:
            return self._unbound
        same = self._same.get(id(bound))
        if same is not None and same[0] is bound:
            return same[1]
        statement = self._by_value.get(bound)
        if statement is None:
            statement = self._make(bound)
            if len(self._by_value) >= _CACHE_SIZE:
                self._by_value.clear()
            self._by_value[bound] = statement
        if len(self._same) >= _CACHE_SIZE:
            self._same.clear()
        self._same[id(bound)] = (bound, statement)
        return statement

    def _make(self, bound: BoundTenant) -> Statement:
        route = bound.route
        schema = route.schema if route is not None else self._default_schema
        signed = self.signed(bound.id, schema, bound.epoch)
        query = _BIND_OWN_DATABASE if route is not None and route.own_database else _BIND
        if bound.settings:
            query = _with_settings(query, tuple(name for name, _value in bound.settings))
        values = [signed.tenant_id, signed.signature]
        after = [schema, signed.epoch, *(value for _name, value in bound.settings)]
        return query, [*(v.encode() for v in values), _search_path(schema), *(v.encode() for v in after)]


#: the settings a plan may set (tenantry.core.limits.DATABASE_KEYS, and READ_ONLY over the
#: storage quota), by the short name their bind statement's name carries
_SETTING_CODES = {"statement_timeout": "st", "idle_in_transaction_session_timeout": "it", "work_mem": "wm"}
_SETTING_CODES["transaction_read_only"] = "ro"


def _with_settings(query: tuple[bytes, bytes], names: tuple[str, ...]) -> tuple[bytes, bytes]:
    """The bind statement ``query`` that also sets ``names`` transaction-locally, from the
    parameters after its five: its own prepared statement (one per combination in use).

    The settings go first in the select list, so the bind's own checks already run under them.
    Only names of :data:`_SETTING_CODES` get here (never input), each as a literal."""
    name, text = query
    sets = "".join(f"set_config('{setting}', ${6 + i}, true), " for i, setting in enumerate(names))
    suffix = "_".join(_SETTING_CODES[setting] for setting in names)
    return name + b"_" + suffix.encode(), text.replace(b"SELECT ", b"SELECT " + sets.encode(), 1)


class _Queue:
    """Statements queued in one pipeline, each parsed first if the connection has not parsed
    it yet; remembers which result answers which Parse."""

    def __init__(self, pgconn: pq.abc.PGconn, prepared: set[bytes]) -> None:
        self.pgconn = pgconn
        self.prepared = prepared
        self.parses: list[bytes | None] = []  # per result: the name a Parse gave, or None

    def add(self, statement: tuple[bytes, bytes], params: Params | None = None) -> None:
        name, text = statement
        if name not in self.prepared and name not in self.parses:
            self.pgconn.send_prepare(name, text)
            self.parses.append(name)
        self.pgconn.send_query_prepared(name, params)
        self.parses.append(None)

    def unnamed(self, text: bytes) -> None:
        """Queue ``text`` parsed anew: the reset's statements must be. A name the previous
        borrower's SQL could have re-prepared (``DEALLOCATE x; PREPARE x AS SELECT 1``) would
        let it skip the reset that undoes its session; a statement prepared by name after the
        reset (the bind) is safe, the reset deallocates every statement prepared from SQL."""
        self.pgconn.send_query_params(text, None)
        self.parses.append(None)

    def __len__(self) -> int:
        return len(self.parses)

    def note(self, results: list[pq.abc.PGresult]) -> None:
        """Remember the statements whose Parse succeeded (even if executing them failed), or
        that existed already (``42P05``: a Parse result lost earlier)."""
        for name, res in zip(self.parses, results, strict=False):
            if name is not None and (
                res.status in _OK or res.error_field(pq.DiagnosticField.SQLSTATE) == _DUPLICATE_STATEMENT
            ):
                self.prepared.add(name)


def _queue_bind(queue: _Queue, statement: Statement, reset: bool, begin: bytes) -> int:
    """Queue, in pipeline mode, what binds ``statement`` to a transaction begun with it: the
    reset (if ``reset``), in a transaction of its own, then ``begin`` (the connection's BEGIN,
    with its isolation level, read only and deferrable) and the bind. Nothing is sent yet.
    Returns how many results the reset gives (they come first)."""
    if reset:
        queue.unnamed(_BEGIN)
        queue.unnamed(_RESET)
        queue.unnamed(_COMMIT)
    resets = len(queue)
    queue.unnamed(begin)
    queue.add(statement[0], statement[1])
    return resets


def _begin_command(conn: psycopg.BaseConnection[Any]) -> bytes:
    """The BEGIN psycopg would send on ``conn``: its ``isolation_level``, ``read_only`` and
    ``deferrable`` (cached by psycopg until one of them changes)."""
    return conn._get_tx_start_command()


def _bind_gen(
    pgconn: pq.abc.PGconn, statement: Statement, prepared: set[bytes], reset: bool = False, begin: bytes = _BEGIN
) -> Generator[waiting.Wait, Any, tuple[list[pq.abc.PGresult], int]]:
    """Send (BEGIN if idle and) the bind statement in one pipeline; return the results and
    how many of them the reset gave (they come first).

    Each statement is parsed in the same pipeline the first time a connection uses it. With
    ``reset`` (an idle connection just handed over), the session is reset first, in a
    transaction of its own committed ahead of the BEGIN (``BEGIN; SELECT
    tenantry.reset_session(); COMMIT``), in the same pipeline segment: one network write, one
    answer, one wake-up.

    Why not simpler: without the COMMIT the reset would belong to the borrower's transaction,
    and a rollback would bring the previous borrower's session state back (and LISTEN, undone
    only at commit, would show the previous borrower's channels meanwhile); with a Sync of its
    own the server flushes its answer twice and the client wakes twice.
    """
    start = pgconn.transaction_status == _IDLE
    reset = reset and start
    # inside psycopg's own pipeline (``with conn.pipeline():``) the connection is in pipeline
    # mode already and psycopg leaves it: send our part up to its own sync, read it, stay in
    owned = pgconn.pipeline_status == pq.PipelineStatus.OFF
    if owned:
        pgconn.enter_pipeline_mode()
    try:
        queue = _Queue(pgconn, prepared)
        if start:
            resets = _queue_bind(queue, statement, reset, begin)
        else:  # a transaction a statement outside tenantry opened: bind within it
            resets = 0
            queue.add(statement[0], statement[1])
        pgconn.pipeline_sync()
        results = yield from _exchange(pgconn, pipeline=True)
        queue.note(results)
        return results, resets
    finally:
        if owned:
            _leave_pipeline(pgconn)


def _leave_pipeline(pgconn: pq.abc.PGconn) -> None:
    if pgconn.pipeline_status != pq.PipelineStatus.OFF:
        try:
            pgconn.exit_pipeline_mode()
        except psycopg.OperationalError:
            pass  # results left unread on a broken connection: it is discarded anyway


def _reset_gen(pgconn: pq.abc.PGconn) -> Generator[waiting.Wait, Any, list[pq.abc.PGresult]]:
    """Reset an idle connection's session on its own (before a statement that escapes the
    binder)."""
    pgconn.send_query_params(_RESET, None)
    return (yield from _exchange(pgconn, pipeline=False))


_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)


def _prepared(conn: psycopg.BaseConnection[Any]) -> set[bytes]:
    """The bind statements this connection has parsed (kept on the connection object)."""
    found: set[bytes] | None = getattr(conn, "_tenantry_prepared", None)
    if found is None:
        found = set()
        conn._tenantry_prepared = found  # type: ignore[attr-defined]
    return found


def _failed(results: list[pq.abc.PGresult]) -> bool:
    return any(r.status not in _OK for r in results)


def _statement_state(results: list[pq.abc.PGresult]) -> bytes | None:
    """``26000`` when one of tenantry's statements was deallocated behind its back (``DEALLOCATE
    ALL``, ``DISCARD ALL``), ``42P05`` when one existed though tenantry thought not; ``None``
    otherwise."""
    for r in results:
        state = r.error_field(pq.DiagnosticField.SQLSTATE)
        if state in (_UNDEFINED_STATEMENT, _DUPLICATE_STATEMENT):
            return state
    return None


def _lost_statements(
    pgconn: pq.abc.PGconn, results: list[pq.abc.PGresult], prepared: set[bytes]
) -> Generator[waiting.Wait, Any, bool]:
    """Whether a pipeline failed because tenantry's prepared statements were lost or
    duplicated; if so, roll back what it began and forget them, ready to send it again."""
    state = _statement_state(results)
    if state is None:
        return False
    if state == _UNDEFINED_STATEMENT:
        prepared.clear()
    if pgconn.transaction_status != _IDLE:
        yield from _rollback_gen(pgconn)
    return True


def _check(results: list[pq.abc.PGresult], conn: psycopg.BaseConnection[Any]) -> None:
    for res in results:
        if res.status not in _OK:
            message = (res.error_message or b"").decode(errors="replace").strip()
            if conn.pgconn.status != pq.ConnStatus.OK:
                raise DatabaseUnavailable(f"connection lost while binding the tenant: {message}")
            primary = (res.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"").decode(errors="replace")
            state = (res.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()
            stale = stale_binding(state, primary)
            if stale is not None:  # a fence refused a binding made before a move or suspension
                raise stale
            if primary.startswith("tenantry:"):  # the marker or the context refused the tenant
                raise IsolationError(primary.removeprefix("tenantry: "))
            raise psycopg.DatabaseError(f"binding the tenant failed: {message}")


def begin_gen(
    conn: psycopg.BaseConnection[Any], statement: Statement, reset: bool
) -> Generator[waiting.Wait, Any, None]:
    """Bind ``statement`` to ``conn``'s transaction, starting one if none is open (after the
    hand-over reset, with ``reset``): the protocol, to run inside a wait that holds the
    connection's lock."""
    prepared = _prepared(conn)
    pgconn = conn.pgconn
    begin = _begin_command(conn)
    results, resets = yield from _guarded(_bind_gen(pgconn, statement, prepared, reset, begin))
    if (yield from _guarded(_lost_statements(pgconn, results, prepared))):
        results, resets = yield from _guarded(_bind_gen(pgconn, statement, prepared, reset, begin))
    _check(_after_reset(conn, results, resets), conn)


def fused_gen(
    conn: psycopg.BaseConnection[Any], statement: Statement, reset: bool, send: Callable[[], None]
) -> Generator[waiting.Wait, Any, list[pq.abc.PGresult] | None]:
    """Begin a transaction bound by ``statement`` and run its first statement, in one round trip.

    In one pipeline: (the hand-over reset,) ``BEGIN``, the bind, then whatever ``send`` queues
    (the statement's Parse and execution, through the extended protocol), one Sync. Returns the
    results of what ``send`` queued. A bind the database refuses raises its typed error, as
    :func:`begin` would. If tenantry's prepared statements were deallocated behind its back,
    the transaction is bound again on its own and ``None`` is returned: send the statement
    again. The connection must be idle, outside pipeline mode.
    """
    prepared = _prepared(conn)
    pgconn = conn.pgconn
    pgconn.enter_pipeline_mode()
    try:
        queue = _Queue(pgconn, prepared)
        resets = _queue_bind(queue, statement, reset, _begin_command(conn))
        own = len(queue)
        send()
        pgconn.pipeline_sync()
        results = yield from _exchange(pgconn, pipeline=True)
    except psycopg.OperationalError as err:
        raise DatabaseUnavailable(f"connection lost while binding the tenant: {err}") from err
    finally:
        _leave_pipeline(pgconn)
    head = results[:own]
    if _failed(head):  # (the usual case skips all of this)
        queue.note(results)
        if (yield from _guarded(_lost_statements(pgconn, head, prepared))):
            yield from begin_gen(conn, statement, reset)
            return None
        _check(_after_reset(conn, head, resets), conn)
    queue.note(results)
    if resets:
        setattr(conn, _RESET_DUE, False)
    return results[own:]


def _guarded(gen: Generator[waiting.Wait, Any, _T]) -> Generator[waiting.Wait, Any, _T]:
    """``gen``, with a connection lost on the way raised as :class:`DatabaseUnavailable`."""
    try:
        return (yield from gen)
    except psycopg.OperationalError as err:
        raise DatabaseUnavailable(f"connection lost while binding the tenant: {err}") from err


def begin(conn: psycopg.Connection[Any], bound: BoundTenant | None, binder: Binder) -> None:
    """Bind ``bound`` to ``conn``'s transaction, starting one if none is open (and resetting the
    session first if the connection was handed over since its last use)."""
    statement = binder.statement(bound)
    reset = reset_due(conn)
    with conn.lock:
        _run_sync(conn.pgconn, begin_gen(conn, statement, reset))


# -- hand-over ---------------------------------------------------------------------------------

_RESET_DUE = "_tenantry_reset_due"


def mark_returned(conn: psycopg.BaseConnection[Any]) -> None:
    """Note that ``conn`` went back to its pool: its session is reset before its next use.

    Called by the pools' check-in hooks; no I/O, so a check-in costs nothing more.
    """
    setattr(conn, _RESET_DUE, True)


def reset_due(conn: psycopg.BaseConnection[Any]) -> bool:
    """Whether ``conn`` was handed over and its session is not reset yet."""
    return bool(getattr(conn, _RESET_DUE, False)) and conn.pgconn.transaction_status == _IDLE


def _after_reset(
    conn: psycopg.BaseConnection[Any], results: list[pq.abc.PGresult], count: int
) -> list[pq.abc.PGresult]:
    """The bind's own results, once the reset that went ahead of them (its first ``count``
    results) is known to have worked.

    A reset that failed leaves a session nobody may use: the connection is closed (its pool
    replaces it) and the bind fails.
    """
    if not count:
        return results
    failed = next((r for r in results[:count] if r.status not in _OK), None)
    if failed is None and len(results) >= count:
        setattr(conn, _RESET_DUE, False)
        return results[count:]
    message = (failed.error_message or b"").decode(errors="replace").strip() if failed else "no answer"
    conn.pgconn.finish()  # closed: its pool replaces it
    raise DatabaseUnavailable(
        f"could not reset the session of a pooled connection ({message}); the connection is"
        " discarded. If tenantry.reset_session() is missing, run `tenantry init`"
    )


def reset_now(conn: psycopg.Connection[Any]) -> None:
    """Reset a handed-over connection's session before a statement that escapes the binder."""
    results = _run_sync(conn.pgconn, _reset_gen(conn.pgconn))
    _after_reset(conn, results, 1)


async def areset_now(conn: psycopg.AsyncConnection[Any]) -> None:
    """Async :func:`reset_now`."""
    results = await _run_async(conn.pgconn, _reset_gen(conn.pgconn))
    _after_reset(conn, results, 1)


def _rollback_gen(pgconn: pq.abc.PGconn) -> Generator[waiting.Wait, Any, list[pq.abc.PGresult]]:
    if pgconn.pipeline_status != pq.PipelineStatus.OFF:  # in psycopg's pipeline: no simple query
        pgconn.send_query_params(b"ROLLBACK", None)
        pgconn.pipeline_sync()
        return (yield from _exchange(pgconn, pipeline=True))
    pgconn.send_query(b"ROLLBACK")
    return (yield from _exchange(pgconn, pipeline=False))


def _exchange(pgconn: pq.abc.PGconn, *, pipeline: bool) -> Generator[waiting.Wait, Any, list[pq.abc.PGresult]]:
    """Flush what was sent, then read the results: up to the pipeline's sync, or to the end."""
    while pgconn.flush():
        yield _WAIT_WRITE
    results: list[pq.abc.PGresult] = []
    ended = False  # the last get_result() ended a statement's results
    while True:
        if pgconn.is_busy():
            if (yield _WAIT_READ):  # (nothing ready: the wait's interval passed)
                pgconn.consume_input()
            continue
        res = pgconn.get_result()
        if res is None:
            if not pipeline:
                return results
            if ended:
                # between two statements of a pipeline libpq can say "not busy" with the next
                # result still on its way: wait for the socket instead of spinning on it
                if (yield _WAIT_READ):
                    pgconn.consume_input()
            ended = True  # the end of one statement's results
            continue
        ended = False
        if pipeline and res.status == pq.ExecStatus.PIPELINE_SYNC:
            return results
        results.append(res)


def _run_sync(pgconn: pq.abc.PGconn, gen: Generator[waiting.Wait, Any, _T]) -> _T:
    try:
        return waiting.wait(gen, pgconn.socket, interval=_WAIT_INTERVAL)
    except psycopg.OperationalError as err:
        raise DatabaseUnavailable(f"connection lost while binding the tenant: {err}") from err


async def abegin(conn: psycopg.AsyncConnection[Any], bound: BoundTenant | None, binder: Binder) -> None:
    """Async :func:`begin`: waits on the socket through the event loop, never blocking it."""
    statement = binder.statement(bound)
    reset = reset_due(conn)
    async with conn.lock:
        await _run_async(conn.pgconn, begin_gen(conn, statement, reset))


async def _run_async(pgconn: pq.abc.PGconn, gen: Generator[waiting.Wait, Any, _T]) -> _T:
    try:
        return await waiting.wait_async(gen, pgconn.socket, interval=_WAIT_INTERVAL)
    except psycopg.OperationalError as err:
        raise DatabaseUnavailable(f"connection lost while binding the tenant: {err}") from err


#: a route: (cell, database or None for the cell's main database)
RouteKey = tuple[str, str | None]
