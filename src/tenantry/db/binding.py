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
costs no round trip. The signature covers the tenant's epoch: a binding made before the tenant
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

The protocol is a generator that says what it waits for; :func:`begin` and :func:`abegin` do
the waiting, blocking or through the event loop. Two integrations use them:
:class:`TenantConnection` (raw psycopg through psycopg_pool) and the SQLAlchemy event hooks in
:mod:`tenantry.db.alchemy`.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Generator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, NamedTuple

import psycopg
from psycopg import pq, waiting

from tenantry import context
from tenantry.context import BoundTenant
from tenantry.db.connect import stale_binding
from tenantry.db.local import ContextKeys
from tenantry.errors import DatabaseUnavailable, IsolationError, TenantContextError

__all__ = [
    "CONTROL_EPOCH",
    "AsyncTenantConnection",
    "RouteKey",
    "AsyncTenantCursor",
    "AsyncTenantServerCursor",
    "Binder",
    "TenantConnection",
    "TenantCursor",
    "TenantServerCursor",
    "abegin",
    "begin",
    "Signed",
    "areset_now",
    "check_route",
    "choose_prepare",
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
# the reset ahead of a bind runs in a transaction of its own, committed before the bind's BEGIN
# in the same pipeline segment: BEGIN, reset, COMMIT (three results). One Sync for all, so the
# server answers everything in one write and the client wakes once.
_RESET_RESULTS = 3
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

    def __init__(self, keys: ContextKeys, default_schema: str) -> None:
        self.keys = keys
        self._default_schema = default_schema
        self._unbound: Statement = (_BIND, [b"", b"", _search_path(default_schema), b"", b""])
        self._cache: OrderedDict[BoundTenant, Statement] = OrderedDict()

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
        cached = self._cache.get(bound)
        if cached is not None:
            self._cache.move_to_end(bound)
            return cached
        route = bound.route
        schema = route.schema if route is not None else self._default_schema
        signed = self.signed(bound.id, schema, bound.epoch)
        query = _BIND_OWN_DATABASE if route is not None and route.own_database else _BIND
        statement: Statement = (
            query,
            [
                signed.tenant_id.encode(),
                signed.signature.encode(),
                _search_path(schema),
                schema.encode(),
                signed.epoch.encode(),
            ],
        )
        self._cache[bound] = statement
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return statement


def _bind_gen(
    pgconn: pq.abc.PGconn, statement: Statement, prepared: set[bytes], reset: bool = False
) -> Generator[waiting.Wait, Any, list[pq.abc.PGresult]]:
    """Send (BEGIN if idle and) the bind statement in one pipeline; return the results.

    The statement is parsed in the same pipeline the first time a connection uses it. With
    ``reset`` (an idle connection just handed over), the session is reset first, in a
    transaction of its own committed ahead of the BEGIN (``BEGIN; SELECT
    tenantry.reset_session(); COMMIT``), in the same pipeline segment: one network write, one
    answer, one wake-up. The reset's three results come first in the list.

    Why not simpler: without the COMMIT the reset would belong to the borrower's transaction,
    and a rollback would bring the previous borrower's session state back (and LISTEN, undone
    only at commit, would show the previous borrower's channels meanwhile); with a Sync of its
    own the server flushes its answer twice and the client wakes twice.
    """
    (name, text), params = statement
    start = pgconn.transaction_status == _IDLE
    reset = reset and start
    parse = name not in prepared
    # inside psycopg's own pipeline (``with conn.pipeline():``) the connection is in pipeline
    # mode already and psycopg leaves it: send our part up to its own sync, read it, stay in
    owned = pgconn.pipeline_status == pq.PipelineStatus.OFF
    if owned:
        pgconn.enter_pipeline_mode()
    try:
        if reset:
            pgconn.send_query_params(_BEGIN, None)
            pgconn.send_query_params(_RESET, None)
            pgconn.send_query_params(_COMMIT, None)
        if parse:
            pgconn.send_prepare(name, text)
        if start:
            pgconn.send_query_params(_BEGIN, None)
        pgconn.send_query_prepared(name, params)
        pgconn.pipeline_sync()
        results = yield from _exchange(pgconn, pipeline=True)
        # the statement exists once its Parse succeeded, even if executing it failed
        first = _RESET_RESULTS if reset else 0
        if parse and len(results) > first and results[first].status in _OK:
            prepared.add(name)
        return results
    finally:
        if owned and pgconn.pipeline_status != pq.PipelineStatus.OFF:
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
    """``26000`` when the bind statement was deallocated behind our back, ``42P05`` when it
    existed though we thought not; ``None`` otherwise."""
    for r in results:
        state = r.error_field(pq.DiagnosticField.SQLSTATE)
        if state in (_UNDEFINED_STATEMENT, _DUPLICATE_STATEMENT):
            return state
    return None


def _retry_bind(
    pgconn: pq.abc.PGconn, results: list[pq.abc.PGresult], statement: Statement, prepared: set[bytes]
) -> Generator[waiting.Wait, Any, list[pq.abc.PGresult]]:
    """After a failed bind whose prepared statement was lost or duplicated: roll back what the
    pipeline began, fix what we know, bind again."""
    state = _statement_state(results)
    if state is None:
        return results
    if state == _UNDEFINED_STATEMENT:
        prepared.clear()
    else:
        prepared.add(statement[0][0])
    if pgconn.transaction_status != _IDLE:
        yield from _rollback_gen(pgconn)
    return (yield from _bind_gen(pgconn, statement, prepared))


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


def begin(conn: psycopg.Connection[Any], bound: BoundTenant | None, binder: Binder) -> None:
    """Bind ``bound`` to ``conn``'s transaction, starting one if none is open (and resetting the
    session first if the connection was handed over since its last use)."""
    statement = binder.statement(bound)
    prepared = _prepared(conn)
    reset = reset_due(conn)
    with conn.lock:
        results = _run_sync(conn.pgconn, _bind_gen(conn.pgconn, statement, prepared, reset))
        results = _after_reset(conn, results, reset)
        if _failed(results):
            results = _run_sync(conn.pgconn, _retry_bind(conn.pgconn, results, statement, prepared))
    _check(results, conn)


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
    conn: psycopg.BaseConnection[Any], results: list[pq.abc.PGresult], reset: bool, count: int = _RESET_RESULTS
) -> list[pq.abc.PGresult]:
    """The bind's own results, once the reset that went ahead of them (its first ``count``
    results) is known to have worked.

    A reset that failed leaves a session nobody may use: the connection is closed (its pool
    replaces it) and the bind fails.
    """
    if not reset:
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
    _after_reset(conn, results, True, 1)


