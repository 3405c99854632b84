"""Catalog change events: NOTIFY in the changing transaction, LISTEN in every process.

A change to a tenant (status, placement), a cell, a custom domain, a config layer, a flag or a
plugin's enablement sends ``NOTIFY tenantry_catalog`` with ``tenant:<id>``, ``cell:<name>``,
``domain:<hostname>``, ``config:<scope>:<key>``, ``flag:<key>`` or ``plugin:<scope>:<key>``
inside the transaction that makes it, so the notice goes out exactly when the change commits.
Each :class:`tenantry.Tenantry` runs a :class:`CatalogListener` thread that drops what it
cached about what the notice names; after a lost connection it drops everything, since
notices may have been missed.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

__all__ = [
    "CHANNEL",
    "CatalogListener",
    "notify_cell",
    "notify_config",
    "notify_domain",
    "notify_flag",
    "notify_plugin",
    "notify_tenant",
]

CHANNEL = "tenantry_catalog"
_log = logging.getLogger("tenantry.events")
#: seconds the listener waits before reconnecting: doubling from the first, capped at the max
_RETRY_FIRST, _RETRY_MAX = 0.1, 0.5


def notify_tenant(conn: psycopg.Connection[Any], tenant_id: uuid.UUID) -> None:
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"tenant:{tenant_id}"))


def notify_cell(conn: psycopg.Connection[Any], name: str) -> None:
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"cell:{name}"))


def notify_config(conn: psycopg.Connection[Any], scope: str, key: str) -> None:
    """A config layer changed: ``config:tenant:<id>`` or ``config:plan:<name>``."""
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"config:{scope}:{key}"))


def notify_flag(conn: psycopg.Connection[Any], key: str) -> None:
    """A feature flag changed (created, updated, killed or deleted): ``flag:<key>``."""
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"flag:{key}"))


def notify_domain(conn: psycopg.Connection[Any], hostname: str) -> None:
    """A custom domain changed: ``domain:<hostname>``."""
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"domain:{hostname}"))


def notify_plugin(conn: psycopg.Connection[Any], scope: str, key: str) -> None:
    """A plugin was switched on or off: ``plugin:tenant:<id>`` or ``plugin:plan:<name>``."""
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"plugin:{scope}:{key}"))


class CatalogListener:
    """A daemon thread that LISTENs and calls ``on_event(kind, key)``; ``on_reset()`` after
    every (re)connection."""

    def __init__(
        self,
        url: str,
        *,
        on_event: Callable[[str, str], None],
        on_reset: Callable[[], None],
        poll: float = 0.5,
    ) -> None:
        self._url = url
        self._on_event = on_event
        self._on_reset = on_reset
        self._poll = poll
        self._stop = threading.Event()
        self.listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tenantry-catalog-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        delay = _RETRY_FIRST
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._on_reset()
                    self.listening.set()
                    delay = _RETRY_FIRST
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=self._poll):
                            kind, _, key = notice.payload.partition(":")
                            self._on_event(kind, key)
            except Exception as err:  # keep listening whatever happens; the TTL is the backstop
                if self.listening.is_set() or delay == _RETRY_FIRST:
                    _log.warning("catalog listener reconnecting after: %s", str(err).strip().splitlines()[:1])
                self.listening.clear()
                self._on_reset()
                # back within half a second of the server's return, however long it was away
                self._stop.wait(delay)
                delay = min(delay * 2, _RETRY_MAX)
