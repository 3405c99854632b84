"""Usage metering: the edge counts each tenant's requests by status class and the data plane
its transactions; a flush writes them to the usage table in one INSERT whatever the number of
requests; the usage table keeps daily partitions, made ahead and dropped by retention; a data-
plane process flushes through the reader role; one tenant's usage is never shown as another's."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.routing import Route

from tenantry import Tenant, Tenantry
from tenantry.db.catalog import usage as usage_catalog
from tenantry.web import SubdomainResolver, TenantMiddleware
from tests.model_app import Project


@pytest.fixture(autouse=True)
def _no_flusher(tn: Tenantry) -> None:
    """The session's flusher (started by any edge an earlier test built) stopped: the tests
    flush by hand, and a flush of the thread's in between would split what they count."""
    tn.usage.close()


def _app(tn: Tenantry) -> TenantMiddleware:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def missing(request: Request) -> PlainTextResponse:
        return PlainTextResponse("no", status_code=404)

    async def broken(request: Request) -> PlainTextResponse:
        return PlainTextResponse("broken", status_code=503)

    async def moved(request: Request) -> RedirectResponse:
        return RedirectResponse("/ok", status_code=302)

    async def db(request: Request) -> PlainTextResponse:
        async with tn.async_connection() as conn:
            await conn.execute("SELECT count(*) FROM projects")
        return PlainTextResponse("db")

    routes = [Route(f"/{f.__name__}", f) for f in (ok, missing, broken, moved, db)]
    return TenantMiddleware(
        Starlette(routes=routes), tenantry=tn, resolvers=[SubdomainResolver("localhost")], limits=False
    )


async def _calls(app: TenantMiddleware, slug: str, paths: list[str]) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{slug}.localhost") as client:
        for path in paths:
            await client.get(path, follow_redirects=False)


@pytest.fixture
def statements(tn: Tenantry) -> Iterator[Callable[[], int]]:
    """How many statements wrote to the usage table since the fixture began (a statement-level
    trigger counts them)."""
    name = f"usage_statements_{uuid.uuid4().hex[:8]}"
    with tn.admin() as conn:
        conn.execute(f"CREATE TABLE public.{name} (n int)")
        conn.execute(
            f"CREATE FUNCTION public.{name}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS"
            f" $$ BEGIN INSERT INTO public.{name} VALUES (1); RETURN NULL; END $$"
        )
        conn.execute(
            f"CREATE TRIGGER {name} AFTER INSERT ON tenantry.usage FOR EACH STATEMENT EXECUTE FUNCTION public.{name}()"
        )

    def count() -> int:
        with tn.admin() as conn:
            row = conn.execute(f"SELECT count(*) FROM public.{name}").fetchone()
        return int(row[0]) if row else 0

    yield count
    with tn.admin() as conn:
        conn.execute(f"DROP TRIGGER {name} ON tenantry.usage")
        conn.execute(f"DROP FUNCTION public.{name}()")
        conn.execute(f"DROP TABLE public.{name}")


def _rows(tn: Tenantry, tenant: Tenant) -> list[tuple[object, ...]]:
    with tn.admin() as conn:
        return conn.execute(
            "SELECT requests, requests_2xx, requests_3xx, requests_4xx, requests_5xx, transactions, process"
            " FROM tenantry.usage WHERE tenant_id = %s",
            (tenant.id,),
        ).fetchall()


def test_counts_by_status_class_reach_the_usage_table_in_one_insert(
    tn: Tenantry, make_tenant: Callable[..., Tenant], statements: Callable[[], int]
) -> None:
    a, b = make_tenant("meta"), make_tenant("metb")
    app = _app(tn)
    tn.usage.close()  # (building the edge started the flusher again)
    tn.usage.flush()  # (what earlier tests counted)
    before = statements()
    paths = ["/ok"] * 30 + ["/missing"] * 7 + ["/broken"] * 2 + ["/moved"] * 3 + ["/db"] * 4

    async def both() -> None:
        try:
            await _calls(app, a.slug, paths)
            await _calls(app, b.slug, ["/ok"])
        finally:
            await tn.router.aclose()

    asyncio.run(both())
    assert _rows(tn, a) == []  # nothing written per request
    assert tn.usage.flush() >= 2
    assert statements() == before + 1  # one INSERT for 47 requests of two tenants
    (row_a,) = _rows(tn, a)
    assert row_a[:6] == (46, 34, 3, 7, 2, 4)  # requests, 2xx, 3xx, 4xx, 5xx, transactions
    assert row_a[6] == tn.usage.process
    (row_b,) = _rows(tn, b)
    assert row_b[:6] == (1, 1, 0, 0, 0, 0)  # b's own, never a's
    assert tn.usage.flush() == 0 and statements() == before + 1  # nothing counted: no write
    # read back per tenant: each sees only its own
    (mine,) = tn.usage.usage(a.slug, since=timedelta(minutes=5))
    assert (mine["tenant"], mine["requests"], mine["requests_4xx"], mine["transactions"]) == (a.slug, 46, 7, 4)
    assert mine["request_ms"] > 0 and mine["db_ms"] > 0
    assert [r["tenant"] for r in tn.usage.usage(b.slug, since=timedelta(minutes=5))] == [b.slug]
    top = tn.usage.top(50, since=timedelta(minutes=5))
    assert [r["requests"] for r in top if r["tenant"] == a.slug] == [46]