async def areset_now(conn: psycopg.AsyncConnection[Any]) -> None:
    """Async :func:`reset_now`."""
    results = await _run_async(conn.pgconn, _reset_gen(conn.pgconn))
    _after_reset(conn, results, True, 1)


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


def _run_sync(pgconn: pq.abc.PGconn, gen: Generator[waiting.Wait, Any, list[pq.abc.PGresult]]) -> list[pq.abc.PGresult]:
    try:
        return waiting.wait(gen, pgconn.socket, interval=_WAIT_INTERVAL)
    except psycopg.OperationalError as err:
        raise DatabaseUnavailable(f"connection lost while binding the tenant: {err}") from err


async def abegin(conn: psycopg.AsyncConnection[Any], bound: BoundTenant | None, binder: Binder) -> None:
    """Async :func:`begin`: waits on the socket through the event loop, never blocking it."""
    statement = binder.statement(bound)
    prepared = _prepared(conn)
    reset = reset_due(conn)
    async with conn.lock:
        results = await _run_async(conn.pgconn, _bind_gen(conn.pgconn, statement, prepared, reset))
        results = _after_reset(conn, results, reset)
        if _failed(results):
            results = await _run_async(conn.pgconn, _retry_bind(conn.pgconn, results, statement, prepared))
    _check(results, conn)


async def _run_async(
    pgconn: pq.abc.PGconn, gen: Generator[waiting.Wait, Any, list[pq.abc.PGresult]]
) -> list[pq.abc.PGresult]:
    try:
        return await waiting.wait_async(gen, pgconn.socket, interval=_WAIT_INTERVAL)
    except psycopg.OperationalError as err:
        raise DatabaseUnavailable(f"connection lost while binding the tenant: {err}") from err


# -- raw psycopg ------------------------------------------------------------------------------

_SWITCHED = "the bound tenant changed inside an open transaction; commit or roll back first"
_AUTOCOMMIT = (
    "tenantry connections are transactional: in autocommit mode a statement would run with no"
    " tenant bound; use conn.transaction() or leave autocommit off"
)

RouteKey = tuple[str, str | None]


def check_route(bound: BoundTenant | None, serves: RouteKey | None) -> None:
    """Refuse to bind a tenant on a connection to another server or database than its own."""
    if bound is None or bound.route is None or serves is None:
        return
    if bound.route.pool_key != serves:
        where = bound.route.database or "the shared database"
        raise TenantContextError(
            f"tenant {bound.slug!r} lives in {where} on cell {bound.route.cell!r}; this connection"
            f" serves {serves[1] or 'the shared database'} on cell {serves[0]!r}: open it inside"
            " `with tn.tenant(...)`"
        )


