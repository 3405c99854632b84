"""Binding the tenant per transaction: raw psycopg (sync, async) and SQLAlchemy (sync, async).

Nothing may survive into the next use of a pooled connection: after commit, rollback, an
exception, a cancelled task or a killed connection.
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from tenantry import NoTenantBound, TenantContextError, Tenantry, copy_rows
from tests.model_app import Project

SETTING = "SELECT current_setting('tenantry.tenant_id', true), tenantry.current_tenant_id()"


def _names(conn: psycopg.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM projects").fetchall()}


def _seed(tn: Tenantry, slug: str, *names: str) -> None:
    with tn.tenant(slug), tn.connection() as conn:
        for name in names:
            conn.execute("INSERT INTO projects (name) VALUES (%s)", (name,))


def test_binding_is_transaction_local(tn: Tenantry, make_tenant) -> None:
    a = make_tenant()
    with tn.tenant(a.slug), tn.connection() as conn:
        assert conn.execute(SETTING).fetchone() == (str(a.id), a.id)
        conn.commit()
        # a new transaction on the same connection binds again
        assert conn.execute(SETTING).fetchone() == (str(a.id), a.id)
    with tn.connection() as conn:
        assert conn.execute(SETTING).fetchone() == ("", None)


@pytest.mark.parametrize("ending", ["commit", "rollback", "exception"])
def test_nothing_survives_into_next_checkout(tn: Tenantry, make_tenant, ending: str) -> None:
    a = make_tenant()
    _seed(tn, a.slug, "secret")
    pool = tn.pool()
    # pin the pool to one connection so the next checkout reuses the same backend
    with pool.connection() as conn:
        pid = conn.info.backend_pid
    with pytest.raises(ZeroDivisionError) if ending == "exception" else _nullcontext():
        with tn.tenant(a.slug), tn.connection() as conn:
            assert _names(conn) == {"secret"}
            if ending == "commit":
                conn.commit()
            elif ending == "rollback":
                conn.rollback()
            else:
                1 / 0  # noqa: B018
    for _ in range(pool.get_stats()["pool_size"] + 1):
        with tn.connection() as conn:
            assert _names(conn) == set()
            assert conn.execute(SETTING).fetchone() == ("", None)
            if conn.info.backend_pid == pid:
                break


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_session_level_set_by_app_does_not_bind(tn: Tenantry, make_tenant) -> None:
    """A SET of the id from SQL (without a valid signature) is never trusted: with the schema
    left as bound, nothing is visible; claiming the pooled schema too, the forgery is refused."""
    a = make_tenant()
    _seed(tn, a.slug, "p")
    with tn.connection() as conn:
        conn.execute("SELECT set_config('tenantry.tenant_id', %s, false)", (str(a.id),))
        assert conn.execute("SELECT name FROM projects").fetchall() == []
        conn.execute("SELECT set_config('tenantry.tenant_schema', 'tenant_data', false)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not set by tenantry"):
            conn.execute("SELECT name FROM projects").fetchall()


def test_killed_connection_is_replaced_and_unbound(tn: Tenantry, make_tenant) -> None:
    a = make_tenant()
    _seed(tn, a.slug, "k")
    with pytest.raises(Exception):
        with tn.tenant(a.slug), tn.connection() as conn:
            pid = conn.info.backend_pid
            with tn.admin() as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            conn.execute("SELECT 1")
    with tn.connection() as conn:
        assert conn.info.backend_pid != pid
        assert _names(conn) == set()
    with tn.tenant(a.slug), tn.connection() as conn:
        assert _names(conn) == {"k"}


def test_no_tenant_bound_insert_fails_clearly(tn: Tenantry) -> None:
    with pytest.raises(NoTenantBound, match="no tenant is bound"):
        with tn.connection() as conn:
            conn.execute("INSERT INTO projects (name) VALUES ('orphan')")


def test_switching_tenant_inside_a_transaction_is_refused(tn: Tenantry, make_tenant) -> None:
    a, b = make_tenant(), make_tenant()
    with tn.tenant(a.slug), tn.connection() as conn:
        conn.execute("SELECT 1")
        with tn.tenant(b.slug), pytest.raises(TenantContextError):
            conn.execute("SELECT name FROM projects")
        conn.rollback()
        with tn.tenant(b.slug):
            assert conn.execute(SETTING).fetchone() == (str(b.id), b.id)


def test_explicit_transaction_blocks_are_bound(tn: Tenantry, make_tenant) -> None:
    a = make_tenant()
    with tn.tenant(a.slug), tn.connection() as conn:
        with conn.transaction():
            assert conn.execute(SETTING).fetchone() == (str(a.id), a.id)
            with conn.transaction():  # savepoint
                conn.execute("INSERT INTO projects (name) VALUES ('nested')")
        assert conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with conn.transaction():
            assert _names(conn) == {"nested"}


def test_copy_and_executemany_are_bound(tn: Tenantry, make_tenant) -> None:
    a = make_tenant()
    with tn.tenant(a.slug), tn.connection() as conn:
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO projects (name) VALUES (%s)", [("m1",), ("m2",)])
        conn.commit()
        assert copy_rows(conn, "projects", ["name"], [("c1",)]) == 1
        conn.commit()
        assert _names(conn) == {"m1", "m2", "c1"}
        rows = list(conn.cursor().stream("SELECT name FROM projects ORDER BY name"))
        assert [r[0] for r in rows] == ["c1", "m1", "m2"]


def test_sqlalchemy_sessions_are_bound(tn: Tenantry, make_tenant) -> None:
    a, b = make_tenant(), make_tenant()
    engine = tn.engine()
    for t, name in ((a, "sa-a"), (b, "sa-b")):
        with tn.tenant(t.slug), Session(engine) as session:
            session.add(Project(name=name))
            session.commit()
            assert session.scalars(sa.select(Project.name)).all() == [name]
            assert session.scalar(sa.select(Project.tenant_id)) == t.id
    with Session(engine) as session:
        assert session.scalars(sa.select(Project.name)).all() == []
        session.add(Project(name="orphan"))
        with pytest.raises(NoTenantBound):
            session.commit()


def test_sqlalchemy_refuses_tenant_switch_mid_transaction(tn: Tenantry, make_tenant) -> None:
    a, b = make_tenant(), make_tenant()
    with Session(tn.engine()) as session:
        with tn.tenant(a.slug):
            session.execute(sa.select(1))
        with tn.tenant(b.slug), pytest.raises(TenantContextError):
            session.execute(sa.select(Project))
        session.rollback()
        with tn.tenant(b.slug):
            assert session.execute(sa.text(SETTING)).one() == (str(b.id), b.id)


def test_sqlalchemy_async_sessions_are_bound(tn: Tenantry, make_tenant) -> None:
    a, b = make_tenant(), make_tenant()

    async def work(slug: str, name: str) -> list[str]:
        async with tn.tenant(slug), AsyncSession(tn.async_engine()) as session:
            session.add(Project(name=name))
            await session.commit()
            return list((await session.scalars(sa.select(Project.name))).all())

    async def main() -> list[list[str]]:
        try:
            return await asyncio.gather(work(a.slug, "as-a"), work(b.slug, "as-b"))
        finally:
            await tn.router.aclose()

    assert asyncio.run(main()) == [["as-a"], ["as-b"]]


def test_cancelled_task_leaves_nothing_bound(tn: Tenantry, make_tenant) -> None:
    a = make_tenant()
    _seed(tn, a.slug, "c")

    async def slow() -> None:
        async with tn.tenant(a.slug), tn.async_connection() as conn:
            await conn.execute("SELECT pg_sleep(5)")

    async def main() -> tuple[object, set[str]]:
        try:
            task = asyncio.create_task(slow())
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            pool = await tn.async_pool()
            seen: set[str] = set()
            for _ in range(pool.get_stats()["pool_size"] + 1):
                async with tn.async_connection() as conn:
                    cur = await conn.execute("SELECT name FROM projects")
                    seen |= {r[0] for r in await cur.fetchall()}
                    cur = await conn.execute(SETTING)
                    setting = await cur.fetchone()
                    assert setting == ("", None)
            return setting, seen
        finally:
            await tn.router.aclose()

    _setting, seen = asyncio.run(main())
    assert seen == set()


def test_plain_copy_from_is_refused_by_postgresql(tn: Tenantry, make_tenant) -> None:
    """Why copy_rows exists: PostgreSQL has no COPY FROM for tables under RLS."""
    a = make_tenant()
    with tn.tenant(a.slug), tn.connection() as conn:
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="row-level security"):
            with conn.cursor() as cur, cur.copy("COPY projects (name) FROM STDIN") as copy:
                copy.write_row(("c1",))
        conn.rollback()


def test_autocommit_statements_are_refused(tn: Tenantry, make_tenant) -> None:
    a = make_tenant()
    with tn.tenant(a.slug), tn.connection() as conn:
        conn.autocommit = True
        try:
            with pytest.raises(TenantContextError, match="autocommit"):
                conn.execute("SELECT name FROM projects")
            with conn.transaction():  # an explicit transaction is bound
                assert conn.execute(SETTING).fetchone() == (str(a.id), a.id)
        finally:
            conn.autocommit = False


def test_binding_values_never_appear_in_query_text(tn: Tenantry, make_tenant) -> None:
    a = make_tenant()
    with tn.tenant(a.slug), tn.connection() as conn:
        conn.execute("SELECT 1")
        sig = conn.execute("SELECT current_setting('tenantry.tenant_sig')").fetchone()[0]
        texts = [r[0] or "" for r in conn.execute("SELECT query FROM pg_stat_activity").fetchall()]
    assert sig and not any(sig in text or str(a.id) in text for text in texts)
