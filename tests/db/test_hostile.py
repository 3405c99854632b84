"""The hostile cases of ARCHITECTURE.md that apply to the pooled tier, one focused test each.

Tenant A attacks tenant B: reads, writes, upserts, COPY, foreign keys, SQL that tries to rebind
the tenant or step around row-level security, unsafe runtime roles, hostile slugs, and caches.
Every check of rows goes through :mod:`tests.db.isolation_probe`, whose functions
``test_rls_required`` shows would report these leaks if RLS were off.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.orm import Session

from tenantry import (
    InvalidSlug,
    IsolationError,
    NoTenantBound,
    Tenant,
    TenantConnection,
    TenantNotActive,
    TenantNotFound,
    Tenantry,
    UnsafeRuntimeRole,
    copy_rows,
)
from tests.db.isolation_probe import (
    Seeded,
    bound,
    empty_view,
    foreign_rows,
    probe,
    read_view,
    seed,
    snapshot,
    unchanged,
)
from tests.model_app import TABLES, Base, Comment, Project, Task


def ids(a: Seeded, b: Seeded) -> dict[str, Any]:
    """Query parameters naming both tenants and their rows."""
    return {
        "a": a.tenant.id,
        "a_project": a.project,
        "a_task": a.task,
        "a_comment": a.comment,
        "b": b.tenant.id,
        "b_project": b.project,
        "b_task": b.task,
        "b_comment": b.comment,
    }


def as_a(tn: Tenantry, a: Seeded, b: Seeded, query: str) -> Any:
    """Run ``query`` under tenant A (parameters: :func:`ids`); its rows, or the row count."""
    with bound(tn, a.tenant) as conn:
        cur = conn.execute(query, ids(a, b))
        return cur.fetchall() if cur.description else cur.rowcount


def driver_refuses(tn: Tenantry, tenant: Tenant, error: type[Exception], statement: Any, params: Any = None) -> None:
    """Inside ``tn.connection()`` under ``tenant``, ``statement`` raises the driver's ``error``."""
    with bound(tn, tenant) as conn:
        with pytest.raises(error):
            conn.execute(statement, params)
        conn.rollback()


def each(cases: dict[str, str]) -> pytest.MarkDecorator:
    """Parametrize a test's ``query`` with the named statements of ``cases``."""
    return pytest.mark.parametrize("query", list(cases.values()), ids=list(cases))


