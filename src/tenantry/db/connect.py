"""Opening admin connections, and translating driver errors into tenantry's own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tenantry import context
from tenantry.core.limits import READ_ONLY
from tenantry.errors import (
    DatabaseUnavailable,
    IdleInTransactionTimeout,
    IsolationError,
    NoTenantBound,
    StatementTimeout,
    StorageQuotaExceeded,
    TenantMoved,
    TenantMoving,
    TenantRestoring,
    TenantryError,
    TenantSuspended,
    TooManyConnections,
)

__all__ = [
    "admin_connection",
    "control_plane_url",
    "database_url",
    "describe",
    "database_full",
    "stale_binding",
    "translate",
    "translated",
    "with_user",
]

#: SQLSTATE raised by ``tenantry.require_tenant_id()``.
NO_TENANT_SQLSTATE = "TNB01"


def describe(url: str) -> str:
    """A password-free description of a connection string, for error messages."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the configured database"
    host = params.get("host") or "localhost"
    return f"{params.get('user') or 'default user'}@{host}:{params.get('port') or 5432}/{params.get('dbname') or ''}"


def with_user(url: str, user: str, password: str | None) -> str:
    """``url`` with another user (and password), keeping host, port and database."""
    params = conninfo_to_dict(url)
    params["user"] = user
    params.pop("password", None)
    if password:
        params["password"] = password
    return make_conninfo("", **params)


def control_plane_url(url: str) -> str:
    """``url`` for the control plane's own connections: with JIT compilation off.

    Catalog queries over a database with many tenant schemas have high cost estimates (a
    pg_class of tens of thousands of rows), so PostgreSQL JIT-compiles them, spending 60-100 ms
    to compile a query that then runs in 8 ms (we saw it in every placement's migration).
    """
    params = conninfo_to_dict(url)
    params["options"] = f"{params.get('options') or ''} -c jit=off".strip()
    return make_conninfo("", **params)


#: SQLSTATEs of ``tenantry.refuse_stale`` (sql/local.sql): a binding older than a fence
MOVED_SQLSTATE, SUSPENDED_SQLSTATE = "TNM01", "TNS01"
#: SQLSTATE of ``tenantry.refuse_write_while_restoring`` (sql/restore_freeze.sql)
RESTORING_SQLSTATE = "TNR01"


def stale_binding(state: str | None, message: str) -> TenantryError | None:
    """The error for a binding the database refused as stale, or ``None``."""
    if state == MOVED_SQLSTATE:
        return TenantMoved(message.removeprefix("tenantry: "))
    if state == SUSPENDED_SQLSTATE:
        return TenantSuspended(message.removeprefix("tenantry: "))
    return None


def database_full(err: psycopg.Error) -> bool:
    """Whether ``err`` is the server refusing a session because the database is at its
    ``CONNECTION LIMIT`` (SQLSTATE 53300; a refused connect carries no SQLSTATE, only the
    server's message, which is matched in English)."""
    state = getattr(getattr(err, "diag", None), "sqlstate", None)
    if state not in (None, "53300"):
        return False
    return "too many connections for database" in str(err)


def translate(err: psycopg.Error) -> TenantryError | None:
    """The tenantry error a driver error stands for, or ``None`` when it is not ours to name."""
    state = getattr(getattr(err, "diag", None), "sqlstate", None)
    message = getattr(getattr(err, "diag", None), "message_primary", None) or str(err)
    if state == NO_TENANT_SQLSTATE:
        return NoTenantBound(message.removeprefix("tenantry: "))
    stale = stale_binding(state, message)
    if stale is not None:
        return stale
    if isinstance(err, pg_errors.InsufficientPrivilege) and "row-level security" in message:
        return IsolationError(f"refused by row-level security: {message}")
    if isinstance(err, pg_errors.InsufficientPrivilege) and message.startswith("tenantry:"):
        return IsolationError(message.removeprefix("tenantry: "))
    if state == RESTORING_SQLSTATE:
        return TenantRestoring(message.removeprefix("tenantry: "))
    if state == "55006" and message.startswith("tenantry:"):
        return TenantMoving(message.removeprefix("tenantry: "))
    if state == "57014" and "statement timeout" in message:  # (a cancel by hand is not ours)
        return StatementTimeout(
            "the statement ran longer than the tenant's plan allows (statement_timeout_ms) and was cancelled",
            limit="statement_timeout_ms",
        )
    if state == "25P03":
        return IdleInTransactionTimeout(
            "the transaction sat idle longer than the tenant's plan allows (idle_in_transaction_timeout_ms);"
            " the database ended it and closed the connection",
            limit="idle_in_transaction_timeout_ms",
        )
    if database_full(err):
        return TooManyConnections(
            "the tenant's database refused one more session: it holds as many as its CONNECTION LIMIT allows"
            " (db_connections, counted over every process)"
        )
    if state == "25006":
        bound = context.current()
        if bound is not None and READ_ONLY in bound.settings:  # (not a READ ONLY the app chose)
            return StorageQuotaExceeded(
                f"tenant {bound.slug!r} is over its plan's storage quota (storage_mb): writes are refused"
                " until it is back under it (delete rows, or raise the quota); reads go on",
                limit="storage_mb",
            )
    if isinstance(err, psycopg.OperationalError) and (state is None or state.startswith(("08", "57P"))):
        # the connection itself failed (class 08), or the server is shutting down (57P)
        return DatabaseUnavailable(f"cannot reach PostgreSQL: {str(err).strip().splitlines()[0]}")
    return None


@contextmanager
def admin_connection(url: str, *, timeout: float = 10.0, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """A connection to ``url``; connection failures become :class:`DatabaseUnavailable`."""
    try:
        conn = psycopg.connect(control_plane_url(url), autocommit=autocommit, connect_timeout=max(1, int(timeout)))
    except psycopg.OperationalError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DatabaseUnavailable(f"cannot connect to {describe(url)}: {first}") from err
    with translated(), conn:
        yield conn


@contextmanager
def translated() -> Iterator[None]:
    """Raise tenantry's error for a driver error that stands for one (see :func:`translate`)."""
    try:
        yield
    except psycopg.Error as err:
        mapped = translate(err)
        if mapped is None:
            raise
        raise mapped from err


def database_url(admin_url: str, database: str | None) -> str:
    """``admin_url`` pointing at another database of the same server."""
    if database is None:
        return admin_url
    params = conninfo_to_dict(admin_url)
    params["dbname"] = database
    return make_conninfo("", **params)
