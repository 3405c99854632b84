"""A query cancelled on ``tn.async_engine()`` ends with ``CancelledError`` (so ``asyncio.timeout``,
``wait_for`` and TaskGroup work), and the connection it ran on is never handed out dirty."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry import Tenantry
from tests.model_app import Project

SLEEP = sa.text("SELECT pg_sleep(30)")
SETTING = sa.text("SELECT current_setting('tenantry.tenant_id', true)")


def test_cancelled_statement_on_async_engine_raises_cancelled_error(tn: Tenantry, make_tenant) -> None:
    a = make_tenant()

    async def on_connection() -> None:
        async with tn.tenant(a.slug), tn.async_engine().connect() as conn:
            await conn.execute(SLEEP)

    async def on_session() -> None:
        async with tn.tenant(a.slug), AsyncSession(tn.async_engine()) as session:
            session.add(Project(name="never"))
            await session.flush()
            await session.execute(SLEEP)

    async def main() -> tuple[list[str], set[str], int]:
        try:
            # asyncio.timeout turns the CancelledError into TimeoutError only if it arrives
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await on_connection()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(on_session(), 0.3)
            # a failing sibling cancels the query: the group holds the sibling's error only
            with pytest.raises(ExceptionGroup) as group:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(on_connection())
                    tg.create_task(_fail_after(0.3))
            assert [type(e) for e in group.value.exceptions] == [ValueError]
            # every connection the engine hands out afterwards is clean: no binding, no rows
            engine = tn.async_engine()
            settings, names = [], set()
            for _ in range(engine.sync_engine.pool.size() + 1):
                async with engine.connect() as conn:
                    settings.append((await conn.execute(SETTING)).scalar_one())
                    names |= set((await conn.execute(sa.select(Project.name))).scalars())
            async with engine.connect() as conn:
                sleeping = (
                    await conn.execute(
                        sa.text("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'")
                    )
                ).scalar_one()
            return settings, names, sleeping
        finally:
            await tn.router.aclose()

    settings, names, sleeping = asyncio.run(main())
    assert set(settings) == {""}
    assert names == set()
    assert sleeping == 0


async def _fail_after(delay: float) -> None:
    await asyncio.sleep(delay)
    raise ValueError("a sibling task failed")
