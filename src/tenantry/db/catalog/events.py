"""Catalog change events: NOTIFY in the changing transaction, LISTEN in every process.

A change to a tenant (status, placement), a cell, a custom domain, a config layer, a flag, a
plugin's enablement or a brand sends ``NOTIFY tenantry_catalog`` with ``<kind>:<key>``
(:class:`~tenantry.core.events.EventKind` names every kind and what its key is) inside the
transaction that makes it, so the notice goes out exactly when the change commits. Each
:class:`tenantry.Tenantry` runs a :class:`CatalogListener` thread that drops what it cached
about what the notice names; after a lost connection it drops everything, since notices may
have been missed.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from tenantry.core.events import EventKind

__all__ = [
    "CHANNEL",
    "CatalogListener",
    "EventKind",
    "notify",
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


def notify(conn: psycopg.Connection[Any], kind: EventKind, key: str) -> None:
    """Announce a change of ``kind`` about ``key`` when ``conn``'s transaction commits."""
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, kind.payload(key)))


def notify_tenant(conn: psycopg.Connection[Any], tenant_id: uuid.UUID) -> None:
    """A tenant changed (status, plan, slug, placement) or was made: ``tenant:<id>``."""
    notify(conn, EventKind.TENANT, str(tenant_id))


def notify_cell(conn: psycopg.Connection[Any], name: str) -> None:
    """A cell changed: ``cell:<name>``."""
    notify(conn, EventKind.CELL, name)


def notify_config(conn: psycopg.Connection[Any], scope: str, key: str) -> None:
    """A config layer changed: ``config:tenant:<id>`` or ``config:plan:<name>``."""
    notify(conn, EventKind.CONFIG, f"{scope}:{key}")


def notify_flag(conn: psycopg.Connection[Any], key: str) -> None:
    """A feature flag changed (created, updated, killed or deleted): ``flag:<key>``."""
    notify(conn, EventKind.FLAG, key)


def notify_domain(conn: psycopg.Connection[Any], hostname: str) -> None:
    """A custom domain changed: ``domain:<hostname>``."""
    notify(conn, EventKind.DOMAIN, hostname)


def notify_plugin(conn: psycopg.Connection[Any], scope: str, key: str) -> None:
    """A plugin was switched on or off: ``plugin:tenant:<id>`` or ``plugin:plan:<name>``."""
    notify(conn, EventKind.PLUGIN, f"{scope}:{key}")


class CatalogListener:
    """A daemon thread that LISTENs and calls ``on_event(kind, key)`` for every notice of a
    kind this version knows; ``on_reset()`` after every (re)connection."""

    def __init__(
        self,
        url: str,
        *,
        on_event: Callable[[EventKind, str], None],
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
                            event = EventKind.parse(notice.payload)
                            if event is not None:  # (a newer process's kind: nothing here is about it)
                                self._on_event(*event)
            except Exception as err:  # keep listening whatever happens; the TTL is the backstop
                if self.listening.is_set() or delay == _RETRY_FIRST:
                    _log.warning("catalog listener reconnecting after: %s", str(err).strip().splitlines()[:1])
                self.listening.clear()
                self._on_reset()
                # back within half a second of the server's return, however long it was away
                self._stop.wait(delay)
                delay = min(delay * 2, _RETRY_MAX)
