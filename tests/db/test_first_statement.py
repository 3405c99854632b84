"""The first statement of a transaction carries its binding (BEGIN, the bind and the statement
in one pipeline): on every tier, sync and async, prepared or not, it sees only its tenant's
rows, and what goes wrong in it is told as it would be without the fusion."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
import sqlalchemy as sa

from tenantry import Tenantry, TenantSuspended
from tests.db.support import traced

WHO = "SELECT current_setting('tenantry.tenant_id'), array_agg(name ORDER BY name) FROM projects WHERE id > %s"


def test_the_first_statement_binds_its_transaction(tn: Tenantry, make_tier_tenant) -> None:
    a, b = make_tier_tenant(), make_tier_tenant()
    for tenant in (a, b):
        with tn.tenant(tenant.slug), tn.connection() as conn:
            conn.execute("INSERT INTO projects (name) VALUES (%s)", [f"{tenant.slug}-row"])
    with tn.tenant(a.slug), tn.connection() as conn:
        # not prepared, then prepared by psycopg (Parse in the pipeline), then prepared already
        for prepare in (False, True, True):
            with traced(conn) as trace:
                row = conn.execute(WHO, [0], prepare=prepare).fetchone()
                conn.commit()
            assert row == (str(a.id), [f"{a.slug}-row"])
            assert trace.round_trips == 2  # the pipeline, COMMIT


def test_the_first_statement_binds_after_deallocate_all(tn: Tenantry, make_tier_tenant) -> None:
    """DEALLOCATE ALL drops the bind statement behind tenantry's back: the fused pipeline fails
    on it, is rolled back, and the transaction is bound again on its own."""
    a = make_tier_tenant()
    with tn.tenant(a.slug), tn.connection() as conn:
        conn.execute("INSERT INTO projects (name) VALUES (%s)", ["kept"])
        conn.commit()
        conn.execute("DEALLOCATE ALL")
        conn.commit()
        with traced(conn) as trace:
            assert conn.execute(WHO, [0]).fetchone() == (str(a.id), ["kept"])
        conn.rollback()
    text = "\n".join(trace.lines)
    # the control: the fused pipeline met the lost statement (26000), then bound again
    assert '"26000"' in text and trace.sent().count("Parse") >= 2, text
    # psycopg's own statement cache went with DEALLOCATE ALL; this connection is not reused
    tn.close()


def test_an_error_in_the_first_statement_is_the_statements(tn: Tenantry, make_tier_tenant) -> None:
    a = make_tier_tenant()
    with tn.tenant(a.slug), tn.connection() as conn:
        with pytest.raises(psycopg.errors.UndefinedColumn):
            conn.execute("SELECT no_such_column FROM projects WHERE id = %s", [1])
        conn.rollback()
        with pytest.raises(psycopg.errors.UndefinedTable):  # a failed Parse of psycopg's
            conn.execute("SELECT * FROM no_such_table WHERE id = %s", [1], prepare=True)
        conn.rollback()
        assert conn.execute(WHO, [0]).fetchone() == (str(a.id), None)


def test_a_fenced_binding_is_refused_by_its_first_statement(tn: Tenantry, make_tier_tenant) -> None:
    """A binding made before a suspension fails, typed, in the fused pipeline as in the bind."""
    a = make_tier_tenant()
    with tn.tenant(a.slug):
        tn.tenants.suspend(a.slug)
        try:
            with tn.connection() as conn, pytest.raises(TenantSuspended):
                conn.execute(WHO, [0])
        finally:
            tn.tenants.resume(a.slug)


def test_the_async_first_statement_binds_its_transaction(tn: Tenantry, make_tier_tenant) -> None:
    a, b = make_tier_tenant(), make_tier_tenant()

    async def main() -> list[object]:
        seen = []
        try:
            for tenant in (a, b, a):
                async with tn.tenant(tenant.slug), tn.async_connection() as conn:
                    if tenant is b:
                        await conn.execute("INSERT INTO projects (name) VALUES (%s)", ["b-row"])
                        await conn.commit()
                    for prepare in (False, True):
                        cur = await conn.execute(WHO, [0], prepare=prepare)
                        seen.append(await cur.fetchone())
                        await conn.commit()
            return seen
        finally:
            await tn.router.aclose()

    assert asyncio.run(main()) == [(str(a.id), None)] * 2 + [(str(b.id), ["b-row"])] * 2 + [(str(a.id), None)] * 2


WHO_SA = sa.text(
    "SELECT current_setting('tenantry.tenant_id'), array_agg(name ORDER BY name) FROM projects WHERE id > :floor"
)


def test_sqlalchemy_transactions_bind_with_their_first_statement(tn: Tenantry, make_tier_tenant) -> None:
    """SQLAlchemy's ``begin`` leaves the bind to the first statement: a one-query transaction
    makes two round trips; every other way of starting one (the simple protocol, executemany,
    a server-side cursor) binds it on its own first, and each sees only its tenant's rows."""
    a, b = make_tier_tenant(), make_tier_tenant()
    with tn.tenant(b.slug), tn.engine().begin() as c:
        c.execute(sa.text("INSERT INTO projects (name) VALUES (:n)"), [{"n": "b1"}, {"n": "b2"}])  # executemany
    with tn.tenant(a.slug), tn.engine().connect() as c:
        driver = c.connection.driver_connection
        with traced(driver) as trace:
            assert c.execute(WHO_SA, {"floor": 0}).one() == (str(a.id), None)
            c.commit()
        assert trace.round_trips == 2  # the pipeline, COMMIT
        assert c.exec_driver_sql("SELECT current_setting('tenantry.tenant_id')").scalar() == str(a.id)
        c.commit()
    with tn.tenant(b.slug), tn.engine().connect() as c:
        rows = c.execution_options(stream_results=True).execute(WHO_SA, {"floor": 0}).all()
        assert rows == [(str(b.id), ["b1", "b2"])]
        c.rollback()


