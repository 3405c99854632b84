"""The same app on all three isolation tiers: pooled, schema and database.

Tests that take ``tier`` run the same code against a tenant of each tier (and, like every
database test, on both servers): raw psycopg, SQLAlchemy ORM, asyncio, ``copy_rows``, joins,
upserts, isolation between tenants of one tier and across tiers, routing, deletion. The tests
after them cover what only one tier has: the database marker, bounded pools per database, and
the recycling of connections that served many tenant schemas.

The helpers that read a placement as the superuser are shared with the provisioning tests.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Any, TypeVar

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from tenantry import (
    Isolation,
    IsolationError,
    NoTenantBound,
    Status,
    Tenant,
    TenantContextError,
    TenantNotFound,
    Tenantry,
    acopy_rows,
    copy_rows,
)
from tenantry.core.placement import Placement
from tenantry.services.provisioning import database_url
from tenantry.testing import TIER_PLANS
from tests.db.isolation_probe import foreign_rows
from tests.model_app import TABLES, Base, Comment, Priority, Project, Task
from tests.support import Scratch

T = TypeVar("T")

WHERE = "SELECT current_schema(), current_database()"


# -- helpers (also used by tests/services/test_provisioning.py) -----------------------------------


def bug(reason: str) -> pytest.MarkDecorator:
    """Mark a test that fails because of a bug in tenantry (described in ``reason``)."""
    return pytest.mark.xfail(strict=True, reason=f"BUG: {reason}")


def placement_of(tn: Tenantry, tenant: Tenant) -> Placement:
    """The tenant's active placement (it must have one)."""
    found = tn.tenants.placement(tenant.id)
    assert found is not None, f"tenant {tenant.slug} has no active placement"
    return found


@contextmanager
def superuser_in(tn: Tenantry, placement: Placement | None = None) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit superuser connection to the placement's database, on its cell's server
    (``None``: the catalog's database)."""
    url = tn.admin_url if placement is None else database_url(tn.cells.admin_url(placement.cell), placement.database)
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def secured_tables(tn: Tenantry, placement: Placement) -> list[tuple[str, bool, int]]:
    """``(table, rls enabled and forced, policies)`` of each table in the placement's schema."""
    with superuser_in(tn, placement) as conn:
        rows = conn.execute(
            """
            SELECT c.relname, c.relrowsecurity AND c.relforcerowsecurity, count(p.oid)::int
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              LEFT JOIN pg_policy p ON p.polrelid = c.oid
             WHERE n.nspname = %s AND c.relkind = 'r'
             GROUP BY 1, 2 ORDER BY 1
            """,
            (placement.schema,),
        ).fetchall()
    return [tuple(r) for r in rows]


def fully_secured(schema_tables: Iterable[tuple[str, bool, int]]) -> bool:
    """Every app table is there, with RLS forced and exactly tenantry's one policy."""
    return list(schema_tables) == [(t, True, 1) for t in sorted(TABLES)]


def holds(tn: Tenantry, placement: Placement) -> bool:
    """Whether the placement's own database (database tier) or schema (schema tier) exists."""
    with psycopg.connect(tn.cells.admin_url(placement.cell), autocommit=True) as conn:
        if placement.database is not None:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (placement.database,)).fetchone()
        else:
            row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (placement.schema,)).fetchone()
    return row is not None


def stored_names(tn: Tenantry, tenant: Tenant, placement: Placement | None = None) -> list[str]:
    """The tenant's project names as stored in its placement (read by the superuser)."""
    where = placement or placement_of(tn, tenant)
    with superuser_in(tn, where) as conn:
        rows = conn.execute(
            sql.SQL("SELECT name FROM {} WHERE tenant_id = %s ORDER BY name").format(
                sql.Identifier(where.schema, "projects")
            ),
            (tenant.id,),
        ).fetchall()
    return [r[0] for r in rows]


def seed(tn: Tenantry, tenant: Tenant, *names: str) -> list[int]:
    """Insert projects under ``tenant``; return their ids."""
    with tn.tenant(tenant.slug), tn.connection() as conn:
        return [conn.execute("INSERT INTO projects (name) VALUES (%s) RETURNING id", (n,)).fetchone()[0] for n in names]


