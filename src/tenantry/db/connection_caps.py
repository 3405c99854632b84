"""Each tenant's cap on the connections it holds at once in this process (``db_connections``).

A :class:`~tenantry.db.routing.Router` asks :class:`ConnectionCaps` before it takes a
connection from any of its pools (psycopg_pool's, sync and asyncio, at checkout, before the
pool is even chosen; the SQLAlchemy engines', sync and asyncio, at the pool's ``connect``),
and the pool gives the permit back with the connection: the count is per tenant over all of
them. The cap comes with the binding (:attr:`tenantry.context.BoundTenant.connections`, from
the plan the directory keeps cached), so a borrow reads no catalog.

**Fair to the other tenants.** A tenant at its cap waits here, on its own queue, *before* it
asks a pool for a connection: its waiting borrowers hold no pool slot and no place in the
pool's queue, so the other tenants' borrowers are served as if it were not there. Its own
borrowers are served first come, first served: a connection given back is handed to the
tenant's oldest waiter directly (no thundering herd, no overtaking). A borrower that waits
longer than ``timeout`` gets :class:`~tenantry.errors.TooManyConnections`.

**Nothing leaks.** A permit is given back when its connection is, whatever ended the borrow
(a commit, an exception, a cancelled task); a waiter cancelled or timed out leaves the queue,
and a permit handed to it in the same instant goes on to the next waiter. A tenant with
nothing held and no one waiting keeps its small entry until more than 1,024 tenants have
one, when the idle ones are forgotten.

**Cost.** A tenant without a cap (and no tenant) costs one attribute read per borrow; a
capped tenant under its cap, a short lock and a counter each way (no I/O under the lock).
``bench/connection_caps.py`` measures it.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import uuid
from collections.abc import Callable

from tenantry.context import BoundTenant
from tenantry.errors import TooManyConnections

__all__ = ["ConnectionCaps", "Gate"]

#: tenants with a gate kept before the idle ones are forgotten
_SWEEP_AT = 1024


class _Waiter:
    """One borrower waiting for a permit; ``wake`` is called (under the lock) when granted."""

    __slots__ = ("granted", "wake")

    def __init__(self, wake: Callable[[], object]) -> None:
        self.granted = False
        self.wake = wake


class Gate:
    """One tenant's count of connections held, its cap, and its borrowers waiting."""

    __slots__ = ("cap", "held", "tenant", "waiters")

    def __init__(self, tenant: uuid.UUID, cap: int) -> None:
        self.tenant = tenant
        self.cap = cap
        self.held = 0
        self.waiters: collections.deque[_Waiter] = collections.deque()