def test_an_sqlalchemy_transaction_without_statements_leaves_no_binding(tn: Tenantry, make_tier_tenant) -> None:
    """A binding deferred to a first statement that never comes is dropped with the
    transaction: the next one, under another tenant, binds its own."""
    a, b = make_tier_tenant(), make_tier_tenant()
    with tn.tenant(a.slug), tn.engine().connect() as c:
        c.begin()
        c.rollback()
    with tn.tenant(b.slug), tn.engine().connect() as c:
        raw = psycopg.ClientCursor(c.connection.driver_connection)  # escapes SQLAlchemy, not tenantry
        c.begin()
        raw.execute("SELECT current_setting('tenantry.tenant_id', true)")
        assert raw.fetchone() == (str(b.id),)
        c.rollback()


def test_async_sqlalchemy_binds_with_the_first_statement(tn: Tenantry, make_tier_tenant) -> None:
    a = make_tier_tenant()

    async def main() -> tuple[object, int]:
        async with tn.tenant(a.slug):
            engine = tn.async_engine()
            try:
                async with engine.connect() as c:
                    raw = await c.get_raw_connection()
                    with traced(raw.driver_connection) as trace:
                        row = (await c.execute(WHO_SA, {"floor": 0})).one()
                        await c.commit()
                    return tuple(row), trace.round_trips
            finally:
                await engine.dispose()

    assert asyncio.run(main()) == ((str(a.id), None), 2)


_LEVELS = "SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')"


@pytest.mark.parametrize("path", ["fused", "simple protocol", "transaction()", "sqlalchemy"])
def test_the_connections_isolation_level_and_read_only_hold_in_bound_transactions(
    tn: Tenantry, make_tenant, path: str
) -> None:
    """``isolation_level``, ``read_only`` (psycopg's attributes, and SQLAlchemy's
    ``isolation_level`` execution option, which sets them) begin every bound transaction as
    psycopg's own BEGIN would, whichever way it is bound."""
    tenant = make_tenant()
    if path == "sqlalchemy":
        with tn.tenant(tenant.slug), tn.engine().connect() as conn:
            conn = conn.execution_options(isolation_level="SERIALIZABLE")
            assert tuple(conn.execute(sa.text(_LEVELS)).one()) == ("serializable", "off")
        return
    with tn.tenant(tenant.slug), tn.connection() as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        if path == "fused":
            row = conn.execute(_LEVELS + " WHERE %s", [True]).fetchone()
        elif path == "simple protocol":
            row = conn.execute(_LEVELS).fetchone()
        else:
            with conn.transaction():
                row = conn.execute(_LEVELS).fetchone()
        assert row == ("repeatable read", "on")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO projects (name) VALUES (%s)", ["refused"])
