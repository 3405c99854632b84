"""The tenant context: binding, nesting, threads, asyncio tasks."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tenantry import NoTenantBound, TenantNotActive, TenantNotFound, Tenantry, context, current_tenant


def test_bind_nest_and_reset(tn: Tenantry, make_tenant) -> None:
    a, b = make_tenant(), make_tenant()
    assert current_tenant() is None
    with tn.tenant(a.slug) as bound_a:
        assert bound_a.id == a.id and current_tenant() == bound_a
        with tn.tenant(b.id):
            assert current_tenant().id == b.id
        assert current_tenant().id == a.id
    assert current_tenant() is None


def test_reset_after_exception(tn: Tenantry, make_tenant) -> None:
    a = make_tenant()
    with pytest.raises(RuntimeError):
        with tn.tenant(a.slug):
            raise RuntimeError("boom")
    assert current_tenant() is None


def test_require_without_tenant() -> None:
    with pytest.raises(NoTenantBound, match="no tenant is bound"):
        context.require()


def test_unknown_and_inactive_tenants(tn: Tenantry, make_tenant) -> None:
    with pytest.raises(TenantNotFound):
        with tn.tenant("no-such-tenant-here"):
            pass
    t = make_tenant()
    tn.tenants.suspend(t.slug)
    with pytest.raises(TenantNotActive, match="suspended"):
        with tn.tenant(t.slug):
            pass
    with tn.tenant(t.slug, allow_inactive=True) as bound:
        assert bound.id == t.id
    tn.tenants.resume(t.slug)
    with tn.tenant(t.slug):
        pass


def test_threads_do_not_share_context(tn: Tenantry, make_tenant) -> None:
    tenants = [make_tenant() for _ in range(4)]
    barrier = threading.Barrier(len(tenants))

    def work(slug: str) -> tuple[str, list[str]]:
        seen = []
        with tn.tenant(slug):
            barrier.wait(timeout=10)
            for _ in range(20):
                seen.append(current_tenant().slug)
                with tn.connection() as conn:
                    row = conn.execute("SELECT tenantry.current_tenant_id()").fetchone()
                    assert row is not None and str(row[0]) == str(current_tenant().id)
        return slug, seen

    with ThreadPoolExecutor(len(tenants)) as pool:
        for slug, seen in pool.map(work, [t.slug for t in tenants]):
            assert set(seen) == {slug}


def test_new_thread_starts_unbound_unless_context_is_copied(tn: Tenantry, make_tenant) -> None:
    a = make_tenant()
    seen: dict[str, object] = {}
    with tn.tenant(a.slug):
        plain = threading.Thread(target=lambda: seen.__setitem__("plain", current_tenant()))
        plain.start()
        plain.join()
        ctx = contextvars.copy_context()
        copied = threading.Thread(target=lambda: ctx.run(lambda: seen.__setitem__("copied", current_tenant())))
        copied.start()
        copied.join()
    assert seen["plain"] is None
    assert seen["copied"].id == a.id  # type: ignore[union-attr]


def test_asyncio_tasks_keep_their_own_tenant(tn: Tenantry, make_tenant) -> None:
    tenants = [make_tenant() for _ in range(5)]

    async def work(slug: str) -> set[str]:
        seen = set()
        async with tn.tenant(slug):
            for _ in range(10):
                await asyncio.sleep(0)
                async with tn.async_connection() as conn:
                    cur = await conn.execute("SELECT tenantry.current_tenant_id()")
                    row = await cur.fetchone()
                    assert str(row[0]) == str(current_tenant().id)
                seen.add(current_tenant().slug)
        assert current_tenant() is None
        return seen

    async def main() -> list[set[str]]:
        try:
            return await asyncio.gather(*(work(t.slug) for t in tenants))
        finally:
            await tn.router.aclose()

    results = asyncio.run(main())
    assert results == [{t.slug} for t in tenants]


def test_child_task_binding_does_not_reach_parent(tn: Tenantry, make_tenant) -> None:
    a, b = make_tenant(), make_tenant()

    async def child() -> str:
        async with tn.tenant(b.slug):
            return current_tenant().slug

    async def parent() -> tuple[str, str]:
        async with tn.tenant(a.slug):
            inner = await asyncio.create_task(child())
            return inner, current_tenant().slug

    assert asyncio.run(parent()) == (b.slug, a.slug)
