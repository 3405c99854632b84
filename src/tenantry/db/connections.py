"""Tenant-bound psycopg connections and cursors: what ``tn.connection()`` lends.

Every transaction such a connection runs is bound to the tenant of the context it began in
(see :mod:`tenantry.db.binding` for the bind itself and the hand-over reset).

The first statement carries the binding. When a cursor's ``execute`` finds its connection
idle, it sends the hand-over reset (if due), ``BEGIN``, the bind and the statement itself in
one pipeline, answered in one round trip::

    [BEGIN; SELECT tenantry.reset_session(); COMMIT;]  BEGIN;  EXECUTE tenantry_bind(...);
    <the statement, extended protocol>;  Sync

so a transaction of one query costs two round trips (that one and COMMIT), one fewer than
psycopg's own ``BEGIN``, query, ``COMMIT``. Not fused, and bound in a round trip of their own
ahead of the statement, as before: a statement psycopg would send through the simple protocol
(no parameters and not prepared: it may hold several statements, which a pipeline cannot
carry), ``executemany``, ``stream``, ``copy``, server-side cursors, psycopg's own pipeline
mode, and ``conn.transaction()``.

Nothing escapes the binder through this class: a statement run another way (a
``psycopg.ClientCursor``, ``conn.pgconn``) still passes :meth:`TenantConnection.wait`, which
resets a handed-over session first and never takes a transaction it did not begin for bound.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, NamedTuple

import psycopg
from psycopg import pq, waiting
from psycopg._cursor_base import BaseCursor
from psycopg._preparing import Prepare

from tenantry import context
from tenantry.context import BoundTenant
from tenantry.db.binding import (
    Binder,
    RouteKey,
    Statement,
    abegin,
    areset_now,
    begin,
    begin_gen,
    fused_gen,
    reset_due,
    reset_now,
)
from tenantry.errors import TenantContextError

__all__ = [
    "check_route",
    "choose_prepare",
    "defer_bind",
    "forget_deferred",
    "AsyncTenantConnection",
    "AsyncTenantCursor",
    "AsyncTenantServerCursor",
    "TenantConnection",
    "TenantCursor",
    "TenantServerCursor",
]

_IDLE = pq.TransactionStatus.IDLE
_PIPELINE_OFF = pq.PipelineStatus.OFF
_FATAL_ERROR = pq.ExecStatus.FATAL_ERROR
_SWITCHED = "the bound tenant changed inside an open transaction; commit or roll back first"
_AUTOCOMMIT = (
    "tenantry connections are transactional: in autocommit mode a statement would run with no"
    " tenant bound; use conn.transaction() or leave autocommit off"
)
#: what a connection remembers as bound while its open transaction was not begun by tenantry
_NOT_BOUND: Any = object()


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


class _Fused(NamedTuple):
    """The binding the next statement carries: it opens the transaction."""

    wanted: BoundTenant | None
    statement: Statement
    reset: bool


def _fused_for(conn: Any) -> _Fused | None:
    """The binding ``conn``'s next statement should carry, or ``None`` if it is not the first
    statement of a transaction tenantry binds (or may not be sent in a pipeline)."""
    binder: Binder | None = getattr(conn, "_tenantry_binder", None)
    if binder is None:
        return None
    pgconn = conn.pgconn
    if pgconn.transaction_status != _IDLE or pgconn.pipeline_status != _PIPELINE_OFF or conn._pipeline is not None:
        return None
    if conn.autocommit:
        raise TenantContextError(_AUTOCOMMIT)
    wanted = context.current()
    check_route(wanted, conn._tenantry_serves)
    choose_prepare(conn, wanted)
    return _Fused(wanted, binder.statement(wanted), reset_due(conn))


def defer_bind(conn: Any, wanted: BoundTenant | None, binder: Binder) -> bool:
    """Let ``conn``'s next statement bind ``wanted`` to the transaction it opens (for the
    SQLAlchemy integration, whose ``begin`` event comes before any statement). Returns
    ``False``, binding nothing, when the connection cannot defer (a transaction is open
    already, or it is in autocommit or pipeline mode): bind it now instead."""
    pgconn = conn.pgconn
    if (
        pgconn.transaction_status != _IDLE
        or pgconn.pipeline_status != _PIPELINE_OFF
        or conn._pipeline is not None
        or conn.autocommit
        or not isinstance(conn, TenantConnection | AsyncTenantConnection)
    ):
        return False
    conn._tenantry_fused = _Fused(wanted, binder.statement(wanted), reset_due(conn))
    return True


def forget_deferred(conn: Any) -> None:
    """Drop a binding :func:`defer_bind` left for a statement that never came."""
    if getattr(conn, "_tenantry_fused", None) is not None:
        conn._tenantry_fused = None


def _start_gen(
    conn: TenantConnection | AsyncTenantConnection, start: Callable[[], Generator[waiting.Wait, Any, None]]
) -> Generator[waiting.Wait, Any, None]:
    """psycopg's start of a statement (``start``: BEGIN when idle), for a connection with a
    binding pending: a cursor's ``execute`` sends BEGIN and the bind with its statement (see
    :func:`_first_statement_gen`); any other way of running a statement (``executemany``,
    ``stream``, ``copy``, a server-side or client-side cursor) binds it on its own first."""
    fused = conn._tenantry_fused
    if fused is None:
        yield from start()
    elif not conn._tenantry_fusing:
        conn._tenantry_fused = None
        yield from begin_gen(conn, fused.statement, fused.reset)
        _bound(conn, fused.wanted)


def _bound(conn: TenantConnection | AsyncTenantConnection, wanted: BoundTenant | None) -> None:
    conn._tenantry_bound = wanted
    if wanted is not None and wanted.route is not None:  # the schemas served (schema_recycle_after)
        if conn._tenantry_schemas is None:
            conn._tenantry_schemas = set()
        conn._tenantry_schemas.add(wanted.route.schema)


def _first_statement_gen(
    cur: Any, pgq: Any, prepare: bool | None, binary: bool | None
) -> Generator[waiting.Wait, Any, None]:
    """psycopg's ``_maybe_prepare_gen``, with the transaction's BEGIN and binding folded into
    the statement's pipeline when the statement opens the transaction (see the module's
    docstring)."""
    conn = cur._conn
    fused: _Fused | None = conn._tenantry_fused
    if fused is None:
        yield from BaseCursor._maybe_prepare_gen(cur, pgq, prepare=prepare, binary=binary)
        return
    conn._tenantry_fused = None  # claimed: whatever happens next, once
    prep, name = cur._get_prepared(pgq, prepare)
    binary_result = cur.format == pq.Format.BINARY if binary is None else binary
    if prep is Prepare.NO and not pgq.params and not binary_result:
        # psycopg sends it through the simple protocol (it may hold several statements),
        # which no pipeline carries: bind on its own first
        yield from begin_gen(conn, fused.statement, fused.reset)
        _bound(conn, fused.wanted)
        yield from BaseCursor._maybe_prepare_gen(cur, pgq, prepare=prepare, binary=binary)
        return

    def send() -> None:
        if prep is Prepare.NO:
            cur._execute_send(pgq, binary=binary, force_extended=True)
            return
        if prep is Prepare.SHOULD:
            cur._send_prepare(name, pgq)
        cur._send_query_prepared(name, pgq, binary=binary)

    results = yield from fused_gen(conn, fused.statement, fused.reset, send)
    _bound(conn, fused.wanted)
    if results is None:  # the bind statement had been deallocated: bound again on its own
        yield from BaseCursor._maybe_prepare_gen(cur, pgq, prepare=prepare, binary=binary)
        return
    if prep is Prepare.SHOULD:
        parsed = results.pop(0)
        if parsed.status == _FATAL_ERROR:
            raise psycopg.errors.error_from_result(parsed, encoding=cur._encoding)
    key = conn._prepared.maybe_add_to_cache(pgq, prep, name)
    if key is not None:
        conn._prepared.validate(key, prep, name, results)
    cur._check_results(results)
    cur._set_results(results)


class TenantConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every transaction is bound to the context's tenant.

    Made by the runtime pools; use it through ``tn.connection()``. Statements run through any
    cursor of the connection, client- or server-side; a transaction begun under one tenant
    refuses statements issued under another (:class:`TenantContextError`), and a connection
    to one database refuses tenants that live in another. A connection handed back to its pool
    has its session reset before its next use, whatever runs first (see
    :mod:`tenantry.db.binding`).
    """

    _tenantry_binder: Binder | None = None
    _tenantry_bound: BoundTenant | None = _NOT_BOUND
    _tenantry_serves: RouteKey | None = None
    _tenantry_schemas: set[str] | None = None
    _tenantry_fused: _Fused | None = None
    _tenantry_fusing = False

    def _tenantry_bind(self, wanted: BoundTenant | None, binder: Binder) -> None:
        check_route(wanted, self._tenantry_serves)
        choose_prepare(self, wanted)
        begin(self, wanted, binder)
        _bound(self, wanted)

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

    def _start_query(self) -> Generator[waiting.Wait, Any, None]:
        # psycopg's: BEGIN when idle (every way of running a statement passes here)
        return _start_gen(self, super()._start_query)

    def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
        # Every statement psycopg runs passes here; tenantry's binder does not (it waits on
        # its own), except a fused first statement, which binds its transaction itself. So a
        # transaction that starts from here otherwise was not bound by tenantry, and a
        # handed-over session that would reach a statement from here is reset first.
        if self.pgconn.transaction_status == _IDLE and self._tenantry_fused is None:
            self._tenantry_bound = _NOT_BOUND
            if reset_due(self) and self.pgconn.pipeline_status == _PIPELINE_OFF:
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
        and conn.pgconn.pipeline_status == _PIPELINE_OFF
        and getattr(conn, "_tpc", None) is None
        and not conn.closed
    )