def names(conn: psycopg.Connection[Any]) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM projects").fetchall()}


def visible(conn: psycopg.Connection[Any], schema: str) -> list[tuple[Any, ...]]:
    """``(tenant_id, name)`` of ``schema.projects`` as ``conn`` sees it; a table the connection's
    database does not have shows nothing."""
    query = sql.SQL("SELECT tenant_id, name FROM {}").format(sql.Identifier(schema, "projects"))
    try:
        with conn.transaction():
            return conn.execute(query).fetchall()
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        return []


def arun(tn: Tenantry, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` in a fresh event loop, closing tn's asyncio pools and engines after it."""

    async def main() -> T:
        try:
            return await work()
        finally:
            await tn.router.aclose()

    return asyncio.run(main())


#: the four ways an app reaches its tenant's rows
PATHS = ("psycopg", "sqlalchemy", "asyncio", "asyncio-sqlalchemy")


def read_via(tn: Tenantry, path: str, query: str, *tenants: Tenant) -> list[list[tuple[Any, ...]]]:
    """Run ``query`` under each of ``tenants`` in turn through ``path``, each time on a connection
    (or session) opened inside the tenant's scope; the asyncio paths run in one event loop."""

    def sync(tenant: Tenant) -> list[tuple[Any, ...]]:
        with tn.tenant(tenant.slug):
            if path == "psycopg":
                with tn.connection() as conn:
                    return conn.execute(query).fetchall()
            with Session(tn.engine()) as session:
                return [tuple(r) for r in session.execute(sa.text(query))]

    async def one(tenant: Tenant) -> list[tuple[Any, ...]]:
        async with tn.tenant(tenant.slug):
            if path == "asyncio":
                async with tn.async_connection() as conn:
                    return await (await conn.execute(query)).fetchall()
            async with AsyncSession(tn.async_engine()) as session:
                return [tuple(r) for r in await session.execute(sa.text(query))]

    async def each() -> list[list[tuple[Any, ...]]]:
        return [await one(t) for t in tenants]

    return arun(tn, each) if path.startswith("asyncio") else [sync(t) for t in tenants]


def runtime_databases(tn: Tenantry, databases: Iterable[str], *, most: int, wait: float = 15.0) -> set[str]:
    """The databases among ``databases`` that runtime-role backends are connected to; waits up to
    ``wait`` seconds for closed connections to leave (backends exit asynchronously, and the
    previous test's connections may still be leaving: on a loaded machine that took over the 1 s
    this once waited; it returns as soon as few enough are left)."""
    deadline = time.monotonic() + wait
    with tn.admin() as conn:
        while True:
            found = {
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT datname FROM pg_stat_activity WHERE usename = %s AND datname = ANY(%s)",
                    (tn.settings.runtime_role, list(databases)),
                ).fetchall()
            }
            if len(found) <= most or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


@pytest.fixture(scope="module")
def others(tn: Tenantry) -> dict[str, Tenant]:
    """One tenant per tier, each with one project named ``other-<slug>``."""
    made = {
        tier: tn.tenants.create(f"other-{tier}-{uuid.uuid4().hex[:8]}", plan=plan) for tier, plan in TIER_PLANS.items()
    }
    for tenant in made.values():
        seed(tn, tenant, f"other-{tenant.slug}")
    return made


@contextmanager
def tenantry_with(scratch: Scratch, **settings: object) -> Iterator[Tenantry]:
    """Another Tenantry on the session's catalog, with other settings and connections of its own."""
    with Tenantry(scratch.settings(**settings), metadata=Base.metadata, actor="pytest") as tenantry:
        yield tenantry


@pytest.fixture
def own_tenantry(scratch: Scratch) -> Iterator[Callable[..., Tenantry]]:
    """Make Tenantry objects with :func:`tenantry_with`, closed after the test."""
    with ExitStack() as stack:
        yield lambda **settings: stack.enter_context(tenantry_with(scratch, **settings))


# -- the same app on every tier ---------------------------------------------------------------------


def test_placement_matches_where_transactions_run(tn: Tenantry, scratch: Scratch, tier: str, make_tier_tenant) -> None:
    t = make_tier_tenant()
    p = placement_of(tn, t)
    expected = {
        "pooled": (tn.settings.pooled_schema, None),
        "schema": (f"tenant_{t.id.hex}", None),
        "database": (tn.settings.pooled_schema, f"tenant_{t.id.hex}"),
    }[tier]
    assert (p.tenant_id, p.isolation, p.status, p.cell) == (t.id, Isolation(tier), "active", "primary")
    assert (p.schema, p.database) == expected == (p.route.schema, p.route.database)
    here = (p.schema, p.database or scratch.dbname)
    assert {path: read_via(tn, path, WHERE, t) for path in PATHS} == {path: [[here]] for path in PATHS}
    assert fully_secured(secured_tables(tn, p))
    assert tn.schema.unprotected_tables() == []


def test_raw_psycopg_crud_joins_and_upserts(tn: Tenantry, make_tier_tenant) -> None:
    t = make_tier_tenant()
    with tn.tenant(t.slug), tn.connection() as conn:
        # tenant_id comes from the bound tenant (the column's server default)
        pid, tenant_id = conn.execute(
            "INSERT INTO projects (name) VALUES ('launch') RETURNING id, tenant_id"
        ).fetchone()
        assert tenant_id == t.id
        with conn.cursor() as cur:
            cur.executemany(
                # the enum as a literal: see test_prepared_statements_follow_the_schema
                "INSERT INTO tasks (project_id, title, points, priority, done) VALUES (%s, %s, %s, 'high', %s)",
                [(pid, "a", 3, False), (pid, "b", 5, True), (pid, "c", 8, False)],
            )
        conn.execute("UPDATE tasks SET priority = 'low' WHERE title = 'b'")
        conn.execute(
            "INSERT INTO comments (task_id, body) SELECT id, 'on ' || title FROM tasks WHERE priority = 'high'"
        )
        report = conn.execute(
            """
            SELECT p.name, count(DISTINCT k.id), sum(k.points) FILTER (WHERE k.done), count(c.id)
              FROM projects p
              JOIN tasks k ON k.tenant_id = p.tenant_id AND k.project_id = p.id
              LEFT JOIN comments c ON c.tenant_id = k.tenant_id AND c.task_id = k.id
             GROUP BY p.name
            """
        ).fetchall()
        assert report == [("launch", 3, 5, 2)]
        updated = conn.execute("UPDATE tasks SET done = true WHERE NOT done RETURNING title").fetchall()
        assert sorted(updated) == [("a",), ("c",)]
        upsert = (
            "INSERT INTO projects (id, name) VALUES (%s, %s)"
            " ON CONFLICT (tenant_id, id) DO UPDATE SET name = excluded.name RETURNING tenant_id, id, name"
        )
        assert conn.execute(upsert, (pid, "renamed")).fetchone() == (t.id, pid, "renamed")
        assert conn.execute(upsert, (10_000, "fresh")).fetchone() == (t.id, 10_000, "fresh")
        assert names(conn) == {"renamed", "fresh"}
        # the composite foreign keys cascade within the tenant
        assert conn.execute("DELETE FROM projects WHERE id = %s RETURNING name", (pid,)).fetchall() == [("renamed",)]
        assert conn.execute("SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM comments)").fetchone() == (0, 0)
    assert stored_names(tn, t) == ["fresh"]


def test_orm_session_crud_joins_and_upserts(tn: Tenantry, make_tier_tenant) -> None:
    t = make_tier_tenant()
    with tn.tenant(t.slug), Session(tn.engine()) as session:
        project = Project(name="orm")
        session.add(project)
        session.flush()
        tasks = [
            Task(project_id=project.id, title=f"t{i}", points=i, priority=Priority.high if i % 2 else Priority.low)
            for i in (1, 2, 3)
        ]
        session.add_all(tasks)
        session.flush()
        session.add(Comment(task_id=tasks[0].id, body="first"))
        session.commit()
        assert project.tenant_id == t.id == tasks[2].tenant_id  # filled from the context
        totals = session.execute(
            sa.select(Project.name, sa.func.count(Task.id), sa.func.sum(Task.points))
            .join(Task, sa.and_(Task.tenant_id == Project.tenant_id, Task.project_id == Project.id))
            .group_by(Project.name)
        ).all()
        assert [tuple(r) for r in totals] == [("orm", 3, 6)]
        by_priority = session.execute(sa.select(Task.priority, sa.func.count()).group_by(Task.priority)).all()
        assert dict(tuple(r) for r in by_priority) == {Priority.high: 2, Priority.low: 1}
        upsert = pg_insert(Project).values(id=project.id, name="orm-renamed")
        upsert = upsert.on_conflict_do_update(
            index_elements=[Project.tenant_id, Project.id], set_={"name": upsert.excluded.name}
        ).returning(Project.tenant_id, Project.id, Project.name)
        assert tuple(session.execute(upsert).one()) == (t.id, project.id, "orm-renamed")
        session.execute(sa.update(Task).where(Task.points > 1).values(done=True))
        session.commit()
        assert session.scalars(sa.select(Task.title).where(Task.done).order_by(Task.title)).all() == ["t2", "t3"]
        assert session.get(Project, (t.id, project.id)).name == "orm-renamed"
        session.delete(session.get(Project, (t.id, project.id)))
        session.commit()
        assert session.scalar(sa.select(sa.func.count()).select_from(Comment)) == 0  # cascaded
    assert stored_names(tn, t) == []


def test_asyncio_sessions_and_connections(tn: Tenantry, make_tier_tenant) -> None:
    a, b = make_tier_tenant(), make_tier_tenant()

    async def work(tenant: Tenant) -> list[str]:
        async with tn.tenant(tenant.slug):
            async with AsyncSession(tn.async_engine()) as session:
                session.add(Project(name=f"orm-{tenant.slug}"))
                await session.commit()
            async with tn.async_connection() as conn:
                cur = await conn.execute(
                    "INSERT INTO projects (name) VALUES (%s) RETURNING tenant_id", (f"raw-{tenant.slug}",)
                )
                assert (await cur.fetchone()) == (tenant.id,)
                assert await acopy_rows(conn, "projects", ["name"], [(f"copy-{tenant.slug}",)]) == 1
                cur = await conn.execute("SELECT name FROM projects ORDER BY name")
                return [r[0] for r in await cur.fetchall()]

    async def both() -> list[list[str]]:
        return list(await asyncio.gather(work(a), work(b)))

    seen = arun(tn, both)
    for tenant, rows in zip((a, b), seen, strict=True):
        assert rows == [f"{kind}-{tenant.slug}" for kind in ("copy", "orm", "raw")] == stored_names(tn, tenant)


def test_copy_rows(tn: Tenantry, make_tier_tenant) -> None:
    t = make_tier_tenant()
    with tn.tenant(t.slug), tn.connection() as conn:
        assert copy_rows(conn, "projects", ["name"], [(f"p{i:02}",) for i in range(50)]) == 50
        pid = conn.execute("SELECT min(id) FROM projects").fetchone()[0]
        rows = [(pid, f"k{i}", 2, "high", False) for i in range(3)]
        assert copy_rows(conn, "tasks", ["project_id", "title", "points", "priority", "done"], rows) == 3
        assert conn.execute("SELECT count(*), sum(points), min(tenant_id::text) FROM tasks").fetchone() == (
            3,
            6,
            str(t.id),
        )
    assert stored_names(tn, t) == [f"p{i:02}" for i in range(50)]


def test_two_tenants_on_one_tier_never_meet(tn: Tenantry, make_tier_tenant) -> None:
    a, b = make_tier_tenant(), make_tier_tenant()
    seed(tn, a, "a1", "a2")
    [b_id] = seed(tn, b, "b1")
    b_schema = placement_of(tn, b).schema
    with tn.tenant(a.slug), tn.connection() as conn:
        assert names(conn) == {"a1", "a2"}
        # naming b's tables explicitly shows none of b's rows
        assert foreign_rows(visible(conn, b_schema), a.id) == []
        assert conn.execute("UPDATE projects SET name = name || '!'").rowcount == 2
        assert conn.execute("DELETE FROM projects WHERE name = 'b1'").rowcount == 0
    with pytest.raises(IsolationError, match="row-level security"):
        with tn.tenant(a.slug), tn.connection() as conn:
            conn.execute(
                "INSERT INTO projects (tenant_id, id, name) VALUES (%s, %s, 'stolen')"
                " ON CONFLICT (tenant_id, id) DO UPDATE SET name = excluded.name",
                (b.id, b_id),
            )
    with tn.tenant(a.slug), Session(tn.engine()) as session:
        assert session.get(Project, (b.id, b_id)) is None
        assert sorted(session.scalars(sa.select(Project.name))) == ["a1!", "a2!"]
    assert (stored_names(tn, a), stored_names(tn, b)) == (["a1!", "a2!"], ["b1"])


def test_tenants_on_other_tiers_stay_apart(tn: Tenantry, make_tier_tenant, others: dict[str, Tenant]) -> None:
    t = make_tier_tenant()
    seed(tn, t, "mine")
    everywhere = {placement_of(tn, x).schema for x in [t, *others.values()]}
    for tenant in (t, *others.values()):
        with tn.tenant(tenant.slug), tn.connection() as conn:
            for schema in sorted(everywhere):
                assert foreign_rows(visible(conn, schema), tenant.id) == [], (tenant.slug, schema)
            assert names(conn) == ({"mine"} if tenant is t else {f"other-{tenant.slug}"})


def test_a_connection_serves_only_tenants_of_its_database(
    tn: Tenantry, make_tier_tenant, others: dict[str, Tenant]
) -> None:
    """Pooled and schema-tier tenants share the shared database's connections, one transaction
    after another; a database-tier tenant is served only on connections to its own database."""
    t = make_tier_tenant()
    with tn.tenant(t.slug):
        engine = tn.engine()
    with tn.tenant(t.slug), tn.connection() as conn, Session(engine) as session:
        for other in others.values():
            conn.rollback()
            session.rollback()
            with tn.tenant(other.slug):
                if placement_of(tn, other).database == placement_of(tn, t).database:
                    assert names(conn) == set(session.scalars(sa.select(Project.name))) == {f"other-{other.slug}"}
                    continue
                with pytest.raises(TenantContextError, match="open it inside"):
                    conn.execute("SELECT name FROM projects")
                with pytest.raises(TenantContextError, match="open it inside"):
                    session.execute(sa.select(Project.name))


def test_no_tenant_bound_sees_nothing(tn: Tenantry, make_tier_tenant) -> None:
    t = make_tier_tenant()
    seed(tn, t, "hidden")
    p = placement_of(tn, t)
    with tn.connection() as conn:
        assert visible(conn, p.schema) == [] and names(conn) == set()
    with pytest.raises(NoTenantBound):
        with tn.connection() as conn:
            conn.execute(
                sql.SQL("INSERT INTO {} (name) VALUES ('orphan')").format(sql.Identifier(p.schema, "projects"))
            )
    with Session(tn.engine()) as session:
        assert session.scalars(sa.select(Project.name)).all() == []
    # even on a connection to the tenant's own database
    with tn.router.pool(p.route.pool_key).connection() as conn:
        assert visible(conn, p.schema) == []
    assert stored_names(tn, t) == ["hidden"]


def test_delete_removes_the_tenant_on_its_tier(
    tn: Tenantry, tier: str, make_tier_tenant, others: dict[str, Tenant]
) -> None:
    t = make_tier_tenant()
    seed(tn, t, "doomed")
    p = placement_of(tn, t)
    counts = tn.tenants.delete(t.slug)
    if tier == "pooled":
        assert counts == {f"{p.schema}.projects": 1, f"{p.schema}.tasks": 0, f"{p.schema}.comments": 0}
        assert stored_names(tn, t, p) == []
    elif tier == "schema":
        assert counts == {f"schema {p.schema}": 1} and not holds(tn, p)
    else:
        assert counts == {f"database {p.database}": 1} and not holds(tn, p)
    assert tn.tenants.get(t.id).status is Status.DELETED and tn.tenants.placement(t.id) is None
    assert tn.tenants.delete(t.id) == {}  # idempotent
    with pytest.raises(TenantNotFound):
        tn.tenants.delete(t.slug)  # a deleted tenant is found by id only
    with pytest.raises(TenantNotFound), tn.tenant(t.slug):
        pass
    assert tn.schema.unprotected_tables() == []
    assert stored_names(tn, others[tier]) == [f"other-{others[tier].slug}"]
    # the slug can be used again, for a tenant that starts empty
    again = tn.tenants.create(t.slug, plan=TIER_PLANS[tier])
    with tn.tenant(t.slug), tn.connection() as conn:
        assert again.id != t.id and names(conn) == set()


@pytest.mark.parametrize("writer", ["pooled", "schema"])
def test_delete_leaves_no_rows_written_outside_the_placement(
    tn: Tenantry, writer: str, others: dict[str, Tenant]
) -> None:
    t = tn.tenants.create(f"stray-{uuid.uuid4().hex[:8]}", plan=TIER_PLANS[writer])
    home = placement_of(tn, t)
    elsewhere = [
        p for p in (placement_of(tn, o) for o in others.values()) if p.database is None and p.schema != home.schema
    ]
    for p in elsewhere:
        try:
            with tn.tenant(t.slug), tn.connection() as conn:
                conn.execute(
                    sql.SQL("INSERT INTO {} (name) VALUES ('stray')").format(sql.Identifier(p.schema, "projects"))
                )
        except (IsolationError, psycopg.errors.InsufficientPrivilege):
            pass  # refusing such writes is a fix too
    tn.tenants.delete(t.id)
    assert {p.schema: stored_names(tn, t, p) for p in elsewhere} == {p.schema: [] for p in elsewhere}


# -- what one tier has: the database marker, pools per database, schema recycling -----------------------


@contextmanager
def tampered_marker(tn: Tenantry, tenant: Tenant, tamper: str) -> Iterator[None]:
    """Run ``tamper`` on the marker of the tenant's database (as the superuser); put it right after."""
    with superuser_in(tn, placement_of(tn, tenant)) as su:
        su.execute(tamper)
        try:
            yield
        finally:
            with su.transaction():
                su.execute("DELETE FROM tenantry.marker")
                su.execute("INSERT INTO tenantry.marker (tenant_id) VALUES (%s)", (tenant.id,))


NOT_ITS_OWN = "does not belong to the bound tenant"
SELECT_NAMES = "SELECT name FROM projects"


@pytest.mark.parametrize(
    "tamper",
    ["UPDATE tenantry.marker SET tenant_id = gen_random_uuid()", "DELETE FROM tenantry.marker"],
    ids=["other-tenant", "no-marker"],
)
def test_database_marker_must_name_the_tenant(
    own_tenantry: Callable[..., Tenantry], others: dict[str, Tenant], tamper: str
) -> None:
    tn, t = own_tenantry(), others["database"]  # connections of their own (see the next test)
    with tampered_marker(tn, t, tamper):
        for path in PATHS:
            with pytest.raises((psycopg.Error, IsolationError), match=NOT_ITS_OWN):
                read_via(tn, path, SELECT_NAMES, t)


def test_connections_that_refused_a_tenant_serve_it_again(
    own_tenantry: Callable[..., Tenantry], others: dict[str, Tenant]
) -> None:
    single = own_tenantry(tenant_pool_max_size=1)  # the connection that refuses is the one reused
    t = others["database"]
    sync_paths = [path for path in PATHS if not path.startswith("asyncio")]
    with tampered_marker(single, t, "DELETE FROM tenantry.marker"):
        for path in sync_paths:
            with pytest.raises((psycopg.Error, IsolationError), match=NOT_ITS_OWN):
                read_via(single, path, SELECT_NAMES, t)
    served = {path: read_via(single, path, SELECT_NAMES, t) for path in sync_paths}
    assert served == {path: [[(f"other-{t.slug}",)]] for path in sync_paths}


def test_unprotected_tables_covers_tenant_databases(tn: Tenantry, others: dict[str, Tenant]) -> None:
    with superuser_in(tn, placement_of(tn, others["database"])) as su:
        su.execute("ALTER TABLE tenant_data.comments NO FORCE ROW LEVEL SECURITY")
        try:
            report = tn.schema.unprotected_tables()
        finally:
            su.execute("ALTER TABLE tenant_data.comments FORCE ROW LEVEL SECURITY")
    assert any("comments" in entry for entry in report), report


@pytest.fixture(scope="module")
def database_tenants(tn: Tenantry) -> list[Tenant]:
    return [tn.tenants.create(f"pooling-{i}-{uuid.uuid4().hex[:8]}", plan="enterprise") for i in range(4)]


@pytest.fixture
def bounded(own_tenantry: Callable[..., Tenantry]) -> Tenantry:
    """Keeps at most two pools (and engines)."""
    return own_tenantry(max_pools=2)


def _databases(tn: Tenantry, tenants: Iterable[Tenant]) -> list[str]:
    return [placement_of(tn, t).database or "" for t in tenants]


def test_database_tier_pools_are_bounded(bounded: Tenantry, database_tenants: list[Tenant]) -> None:
    for round_ in range(2):
        for t in database_tenants:
            with bounded.tenant(t.slug), bounded.connection() as conn:
                conn.execute("INSERT INTO projects (name) VALUES (%s)", (f"raw{round_}",))
            assert bounded.router.open_pools() <= 2
            with bounded.tenant(t.slug), Session(bounded.engine()) as session:
                session.add(Project(name=f"orm{round_}"))
                session.commit()
                assert sorted(session.scalars(sa.select(Project.name))) == sorted(
                    f"{kind}{r}" for kind in ("orm", "raw") for r in range(round_ + 1)
                )
    assert len(runtime_databases(bounded, _databases(bounded, database_tenants), most=2)) <= 2


def test_threads_on_more_databases_than_pools_are_served_while_pools_are_evicted(
    bounded: Tenantry, database_tenants: list[Tenant]
) -> None:
    """Six threads on four databases with room for two pools: a pool is evicted (closed) while
    another thread has just looked it up; that thread must be served by the route's new pool,
    never fail, and every row must land in its own tenant's database."""
    stop = time.monotonic() + 3.0
    counts: dict[str, int] = {t.slug: 0 for t in database_tenants}
    lock = threading.Lock()

    def work(n: int) -> None:
        while time.monotonic() < stop:
            t = database_tenants[(n + counts[database_tenants[n % 4].slug]) % 4]
            with bounded.tenant(t.slug), bounded.connection() as conn:
                conn.execute("INSERT INTO projects (name) VALUES (%s)", (f"thread-{t.slug}",))
            with lock:
                counts[t.slug] += 1
            assert bounded.router.open_pools() <= 2

    with ThreadPoolExecutor(6) as pool:
        for future in [pool.submit(work, n) for n in range(6)]:
            future.result()
    for t in database_tenants:
        with bounded.tenant(t.slug), bounded.connection() as conn:
            names = conn.execute(
                "SELECT name, count(*) FROM projects WHERE name LIKE 'thread-%%' GROUP BY name"
            ).fetchall()
        assert names == [(f"thread-{t.slug}", counts[t.slug])]
    assert sum(counts.values()) > 20
    assert len(runtime_databases(bounded, _databases(bounded, database_tenants), most=2)) <= 2


@pytest.mark.parametrize("kind", ["async_connection", "async_engine"])
def test_async_database_tier_pools_are_bounded(bounded: Tenantry, database_tenants: list[Tenant], kind: str) -> None:
    databases = _databases(bounded, database_tenants)

    async def work() -> set[str]:
        for t in database_tenants:
            async with bounded.tenant(t.slug):
                if kind == "async_connection":
                    async with bounded.async_connection() as conn:
                        await conn.execute("SELECT 1")
                else:
                    async with AsyncSession(bounded.async_engine()) as session:
                        await session.execute(sa.select(Project.name))
        return await asyncio.to_thread(runtime_databases, bounded, databases, most=2)

    gc.disable()  # evicted engines' connections must be closed by tenantry, not by the collector
    try:
        while_open = arun(bounded, work)
        after_close = runtime_databases(bounded, databases, most=0)
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        gc.enable()
    assert (len(while_open) <= 2, after_close) == (True, set())


def test_deleting_a_database_tenant_closes_its_pools(tn: Tenantry) -> None:
    t = tn.tenants.create(f"closing-{uuid.uuid4().hex[:8]}", plan="enterprise")

    async def work() -> tuple[bool, bool]:
        async with tn.tenant(t.slug):
            sync_pool = await asyncio.to_thread(tn.pool)
            async_pool = await tn.async_pool()
            async with tn.async_connection() as conn:
                await conn.execute("SELECT 1")
        await asyncio.to_thread(tn.tenants.delete, t.id)
        return sync_pool.closed, async_pool.closed

    assert arun(tn, work) == (True, True)


@pytest.fixture(scope="module")
def schema_tenants(tn: Tenantry) -> list[Tenant]:
    made = [tn.tenants.create(f"recycle-{i}-{uuid.uuid4().hex[:8]}", plan="business") for i in range(3)]
    for t in made:
        seed(tn, t, f"r-{t.slug}")
    return made


@pytest.fixture(scope="module")
def recycling(scratch: Scratch) -> Iterator[Tenantry]:
    """One connection per pool, replaced once it has served more than two tenant schemas."""
    with tenantry_with(scratch, schema_recycle_after=2, pool_min_size=1, pool_max_size=1) as tenantry:
        yield tenantry


@pytest.mark.parametrize(
    "path",
    PATHS,
)
def test_schema_connections_are_recycled(recycling: Tenantry, schema_tenants: list[Tenant], path: str) -> None:
    order = [*schema_tenants, schema_tenants[0]]
    seen = read_via(recycling, path, "SELECT name, pg_backend_pid() FROM projects", *order)
    assert [[name for name, _ in rows] for rows in seen] == [[f"r-{t.slug}"] for t in order]
    pids = [pid for [(_, pid)] in seen]
    # three schemas served on one backend, then a new backend
    assert pids[0] == pids[1] == pids[2] != pids[3]


#: statements whose prepared form depends on the schema: an enum parameter, an enum result
ENUM_STATEMENTS = {
    "enum-parameter": (
        "SELECT count(*) FROM tasks WHERE priority = %s",
        sa.select(sa.func.count()).select_from(Task).where(Task.priority == Priority.high),
    ),
    "enum-result": ("SELECT priority FROM tasks WHERE points > %s", sa.select(Task.priority).where(Task.points > 0)),
}


@pytest.mark.parametrize("kind", list(ENUM_STATEMENTS))
@pytest.mark.parametrize("via", ["psycopg", "sqlalchemy"])
def test_prepared_statements_follow_the_schema(
    own_tenantry: Callable[..., Tenantry], others: dict[str, Tenant], via: str, kind: str
) -> None:
    single = own_tenantry(pool_min_size=1, pool_max_size=1)  # every tenant on one connection
    raw, query = ENUM_STATEMENTS[kind]
    param = "high" if kind == "enum-parameter" else 0
    for tenant in (others["pooled"], others["schema"], others["pooled"]):
        # past psycopg's prepare_threshold (5) the statement is prepared; a commit keeps it
        # (a rollback would deallocate it)
        with single.tenant(tenant.slug):
            if via == "psycopg":
                with single.connection() as conn:
                    for _ in range(6):
                        conn.execute(raw, (param,)).fetchall()
            else:
                with Session(single.engine()) as session:
                    for _ in range(6):
                        session.execute(query).all()
                    session.commit()
