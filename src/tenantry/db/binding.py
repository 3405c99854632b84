"""Binding the tenant to each transaction, at no extra round trip.

Every transaction a tenant-bound connection runs starts with one simple-query message::

    BEGIN; SET LOCAL tenantry.tenant_id = '<uuid>'; SET LOCAL tenantry.tenant_sig = '<hmac>';
    SET LOCAL search_path = "<pooled schema>", public

sent in place of the ``BEGIN`` psycopg would otherwise send on its own, so binding the tenant
costs no round trip. Everything is ``LOCAL``: it ends with the transaction, commit or rollback,
and nothing survives into the next use of a pooled connection (this is what makes it safe
behind PgBouncer in transaction mode). With no tenant bound, ``tenantry.tenant_id`` is set to
the empty string, so the policies see no tenant: reads return nothing, inserts fail.

The signature (see ``0001_catalog.sql``) is why SQL running as the runtime role cannot bind a
tenant of its choosing: it cannot read the key.

Two integrations use this module: :class:`TenantConnection` (raw psycopg through
psycopg_pool) and the SQLAlchemy event hooks in :mod:`tenantry.db.alchemy`.
"""

from __future__ import annotations

import asyncio
import select
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
from psycopg import pq, sql

from tenantry import context
from tenantry.db.catalog import ContextKeys
from tenantry.errors import DatabaseUnavailable, TenantContextError

__all__ = [
    "AsyncTenantConnection",
    "AsyncTenantCursor",
    "Binder",
    "TenantConnection",
    "TenantCursor",
    "abegin",
    "begin",
]

_IDLE = pq.TransactionStatus.IDLE
_INTRANS = pq.TransactionStatus.INTRANS
_CACHE_SIZE = 4096


class Binder:
    """Builds the per-transaction binding command for a tenant; shared by all connections."""

    def __init__(self, keys: ContextKeys, search_path: str) -> None:
        self._keys = keys
        self._search_path = search_path
        self._cache: OrderedDict[uuid.UUID | None, tuple[bytes, bytes]] = OrderedDict()

    def signed(self, tenant_id: uuid.UUID) -> tuple[str, str]:
        """``(tenant_id, signature)`` as the ``tenantry.*`` settings take them."""
        ident = str(tenant_id)
        return ident, self._keys.sign(ident)

    def commands(self, tenant_id: uuid.UUID | None) -> tuple[bytes, bytes]:
        """``(begin_and_bind, bind_only)`` for ``tenant_id`` (``None``: no tenant)."""
        cached = self._cache.get(tenant_id)
        if cached is not None:
            self._cache.move_to_end(tenant_id)
            return cached
        ident = "" if tenant_id is None else str(tenant_id)
        sig = "" if tenant_id is None else self._keys.sign(ident)
        bind = sql.SQL(
            "SET LOCAL tenantry.tenant_id = {}; SET LOCAL tenantry.tenant_sig = {}; "
            "SET LOCAL search_path = {}, public"
        ).format(sql.Literal(ident), sql.Literal(sig), sql.Identifier(self._search_path))
        bind_bytes = bind.as_bytes(None)
        pair = (b"BEGIN; " + bind_bytes, bind_bytes)
        self._cache[tenant_id] = pair
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return pair


def _check(results: list[pq.abc.PGresult], conn: psycopg.BaseConnection[Any]) -> None:
    for res in results:
        if res.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
            message = (res.error_message or b"").decode(errors="replace").strip()
            if conn.pgconn.status != pq.ConnStatus.OK:
                raise DatabaseUnavailable(f"connection lost while binding the tenant: {message}")
            raise psycopg.DatabaseError(f"binding the tenant failed: {message}")


def begin(conn: psycopg.Connection[Any], tenant_id: uuid.UUID | None, binder: Binder) -> None:
    """Bind ``tenant_id`` to ``conn``'s transaction, starting one if none is open."""
    start, bind = binder.commands(tenant_id)
    with conn.lock:
        command = start if conn.pgconn.transaction_status == _IDLE else bind
        conn.pgconn.send_query(command)
        while conn.pgconn.flush():
            select.select([], [conn.pgconn.socket], [])
        results: list[pq.abc.PGresult] = []
        while True:
            res = conn.pgconn.get_result()
            if res is None:
                break
            results.append(res)
    _check(results, conn)


