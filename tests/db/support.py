"""Helpers of the data-plane tests."""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import pq

from tenantry import Tenantry
from tenantry.db import binding, connections


class Trace:
    """The protocol messages a connection exchanged, as libpq traced them."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def sent(self) -> list[str]:
        """The names of the messages the client sent, in order."""
        return [line.split("\t")[2].strip() for line in self.lines if line.startswith("F\t")]

    @property
    def round_trips(self) -> int:
        """How many times the client waited for the server: each Sync (extended protocol) and
        each simple Query asks for an answer the client then reads."""
        return sum(1 for name in self.sent() if name in ("Sync", "Query"))


@contextmanager
def traced(conn: psycopg.BaseConnection[object]) -> Iterator[Trace]:
    """Trace ``conn``'s protocol messages (libpq's ``PQtrace``) while the block runs."""
    trace = Trace()
    with tempfile.TemporaryFile() as out:
        conn.pgconn.trace(out.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield trace
        finally:
            conn.pgconn.untrace()
            out.seek(0)
            trace.lines = out.read().decode(errors="replace").splitlines()


def make_tier_plan(tn: Tenantry, tier: str, limits: dict[str, object]) -> str:
    """A plan of its own on ``tier`` (``pooled``, ``schema`` or ``database``) with ``limits``
    (plans CRUD is not in the API yet: SQL)."""
    name = f"p-{uuid.uuid4().hex[:8]}"
    with tn.admin() as conn:
        conn.execute(
            "INSERT INTO tenantry.plans (name, isolation, limits) VALUES (%s, %s, %s)", (name, tier, json.dumps(limits))
        )
    return name


def switch_reset_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """No connection is ever due a reset: neither the bind (SQLAlchemy, ``transaction()``), nor
    a fused first statement, nor a statement escaping the binder resets it."""
    for module in (binding, connections):
        monkeypatch.setattr(module, "reset_due", lambda conn: False)
