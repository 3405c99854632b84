"""Dead connections and servers that went away: noticed without a round trip, and served again
within a second of the server's return.

**Dead connections.** A server that ends a session (a restart, ``pg_terminate_backend``, a
dropped database, the postmaster killed) sends a FATAL message and closes the socket, so an
idle connection whose socket has something to read is dead. :func:`is_dead` polls the socket
without waiting: no round trip, a system call at checkout. The pools replace a dead connection
before anyone gets it.

**Servers that are down.** :class:`ServerWatch` knows, for one route (a server and database
reached as one role), whether its server is known to be down. The first sign (a dead
connection, a pool that cannot hand one out within half a second, a failed connect) starts a
probe: one connection attempt, repeated every ``interval`` while it fails. While the server is
down callers get :class:`~tenantry.errors.DatabaseUnavailable` at once, instead of waiting on
a pool whose reconnect back-off grows with the outage. When a probe succeeds (or dead
connections show that the server restarted), the watch's ``generation`` moves on and the
route's pools are replaced by fresh ones, so nothing waits on a back-off from before the
outage.
"""

from __future__ import annotations

import asyncio
import logging
import select
import threading
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Any, TypeVar

import psycopg
from psycopg import pq
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from tenantry.db.connect import database_full, describe
from tenantry.errors import DatabaseUnavailable, TooManyConnections

__all__ = ["FIRST_WAIT", "PROBE_INTERVAL", "ServerWatch", "acheckout", "checkout", "is_dead"]

_log = logging.getLogger("tenantry.liveness")

#: seconds a checkout waits on its pool before it asks whether the server is up at all
FIRST_WAIT = 0.5
#: seconds between two connection attempts of a probe while the server is down
PROBE_INTERVAL = 0.5
#: seconds a caller waits for a probe's first answer before it reports the server unavailable
_VERDICT_WAIT = 0.5
#: connect_timeout of a probe (libpq counts whole seconds, and at least 2)
_PROBE_CONNECT_TIMEOUT = 2
#: dead connections one checkout replaces before it gives up
_ATTEMPTS = 4
_OK = pq.ConnStatus.OK
_IDLE = pq.TransactionStatus.IDLE

C = TypeVar("C", bound=psycopg.Connection[Any])
AC = TypeVar("AC", bound=psycopg.AsyncConnection[Any])


def _readable(fd: int) -> bool:
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])  # pragma: no cover - Windows


def is_dead(pgconn: pq.abc.PGconn) -> bool:
    """Whether an idle connection's server has ended the session, without a round trip.

    An idle session has nothing to say: a readable socket means a FATAL message and the end
    of the stream. A ``ParameterStatus`` a configuration reload sends is read and the
    connection kept. A connection inside a transaction is not judged (``False``).
    """
    if pgconn.status != _OK:
        return True
    if pgconn.transaction_status != _IDLE:
        return False
    try:
        fd = pgconn.socket
    except psycopg.OperationalError:
        return True
    if not _readable(fd):
        return False
    try:
        pgconn.consume_input()
    except psycopg.OperationalError:
        return True
    # the FATAL message was read; the end of the stream may still be waiting behind it
    return pgconn.status != _OK or _readable(fd)


