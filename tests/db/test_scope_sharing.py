"""One scope object (what ``tn.tenant(...)`` returns) shared by many threads and tasks.

Apps keep scope objects around (a module-level ``acme = tn.tenant("acme")``, a worker's
scope handed to a thread pool). Each thread or task that enters one gets a binding of its own,
undone when its own block ends; no binding outlives its block in any thread or task. The
negative control shows what the test catches: scope objects that keep their undo tokens in
one list corrupt each other's bindings as soon as two threads overlap.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Callable
from contextvars import Token
from typing import Any

import pytest

from tenantry import BoundTenant, Tenant, Tenantry, TenantScope
from tenantry import context as tenant_context
from tests.db.isolation_probe import foreign_rows

#: how long the threads and tasks switch tenants (the issue asks for 10 s)
SECONDS = float(os.environ.get("TENANTRY_TEST_SHARED_SCOPE_SECONDS", "10"))
THREADS = TASKS = 50
TENANTS = 10


@pytest.fixture(scope="module")
def ten(tn: Tenantry) -> list[Tenant]:
    """Ten pooled tenants, each with a project of its own."""
    made = [tn.tenants.create(f"share-{i}-{os.urandom(4).hex()}") for i in range(TENANTS)]
    for tenant in made:
        with tn.tenant(tenant.slug), tn.connection() as conn:
            conn.execute("INSERT INTO projects (name) VALUES (%s)", (tenant.slug,))
    return made


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.transactions = 0
        self.problems: list[str] = []

    def add(self, problems: list[str]) -> None:
        with self.lock:
            self.transactions += 1
            self.problems += problems


def _check(tenant: Tenant, rows: list[tuple[Any, ...]], inside: BoundTenant | None) -> list[str]:
    problems = [f"{tenant.slug} saw {row}" for row in foreign_rows(rows, tenant.id)]
    if not rows:
        problems.append(f"{tenant.slug} saw none of its rows")
    if inside is None or inside.id != tenant.id:
        problems.append(f"{tenant.slug}'s block ran bound to {inside}")
    return problems


def test_shared_scope_objects_across_50_threads_and_50_tasks(tn: Tenantry, ten: list[Tenant]) -> None:
    scopes = [(tenant, tn.tenant(tenant.slug)) for tenant in ten]
    tally = Tally()
    deadline = time.monotonic() + SECONDS

    def thread_worker(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            tenant, scope = rng.choice(scopes)
            try:
                with scope:
                    inside = tenant_context.current()
                    if rng.random() < 0.3:  # nested entry of another shared scope
                        other, other_scope = rng.choice(scopes)
                        with other_scope, tn.connection() as conn:
                            tally.add(
                                _check(
                                    other,
                                    conn.execute("SELECT tenant_id FROM projects").fetchall(),
                                    tenant_context.current(),
                                )
                            )
                        if tenant_context.current() is not inside:
                            tally.add(["a nested block changed the outer binding"])
                    with tn.connection() as conn:
                        rows = conn.execute("SELECT tenant_id FROM projects").fetchall()
                tally.add(_check(tenant, rows, inside))
                if tenant_context.current() is not None:
                    tally.add([f"a binding outlived its block: {tenant_context.current()}"])
            except Exception as err:  # a broken scope raises; that is a failure too
                tally.add([f"thread: {type(err).__name__}: {err}"])

    async def task_worker(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            tenant, scope = rng.choice(scopes)
            try:
                async with scope:
                    inside = tenant_context.current()
                    async with tn.async_connection() as conn:
                        cur = await conn.execute("SELECT tenant_id FROM projects")
                        rows = await cur.fetchall()
                    await asyncio.sleep(0)  # let the others run while bound
                tally.add(_check(tenant, rows, inside))
                if tenant_context.current() is not None:
                    tally.add([f"a binding outlived its block: {tenant_context.current()}"])
            except Exception as err:
                tally.add([f"task: {type(err).__name__}: {err}"])

    async def tasks() -> None:
        try:
            await asyncio.gather(*(task_worker(1000 + i) for i in range(TASKS)))
        finally:
            await tn.aclose()

    threads = [threading.Thread(target=thread_worker, args=(i,)) for i in range(THREADS)]
    threads.append(threading.Thread(target=lambda: asyncio.run(tasks())))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=SECONDS + 60)
    assert not any(t.is_alive() for t in threads)
    assert tally.problems == [], tally.problems[:10]
    assert tally.transactions > 100, "the workers ran"


class _ListScope:
    """The scope object as it was: one list of undo tokens for every thread (the control)."""

    def __init__(self, bound: BoundTenant) -> None:
        self._bound = bound
        self._tokens: list[Token[BoundTenant | None]] = []

    def __enter__(self) -> BoundTenant:
        self._tokens.append(tenant_context._set(self._bound))
        return self._bound

    def __exit__(self, *exc: object) -> None:
        tenant_context._reset(self._tokens.pop())


def _overlap(make_scope: Callable[[], Any]) -> tuple[list[str], list[BoundTenant | None]]:
    """Two threads enter one scope object, overlapping: the first leaves while the second is
    still inside. Returns the errors and what each thread had bound after its block."""
    scope = make_scope()
    entered, left = threading.Barrier(2), threading.Event()
    errors: list[str] = []
    after: list[BoundTenant | None] = []

    def first() -> None:
        try:
            with scope:
                entered.wait()
            left.set()
        except Exception as err:
            errors.append(f"{type(err).__name__}: {err}")
            left.set()
        after.append(tenant_context.current())

    def second() -> None:
        try:
            with scope:
                entered.wait()
                left.wait()
        except Exception as err:
            errors.append(f"{type(err).__name__}: {err}")
        after.append(tenant_context.current())

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    return errors, after


def test_one_scope_entered_by_two_overlapping_threads_binds_each_on_its_own(tn: Tenantry, ten: list[Tenant]) -> None:
    errors, after = _overlap(lambda: tn.tenant(ten[0].slug))
    assert errors == []
    assert after == [None, None]


def test_negative_control_a_shared_token_list_corrupts_both_threads(tn: Tenantry, ten: list[Tenant]) -> None:
    with tn.tenant(ten[0].slug) as bound:
        pass
    errors, after = _overlap(lambda: _ListScope(bound))
    assert any("ValueError" in e for e in errors), errors
    assert bound in after, "the binding outlived its block in one of the threads"


def test_leaving_a_scope_in_another_thread_is_refused_loudly(tn: Tenantry, ten: list[Tenant]) -> None:
    scope: TenantScope = tn.tenant(ten[0].slug)
    scope.__enter__()
    try:
        failure: list[BaseException] = []

        def leave_elsewhere() -> None:
            try:
                scope.__exit__(None, None, None)
            except BaseException as err:
                failure.append(err)

        worker = threading.Thread(target=leave_elsewhere)
        worker.start()
        worker.join()
        assert failure and isinstance(failure[0], RuntimeError)
    finally:
        scope.__exit__(None, None, None)
    assert tenant_context.current() is None