@pytest.fixture
def a(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> Seeded:
    """The attacker: a tenant with a project, a task and a comment."""
    return seed(tn, make_tenant("a"))


@pytest.fixture
def b(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> Seeded:
    """The victim, seeded like ``a``."""
    return seed(tn, make_tenant("b"))


@contextmanager
def small_pool(tn: Tenantry) -> Iterator[Tenantry]:
    """A second Tenantry on the same database whose pool holds one connection, reused by all."""
    one = Tenantry(tn.settings.with_changes(pool_min_size=1, pool_max_size=1), metadata=tn.metadata)
    try:
        yield one
    finally:
        one.close()


# -- a query under tenant A never reads B's rows ---------------------------------------------

#: statements that must return A's rows and only A's (every row carries a tenant id)
OWN_ROWS = {
    "select *": "SELECT * FROM comments",
    "join on id only": "SELECT t.tenant_id, p.tenant_id, t.title FROM tasks t JOIN projects p ON p.id = t.project_id",
    "three-way join": "SELECT c.tenant_id, t.tenant_id, p.tenant_id FROM comments c"
    " JOIN tasks t ON t.id = c.task_id JOIN projects p ON p.id = t.project_id",
    "cross join": "SELECT p.tenant_id, t.tenant_id FROM projects p CROSS JOIN tasks t",
    "full outer join": "SELECT p.tenant_id, t.tenant_id FROM projects p FULL JOIN tasks t ON t.project_id = p.id",
    "lateral": "SELECT p.tenant_id, x.tenant_id FROM projects p, LATERAL (SELECT tenant_id FROM comments) x",
    "union all": "SELECT tenant_id FROM projects UNION ALL SELECT tenant_id FROM tasks"
    " UNION ALL SELECT tenant_id FROM comments",
    "group by tenant": "SELECT tenant_id, count(*), sum(points) FROM tasks GROUP BY tenant_id",
    "window": "SELECT tenant_id, count(*) OVER (), rank() OVER (ORDER BY id) FROM projects",
    "scalar subquery": "SELECT tenant_id, (SELECT max(tenant_id::text) FROM tasks) FROM projects",
    "cte": "WITH t AS (SELECT * FROM tasks) SELECT tenant_id, title FROM t",
    "recursive cte": "WITH RECURSIVE up(tenant_id, id) AS (SELECT tenant_id, task_id FROM comments"
    " UNION SELECT t.tenant_id, t.project_id FROM tasks t JOIN up ON up.id = t.id) SELECT * FROM up",
    "row_to_json": "SELECT row_to_json(p) ->> 'tenant_id' FROM projects p",
    "leaky qual": "SELECT tenant_id, title FROM tasks WHERE CASE WHEN tenant_id = %(b)s THEN 1 / (points - points) ELSE 1 END = 1",
}

#: statements aimed at B's rows by tenant id or primary key: under A they find nothing
AIMED_AT_B = {
    "where tenant_id": "SELECT * FROM projects WHERE tenant_id = %(b)s",
    "where id": "SELECT * FROM tasks WHERE id = %(b_task)s",
    "in subquery": "SELECT * FROM projects WHERE id IN (SELECT project_id FROM tasks WHERE id = %(b_task)s)",
    "exists": "SELECT 1 WHERE EXISTS (SELECT 1 FROM comments WHERE tenant_id = %(b)s)",
    "join to b's ids": "SELECT c.* FROM comments c JOIN tasks t ON t.id = c.task_id WHERE t.id = %(b_task)s",
    "cte": "WITH theirs AS (SELECT * FROM projects WHERE tenant_id = %(b)s) SELECT * FROM theirs",
    "aggregate": "SELECT count(*), sum(points) FROM tasks WHERE tenant_id = %(b)s HAVING count(*) > 0",
    "values join": "SELECT p.* FROM (VALUES (%(b_project)s::bigint)) v(id) JOIN projects p USING (id)",
}


@each(OWN_ROWS)
def test_reads_return_only_own_rows(tn: Tenantry, a: Seeded, b: Seeded, query: str) -> None:
    with unchanged(tn, a.tenant, b.tenant):
        rows = as_a(tn, a, b, query)
    assert rows, "the probe must see the bound tenant's own rows"
    assert foreign_rows(rows, a.tenant.id) == []


@each(AIMED_AT_B)
def test_reads_aimed_at_b_find_nothing(tn: Tenantry, a: Seeded, b: Seeded, query: str) -> None:
    assert as_a(tn, a, b, query) == []


def test_every_table_shows_a_exactly_its_rows(tn: Tenantry, a: Seeded, b: Seeded) -> None:
    assert probe(tn, a.tenant) == []
    assert probe(tn, b.tenant) == []
    with tn.tenant(a.tenant.slug), Session(tn.engine()) as session:
        models: tuple[Any, ...] = (Project, Task, Comment)
        for model in models:
            assert {o.tenant_id for o in session.scalars(sa.select(model))} == {a.tenant.id}


def test_aggregates_count_only_own_rows(tn: Tenantry, a: Seeded, b: Seeded) -> None:
    own = snapshot(tn, a.tenant)
    with bound(tn, a.tenant) as conn:
        for table in TABLES:
            counted = conn.execute(f"SELECT count(*), count(DISTINCT tenant_id) FROM {table}").fetchone()
            assert counted == (len(own[table]), 1)
        assert conn.execute("SELECT sum(points) FROM tasks").fetchone() == (3,)
    with tn.tenant(a.tenant.slug), Session(tn.engine()) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Task)) == len(own["tasks"])


def test_planner_statistics_do_not_show_other_tenants_values(tn: Tenantry, a: Seeded, b: Seeded) -> None:
    with tn.admin() as admin:
        admin.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(tn.settings.pooled_schema, "projects")))
    with bound(tn, a.tenant) as conn:
        stats = conn.execute(
            "SELECT most_common_vals::text, histogram_bounds::text FROM pg_stats WHERE tablename = 'projects'"
        ).fetchall()
    assert stats == []


# -- nor updates or deletes them -------------------------------------------------------------


def test_writes_without_where_touch_only_own_rows(tn: Tenantry, a: Seeded, b: Seeded) -> None:
    me = a.tenant.id
    with unchanged(tn, b.tenant), bound(tn, a.tenant) as conn:
        assert conn.execute("UPDATE tasks SET points = points + 1 RETURNING tenant_id, id").fetchall() == [(me, a.task)]
        assert conn.execute(
            "WITH gone AS (DELETE FROM comments RETURNING tenant_id, task_id)"
            " UPDATE tasks SET done = true WHERE id IN (SELECT task_id FROM gone) OR id = %(b_task)s"
            " RETURNING tenant_id, id",
            ids(a, b),
        ).fetchall() == [(me, a.task)]
        assert conn.execute("DELETE FROM projects RETURNING tenant_id, id").fetchall() == [(me, a.project)]
    assert snapshot(tn, a.tenant) == empty_view()


