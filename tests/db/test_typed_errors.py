"""tenantry's typed errors come through every path an app writes by: psycopg, SQLAlchemy sync
and SQLAlchemy async (never ``sqlalchemy.exc.OperationalError`` wrapping them)."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from tenantry import DatabaseUnavailable, IsolationError, TenantMoving, Tenantry
from tests.freezing import frozen
from tests.model_app import Project

PID = sa.text("SELECT pg_backend_pid()")


def _terminate(tn: Tenantry, pid: int) -> None:
    with tn.admin() as conn:
        conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))


def test_a_frozen_tenant_gets_tenant_moving_on_every_path(tn: Tenantry, make_tenant) -> None:
    a, b = make_tenant(), make_tenant()

    async def write_async(slug: str) -> None:
        try:
            async with tn.tenant(slug), AsyncSession(tn.async_engine()) as session:
                session.add(Project(name="async"))
                await session.commit()
        finally:
            await tn.router.aclose()

    with frozen(tn, a):
        with pytest.raises(TenantMoving, match="being moved"):
            with tn.tenant(a.slug), tn.connection() as conn:
                conn.execute("INSERT INTO projects (name) VALUES ('psycopg')")
        with pytest.raises(TenantMoving, match="being moved"):
            with tn.tenant(a.slug), Session(tn.engine()) as session:
                session.add(Project(name="sync"))
                session.commit()
        with pytest.raises(TenantMoving, match="being moved"):
            asyncio.run(write_async(a.slug))
        # the freeze is the moving tenant's only: its neighbour writes on
        asyncio.run(write_async(b.slug))
    with tn.tenant(a.slug), Session(tn.engine()) as session:
        assert session.scalars(sa.select(Project.name)).all() == []


def test_isolation_errors_are_typed_on_sqlalchemy(tn: Tenantry, make_tenant) -> None:
    a, b = make_tenant(), make_tenant()
    with pytest.raises(IsolationError, match="row-level security"):
        with tn.tenant(a.slug), Session(tn.engine()) as session:
            session.add(Project(tenant_id=b.id, name="planted"))
            session.commit()


def test_a_lost_server_is_database_unavailable_on_sqlalchemy(tn: Tenantry, make_tenant) -> None:
    a = make_tenant()
    with pytest.raises(DatabaseUnavailable):
        with tn.tenant(a.slug), tn.engine().connect() as conn:
            _terminate(tn, conn.execute(PID).scalar_one())
            conn.execute(sa.select(Project.name)).all()

    async def main() -> None:
        try:
            async with tn.tenant(a.slug), tn.async_engine().connect() as conn:
                _terminate(tn, (await conn.execute(PID)).scalar_one())
                await conn.execute(sa.select(Project.name))
        finally:
            await tn.router.aclose()

    with pytest.raises(DatabaseUnavailable):
        asyncio.run(main())
    # the dead connections were discarded: the engines serve on
    with tn.tenant(a.slug), tn.engine().connect() as conn:
        assert conn.execute(sa.select(Project.name)).all() == []
