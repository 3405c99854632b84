"""SQLAlchemy 2 integration: tenant-scoped tables and engines bound through event hooks.

Declare tenant-scoped tables with :class:`TenantScoped` (ORM) or :func:`tenant_id_column`
(Core). Engines made by ``tn.engine()`` / ``tn.async_engine()`` carry two listeners:

* ``begin``: leaves the tenant binding to the transaction's first statement, which sends
  ``BEGIN``, the bind and itself in one pipeline (see :mod:`tenantry.db.connections`), so
  psycopg sends no BEGIN of its own and the binding costs no round trip;
* ``before_cursor_execute``: refuses a statement issued under another tenant than the one the
  transaction was bound to;
* the pool's ``checkin``: marks the connection so that its session is reset before its next
  use (see :mod:`tenantry.db.binding`, "Hand-over").

Their pools (:func:`capped_pool_classes`) count each tenant's connections against its cap
(``db_connections``, :mod:`tenantry.db.connection_caps`) before they lend one.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, declared_attr, mapped_column
from sqlalchemy.pool import AsyncAdaptedQueuePool, PoolProxiedConnection, QueuePool
from sqlalchemy.pool.base import ConnectionPoolEntry
from sqlalchemy.util import await_

from tenantry import context
from tenantry.context import BoundTenant
from tenantry.db.binding import Binder, RouteKey, abegin, begin, mark_returned
from tenantry.db.connect import translate
from tenantry.db.connection_caps import ConnectionCaps, Gate
from tenantry.db.connections import check_route, choose_prepare, defer_bind, forget_deferred
from tenantry.errors import TenantContextError, TenantryError

__all__ = ["TenantScoped", "bind_engine", "capped_pool_classes", "tenant_id_column"]

_INFO_KEY = "tenantry.bound"
_SCHEMAS_KEY = "tenantry.schemas"
_STARTED_KEY = "tenantry.started"
_ROWS_KEY = "tenantry.rows_written"
_UNSET = object()
#: SQL default for tenant_id: the bound tenant, or a clear error when none is bound.
TENANT_ID_SERVER_DEFAULT = sa.text("tenantry.require_tenant_id()")


def _context_tenant_id() -> uuid.UUID:
    return context.require().id


def tenant_id_column(**kwargs: Any) -> sa.Column[uuid.UUID]:
    """A ``tenant_id`` column for Core tables: uuid, first in the primary key, filled from context.

    >>> projects = sa.Table("projects", metadata, tenant_id_column(),   # doctest: +SKIP
    ...                     sa.Column("id", sa.BigInteger, primary_key=True))
    """
    return sa.Column(
        "tenant_id",
        sa.Uuid(),
        primary_key=True,
        default=_context_tenant_id,
        server_default=TENANT_ID_SERVER_DEFAULT,
        nullable=False,
        **kwargs,
    )


class TenantScoped:
    """ORM mixin: adds ``tenant_id`` leading the primary key, filled from the bound tenant.

    Put it first among the bases so ``tenant_id`` is the first column::

        class Project(TenantScoped, Base):
            __tablename__ = "projects"
            id: Mapped[int] = mapped_column(primary_key=True)
            name: Mapped[str]
    """

    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(
            sa.Uuid(),
            primary_key=True,
            default=_context_tenant_id,
            server_default=TENANT_ID_SERVER_DEFAULT,
            sort_order=-100,
        )


def bind_engine(
    engine: Engine | AsyncEngine,
    binder: Binder,
    serves: RouteKey | None = None,
    *,
    schema_recycle_after: int | None = None,
) -> None:
    """Attach tenantry's listeners to ``engine`` (a psycopg engine, sync or async) that
    connects to the server and database ``serves``; a connection that has served more than
    ``schema_recycle_after`` schemas is replaced at its next checkout."""
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    is_async = isinstance(engine, AsyncEngine)

    @event.listens_for(sync_engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        wanted = context.current()
        check_route(wanted, serves)
        driver = conn.connection.driver_connection
        choose_prepare(driver, wanted)  # type: ignore[arg-type]
        if defer_bind(driver, wanted, binder):
            pass  # the first statement carries BEGIN and the bind (no round trip of their own)
        elif is_async:
            adapted = conn.connection.dbapi_connection
            adapted.run_async(lambda driver: abegin(driver, wanted, binder))  # type: ignore[union-attr]
        else:
            begin(driver, wanted, binder)  # type: ignore[arg-type]
        conn.info[_INFO_KEY] = wanted
        if wanted is not None and binder.meter is not None:
            conn.info[_STARTED_KEY] = time.perf_counter()  # (the transaction's time: tn.usage)
        if wanted is not None and wanted.route is not None:
            conn.connection.info.setdefault(_SCHEMAS_KEY, set()).add(wanted.route.schema)

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _check(conn: sa.Connection, cursor: Any, statement: str, parameters: Any, ctx: Any, many: bool) -> None:
        bound = conn.info.get(_INFO_KEY, _UNSET)
        if bound is not _UNSET and bound != context.current():
            raise TenantContextError("the bound tenant changed inside an open transaction; commit or roll back first")

    @event.listens_for(sync_engine, "handle_error")
    def _translate(ctx: sa.engine.ExceptionContext) -> BaseException | None:
        # surface tenantry's typed errors (TenantMoving, the isolation errors, a lost server)
        # instead of SQLAlchemy's wrappers, as the psycopg path does; SQLAlchemy still
        # invalidates a connection the original error disconnected
        if ctx.is_pre_ping:
            return None  # the pool's liveness check answers with its own exceptions
        original = ctx.original_exception
        if isinstance(original, TenantryError):
            return original
        if isinstance(original, psycopg.Error):
            mapped = translate(original)
            if mapped is not None:
                mapped.__cause__ = original
                return mapped
        return None

    if schema_recycle_after is not None:

        @event.listens_for(sync_engine.pool, "checkout")
        def _recycle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            # a backend keeps catalog cache entries for every relation it touched: replace a
            # connection that has served many tenant schemas (the pool retries the checkout)
            if len(record.info.get(_SCHEMAS_KEY, ())) > schema_recycle_after:
                raise sa.exc.DisconnectionError("served too many tenant schemas")

    if binder.meter is not None:

        @event.listens_for(sync_engine, "after_cursor_execute")
        def _written(conn: sa.Connection, cursor: Any, statement: str, parameters: Any, ctx: Any, many: bool) -> None:
            # rows an INSERT, UPDATE or DELETE wrote, for tn.usage (a bound transaction only)
            if _STARTED_KEY in conn.info and (ctx.isinsert or ctx.isupdate or ctx.isdelete) and cursor.rowcount > 0:
                conn.info[_ROWS_KEY] = conn.info.get(_ROWS_KEY, 0) + cursor.rowcount

    @event.listens_for(sync_engine, "commit")
    @event.listens_for(sync_engine, "rollback")
    def _end(conn: sa.Connection) -> None:
        # a cancelled statement (asyncio.timeout, wait_for, TaskGroup) makes SQLAlchemy
        # invalidate the connection, whose pool record forgets its info on reconnect: touching
        # conn.info then would raise PendingRollbackError in place of the CancelledError
        if not conn.invalidated:
            bound = conn.info.pop(_INFO_KEY, None)
            started = conn.info.pop(_STARTED_KEY, None)
            written = conn.info.pop(_ROWS_KEY, 0)
            if started is not None and binder.meter is not None and isinstance(bound, BoundTenant):
                binder.meter.transaction(bound.id, time.perf_counter() - started, written)
            forget_deferred(conn.connection.driver_connection)  # a transaction that ran no statement

    @event.listens_for(sync_engine.pool, "checkin")
    def _returned(dbapi_connection: Any, record: Any) -> None:
        # whatever the borrower left on the session is reset before the next borrower's first
        # statement (folded into its first bind: no round trip here)
        if dbapi_connection is not None and record.driver_connection is not None:
            mark_returned(record.driver_connection)


def capped_pool_classes(caps: ConnectionCaps) -> tuple[type[QueuePool], type[AsyncAdaptedQueuePool]]:
    """SQLAlchemy's queue pools (sync, asyncio) that take a permit from ``caps`` for the bound
    tenant before they lend a connection, and give it back when it is checked in (also when
    it was invalidated or detached). ``caps`` is a class attribute so that the pool
    ``engine.dispose()`` makes (``recreate``) keeps it."""

    class CappedQueuePool(QueuePool):
        _tenantry_caps = caps

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._tenantry_gates: dict[int, Gate] = {}

        def connect(self) -> PoolProxiedConnection:
            # (here, not in _do_get: QueuePool._do_get calls itself again while it waits)
            gate = self._tenantry_caps.acquire(context.current())
            return _lend(self, gate, self._tenantry_gates)

        def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
            _take_back(
                self._tenantry_caps,
                self._tenantry_gates,
                record,
                lambda: super(CappedQueuePool, self)._do_return_conn(record),
            )

    class CappedAsyncQueuePool(AsyncAdaptedQueuePool):
        _tenantry_caps = caps

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._tenantry_gates: dict[int, Gate] = {}

        def connect(self) -> PoolProxiedConnection:
            bound = context.current()
            if bound is None or bound.connections is None:
                return _lend(self, None, self._tenantry_gates)
            # (a free permit without leaving the greenlet; else wait on the event loop, from
            # the greenlet SQLAlchemy runs the checkout in)
            gate = self._tenantry_caps.take(bound) or await_(self._tenantry_caps.aacquire(bound))
            return _lend(self, gate, self._tenantry_gates)

        def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
            _take_back(
                self._tenantry_caps,
                self._tenantry_gates,
                record,
                lambda: super(CappedAsyncQueuePool, self)._do_return_conn(record),
            )

    return CappedQueuePool, CappedAsyncQueuePool


def _lend(pool: QueuePool, gate: Gate | None, gates: dict[int, Gate]) -> PoolProxiedConnection:
    """Check a connection out of ``pool`` holding ``gate`` (the tenant's permit, if capped)."""
    if gate is None:
        return QueuePool.connect(pool)
    try:
        proxied = QueuePool.connect(pool)
    except BaseException:
        pool._tenantry_caps.release(gate)  # type: ignore[attr-defined]
        raise
    # the record is what comes back at check-in (the proxy may be gone by then)
    gates[id(proxied._connection_record)] = gate
    return proxied


def _take_back(caps: ConnectionCaps, gates: dict[int, Gate], record: ConnectionPoolEntry, back: Any) -> None:
    gate = gates.pop(id(record), None)
    try:
        back()
    finally:
        if gate is not None:
            caps.release(gate)