AIMED_WRITES = {
    "update by id": "UPDATE projects SET name = 'x' WHERE id = %(b_project)s",
    "update by tenant": "UPDATE tasks SET points = 0 WHERE tenant_id = %(b)s",
    "update from join": "UPDATE tasks SET title = 'x' FROM projects p WHERE p.id = tasks.project_id AND p.tenant_id = %(b)s",
    "delete by id": "DELETE FROM comments WHERE id = %(b_comment)s",
    "delete using join": "DELETE FROM tasks USING projects p WHERE p.id = tasks.project_id AND p.tenant_id = %(b)s",
    "delete in cte": "WITH x AS (DELETE FROM projects WHERE tenant_id = %(b)s RETURNING 1) SELECT count(*) FROM x",
    "merge update": "MERGE INTO projects p USING (SELECT %(b_project)s::bigint AS id) v ON p.id = v.id"
    " WHEN MATCHED THEN UPDATE SET name = 'merged' WHEN NOT MATCHED THEN DO NOTHING",
    "merge delete": "MERGE INTO tasks t USING (SELECT %(b_task)s::bigint AS id) v ON t.id = v.id"
    " WHEN MATCHED THEN DELETE",
}


@each(AIMED_WRITES)
def test_writes_aimed_at_b_change_nothing(tn: Tenantry, a: Seeded, b: Seeded, query: str) -> None:
    with unchanged(tn, a.tenant, b.tenant):
        assert as_a(tn, a, b, query) in (0, [(0,)])


UPSERT_B_KEY = (
    "INSERT INTO projects (id, name) VALUES (%(b_project)s, 'mine') ON CONFLICT (tenant_id, id)"
    " DO UPDATE SET name = 'updated' RETURNING tenant_id, id, name, xmax = 0 AS inserted"
)


def test_upserts_never_touch_b_rows(tn: Tenantry, a: Seeded, b: Seeded) -> None:
    with unchanged(tn, b.tenant):
        # naming B as the tenant is refused before any conflict is looked for
        for action in ("DO UPDATE SET name = 'hijacked'", "DO NOTHING"):
            with pytest.raises(IsolationError):
                as_a(
                    tn,
                    a,
                    b,
                    "INSERT INTO projects (tenant_id, id, name) VALUES (%(b)s, %(b_project)s, 'x')"
                    f" ON CONFLICT (tenant_id, id) {action}",
                )
        # B's primary key with the tenant left to its default: first a new row of A's, then an
        # update of that row; B's row is never the conflict
        assert as_a(tn, a, b, UPSERT_B_KEY) == [(a.tenant.id, b.project, "mine", True)]
        assert as_a(tn, a, b, UPSERT_B_KEY) == [(a.tenant.id, b.project, "updated", False)]


# -- bulk COPY ------------------------------------------------------------------------------


def test_copy_out_returns_only_own_rows(tn: Tenantry, a: Seeded, b: Seeded) -> None:
    with bound(tn, a.tenant) as conn, conn.cursor() as cur:
        with cur.copy("COPY projects (tenant_id, id) TO STDOUT") as copy:
            copy.set_types(["uuid", "int8"])
            assert list(copy.rows()) == [(a.tenant.id, a.project)]
        for statement in (
            "COPY comments TO STDOUT",
            "COPY (SELECT t.* FROM tasks t JOIN projects p USING (tenant_id)) TO STDOUT",
        ):
            with cur.copy(statement) as copy:
                rows = list(copy.rows())
            assert len(rows) == 1 and foreign_rows(rows, a.tenant.id) == []