class ConnectionCaps:
    """Per-tenant permits to hold a connection, shared by every pool of one router.

    ``timeout`` is how long a borrower over its tenant's cap waits for a connection to come
    back before :class:`~tenantry.errors.TooManyConnections`.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._gates: dict[uuid.UUID, Gate] = {}
        self._sweep_at = _SWEEP_AT

    # -- taking and giving back -------------------------------------------------------------
    def _enter(self, tenant: BoundTenant, cap: int) -> tuple[Gate, bool]:
        """Under the lock: the tenant's gate, and whether a permit was taken from it now."""
        gate = self._gates.get(tenant.id)
        if gate is None:
            if len(self._gates) >= self._sweep_at:
                self._sweep()
            gate = self._gates[tenant.id] = Gate(tenant.id, cap)
        elif gate.cap != cap:
            gate.cap = cap  # the plan changed: the newest binding's cap counts
            self._grant(gate)  # (a raised cap lets the queue move first)
        if gate.held < cap and not gate.waiters:
            gate.held += 1
            return gate, True
        return gate, False

    def _grant(self, gate: Gate) -> None:
        """Under the lock: hand free permits to the oldest waiters."""
        while gate.waiters and gate.held < gate.cap:
            waiter = gate.waiters.popleft()
            try:
                waiter.wake()
            except RuntimeError:  # its event loop is closed: no one is waiting there any more
                continue
            gate.held += 1
            waiter.granted = True

    def _leave(self, gate: Gate, waiter: _Waiter) -> bool:
        """Under the lock: take ``waiter`` out of the queue; whether it was granted meanwhile."""
        if waiter.granted:
            return True
        gate.waiters.remove(waiter)
        return False

    def _sweep(self) -> None:
        """Under the lock: forget the tenants that hold nothing and wait for nothing (a gate
        is kept between borrows, so the common borrow allocates nothing)."""
        for tid in [tid for tid, g in self._gates.items() if g.held == 0 and not g.waiters]:
            del self._gates[tid]
        self._sweep_at = max(_SWEEP_AT, 2 * len(self._gates))

    def release(self, gate: Gate) -> None:
        """Give back a permit :meth:`acquire` or :meth:`aacquire` gave (from any thread)."""
        with self._lock:
            gate.held -= 1
            if gate.waiters:
                self._grant(gate)

    def take(self, tenant: BoundTenant) -> Gate | None:
        """A permit for capped ``tenant`` if one is free now (no waiting), else ``None``."""
        cap = tenant.connections
        assert cap is not None
        with self._lock:
            gate = self._gates.get(tenant.id)
            if gate is not None and gate.held < cap and gate.cap == cap and not gate.waiters:
                gate.held += 1
                return gate
        return None

    def acquire(self, tenant: BoundTenant | None) -> Gate | None:
        """A permit for ``tenant`` to hold one more connection (``None``: it has no cap), waiting
        up to :attr:`timeout` while it holds as many as its cap allows."""
        if tenant is None or tenant.connections is None:
            return None
        cap = tenant.connections
        with self._lock:
            gate = self._gates.get(tenant.id)
            if gate is not None and gate.held < cap and gate.cap == cap and not gate.waiters:
                gate.held += 1  # (the common case, inline)
                return gate
            gate, taken = self._enter(tenant, cap)
            if taken:
                return gate
            event = threading.Event()
            waiter = _Waiter(event.set)
            gate.waiters.append(waiter)
        try:
            woken = event.wait(self.timeout)
        except BaseException:  # (an interrupt): never keep a permit no one will give back
            with self._lock:
                granted = self._leave(gate, waiter)
            if granted:
                self.release(gate)
            raise
        if not woken:
            with self._lock:
                if not self._leave(gate, waiter):
                    raise self._refusal(tenant, gate)
        return gate

    async def aacquire(self, tenant: BoundTenant | None) -> Gate | None:
        """Async :meth:`acquire`: waits without blocking the event loop; a cancelled waiter
        leaves the queue (and passes on a permit granted to it in the same instant)."""
        if tenant is None or tenant.connections is None:
            return None
        cap = tenant.connections
        with self._lock:
            gate = self._gates.get(tenant.id)
            if gate is not None and gate.held < cap and gate.cap == cap and not gate.waiters:
                gate.held += 1
                return gate
            gate, taken = self._enter(tenant, cap)
            if taken:
                return gate
            loop = asyncio.get_running_loop()
            woken: asyncio.Future[None] = loop.create_future()
            waiter = _Waiter(lambda: loop.call_soon_threadsafe(_settle, woken))
            gate.waiters.append(waiter)
        try:
            async with asyncio.timeout(self.timeout):
                await woken
        except TimeoutError:
            with self._lock:
                if not self._leave(gate, waiter):
                    raise self._refusal(tenant, gate) from None
        except BaseException:  # cancelled: never keep a permit no one will give back
            with self._lock:
                granted = self._leave(gate, waiter)
            if granted:
                self.release(gate)
            raise
        return gate

    def _refusal(self, tenant: BoundTenant, gate: Gate) -> TooManyConnections:
        return TooManyConnections(
            f"tenant {tenant.slug!r} holds {gate.held} database connections, as many as its plan allows"
            f" (db_connections = {gate.cap}), and none came back within {self.timeout:g} s",
            cap=gate.cap,
            held=gate.held,
            retry_in=1.0,
        )

    # -- what is held -------------------------------------------------------------------------
    def held(self, tenant_id: uuid.UUID) -> int:
        """How many connections the tenant holds in this process now (counted while capped)."""
        gate = self._gates.get(tenant_id)
        return 0 if gate is None else gate.held

    def stats(self) -> dict[uuid.UUID, tuple[int, int, int]]:
        """``(held, cap, waiting)`` of every tenant holding or waiting now (for metrics)."""
        with self._lock:
            return {tid: (g.held, g.cap, len(g.waiters)) for tid, g in self._gates.items() if g.held or g.waiters}


def _settle(woken: asyncio.Future[None]) -> None:
    if not woken.done():  # (cancelled meanwhile: the waiter gives the permit back itself)
        woken.set_result(None)