class ServerWatch:
    """Whether the server behind one route accepts connections (see the module docstring).

    ``url`` is what a probe connects to (the route's own database and role: a dropped
    database is down too). ``generation`` moves on each time the route's pools must be
    replaced; pools remember the generation they were made in.
    """

    def __init__(self, url: str, *, what: str, interval: float = PROBE_INTERVAL) -> None:
        self.url = url
        self.what = what
        self.interval = interval
        self.generation = 0
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._reason = ""
        self._up_at = float("-inf")  # when a probe last found the server up
        self._full_at = float("-inf")  # when a probe last found the database at its CONNECTION LIMIT
        self._answer: threading.Event | None = None  # set at the running probe's first answer
        self._wake = threading.Event()
        self._closed = threading.Event()

    @property
    def down(self) -> bool:
        """Whether the server is known to be down (a probe keeps trying meanwhile)."""
        return self._down_since is not None

    def unavailable(self) -> DatabaseUnavailable:
        since = self._down_since
        how_long = "" if since is None else f" for {monotonic() - since:.1f} s"
        reason = f": {self._reason}" if self._reason else ""
        return DatabaseUnavailable(f"{self.what} ({describe(self.url)}) is unavailable{how_long}{reason}")

    def check(self) -> None:
        """Raise :class:`DatabaseUnavailable` at once while the server is known to be down."""
        if self._down_since is not None:
            raise self.unavailable()

    def suspect(self) -> threading.Event:
        """Probe the server now, unless a probe is running or found it up just now; the
        event is set once the probe has answered."""
        with self._lock:
            if self._answer is not None:
                self._wake.set()
                return self._answer
            answer = threading.Event()
            if self._down_since is None and monotonic() - self._up_at < self.interval:
                answer.set()
                return answer
            if self._closed.is_set():
                answer.set()
                return answer
            self._answer = answer
        threading.Thread(target=self._probe, args=(answer,), name="tenantry-probe", daemon=True).start()
        return answer

    def verdict(self, wait: float = _VERDICT_WAIT) -> bool:
        """Whether the server accepts connections: a probe at most every ``interval``,
        waited for up to ``wait`` seconds (no answer by then counts as down)."""
        if self._down_since is not None:
            return False
        answered = self.suspect().wait(wait)
        return answered and self._down_since is None

    @property
    def full(self) -> bool:
        """Whether the last probe, within the last few seconds, found the server up but the
        database at its ``CONNECTION LIMIT`` (sessions of other processes fill it)."""
        return monotonic() - self._full_at < 5.0 and self._full_at >= self._up_at

    def renew(self, born: int) -> None:
        """Replace the pools made in generation ``born``: their idle connections are dead
        (once per generation, however many callers find one)."""
        with self._lock:
            if self.generation == born:
                self.generation += 1

    def close(self) -> None:
        self._closed.set()
        self._wake.set()

    def _probe(self, answer: threading.Event) -> None:
        while not self._closed.is_set():
            try:
                psycopg.connect(self.url, connect_timeout=_PROBE_CONNECT_TIMEOUT).close()
                full = False
            except psycopg.Error as err:
                full = database_full(err)  # the server answered: it is up, its database is full
                if not full:
                    with self._lock:
                        if self._down_since is None:
                            self._down_since = monotonic()
                            _log.warning("%s is down: %s", self.what, _first_line(err))
                        self._reason = _first_line(err)
                    answer.set()
                    self._wake.wait(self.interval)
                    self._wake.clear()
                    continue
            with self._lock:
                if self._down_since is not None:
                    _log.warning("%s is back after %.1f s", self.what, monotonic() - self._down_since)
                    self._down_since = None
                    self._reason = ""
                    self.generation += 1  # pools made before (or during) the outage go
                self._up_at = monotonic()
                if full:
                    self._full_at = self._up_at
                self._answer = None
            answer.set()
            return
        with self._lock:
            self._answer = None
        answer.set()


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _no_connection(watch: ServerWatch, timeout: float) -> DatabaseUnavailable | TooManyConnections:
    if watch.full:  # the pool could not open one: the database is at its CONNECTION LIMIT
        return TooManyConnections(
            f"no connection to {watch.what} within {timeout:g} s: the database holds as many sessions as its"
            " CONNECTION LIMIT allows (db_connections, counted over every process)"
        )
    return DatabaseUnavailable(f"no connection to {watch.what} within {timeout:g} s")


def _discard(conn: psycopg.Connection[Any], pool: ConnectionPool[Any]) -> None:
    conn.close()
    pool.putconn(conn)  # the pool sees it closed and opens a replacement


def checkout(
    current: Callable[[], tuple[ConnectionPool[C], int]], watch: ServerWatch, timeout: float
) -> tuple[ConnectionPool[C], C]:
    """A live connection from the route's current pool, and that pool.

    ``current()`` gives the pool and the generation it was made in. A dead idle connection is
    replaced (and, the server being up, the whole pool with it); a server that is down, or
    that gives no connection within ``timeout``, is :class:`DatabaseUnavailable`.
    """
    deadline = monotonic() + timeout
    for _ in range(_ATTEMPTS):
        watch.check()
        pool, born = current()
        try:
            conn = pool.getconn(timeout=max(0.001, min(FIRST_WAIT, deadline - monotonic())))
        except PoolTimeout:
            if not watch.verdict():
                raise watch.unavailable() from None
            try:
                conn = pool.getconn(timeout=max(0.001, deadline - monotonic()))
            except PoolTimeout as err:
                raise _no_connection(watch, timeout) from err
        if not is_dead(conn.pgconn):
            return pool, conn
        _discard(conn, pool)
        if not watch.verdict():
            raise watch.unavailable()
        watch.renew(born)
    raise watch.unavailable()


async def acheckout(
    current: Callable[[], Awaitable[tuple[AsyncConnectionPool[AC], int]]], watch: ServerWatch, timeout: float
) -> tuple[AsyncConnectionPool[AC], AC]:
    """Async :func:`checkout`; waiting for a probe's answer never blocks the event loop."""
    deadline = monotonic() + timeout
    for _ in range(_ATTEMPTS):
        watch.check()
        pool, born = await current()
        try:
            conn = await pool.getconn(timeout=max(0.001, min(FIRST_WAIT, deadline - monotonic())))
        except PoolTimeout:
            if not await asyncio.to_thread(watch.verdict):
                raise watch.unavailable() from None
            try:
                conn = await pool.getconn(timeout=max(0.001, deadline - monotonic()))
            except PoolTimeout as err:
                raise _no_connection(watch, timeout) from err
        if not is_dead(conn.pgconn):
            return pool, conn
        await conn.close()
        await pool.putconn(conn)
        if not await asyncio.to_thread(watch.verdict):
            raise watch.unavailable()
        watch.renew(born)
    raise watch.unavailable()