def test_copy_in_takes_the_bound_tenant_and_refuses_others(tn: Tenantry, a: Seeded, b: Seeded) -> None:
    with unchanged(tn, b.tenant):
        with bound(tn, a.tenant) as conn:
            assert copy_rows(conn, "projects", ["name"], [("bulk-1",), ("bulk-2",)]) == 2
            assert copy_rows(conn, "projects", ["tenant_id", "name"], [(a.tenant.id, "bulk-3")]) == 1
        # one row for B spoils the whole batch
        with pytest.raises(IsolationError), bound(tn, a.tenant) as conn:
            copy_rows(conn, "projects", ["tenant_id", "name"], [(a.tenant.id, "ok"), (b.tenant.id, "planted")])
        # raw COPY FROM is refused outright by PostgreSQL under RLS (hence copy_rows)
        with bound(tn, a.tenant) as conn, conn.cursor() as cur:
            with pytest.raises(psycopg.errors.FeatureNotSupported):
                with cur.copy("COPY projects (tenant_id, name) FROM STDIN") as copy:
                    copy.write_row((b.tenant.id, "planted"))
            conn.rollback()
    names = {row[2]: row[0] for row in snapshot(tn, a.tenant, b.tenant)["projects"]}
    assert {n: t for n, t in names.items() if n.startswith("bulk")} == dict.fromkeys(
        ("bulk-1", "bulk-2", "bulk-3"), a.tenant.id
    )
    assert "ok" not in names and "planted" not in names


# -- tenant_id set to another tenant; foreign keys across tenants -----------------------------

MOVES = {
    "insert project": "INSERT INTO projects (tenant_id, name) VALUES (%(b)s, 'planted')",
    "insert task": "INSERT INTO tasks (tenant_id, project_id, title, points, priority, done)"
    " VALUES (%(b)s, %(b_project)s, 'planted', 1, 'low', false)",
    "insert comment": "INSERT INTO comments (tenant_id, task_id, body) VALUES (%(b)s, %(b_task)s, 'planted')",
    "update tenant_id": "UPDATE comments SET tenant_id = %(b)s",
    "update via cte": "WITH mine AS (SELECT id FROM projects) UPDATE projects SET tenant_id = %(b)s"
    " WHERE id IN (SELECT id FROM mine)",
    "insert select": "INSERT INTO projects (tenant_id, name) SELECT %(b)s, name FROM projects",
}


@each(MOVES)
def test_rows_cannot_be_given_to_another_tenant(tn: Tenantry, a: Seeded, b: Seeded, query: str) -> None:
    with unchanged(tn, a.tenant, b.tenant):
        driver_refuses(tn, a.tenant, psycopg.errors.InsufficientPrivilege, query, ids(a, b))
        with pytest.raises(IsolationError, match="row-level security"):
            as_a(tn, a, b, query)  # leaving tn.connection(): tenantry's error


def test_orm_cannot_give_rows_to_another_tenant(tn: Tenantry, a: Seeded, b: Seeded) -> None:
    with unchanged(tn, a.tenant, b.tenant), tn.tenant(a.tenant.slug):
        with pytest.raises(IsolationError), Session(tn.engine()) as session, session.begin():
            session.add(Project(tenant_id=b.tenant.id, name="planted"))
        with pytest.raises(IsolationError), Session(tn.engine()) as session, session.begin():
            session.get_one(Comment, (a.tenant.id, a.comment)).tenant_id = b.tenant.id


FOREIGN_KEYS = {
    "task in b's project": "INSERT INTO tasks (project_id, title, points, priority, done)"
    " VALUES (%(b_project)s, 'x', 1, 'low', false)",
    "comment on b's task": "INSERT INTO comments (task_id, body) VALUES (%(b_task)s, 'x')",
    "move own task into b's project": "UPDATE tasks SET project_id = %(b_project)s",
    "move own comment onto b's task": "UPDATE comments SET task_id = %(b_task)s WHERE id = %(a_comment)s",
}


@each(FOREIGN_KEYS)
def test_foreign_keys_cannot_reach_another_tenant(tn: Tenantry, a: Seeded, b: Seeded, query: str) -> None:
    with unchanged(tn, a.tenant, b.tenant), pytest.raises(psycopg.errors.ForeignKeyViolation) as caught:
        as_a(tn, a, b, query)
    assert str(b.tenant.id) not in str(caught.value)
    with pytest.raises(sa.exc.IntegrityError), tn.tenant(a.tenant.slug), Session(tn.engine()) as session:
        session.add(Task(project_id=b.project, title="x"))
        session.commit()


# -- no tenant bound --------------------------------------------------------------------------


def test_no_tenant_reads_return_nothing(tn: Tenantry, a: Seeded, b: Seeded) -> None:
    with bound(tn, None) as conn:
        assert read_view(conn, tn.settings.pooled_schema) == empty_view()
        assert conn.execute("SELECT count(*) FROM tasks").fetchone() == (0,)
    with Session(tn.engine()) as session:
        assert session.scalars(sa.select(Project)).all() == []


