"""A plan's ``db_connections`` caps the connections a tenant holds at once in a process, over
every pool (psycopg and SQLAlchemy, sync and asyncio): the borrower over the cap waits on the
tenant's own queue, then gets :class:`TooManyConnections`; the other tenants' borrowers go on
as if it were not there (and, the negative control, wait behind the flood without the cap);
permits come back on exceptions and cancellations. A database-tier tenant's database gets the
cap as its ``CONNECTION LIMIT``, and the server's refusal is the same typed error."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from time import monotonic
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tenantry import BoundTenant, DatabaseUnavailable, Tenant, Tenantry, TooManyConnections
from tenantry.db.connection_caps import ConnectionCaps, Gate
from tenantry.web import PathPrefixResolver
from tests.db.support import make_tier_plan
from tests.web.edge_app import get, wrap
from tests.web.limits_support import set_plan_limits

#: seconds a borrower over its tenant's cap waits (the process's connect_timeout)
WAIT = 0.8
KINDS = ["psycopg", "sqlalchemy"]


@pytest.fixture(scope="module")
def capped(tn: Tenantry) -> Iterator[Tenantry]:
    """A process with a small shared pool (3) and a short wait."""
    small = Tenantry(
        tn.settings.with_changes(connect_timeout=WAIT, pool_min_size=0, pool_max_size=3, tenant_pool_max_size=3),
        metadata=tn.metadata,
    )
    yield small
    small.close()


@pytest.fixture(scope="module")
def tenants(tn: Tenantry) -> dict[str, Tenant]:
    """``a``: capped at 2 (pooled); ``b``: no cap; ``flood``: no cap either (the control)."""
    two, none = make_tier_plan(tn, "pooled", {"db_connections": 2}), make_tier_plan(tn, "pooled", {})
    return {
        name: tn.tenants.create(f"cap-{name}-{uuid.uuid4().hex[:8]}", plan=plan)
        for name, plan in (("a", two), ("b", none), ("flood", none))
    }


@contextmanager
def borrow(tn: Tenantry, kind: str) -> Iterator[Callable[[str], object]]:
    """A connection of the bound tenant, of ``kind``; yields a function running a statement."""
    if kind == "psycopg":
        with tn.connection() as conn:
            yield lambda q: conn.execute(q).fetchall()
    else:
        with tn.engine().connect() as c:
            yield lambda q: c.execute(sa.text(q)).all()


@asynccontextmanager
async def aborrow(tn: Tenantry, kind: str) -> AsyncIterator[Callable[[str], Awaitable[object]]]:
    if kind == "psycopg":
        async with tn.async_connection() as conn:

            async def run(q: str) -> object:
                return await (await conn.execute(q)).fetchall()

            yield run
    else:
        async with tn.async_engine().connect() as c:

            async def arun(q: str) -> object:
                return (await c.execute(sa.text(q))).all()

            yield arun


class Holders:
    """Threads that each borrow a connection as a tenant and hold it until released."""

    def __init__(self, tn: Tenantry, slug: str, kinds: list[str]) -> None:
        self._gates = [threading.Event() for _ in kinds]
        self._holding = threading.Semaphore(0)
        self.errors: list[BaseException] = []
        self._threads = [
            threading.Thread(target=self._hold, args=(tn, slug, kind, gate), daemon=True)
            for kind, gate in zip(kinds, self._gates, strict=True)
        ]
        for thread in self._threads:
            thread.start()
        for _ in kinds:
            assert self._holding.acquire(timeout=10), "a holder did not get its connection"
        assert self.errors == []

    def _hold(self, tn: Tenantry, slug: str, kind: str, gate: threading.Event) -> None:
        try:
            with tn.tenant(slug), borrow(tn, kind) as run:
                run("SELECT 1")
                self._holding.release()
                gate.wait(10)
        except BaseException as err:  # noqa: BLE001 (reported by the test)
            self.errors.append(err)
            self._holding.release()

    def release(self, index: int) -> None:
        self._gates[index].set()

    def close(self) -> None:
        for gate in self._gates:
            gate.set()
        for thread in self._threads:
            thread.join(10)
        assert self.errors == []


@contextmanager
def holding(tn: Tenantry, slug: str, kinds: list[str]) -> Iterator[Holders]:
    holders = Holders(tn, slug, kinds)
    try:
        yield holders
    finally:
        holders.close()


def _borrow_in_thread(tn: Tenantry, slug: str, kind: str, into: list[object]) -> threading.Thread:
    def run() -> None:
        try:
            with tn.tenant(slug), borrow(tn, kind) as q:
                q("SELECT 1")
                into.append(monotonic())
        except BaseException as err:  # noqa: BLE001
            into.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("kind", KINDS)
def test_the_borrower_over_the_cap_waits_then_gets_too_many_connections(
    capped: Tenantry, tenants: dict[str, Tenant], kind: str
) -> None:
    a = tenants["a"]
    caps = capped.router.caps
    with holding(capped, a.slug, [kind, kind]) as holders:
        assert caps.held(a.id) == 2
        started = monotonic()
        with pytest.raises(TooManyConnections) as refused, capped.tenant(a.slug), borrow(capped, kind):
            pass
        assert WAIT - 0.05 <= monotonic() - started < WAIT + 1.5
        assert (refused.value.limit, refused.value.cap, refused.value.held) == ("db_connections", 2, 2)
        assert refused.value.http_status == 429 and refused.value.exit_code == 14
        # a waiter is handed the connection a holder gives back, at once
        got: list[object] = []
        waiter = _borrow_in_thread(capped, a.slug, kind, got)
        waiter.join(0.15)
        assert waiter.is_alive() and got == []  # waiting
        released = monotonic()
        holders.release(0)
        waiter.join(5)
        assert len(got) == 1 and isinstance(got[0], float) and got[0] - released < 0.5
    # an exception inside the block gives the connection and the permit back too
    with pytest.raises(ValueError), capped.tenant(a.slug), borrow(capped, kind):
        raise ValueError("the app failed")
    assert caps.held(a.id) == 0 and a.id not in caps.stats()


def test_the_cap_holds_on_every_tier(tn: Tenantry, capped: Tenantry, tier: str) -> None:
    """A tenant capped at 1 on each tier (the shared pool; its own database's pool): while it
    holds a connection, its next borrower (of the other kind) waits in its queue, and is
    handed the connection's permit when it comes back."""
    t = tn.tenants.create(
        f"cap-{tier[:2]}-{uuid.uuid4().hex[:8]}", plan=make_tier_plan(tn, tier, {"db_connections": 1})
    )
    caps = capped.router.caps
    with holding(capped, t.slug, ["psycopg"]) as holders:
        got: list[object] = []
        waiter = _borrow_in_thread(capped, t.slug, "sqlalchemy", got)
        deadline = monotonic() + 2
        while caps.stats().get(t.id, (0, 0, 0))[2] < 1:
            assert monotonic() < deadline, "the second borrower did not wait"
            threading.Event().wait(0.01)
        assert caps.held(t.id) == 1 and got == []
        holders.release(0)
        waiter.join(5)
        assert len(got) == 1 and isinstance(got[0], float), got
    assert caps.held(t.id) == 0


def test_the_cap_counts_every_pool_sync_and_async(capped: Tenantry, tenants: dict[str, Tenant]) -> None:
    """One connection held through psycopg, one through SQLAlchemy (threads): an asyncio
    borrower of either kind is over the cap, and so is one of ``tn.pool()`` used directly."""
    a = tenants["a"]

    async def over_the_cap(kind: str) -> float:
        started = monotonic()
        try:
            with pytest.raises(TooManyConnections):
                async with capped.tenant(a.slug), aborrow(capped, kind):
                    pass
            return monotonic() - started
        finally:
            await capped.router.aclose()

    with holding(capped, a.slug, ["psycopg", "sqlalchemy"]):
        for kind in KINDS:
            assert asyncio.run(over_the_cap(kind)) >= WAIT - 0.05
        with capped.tenant(a.slug), pytest.raises(TooManyConnections), capped.pool().connection():
            pass  # (the pool used directly, too)
    assert capped.router.caps.held(a.id) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_asyncio_borrowers_over_the_cap_wait_then_are_refused(
    capped: Tenantry, tenants: dict[str, Tenant], kind: str
) -> None:
    a = tenants["a"]

    async def borrower(hold: float) -> float:
        async with capped.tenant(a.slug), aborrow(capped, kind) as run:
            await run(f"SELECT pg_sleep({hold})")
            return monotonic()

    async def main() -> list[object]:
        try:
            holders = [asyncio.create_task(borrower(WAIT + 0.7)) for _ in range(2)]
            await asyncio.sleep(0.2)
            third = asyncio.create_task(borrower(0))
            return await asyncio.gather(*holders, third, return_exceptions=True)
        finally:
            await capped.router.aclose()

    *held, third = asyncio.run(main())
    assert all(isinstance(t, float) for t in held), held
    assert isinstance(third, TooManyConnections)
    assert capped.router.caps.held(a.id) == 0


def test_the_edge_answers_429_with_retry_after(capped: Tenantry, tenants: dict[str, Tenant]) -> None:
    """A request whose handler is over its tenant's cap gets the typed refusal, not a 500."""

    async def query(request: Request) -> PlainTextResponse:
        async with capped.async_connection() as conn:
            await conn.execute("SELECT 1")
        return PlainTextResponse("ok")

    app = wrap(capped, Starlette(routes=[Route("/q", query)]), [PathPrefixResolver("/t")], limits=False)
    a = tenants["a"]

    async def main() -> Any:
        try:
            return await get(app, f"/t/{a.slug}/q")
        finally:
            await capped.router.aclose()

    with holding(capped, a.slug, ["psycopg", "sqlalchemy"]):
        answer = asyncio.run(main())
    assert answer.status_code == 429, answer.text
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["type"].endswith("too-many-connections")


def test_a_tenant_at_its_cap_does_not_hold_up_the_others(capped: Tenantry, tenants: dict[str, Tenant]) -> None:
    """``a`` holds its 2 connections and has 3 more borrowers waiting; the shared pool has 3
    slots: ``b`` borrows at once. The control: ``flood`` (no cap) takes all 3 slots and queues
    3 more borrowers in the pool, and ``b`` waits behind them."""
    a, b, flood = tenants["a"], tenants["b"], tenants["flood"]

    def b_borrows() -> tuple[float, BaseException | None]:
        started = monotonic()
        try:
            with capped.tenant(b.slug), borrow(capped, "psycopg") as run:
                run("SELECT 1")
        except (DatabaseUnavailable, TooManyConnections) as err:
            return monotonic() - started, err
        return monotonic() - started, None

    # the control: no cap, the flood fills the pool and its queue; b waits, then is refused
    # (first: the pool's 3 connections are open afterwards, so b's borrow below opens none)
    with holding(capped, flood.slug, ["psycopg"] * 3):
        flooding: list[object] = []
        more = [_borrow_in_thread(capped, flood.slug, "psycopg", flooding) for _ in range(3)]
        waited, error = b_borrows()
        assert waited >= WAIT - 0.05 and isinstance(error, DatabaseUnavailable), (waited, error)
    for thread in more:
        thread.join(5)

    # with the cap: a's 2 connections and 3 waiters leave the pool's third slot to b
    with holding(capped, a.slug, ["psycopg", "psycopg"]):
        queued: list[object] = []
        waiters = [_borrow_in_thread(capped, a.slug, "psycopg", queued) for _ in range(3)]
        deadline = monotonic() + 2
        while capped.router.caps.stats().get(a.id, (0, 0, 0))[2] < 3:
            assert monotonic() < deadline, "a's borrowers did not queue"
            threading.Event().wait(0.01)
        waited, error = b_borrows()
        assert error is None and waited < 0.4, (waited, error)
    for waiter in waiters:
        waiter.join(5)


def test_no_permit_leaks_through_exceptions_or_cancellations(capped: Tenantry, tenants: dict[str, Tenant]) -> None:
    """60 asyncio borrowers of both kinds against a cap of 2: some fail inside their block,
    two in three are cancelled (waiting, connecting, or running a statement). Afterwards the
    tenant holds nothing and waits for nothing, and borrows again at once."""
    a = tenants["a"]
    caps = capped.router.caps

    async def borrower(i: int) -> None:
        async with capped.tenant(a.slug), aborrow(capped, KINDS[i % 2]) as run:
            await run("SELECT pg_sleep(0.01)")
            if i % 5 == 0:
                raise ValueError("the app failed")

    async def main() -> tuple[list[Any], dict[Any, Any], float]:
        try:
            tasks = [asyncio.create_task(borrower(i)) for i in range(60)]
            for i, task in enumerate(tasks):
                if i % 3:
                    await asyncio.sleep(0.003)
                    task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            left = caps.stats()
            started = monotonic()
            async with capped.tenant(a.slug), aborrow(capped, "sqlalchemy") as run:
                await run("SELECT 1")
            return results, left, monotonic() - started
        finally:
            await capped.router.aclose()

    results, left, again = asyncio.run(main())
    kinds = {type(r) for r in results}
    assert kinds <= {type(None), ValueError, asyncio.CancelledError, TooManyConnections}, kinds
    assert asyncio.CancelledError in kinds and ValueError in kinds
    assert a.id not in left and caps.held(a.id) == 0
    assert again < 0.3


# -- the database tier: the server's CONNECTION LIMIT ------------------------------------------
def _limit(tn: Tenantry, tenant: Tenant) -> int:
    placement = tn.tenants.placement(tenant.slug)
    assert placement is not None and placement.database is not None
    with tn.admin() as conn:
        row = conn.execute("SELECT datconnlimit FROM pg_database WHERE datname = %s", (placement.database,)).fetchone()
    assert row is not None
    return int(row[0])


def test_a_database_tier_tenant_gets_its_plans_connection_limit(tn: Tenantry, capped: Tenantry) -> None:
    """With a factor of 1 the plan's figure is the server's total over every process: a second
    process is refused with the same error. The default factor (4) leaves room for idle pooled
    connections; a plan change is applied by ``tn.plans.apply_connection_limits``."""
    plan = make_tier_plan(tn, "database", {"db_connections": 1})
    exact = Tenantry(tn.settings.with_changes(database_connection_limit_factor=1), metadata=tn.metadata)
    other = Tenantry(capped.settings, metadata=tn.metadata)
    try:
        t = exact.tenants.create(f"cap-db-{uuid.uuid4().hex[:8]}", plan=plan)
        assert _limit(tn, t) == 1
        # the server refuses a second session of the tenant from another process: the same
        # error, through SQLAlchemy (the engine connects) and psycopg (its pool's probe finds
        # the database full)
        with capped.tenant(t.slug), borrow(capped, "psycopg") as run:
            run("SELECT 1")
            for kind in KINDS:
                with pytest.raises(TooManyConnections), other.tenant(t.slug), borrow(other, kind):
                    pass
    finally:
        other.close()
        exact.close()
    placement = tn.tenants.placement(t.slug)
    assert placement is not None and placement.database is not None
    assert tn.plans.apply_connection_limits(plan) == {placement.database: 4}  # the default factor
    set_plan_limits(tn, plan, {"db_connections": 3})
    assert tn.plans.apply_connection_limits(plan) == {placement.database: 12}
    assert tn.plans.apply_connection_limits(plan) == {}  # idempotent
    assert _limit(tn, t) == 12
    set_plan_limits(tn, plan, {})  # no cap
    assert tn.plans.apply_connection_limits(plan) == {placement.database: -1}


def test_a_tenant_moved_onto_a_capped_database_plan_gets_its_limit(
    tn: Tenantry, make_tenant: Callable[..., Tenant]
) -> None:
    t = make_tenant("cap-mv")
    tn.tenants.move(t.slug, plan=make_tier_plan(tn, "database", {"db_connections": 2}))
    assert _limit(tn, t) == 8


# -- the permits themselves (no database) ------------------------------------------------------
def _bound(cap: int | None, tenant_id: uuid.UUID | None = None) -> BoundTenant:
    return BoundTenant(id=tenant_id or uuid.uuid4(), slug="unit", connections=cap)


def test_a_tenants_waiters_are_served_first_come_first_served() -> None:
    caps = ConnectionCaps(timeout=5)
    one = _bound(1)
    first = caps.acquire(one)
    assert first is not None
    order: list[int] = []

    def wait(i: int) -> None:
        gate = caps.acquire(one)
        assert gate is not None
        order.append(i)
        caps.release(gate)

    threads = []
    for i in range(4):
        threads.append(threading.Thread(target=wait, args=(i,)))
        threads[-1].start()
        while caps.stats()[one.id][2] < i + 1:  # queued in this order
            threading.Event().wait(0.001)
    caps.release(first)
    for thread in threads:
        thread.join(5)
    assert order == [0, 1, 2, 3]
    assert caps.held(one.id) == 0 and caps.acquire(_bound(None)) is None  # (no cap, no permit)


def test_a_raised_cap_lets_the_queue_move_and_idle_tenants_are_forgotten() -> None:
    caps = ConnectionCaps(timeout=5)
    one = _bound(1)
    held = caps.acquire(one)
    granted: list[object] = []
    waiter = threading.Thread(target=lambda: granted.append(caps.acquire(one)))
    waiter.start()
    while caps.stats()[one.id][2] < 1:
        threading.Event().wait(0.001)
    more = caps.acquire(_bound(3, one.id))  # the plan now allows 3: the waiter goes first
    waiter.join(5)
    assert granted and caps.held(one.id) == 3
    for gate in (held, granted[0], more):
        assert isinstance(gate, Gate)
        caps.release(gate)
    for _ in range(1100):  # many tenants, each borrowing once: the idle ones do not pile up
        gate = caps.acquire(_bound(1))
        assert gate is not None
        caps.release(gate)
    assert len(caps._gates) <= 1024 and caps.stats() == {}