def choose_prepare(conn: psycopg.BaseConnection[Any], bound: BoundTenant | None) -> None:
    """Let psycopg prepare statements, except for schema-tier tenants.

    A prepared statement keeps the parameter and result types it was planned with; reused
    after the search path moved to another tenant's schema it fails ("operator does not
    exist: priority = tenant_data.priority"). Statements prepared for pooled tenants stay
    valid for them: they all use the pooled schema.
    """
    default = getattr(conn, "_tenantry_prepare_threshold", _UNSET)
    if default is _UNSET:
        default = conn.prepare_threshold
        conn._tenantry_prepare_threshold = default  # type: ignore[attr-defined]
    schema_tier = bound is not None and bound.route is not None and bound.route.schema_tier
    wanted = None if schema_tier else default
    if conn.prepare_threshold != wanted:
        conn.prepare_threshold = wanted


_UNSET: Any = object()


#: what a connection remembers as bound while its open transaction was not begun by tenantry
_NOT_BOUND: Any = object()


class TenantConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every transaction is bound to the context's tenant.

    Made by the runtime pools; use it through ``tn.connection()``. Statements run through any
    cursor of the connection, client- or server-side; a transaction begun under one tenant
    refuses statements issued under another (:class:`TenantContextError`), and a connection
    to one database refuses tenants that live in another. A connection handed back to its pool
    has its session reset before its next use, whatever runs first (see the module's
    docstring).
    """

    _tenantry_binder: Binder | None = None
    _tenantry_bound: BoundTenant | None = _NOT_BOUND
    _tenantry_serves: RouteKey | None = None
    _tenantry_schemas: set[str] | None = None

    def _tenantry_bind(self, wanted: BoundTenant | None, binder: Binder) -> None:
        check_route(wanted, self._tenantry_serves)
        choose_prepare(self, wanted)
        begin(self, wanted, binder)
        self._tenantry_bound = wanted
        _note_schema(self, wanted)

    def _tenantry_prepare(self) -> None:
        binder = self._tenantry_binder
        if binder is None:
            return
        wanted = context.current()
        if self.pgconn.transaction_status == _IDLE:
            if self.autocommit:
                raise TenantContextError(_AUTOCOMMIT)
            self._tenantry_bind(wanted, binder)
        elif self._tenantry_bound is _NOT_BOUND:
            # a statement outside tenantry opened this transaction: bind within it
            self._tenantry_bind(wanted, binder)
        elif self._tenantry_bound != wanted:
            raise TenantContextError(_SWITCHED)

    def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
        # Every statement psycopg runs passes here; tenantry's binder does not (it waits on
        # its own). So a transaction that starts from here was not bound by tenantry, and a
        # handed-over session that would reach a statement from here is reset first.
        if self.pgconn.transaction_status == _IDLE:
            self._tenantry_bound = _NOT_BOUND
            if reset_due(self) and self.pgconn.pipeline_status == pq.PipelineStatus.OFF:
                reset_now(self)
        return super().wait(gen, *args, **kwargs)

    def rollback(self) -> None:
        # with no transaction open there is nothing to end: return before wait() would reset
        # a handed-over session for nothing (SQLAlchemy rolls back every connection it returns)
        if not _nothing_to_end(self):
            super().rollback()

    def commit(self) -> None:
        if not _nothing_to_end(self):
            super().commit()

    @contextmanager
    def transaction(
        self, savepoint_name: str | None = None, force_rollback: bool = False
    ) -> Iterator[psycopg.Transaction]:
        outer = self.pgconn.transaction_status == _IDLE
        with super().transaction(savepoint_name, force_rollback) as tx:
            if outer and self._tenantry_binder is not None:
                # psycopg sent its own BEGIN: bind within it (one extra round trip)
                self._tenantry_bind(context.current(), self._tenantry_binder)
            else:
                self._tenantry_prepare()
            yield tx


def _nothing_to_end(conn: psycopg.BaseConnection[Any]) -> bool:
    """Idle, outside pipeline mode and two-phase commit: commit and rollback would send nothing."""
    return (
        conn.pgconn.transaction_status == _IDLE
        and conn.pgconn.pipeline_status == pq.PipelineStatus.OFF
        and getattr(conn, "_tpc", None) is None
        and not conn.closed
    )


def _note_schema(conn: TenantConnection | AsyncTenantConnection, bound: BoundTenant | None) -> None:
    """Remember the schemas a connection has served (see ``schema_recycle_after``)."""
    if bound is not None and bound.route is not None:
        if conn._tenantry_schemas is None:
            conn._tenantry_schemas = set()
        conn._tenantry_schemas.add(bound.route.schema)


def _prepare(conn: Any) -> None:
    prepare = getattr(conn, "_tenantry_prepare", None)
    if prepare is not None:
        prepare()


class TenantCursor(psycopg.Cursor[Any]):
    """Cursor that binds the tenant before the first statement of each transaction."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> TenantCursor:
        _prepare(self.connection)
        return super().execute(query, params, **kwargs)

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        _prepare(self.connection)
        super().executemany(query, params_seq, **kwargs)

    def stream(self, query: Any, params: Any = None, **kwargs: Any) -> Iterator[Any]:
        _prepare(self.connection)
        return super().stream(query, params, **kwargs)

    @contextmanager
    def copy(self, statement: Any, params: Any = None, **kwargs: Any) -> Iterator[psycopg.Copy]:
        _prepare(self.connection)
        with super().copy(statement, params, **kwargs) as copy:
            yield copy