@pytest.mark.parametrize(
    "query",
    [
        "INSERT INTO projects (name) VALUES ('orphan')",
        "INSERT INTO tasks (project_id, title, points, priority, done) VALUES (%(a_project)s, 'orphan', 1, 'low', false)",
        "INSERT INTO comments (task_id, body) SELECT %(a_task)s, 'orphan'",
    ],
    ids=TABLES,
)
def test_no_tenant_inserts_fail_clearly(tn: Tenantry, a: Seeded, b: Seeded, query: str) -> None:
    with unchanged(tn, a.tenant, b.tenant):
        with pytest.raises(NoTenantBound, match=r"no tenant is bound.*tn\.tenant"), bound(tn, None) as conn:
            conn.execute(query, ids(a, b))
        # naming a tenant does not help: the policy still sees no tenant
        with pytest.raises(IsolationError, match="row-level security"), bound(tn, None) as conn:
            conn.execute("INSERT INTO projects (tenant_id, name) VALUES (%(a)s, 'orphan')", ids(a, b))
        with pytest.raises(NoTenantBound), Session(tn.engine()) as session, session.begin():
            session.add(Project(name="orphan"))


def test_no_tenant_updates_and_deletes_affect_nothing(tn: Tenantry, a: Seeded, b: Seeded) -> None:
    with unchanged(tn, a.tenant, b.tenant), bound(tn, None) as conn:
        for query in (
            "UPDATE projects SET name = 'x'",
            "UPDATE tasks SET points = 0 WHERE tenant_id = %(a)s",
            "DELETE FROM comments",
            "DELETE FROM projects WHERE id = %(b_project)s",
        ):
            assert conn.execute(query, ids(a, b)).rowcount == 0


# -- the runtime role cannot rebind the tenant or step around RLS ----------------------------

REBINDS = {
    "set_config local": "SELECT set_config('tenantry.tenant_id', %(b)s::text, true)",
    "set_config session": "SELECT set_config('tenantry.tenant_id', %(b)s::text, false)",
    "SET LOCAL": "SET LOCAL tenantry.tenant_id = {b}",
    "A's signature on B's id": "SELECT set_config('tenantry.tenant_id', %(b)s::text, true),"
    " set_config('tenantry.tenant_sig', current_setting('tenantry.tenant_sig'), true)",
    "keyless hash as signature": "SELECT set_config('tenantry.tenant_id', %(b)s::text, true),"
    " set_config('tenantry.tenant_sig', encode(sha256(convert_to(%(b)s::text, 'UTF8')), 'hex'), true)",
}


@each(REBINDS)
def test_sql_cannot_rebind_to_another_tenant(tn: Tenantry, a: Seeded, b: Seeded, query: str) -> None:
    statement = sql.SQL(query).format(b=sql.Literal(str(b.tenant.id))) if "{b}" in query else query
    with pytest.raises(IsolationError, match="not set by tenantry"), bound(tn, a.tenant) as conn:
        conn.execute(statement, None if "{b}" in query else ids(a, b))
        conn.execute("SELECT * FROM projects").fetchall()


#: statements the runtime role may not run at all (formatted with its and the owner's names)
FORBIDDEN = {
    "set role owner": "SET ROLE {owner}",
    "session authorization": "SET SESSION AUTHORIZATION {owner}",
    "disable rls": "ALTER TABLE {schema}.projects DISABLE ROW LEVEL SECURITY",
    "no force rls": "ALTER TABLE {schema}.projects NO FORCE ROW LEVEL SECURITY",
    "drop policy": "DROP POLICY tenant_isolation ON {schema}.projects",
    "alter policy": "ALTER POLICY tenant_isolation ON {schema}.projects USING (true)",
    "add policy": "CREATE POLICY open ON {schema}.projects USING (true)",
    "take ownership": "ALTER TABLE {schema}.projects OWNER TO {runtime}",
    "truncate": "TRUNCATE {schema}.comments",
    "row_security off": "SET LOCAL row_security = off; SELECT * FROM {schema}.projects",
    "replication role": "SET session_replication_role = replica",
    "grant itself bypassrls": "ALTER ROLE {runtime} BYPASSRLS",
    "join the owner": "GRANT {owner} TO {runtime}",
    "read secrets": "SELECT * FROM tenantry.secrets",
    "read runtime password": "SELECT value FROM tenantry.secrets WHERE name = 'runtime_password'",
    "read password hashes": "SELECT rolpassword FROM pg_authid",
    "pg_read_file": "SELECT pg_read_file('postgresql.conf')",
    "pg_read_binary_file": "SELECT pg_read_binary_file('global/pg_control')",
    "lo_import": "SELECT lo_import('/etc/passwd')",
    "copy to file": "COPY (SELECT 1) TO '/tmp/tenantry-hostile'",
    "copy program": "COPY (SELECT 1) TO PROGRAM 'true'",
    "function in pooled schema": "CREATE FUNCTION {schema}.steal() RETURNS SETOF {schema}.projects"
    " LANGUAGE sql SECURITY DEFINER AS 'SELECT * FROM {schema}.projects'",
    "function in tenantry": "CREATE FUNCTION tenantry.steal() RETURNS bigint LANGUAGE sql SECURITY DEFINER"
    " AS 'SELECT count(*) FROM {schema}.projects'",
    "function in public": "CREATE FUNCTION public.steal() RETURNS bigint LANGUAGE sql SECURITY DEFINER"
    " AS 'SELECT count(*) FROM {schema}.projects'",
    "replace current_tenant_id": "CREATE OR REPLACE FUNCTION tenantry.current_tenant_id() RETURNS uuid"
    " LANGUAGE sql AS 'SELECT NULL::uuid'",
    "table in pooled schema": "CREATE TABLE {schema}.planted (x int)",
}