def test_the_flusher_writes_each_interval_and_at_close(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    t = make_tenant("flush")
    other = Tenantry(tn.settings.with_changes(usage_flush_seconds=0.2), metadata=tn.metadata)
    assert other.usage.meter is not None
    try:
        other.usage.start()
        other.usage.meter.request(t.id, 200, 0.01)
        deadline = time.monotonic() + 3
        while not _rows(tn, t):
            assert time.monotonic() < deadline, "the flusher did not write"
            time.sleep(0.05)
        other.usage.meter.request(t.id, 500, 0.01)
    finally:
        other.close()  # flushes the last count
    assert sorted(r[:5] for r in _rows(tn, t)) == [(1, 0, 0, 0, 1), (1, 1, 0, 0, 0)]


def test_a_data_plane_process_flushes_as_the_reader_role(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    t = make_tenant("dp")
    plane = Tenantry(tn.data_plane_settings(), metadata=tn.metadata)
    try:
        assert plane.usage.meter is not None
        plane.usage.meter.request(t.id, 201, 0.002)
        assert plane.usage.flush() == 1
        # the control: the reader role may call the flush, and write nothing else
        with plane.catalog_reader() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO tenantry.usage (at, seconds, process, tenant_id) VALUES (now(), 1, 'x', %s)", (t.id,)
            )
    finally:
        plane.close()
    assert [r[:2] for r in _rows(tn, t)] == [(1, 1)]


def test_partitions_are_made_ahead_and_dropped_by_retention(tn: Tenantry) -> None:
    today = datetime.now(UTC).date()
    old = today - timedelta(days=40)
    with tn.admin() as conn:
        usage_catalog.make_partitions(conn, old, 1)
        conn.execute(
            "INSERT INTO tenantry.usage (at, seconds, process, tenant_id, requests) VALUES (%s, 60, 'old', %s, 5)",
            (datetime(old.year, old.month, old.day, 12, tzinfo=UTC), uuid.uuid4()),
        )
    assert old in tn.usage.partitions()
    done = tn.usage.maintain(retention_days=30)
    days = tn.usage.partitions()
    assert old.isoformat() in done["dropped"] and old not in days
    assert {today + timedelta(days=i) for i in range(-1, 8)} <= set(days)  # yesterday to a week ahead
    with tn.admin() as conn:
        row = conn.execute("SELECT count(*) FROM tenantry.usage WHERE process = 'old'").fetchone()
    assert row == (0,)
    again = tn.usage.maintain(retention_days=30)
    assert again["created"] == 0 and again["dropped"] == []  # idempotent


def test_hot_tenants_with_a_suggestion(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    hot, quiet = make_tenant("hot"), make_tenant("quiet")
    assert tn.usage.meter is not None
    tn.usage.flush()
    since = datetime.now(UTC)  # (only this test's flush: other tests' counts are not in it)
    tn.usage.meter.transaction(hot.id, 50.0)  # 50 s of database time against 0.5 s
    tn.usage.meter.transaction(quiet.id, 0.5)
    tn.usage.flush()
    found = {h["tenant"]: h for h in tn.usage.hot(0.5, since=since)}
    assert hot.slug in found and quiet.slug not in found
    assert "schema" in found[hot.slug]["suggestion"]  # a pooled tenant: a plan of its own schema
    assert found[hot.slug]["share"] >= 0.5


def test_sqlalchemy_transactions_count_with_the_rows_they_wrote(
    tn: Tenantry, make_tenant: Callable[..., Tenant]
) -> None:
    t = make_tenant("rows")
    tn.usage.flush()
    with tn.tenant(t.slug), Session(tn.engine()) as session:
        session.add_all([Project(name=f"p{i}") for i in range(3)])
        session.commit()
        session.execute(sa.update(Project).values(name="renamed"))
        session.commit()
        assert session.scalar(sa.select(sa.func.count()).select_from(Project)) == 3
    tn.usage.flush()
    (mine,) = tn.usage.usage(t.slug, since=timedelta(minutes=1))
    assert (mine["transactions"], mine["rows_written"]) == (3, 6)
