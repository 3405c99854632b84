"""A small pool of autocommit connections to the catalog, for one role: the admin's (control
plane) or the reader's (a data plane's routing reads).

The first connection is opened directly, so an unreachable server or a wrong password fails at
once with a clear error; after that, connections come from a pool (opening one costs
milliseconds, more than most catalog reads). A dead connection is replaced and a server that is
down fails at once; the pool is replaced by a fresh one when the server returns (see
:mod:`tenantry.db.liveness`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from tenantry.db import liveness
from tenantry.db.connect import admin_connection, control_plane_url, translated

__all__ = ["CatalogPool"]


class CatalogPool:
    """Autocommit connections to ``url()`` (called on first use), at most ``max_size``."""

    def __init__(self, url: Callable[[], str], *, name: str, what: str, timeout: float, max_size: int = 4) -> None:
        self._url = url
        self._name = name
        self._what = what
        self._timeout = timeout
        self._max_size = max_size
        self._lock = threading.Lock()
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._watch: liveness.ServerWatch | None = None
        self._born = 0  # the watch generation the pool was made in

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """An autocommit connection (its work opens its own transactions)."""
        watch = self._watch
        if watch is None:
            with admin_connection(self._url(), timeout=self._timeout, autocommit=True) as conn:
                yield conn
            self._open()
            return
        pool, conn = liveness.checkout(self._current, watch, self._timeout)
        try:
            with translated():  # (not `with conn`: that would close it, and every call reconnect)
                yield conn
        finally:
            pool.putconn(conn)

    def suspect(self) -> None:
        """Probe the server now if it is known to be down (a listener just reconnected)."""
        if self._watch is not None and self._watch.down:
            self._watch.suspect()

    def _current(self) -> tuple[ConnectionPool[psycopg.Connection[Any]], int]:
        with self._lock:
            pool, watch = self._pool, self._watch
            assert pool is not None and watch is not None
            if self._born != watch.generation:  # made before the server restarted
                threading.Thread(target=pool.close, kwargs={"timeout": 5.0}, daemon=True).start()
                self._pool = pool = self._new_pool()
                self._born = watch.generation
            return pool, self._born

    def _new_pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            control_plane_url(self._url()),
            kwargs={"autocommit": True},
            min_size=1,
            max_size=self._max_size,
            timeout=self._timeout,
            reconnect_timeout=5.0,
            name=self._name,
            open=False,
        )
        pool.open(wait=False)
        return pool

    def _open(self) -> None:
        with self._lock:
            if self._pool is None:
                self._pool = self._new_pool()
                self._watch = liveness.ServerWatch(control_plane_url(self._url()), what=self._what)
                self._born = self._watch.generation

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
            if self._watch is not None:
                self._watch.close()
                self._watch = None