@each(FORBIDDEN)
def test_runtime_role_cannot(tn: Tenantry, a: Seeded, b: Seeded, query: str) -> None:
    s = tn.settings
    names = {"owner": s.owner_role, "runtime": s.runtime_role, "schema": s.pooled_schema}
    statement = sql.SQL(query).format(**{k: sql.Identifier(v) for k, v in names.items()})
    driver_refuses(tn, a.tenant, psycopg.errors.InsufficientPrivilege, statement)
    assert tn.schema.unprotected_tables() == []
    assert probe(tn, a.tenant) == []


def test_security_definer_function_of_its_own_stays_confined(tn: Tenantry, a: Seeded, b: Seeded) -> None:
    """pg_temp is the one schema it may create in; a function there runs as itself, under RLS."""
    schema = sql.Identifier(tn.settings.pooled_schema)
    with bound(tn, a.tenant) as conn:
        conn.execute(
            sql.SQL(
                "CREATE FUNCTION pg_temp.steal() RETURNS SETOF {}.projects LANGUAGE sql SECURITY DEFINER"
                " AS 'SELECT * FROM {}.projects'"
            ).format(schema, schema)
        )
        rows = conn.execute("SELECT * FROM pg_temp.steal()").fetchall()
        assert [r[:2] for r in rows] == [(a.tenant.id, a.project)]
        conn.rollback()  # the function goes with the transaction


def test_sql_cannot_learn_another_tenants_signature(tn: Tenantry, a: Seeded, b: Seeded) -> None:
    bound_b, done = threading.Event(), threading.Event()

    def tenant_b_request() -> None:
        with bound(tn, b.tenant) as conn, conn.transaction():  # bound, then idle in transaction
            bound_b.set()
            done.wait(10)

    worker = threading.Thread(target=tenant_b_request)
    worker.start()
    stolen: list[tuple[Any, ...]] = []
    try:
        assert bound_b.wait(10)
        with bound(tn, a.tenant) as conn:
            seen = conn.execute(
                "SELECT query FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE %s",
                ("%tenant_sig%",),
            ).fetchall()
        for (text,) in seen:
            found = re.search(r"tenant_id = '([0-9a-f-]{36})'.*tenant_sig = '([0-9a-f]{64})'", text)
            if found is None:
                continue
            try:
                with bound(tn, a.tenant) as conn:
                    conn.execute(
                        "SELECT set_config('tenantry.tenant_id', %s, true), set_config('tenantry.tenant_sig', %s, true)",
                        found.groups(),
                    )
                    stolen += conn.execute("SELECT tenant_id, name FROM projects").fetchall()
            except IsolationError:
                pass  # a signature bound to its own session would be refused here
    finally:
        done.set()
        worker.join()
    assert foreign_rows(stolen, a.tenant.id) == []


def in_turn(tn: Tenantry, *steps: tuple[Tenant, Callable[[TenantConnection], Any]]) -> list[Any]:
    """Run each step under its tenant, in turn, on one pooled connection (a pool of one)."""
    results = []
    with small_pool(tn) as one:
        for tenant, step in steps:
            with bound(one, tenant) as conn:
                results.append(step(conn))
    return results


