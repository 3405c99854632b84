"""Property: whatever two tenants do, in any order, each reads and changes only its own rows.

A hypothesis state machine drives two fresh tenants of the model app through random sequences
of inserts, updates, deletes, upserts, reads (joins, aggregates, subqueries, CTEs, window
functions) and data-modifying CTEs with ``RETURNING``, each under one tenant, through raw SQL
(``tn.connection()``) or SQLAlchemy ORM sessions (``tn.engine()``), including attempts to point
foreign keys at, upsert over, or move rows to the other tenant. A Python model says what each
tenant owns. After every step the admin (a superuser, so RLS does not apply to it) checks both
tenants' rows against the model, and each tenant's own view is probed; every row a statement
returned must belong to the bound tenant.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from tenantry import IsolationError, Tenantry
from tests.db.isolation_probe import COLUMNS, Row, bound, foreign_rows, read_view, seed, truth, view_violations
from tests.model_app import TABLES, Comment, Priority, Project, Task

SETTINGS = settings(
    max_examples=25,
    stateful_step_count=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

RETURNING = {table: ", ".join(cols) for table, cols in COLUMNS.items()}
MODELS: dict[str, Any] = {"projects": Project, "tasks": Task, "comments": Comment}
#: what a foreign key to another tenant's row raises through each channel
FK_REFUSED = (psycopg.errors.ForeignKeyViolation, sa.exc.IntegrityError)

WHO = st.integers(0, 1)
VIA = st.sampled_from(["sql", "orm"])
WORDS = st.text(alphabet="ab'\"; -é\\", max_size=6)
SOME = st.lists(st.integers(0, 40), max_size=3)
ONE = st.integers(0, 40)

# -- reads: (sql, orm query or None, expected rows from one tenant's model) --------------------
Model = dict[str, dict[int, Row]]


def _join_tasks_projects(m: Model) -> list[Row]:
    projects = m["projects"]
    return [(t[0], t[0], t[1], projects[t[2]][2]) for t in m["tasks"].values()]


def _join_comments_tasks(m: Model) -> list[Row]:
    tasks = m["tasks"]
    return [(c[0], c[0], c[1], tasks[c[2]][3]) for c in m["comments"].values()]


def _aggregate(m: Model) -> list[Row]:
    tasks = m["tasks"].values()
    return [(len(tasks), sum(t[4] for t in tasks), min(len(tasks), 1))]


def _group_by(m: Model) -> list[Row]:
    groups: dict[int, list[Row]] = {}
    for t in m["tasks"].values():
        groups.setdefault(t[2], []).append(t)
    return [(ts[0][0], pid, len(ts), sum(t[4] for t in ts)) for pid, ts in groups.items()]


def _subquery(m: Model) -> list[Row]:
    done = {t[2] for t in m["tasks"].values() if t[6]}
    count = Counter(t[2] for t in m["tasks"].values())
    return [(p[0], p[1], count[p[1]]) for p in m["projects"].values() if p[1] not in done]


def _recursive_cte(m: Model) -> list[Row]:
    return [(p[0], "project", p[1]) for p in m["projects"].values()] + [
        (t[0], "task", t[1]) for t in m["tasks"].values()
    ]


def _window(m: Model) -> list[Row]:
    return [(c[0], c[1], len(m["comments"])) for c in m["comments"].values()]


READS: dict[str, tuple[str, Callable[[], Any] | None, Callable[[Model], list[Row]]]] = {
    "join tasks-projects": (
        "SELECT t.tenant_id, p.tenant_id, t.id, p.name FROM tasks t JOIN projects p ON p.id = t.project_id",
        lambda: sa.select(Task.tenant_id, Project.tenant_id, Task.id, Project.name).join(
            Project, Project.id == Task.project_id
        ),
        _join_tasks_projects,
    ),
    "join comments-tasks": (
        "SELECT c.tenant_id, t.tenant_id, c.id, t.title FROM comments c JOIN tasks t ON t.id = c.task_id",
        lambda: sa.select(Comment.tenant_id, Task.tenant_id, Comment.id, Task.title).join(
            Task, Task.id == Comment.task_id
        ),
        _join_comments_tasks,
    ),
    "aggregate": (
        "SELECT count(*), coalesce(sum(points), 0), count(DISTINCT tenant_id) FROM tasks",
        lambda: sa.select(
            sa.func.count(), sa.func.coalesce(sa.func.sum(Task.points), 0), sa.func.count(Task.tenant_id.distinct())
        ),
        _aggregate,
    ),
    "group by": (
        "SELECT tenant_id, project_id, count(*), sum(points) FROM tasks GROUP BY tenant_id, project_id",
        lambda: sa.select(Task.tenant_id, Task.project_id, sa.func.count(), sa.func.sum(Task.points)).group_by(
            Task.tenant_id, Task.project_id
        ),
        _group_by,
    ),
    "subqueries": (
        "SELECT p.tenant_id, p.id, (SELECT count(*) FROM tasks t WHERE t.project_id = p.id)"
        " FROM projects p WHERE p.id NOT IN (SELECT project_id FROM tasks WHERE done)",
        lambda: sa.select(
            Project.tenant_id,
            Project.id,
            sa.select(sa.func.count()).where(Task.project_id == Project.id).scalar_subquery(),
        ).where(Project.id.not_in(sa.select(Task.project_id).where(Task.done))),
        _subquery,
    ),
    "recursive cte": (
        "WITH RECURSIVE tree(tenant_id, kind, id) AS ("
        " SELECT tenant_id, 'project', id FROM projects"
        " UNION ALL SELECT t.tenant_id, 'task', t.id FROM tasks t"
        " JOIN tree ON tree.kind = 'project' AND tree.id = t.project_id)"
        " SELECT tenant_id, kind, id FROM tree",
        None,
        _recursive_cte,
    ),
    "window": ("SELECT tenant_id, id, count(*) OVER () FROM comments", None, _window),
}


def _fetch(result: Any) -> Any:
    """The rows of a cursor or SQLAlchemy result (read before its transaction ends)."""
    if isinstance(result, psycopg.Cursor):
        return result.fetchall() if result.description else []
    if isinstance(result, sa.Result):
        return result.all() if getattr(result, "returns_rows", True) else []
    return result


def _row(obj: Any, table: str) -> Row:
    values = (getattr(obj, c) for c in COLUMNS[table])
    return tuple(v.value if isinstance(v, Priority) else v for v in values)


class IsolationMachine(RuleBasedStateMachine):
    """Two fresh tenants, a model of what each owns, and checks after every step."""

    def __init__(self, tn: Tenantry) -> None:
        super().__init__()
        self.tn = tn
        self.schema = tn.settings.pooled_schema
        self.tenants = [tn.tenants.create(f"prop-{i}-{uuid.uuid4().hex[:10]}") for i in range(2)]
        self.model: list[Model] = [{t: {} for t in TABLES} for _ in self.tenants]
        self.stack = ExitStack()
        self.admin = self.stack.enter_context(tn.admin())

    def teardown(self) -> None:
        self.stack.close()

    # -- plumbing --------------------------------------------------------------------------
    def tid(self, i: int) -> uuid.UUID:
        return self.tenants[i].id

    def pick(self, i: int, table: str, n: int) -> int | None:
        ids = sorted(self.model[i][table])
        return ids[n % len(ids)] if ids else None

    def picks(self, table: str, ns: list[int]) -> list[int]:
        """Ids of either tenant's rows: statements get both and must touch only their own."""
        ids = sorted(set(self.model[0][table]) | set(self.model[1][table]))
        return [ids[n % len(ids)] for n in ns] if ids else []

    def run(
        self,
        i: int,
        channel: str,
        raw: Callable[[psycopg.Connection[Any]], Any],
        orm: Callable[[Session], Any],
        refused: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    ) -> Any:
        """Run ``raw`` (SQL) or ``orm`` under tenant ``i``; expect ``refused`` to be raised."""
        with pytest.raises(refused) if refused else nullcontext():
            if channel == "sql":
                with bound(self.tn, self.tenants[i]) as conn:
                    return _fetch(raw(conn))
            with self.tn.tenant(self.tenants[i].slug), Session(self.tn.engine()) as session, session.begin():
                return _fetch(orm(session))
        return None

    def own(self, i: int, rows: Any) -> list[Row]:
        """The rows a statement returned, after checking each belongs to tenant ``i``."""
        checked: list[Row] = [tuple(r) for r in rows]
        assert foreign_rows(checked, self.tid(i)) == [], f"tenant {i} got another tenant's rows"
        return checked

    def put(self, i: int, table: str, rows: list[Row]) -> None:
        for row in rows:
            self.model[i][table][row[1]] = row

    def drop_project(self, i: int, project: int) -> None:
        self.model[i]["projects"].pop(project)
        for task in [t for t, row in self.model[i]["tasks"].items() if row[2] == project]:
            self.drop_task(i, task)

    def drop_task(self, i: int, task: int) -> None:
        self.model[i]["tasks"].pop(task)
        for comment in [c for c, row in self.model[i]["comments"].items() if row[2] == task]:
            self.model[i]["comments"].pop(comment)

    # -- writes ----------------------------------------------------------------------------
    @initialize()
    def seed_both(self) -> None:
        """Each tenant starts with a project, a task and a comment (see ``isolation_probe.seed``)."""
        for i, tenant in enumerate(self.tenants):
            seed(self.tn, tenant)
            for table, rows in truth(self.admin, self.schema, [tenant.id]).items():
                self.put(i, table, list(rows))

    @rule(i=WHO, channel=VIA, name=WORDS)
    def add_project(self, i: int, channel: str, name: str) -> None:
        def orm(s: Session) -> list[Row]:
            project = Project(name=name)
            s.add(project)
            s.flush()
            return [_row(project, "projects")]

        rows = self.run(
            i,
            channel,
            lambda c: c.execute(f"INSERT INTO projects (name) VALUES (%s) RETURNING {RETURNING['projects']}", (name,)),
            orm,
        )
        self.put(i, "projects", self.own(i, rows))

    def add_child(
        self,
        i: int,
        owner: int,
        n: int,
        channel: str,
        table: str,
        parent: str,
        make: Callable[[int], tuple[str, tuple[Any, ...], Any]],
    ) -> None:
        """Insert into ``table`` a row under a ``parent`` row of ``owner``'s: refused when not ``i``'s."""
        parent_id = self.pick(owner, parent, n)
        if parent_id is None:
            return
        query, params, obj = make(parent_id)

        def orm(s: Session) -> list[Row]:
            s.add(obj)
            s.flush()
            return [_row(obj, table)]

        allowed = parent_id in self.model[i][parent]
        rows = self.run(i, channel, lambda c: c.execute(query, params), orm, refused=None if allowed else FK_REFUSED)
        if allowed:
            self.put(i, table, self.own(i, rows))

    @rule(
        i=WHO,
        owner=WHO,
        n=ONE,
        title=WORDS,
        points=st.integers(0, 5),
        priority=st.sampled_from(["low", "high"]),
        channel=VIA,
    )
    def add_task(self, i: int, owner: int, n: int, title: str, points: int, priority: str, channel: str) -> None:
        self.add_child(
            i,
            owner,
            n,
            channel,
            "tasks",
            "projects",
            lambda project: (
                "INSERT INTO tasks (project_id, title, points, priority, done)"
                f" VALUES (%s, %s, %s, %s, false) RETURNING {RETURNING['tasks']}",
                (project, title, points, priority),
                Task(project_id=project, title=title, points=points, priority=Priority(priority)),
            ),
        )

    @rule(i=WHO, owner=WHO, n=ONE, body=WORDS, channel=VIA)
    def add_comment(self, i: int, owner: int, n: int, body: str, channel: str) -> None:
        self.add_child(
            i,
            owner,
            n,
            channel,
            "comments",
            "tasks",
            lambda task: (
                f"INSERT INTO comments (task_id, body) VALUES (%s, %s) RETURNING {RETURNING['comments']}",
                (task, body),
                Comment(task_id=task, body=body),
            ),
        )

    @rule(i=WHO, ns=SOME, name=WORDS, channel=VIA)
    def rename_projects(self, i: int, ns: list[int], name: str, channel: str) -> None:
        ids = self.picks("projects", ns)
        rows = self.run(
            i,
            channel,
            lambda c: c.execute(
                f"UPDATE projects SET name = %s WHERE id = ANY(%s::bigint[]) RETURNING {RETURNING['projects']}",
                (name, ids),
            ),
            lambda s: s.execute(
                sa.update(Project)
                .where(Project.id.in_(ids))
                .values(name=name)
                .returning(Project.tenant_id, Project.id, Project.name)
            ),
        )
        mine = {p for p in ids if p in self.model[i]["projects"]}
        assert sorted(self.own(i, rows)) == sorted((self.tid(i), p, name) for p in mine)
        self.put(i, "projects", self.own(i, rows))

    @rule(i=WHO, threshold=st.integers(0, 6), delta=st.integers(-2, 3), channel=VIA)
    def bump_points(self, i: int, threshold: int, delta: int, channel: str) -> None:
        def orm(s: Session) -> list[Row]:
            tasks = s.scalars(sa.select(Task).where(Task.points >= threshold)).all()
            for task in tasks:
                task.points += delta
            s.flush()
            return [_row(t, "tasks") for t in tasks]

        rows = self.run(
            i,
            channel,
            lambda c: c.execute(
                f"UPDATE tasks SET points = points + %s WHERE points >= %s RETURNING {RETURNING['tasks']}",
                (delta, threshold),
            ),
            orm,
        )
        expected = [t[:4] + (t[4] + delta,) + t[5:] for t in self.model[i]["tasks"].values() if t[4] >= threshold]
        assert sorted(self.own(i, rows)) == sorted(expected)
        self.put(i, "tasks", expected)

    @rule(i=WHO, ns=SOME, channel=VIA)
    def delete_projects(self, i: int, ns: list[int], channel: str) -> None:
        ids = self.picks("projects", ns)
        rows = self.run(
            i,
            channel,
            lambda c: c.execute(
                f"DELETE FROM projects WHERE id = ANY(%s::bigint[]) RETURNING {RETURNING['projects']}", (ids,)
            ),
            lambda s: s.execute(
                sa.delete(Project).where(Project.id.in_(ids)).returning(Project.tenant_id, Project.id, Project.name)
            ),
        )
        mine = [self.model[i]["projects"][p] for p in sorted(set(ids)) if p in self.model[i]["projects"]]
        assert sorted(self.own(i, rows)) == mine
        for row in mine:
            self.drop_project(i, row[1])

    @rule(i=WHO, owner=WHO, n=ONE, name=WORDS, channel=VIA)
    def upsert_project(self, i: int, owner: int, n: int, name: str, channel: str) -> None:
        """``ON CONFLICT (tenant_id, id)`` on an id of either tenant: only ever tenant ``i``'s row."""
        project = self.pick(owner, "projects", n)
        if project is None:
            return
        upsert = (
            pg_insert(Project)
            .values(id=project, name=name)
            .on_conflict_do_update(index_elements=["tenant_id", "id"], set_={"name": name})
            .returning(Project.tenant_id, Project.id, Project.name)
        )
        rows = self.run(
            i,
            channel,
            lambda c: c.execute(
                "INSERT INTO projects (id, name) VALUES (%s, %s) ON CONFLICT (tenant_id, id)"
                f" DO UPDATE SET name = excluded.name RETURNING {RETURNING['projects']}",
                (project, name),
            ),
            lambda s: s.execute(upsert),
        )
        assert self.own(i, rows) == [(self.tid(i), project, name)]
        self.put(i, "projects", self.own(i, rows))

    @rule(i=WHO, ns=SOME)
    def close_tasks_with_cte(self, i: int, ns: list[int]) -> None:
        """A data-modifying CTE: mark tasks done and comment on each, all in one statement."""
        ids = self.picks("tasks", ns)
        with bound(self.tn, self.tenants[i]) as conn:
            rows = conn.execute(
                "WITH closed AS (UPDATE tasks SET done = true WHERE id = ANY(%s::bigint[]) RETURNING tenant_id, id)"
                " INSERT INTO comments (task_id, body) SELECT id, 'closed' FROM closed"
                f" RETURNING {RETURNING['comments']}",
                (ids,),
            ).fetchall()
        mine = sorted({t for t in ids if t in self.model[i]["tasks"]})
        assert sorted(r[2] for r in self.own(i, rows)) == mine
        self.put(i, "tasks", [self.model[i]["tasks"][t][:6] + (True,) for t in mine])
        self.put(i, "comments", rows)

    @rule(i=WHO, ns=SOME)
    def purge_comments_with_cte(self, i: int, ns: list[int]) -> None:
        ids = self.picks("tasks", ns)
        with bound(self.tn, self.tenants[i]) as conn:
            rows = conn.execute(
                f"WITH gone AS (DELETE FROM comments WHERE task_id = ANY(%s::bigint[]) RETURNING {RETURNING['comments']})"
                " SELECT * FROM gone",
                (ids,),
            ).fetchall()
        mine = [c for c in self.model[i]["comments"].values() if c[2] in ids]
        assert sorted(self.own(i, rows)) == sorted(mine)
        for row in mine:
            self.model[i]["comments"].pop(row[1])

    @rule(i=WHO, kind=st.sampled_from(["insert", "move", "upsert"]), channel=VIA, n=ONE)
    def write_into_other_tenant(self, i: int, kind: str, channel: str, n: int) -> None:
        """Rows may not be created in, moved to, or upserted over the other tenant."""
        other = self.tid(1 - i)
        target = self.pick(1 - i, "projects", n)
        if kind == "upsert" and target is None:
            return
        statements: dict[str, tuple[str, tuple[Any, ...], Any]] = {
            "insert": (
                "INSERT INTO projects (tenant_id, name) VALUES (%s, 'planted')",
                (other,),
                sa.insert(Project).values(tenant_id=other, name="planted"),
            ),
            "move": (
                "UPDATE projects SET tenant_id = %s",
                (other,),
                sa.update(Project).values(tenant_id=other),
            ),
            "upsert": (
                "INSERT INTO projects (tenant_id, id, name) VALUES (%s, %s, 'hijacked')"
                " ON CONFLICT (tenant_id, id) DO UPDATE SET name = 'hijacked'",
                (other, target),
                pg_insert(Project)
                .values(tenant_id=other, id=target, name="hijacked")
                .on_conflict_do_update(index_elements=["tenant_id", "id"], set_={"name": "hijacked"}),
            ),
        }
        query, params, statement = statements[kind]
        # an UPDATE that matches no row has nothing for the policy to refuse
        refused = kind != "move" or bool(self.model[i]["projects"])
        self.run(
            i,
            channel,
            lambda c: c.execute(query, params),
            lambda s: s.execute(statement),
            refused=IsolationError if refused else None,
        )

    # -- reads -----------------------------------------------------------------------------
    @rule(i=WHO, name=st.sampled_from(sorted(READS)), channel=VIA)
    def read(self, i: int, name: str, channel: str) -> None:
        query, orm_query, expected = READS[name]
        if orm_query is None:
            channel = "sql"
        rows = self.run(
            i,
            channel,
            lambda c: c.execute(query),
            lambda s: s.execute(orm_query()) if orm_query else None,
        )
        assert Counter(self.own(i, rows)) == Counter(expected(self.model[i])), name

    @rule(i=WHO)
    def read_orm_objects(self, i: int) -> None:
        with self.tn.tenant(self.tenants[i].slug), Session(self.tn.engine()) as s:
            for table, model in MODELS.items():
                rows = [_row(obj, table) for obj in s.scalars(sa.select(model))]
                assert sorted(self.own(i, rows)) == sorted(self.model[i][table].values())

    # -- after every step ------------------------------------------------------------------
    @invariant()
    def each_tenant_has_exactly_its_model(self) -> None:
        stored = truth(self.admin, self.schema, [t.id for t in self.tenants])
        for i, tenant in enumerate(self.tenants):
            expected = {table: set(self.model[i][table].values()) for table in TABLES}
            assert {t: {r for r in rows if r[0] == tenant.id} for t, rows in stored.items()} == expected
            with bound(self.tn, tenant) as conn:
                seen = read_view(conn, self.schema)
            assert view_violations(seen, tenant.id, expected) == []


def run_machine(tn: Tenantry, **overrides: Any) -> None:
    """Run :class:`IsolationMachine` on ``tn`` (``test_rls_required`` runs it with RLS off)."""
    # hypothesis documents any callable returning a machine; its stubs say a class
    factory: Any = lambda: IsolationMachine(tn)  # noqa: E731
    run_state_machine_as_test(factory, settings=settings(SETTINGS, **overrides))


def test_two_tenants_only_ever_touch_their_own_rows(tn: Tenantry) -> None:
    run_machine(tn)