def _prepare(conn: Any) -> None:
    prepare = getattr(conn, "_tenantry_prepare", None)
    if prepare is not None:
        prepare()


class TenantCursor(psycopg.Cursor[Any]):
    """Cursor that binds the tenant with the first statement of each transaction."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> TenantCursor:
        conn: Any = self.connection
        fused = _fused_for(conn)
        if fused is not None:
            conn._tenantry_fused = fused
        elif getattr(conn, "_tenantry_fused", None) is None:  # (none pending from SQLAlchemy)
            _prepare(conn)
            return super().execute(query, params, **kwargs)
        conn._tenantry_fusing = True
        try:
            return super().execute(query, params, **kwargs)
        finally:
            conn._tenantry_fusing = False
            if fused is not None:  # unclaimed (the statement failed first): decided anew next time
                conn._tenantry_fused = None

    def _maybe_prepare_gen(self, pgq: Any, *, prepare: bool | None = None, binary: bool | None = None) -> Any:
        return _first_statement_gen(self, pgq, prepare, binary)

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
    _tenantry_fused: _Fused | None = None
    _tenantry_fusing = False

    async def _tenantry_bind(self, wanted: BoundTenant | None, binder: Binder) -> None:
        check_route(wanted, self._tenantry_serves)
        choose_prepare(self, wanted)
        await abegin(self, wanted, binder)
        _bound(self, wanted)

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

    def _start_query(self) -> Generator[waiting.Wait, Any, None]:
        return _start_gen(self, super()._start_query)  # as in TenantConnection._start_query

    async def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
        # as in TenantConnection.wait
        if self.pgconn.transaction_status == _IDLE and self._tenantry_fused is None:
            self._tenantry_bound = _NOT_BOUND
            if reset_due(self) and self.pgconn.pipeline_status == _PIPELINE_OFF:
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
        conn: Any = self.connection
        fused = _fused_for(conn)
        if fused is not None:
            conn._tenantry_fused = fused
        elif getattr(conn, "_tenantry_fused", None) is None:  # (none pending from SQLAlchemy)
            await _aprepare(conn)
            return await super().execute(query, params, **kwargs)
        conn._tenantry_fusing = True
        try:
            return await super().execute(query, params, **kwargs)
        finally:
            conn._tenantry_fusing = False
            if fused is not None:  # as in TenantCursor.execute
                conn._tenantry_fused = None

    def _maybe_prepare_gen(self, pgq: Any, *, prepare: bool | None = None, binary: bool | None = None) -> Any:
        return _first_statement_gen(self, pgq, prepare, binary)

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