def test_temp_table_cannot_capture_the_next_tenants_rows(tn: Tenantry, a: Seeded, b: Seeded) -> None:
    *_, captured = in_turn(
        tn,
        (
            a.tenant,
            lambda c: c.execute(
                "CREATE TEMP TABLE projects (tenant_id uuid DEFAULT tenantry.current_tenant_id(),"
                " id bigint, name text, created_at timestamptz)"
            ),
        ),
        (b.tenant, lambda c: c.execute("INSERT INTO projects (name) VALUES ('b-secret')")),
        # the hand-over reset dropped A's temporary table before B's first statement
        (a.tenant, lambda c: c.execute("SELECT to_regclass('pg_temp.projects')").fetchall()),
    )
    assert captured == [(None,)]
    assert "b-secret" in {row[2] for row in snapshot(tn, b.tenant)["projects"]}


def _read_with_named_cursor(conn: TenantConnection, schema: str) -> list[Any]:
    with conn.cursor(name="next_user") as cur:
        cur.execute(sql.SQL("SELECT tenant_id, name FROM {}").format(sql.Identifier(schema, "projects")))
        return cur.fetchall()


def test_context_planted_by_sql_does_not_serve_the_next_user(tn: Tenantry, a: Seeded, b: Seeded) -> None:
    _, seen = in_turn(
        tn,
        (
            a.tenant,
            lambda c: c.execute(
                "SELECT set_config('tenantry.tenant_id', current_setting('tenantry.tenant_id'), false),"
                " set_config('tenantry.tenant_sig', current_setting('tenantry.tenant_sig'), false)"
            ),
        ),
        (b.tenant, lambda c: _read_with_named_cursor(c, tn.settings.pooled_schema)),
    )
    assert foreign_rows(seen, b.tenant.id) == []


# -- tenantry refuses a runtime role that could bypass RLS -----------------------------------


def test_superuser_runtime_url_is_refused(tn: Tenantry, scratch: Any) -> None:
    """``tn`` initialised the catalog of ``scratch``; the superuser's URL then serves as runtime."""
    unsafe = Tenantry(scratch.settings(runtime_url=scratch.url), metadata=Base.metadata)
    try:
        with pytest.raises(UnsafeRuntimeRole, match="superuser"), unsafe.connection():
            pass
        with pytest.raises(UnsafeRuntimeRole, match="superuser"):
            unsafe.engine()
    finally:
        unsafe.close()


#: ways to give the runtime role a path around RLS
PRIVILEGES = {
    "bypassrls": "ALTER ROLE {runtime} BYPASSRLS",
    "member of a superuser role": "CREATE ROLE {extra} NOLOGIN SUPERUSER; GRANT {extra} TO {runtime}",
    "member of pg_read_all_data": "GRANT pg_read_all_data TO {runtime}",
    "member of a BYPASSRLS role": "CREATE ROLE {extra} NOLOGIN BYPASSRLS; GRANT {extra} TO {runtime}",
    "create in the pooled schema": "GRANT CREATE ON SCHEMA tenant_data TO {runtime}",
}