class TenantServerCursor(psycopg.ServerCursor[Any]):
    """Named (server-side) cursor that binds the tenant like :class:`TenantCursor`."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> TenantServerCursor:
        _prepare(self.connection)
        return super().execute(query, params, **kwargs)


class AsyncTenantConnection(psycopg.AsyncConnection[Any]):
    """Async :class:`TenantConnection`."""

    _tenantry_binder: Binder | None = None
    _tenantry_bound: BoundTenant | None = _NOT_BOUND
    _tenantry_serves: RouteKey | None = None
    _tenantry_schemas: set[str] | None = None

    async def _tenantry_bind(self, wanted: BoundTenant | None, binder: Binder) -> None:
        check_route(wanted, self._tenantry_serves)
        choose_prepare(self, wanted)
        await abegin(self, wanted, binder)
        self._tenantry_bound = wanted
        _note_schema(self, wanted)

    async def _tenantry_prepare(self) -> None:
        binder = self._tenantry_binder
        if binder is None:
            return
        wanted = context.current()
        if self.pgconn.transaction_status == _IDLE:
            if self.autocommit:
                raise TenantContextError(_AUTOCOMMIT)
            await self._tenantry_bind(wanted, binder)
        elif self._tenantry_bound is _NOT_BOUND:
            await self._tenantry_bind(wanted, binder)
        elif self._tenantry_bound != wanted:
            raise TenantContextError(_SWITCHED)

    async def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
        # as in TenantConnection.wait
        if self.pgconn.transaction_status == _IDLE:
            self._tenantry_bound = _NOT_BOUND
            if reset_due(self) and self.pgconn.pipeline_status == pq.PipelineStatus.OFF:
                await areset_now(self)
        return await super().wait(gen, *args, **kwargs)

    async def rollback(self) -> None:
        if not _nothing_to_end(self):  # as in TenantConnection.rollback
            await super().rollback()

    async def commit(self) -> None:
        if not _nothing_to_end(self):
            await super().commit()

    @asynccontextmanager
    async def transaction(
        self, savepoint_name: str | None = None, force_rollback: bool = False
    ) -> AsyncIterator[psycopg.AsyncTransaction]:
        outer = self.pgconn.transaction_status == _IDLE
        async with super().transaction(savepoint_name, force_rollback) as tx:
            if outer and self._tenantry_binder is not None:
                await self._tenantry_bind(context.current(), self._tenantry_binder)
            else:
                await self._tenantry_prepare()
            yield tx


async def _aprepare(conn: Any) -> None:
    prepare = getattr(conn, "_tenantry_prepare", None)
    if prepare is not None:
        await prepare()


class AsyncTenantCursor(psycopg.AsyncCursor[Any]):
    """Async :class:`TenantCursor`."""

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> AsyncTenantCursor:
        await _aprepare(self.connection)
        return await super().execute(query, params, **kwargs)

    async def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        await _aprepare(self.connection)
        await super().executemany(query, params_seq, **kwargs)

    async def stream(self, query: Any, params: Any = None, **kwargs: Any) -> AsyncIterator[Any]:
        await _aprepare(self.connection)
        async for row in super().stream(query, params, **kwargs):
            yield row

    @asynccontextmanager
    async def copy(self, statement: Any, params: Any = None, **kwargs: Any) -> AsyncIterator[psycopg.AsyncCopy]:
        await _aprepare(self.connection)
        async with super().copy(statement, params, **kwargs) as copy:
            yield copy


class AsyncTenantServerCursor(psycopg.AsyncServerCursor[Any]):
    """Async :class:`TenantServerCursor`."""

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> AsyncTenantServerCursor:
        await _aprepare(self.connection)
        return await super().execute(query, params, **kwargs)