async def abegin(
    conn: psycopg.AsyncConnection[Any], tenant_id: uuid.UUID | None, binder: Binder
) -> None:
    """Async :func:`begin`: waits on the socket through the event loop, never blocking it."""
    start, bind = binder.commands(tenant_id)
    pgconn = conn.pgconn
    loop = asyncio.get_running_loop()
    async with conn.lock:
        command = start if pgconn.transaction_status == _IDLE else bind
        pgconn.send_query(command)
        while pgconn.flush():
            await _wait(loop, pgconn.socket, write=True)
        results: list[pq.abc.PGresult] = []
        while True:
            pgconn.consume_input()
            while not pgconn.is_busy():
                res = pgconn.get_result()
                if res is None:
                    _check(results, conn)
                    return
                results.append(res)
            await _wait(loop, pgconn.socket, write=False)


def _wait(loop: asyncio.AbstractEventLoop, fd: int, *, write: bool) -> asyncio.Future[None]:
    future: asyncio.Future[None] = loop.create_future()
    add, remove = (loop.add_writer, loop.remove_writer) if write else (loop.add_reader, loop.remove_reader)

    def ready() -> None:
        remove(fd)
        if not future.done():
            future.set_result(None)

    add(fd, ready)
    future.add_done_callback(lambda _f: remove(fd))
    return future


# -- raw psycopg ------------------------------------------------------------------------------


class TenantConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every transaction is bound to the context's tenant.

    Made by the runtime pool; use it through ``tn.connection()``. Statements run through any
    cursor of the connection; a transaction begun under one tenant refuses statements issued
    under another (:class:`TenantContextError`).
    """

    _tenantry_binder: Binder | None = None
    _tenantry_bound: uuid.UUID | None = None

    def _tenantry_prepare(self) -> None:
        binder = self._tenantry_binder
        if binder is None or self.autocommit:
            return
        wanted = context.current_id()
        if self.pgconn.transaction_status == _IDLE:
            begin(self, wanted, binder)
            self._tenantry_bound = wanted
        elif self._tenantry_bound != wanted:
            raise TenantContextError(
                "the bound tenant changed inside an open transaction; commit or roll back first"
            )

    @contextmanager
    def transaction(
        self, savepoint_name: str | None = None, force_rollback: bool = False
    ) -> Iterator[psycopg.Transaction]:
        outer = self.pgconn.transaction_status == _IDLE
        with super().transaction(savepoint_name, force_rollback) as tx:
            if outer and self._tenantry_binder is not None:
                # psycopg sent its own BEGIN: bind within it (one extra round trip)
                wanted = context.current_id()
                begin(self, wanted, self._tenantry_binder)
                self._tenantry_bound = wanted
            else:
                self._tenantry_prepare()
            yield tx


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


def _prepare(conn: Any) -> None:
    prepare = getattr(conn, "_tenantry_prepare", None)
    if prepare is not None:
        prepare()


class AsyncTenantConnection(psycopg.AsyncConnection[Any]):
    """Async :class:`TenantConnection`."""

    _tenantry_binder: Binder | None = None
    _tenantry_bound: uuid.UUID | None = None

    async def _tenantry_prepare(self) -> None:
        binder = self._tenantry_binder
        if binder is None or self.autocommit:
            return
        wanted = context.current_id()
        if self.pgconn.transaction_status == _IDLE:
            await abegin(self, wanted, binder)
            self._tenantry_bound = wanted
        elif self._tenantry_bound != wanted:
            raise TenantContextError(
                "the bound tenant changed inside an open transaction; commit or roll back first"
            )

    @asynccontextmanager
    async def transaction(
        self, savepoint_name: str | None = None, force_rollback: bool = False
    ) -> AsyncIterator[psycopg.AsyncTransaction]:
        outer = self.pgconn.transaction_status == _IDLE
        async with super().transaction(savepoint_name, force_rollback) as tx:
            if outer and self._tenantry_binder is not None:
                wanted = context.current_id()
                await abegin(self, wanted, self._tenantry_binder)
                self._tenantry_bound = wanted
            else:
                await self._tenantry_prepare()
            yield tx


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


async def _aprepare(conn: Any) -> None:
    prepare = getattr(conn, "_tenantry_prepare", None)
    if prepare is not None:
        await prepare()