@pytest.mark.parametrize("grant", [pytest.param(g, id=name) for name, g in PRIVILEGES.items()])
def test_privileged_runtime_role_is_refused(fresh_scratch: Any, grant: str) -> None:
    extra = f"{fresh_scratch.runtime}_x"
    initialised = Tenantry(fresh_scratch.settings(), metadata=Base.metadata)
    initialised.schema.init()
    names = {"runtime": sql.Identifier(fresh_scratch.runtime), "extra": sql.Identifier(extra)}
    with psycopg.connect(fresh_scratch.url, autocommit=True) as admin:
        admin.execute(sql.SQL(grant).format(**names))
    unsafe = Tenantry(fresh_scratch.settings(), metadata=Base.metadata)
    try:
        with pytest.raises(UnsafeRuntimeRole), unsafe.connection():
            pass
    finally:
        unsafe.close()
        initialised.close()
        with psycopg.connect(fresh_scratch.server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {extra}").format(**names))


# -- hostile slugs ----------------------------------------------------------------------------

HOSTILE_SLUGS = {
    "sql injection": 'a"; drop table tenantry.tenants; --',
    "quote": "acme'--",
    "path traversal": "../x",
    "dot dot": "..",
    "slash": "a/b",
    "cyrillic a": "\u0430cme",
    "fullwidth": "\uff41cme",
    "combining mark": "acme\u0301",
    "64 characters": "a" * 64,
    "1000 characters": "b" * 1000,
    "public": "public",
    "pg_catalog": "pg_catalog",
    "pg- prefix": "pg-catalog",
    "tenantry": "tenantry",
    "information_schema": "information_schema",
    "uppercase": "Acme",
    "trailing newline": "acme\n",
    "leading dash": "-acme",
    "empty": "",
    "nul byte": "a\x00b",
}


@pytest.mark.parametrize("slug", HOSTILE_SLUGS.values(), ids=HOSTILE_SLUGS.keys())
def test_hostile_slugs_are_rejected_and_create_nothing(tn: Tenantry, slug: str) -> None:
    def catalog() -> tuple[Any, ...]:
        with tn.admin() as admin:
            row = admin.execute(
                "SELECT (SELECT count(*) FROM tenantry.tenants), (SELECT count(*) FROM tenantry.audit_log),"
                " (SELECT count(*) FROM pg_namespace), (SELECT count(*) FROM pg_class)"
            ).fetchone()
        assert row is not None
        return tuple(row)

    before = catalog()
    with pytest.raises(InvalidSlug):
        tn.tenants.create(slug)
    assert catalog() == before


@pytest.mark.parametrize("slug", [pytest.param(s, id=k) for k, s in HOSTILE_SLUGS.items()])
def test_hostile_keys_resolve_to_no_tenant(tn: Tenantry, slug: str) -> None:
    with pytest.raises(TenantNotFound), tn.tenant(slug):
        pass


@pytest.mark.parametrize("spelling", ["canonical", "hex"])
def test_a_slug_cannot_name_another_tenant(tn: Tenantry, make_tenant: Callable[..., Tenant], spelling: str) -> None:
    victim = make_tenant("victim")
    slug = str(victim.id) if spelling == "canonical" else victim.id.hex
    try:
        squatter = tn.tenants.create(slug)
    except InvalidSlug:
        return  # refusing such slugs is a fix too
    try:
        with tn.tenant(squatter.slug) as resolved:
            assert resolved.id == squatter.id
    finally:
        tn.tenants.delete(squatter.id)


# -- caches never answer for another tenant ---------------------------------------------------


def keys_of(tenant: Tenant) -> list[str | uuid.UUID]:
    return [tenant.slug, tenant.id, str(tenant.id)]


def test_lookups_never_answer_for_each_other(tn: Tenantry, a: Seeded, b: Seeded) -> None:
    for _ in range(2):
        for key_a, key_b in zip(keys_of(a.tenant), keys_of(b.tenant), strict=True):
            for key, seeded in ((key_a, a), (key_b, b)):
                with tn.tenant(key) as resolved, tn.connection() as conn:
                    assert (resolved.id, resolved.slug) == (seeded.tenant.id, seeded.tenant.slug)
                    assert conn.execute("SELECT tenant_id, id FROM projects").fetchall() == [
                        (seeded.tenant.id, seeded.project)
                    ]


def _refused_at_once(tn: Tenantry, tenant: Tenant, keys: list[str | uuid.UUID]) -> None:
    """Suspend ``tenant`` through a Tenantry whose cache would otherwise trust it for minutes."""
    patient = Tenantry(tn.settings.with_changes(tenant_cache_ttl=600.0), metadata=tn.metadata)
    try:
        _suspend_and_check(patient, tenant, keys)
    finally:
        patient.close()


def _suspend_and_check(patient: Tenantry, tenant: Tenant, keys: list[str | uuid.UUID]) -> None:
    for key in keys:  # warm the cache
        with patient.tenant(key):
            pass
    patient.tenants.suspend(tenant.slug)
    try:
        for key in keys:
            with pytest.raises(TenantNotActive), patient.tenant(key):
                pass
    finally:
        patient.tenants.resume(tenant.slug)
    for key in keys:
        with patient.tenant(key) as resolved:
            assert resolved.id == tenant.id


def test_suspended_tenant_is_refused_at_once(tn: Tenantry, a: Seeded, b: Seeded) -> None:
    _refused_at_once(tn, a.tenant, keys_of(a.tenant))
    with tn.tenant(b.tenant.slug) as resolved:
        assert resolved.id == b.tenant.id


def test_suspended_tenant_is_refused_by_any_spelling_of_its_id(
    tn: Tenantry, make_tenant: Callable[..., Tenant]
) -> None:
    a = make_tenant("spelling")
    _refused_at_once(tn, a, [str(a.id).upper(), a.id.hex])
