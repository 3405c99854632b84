"""The isolation probe: what a tenant sees, what it should see, and every difference.

The isolation tests (``test_hostile``, ``test_isolation_property``) make their assertions
through these functions, and ``test_rls_required`` turns row-level security off to show the
same functions then report violations, so none of those assertions can pass vacuously.

Rows are tuples led by ``tenant_id``. The only ``uuid`` columns of the model app are tenant
ids, so a statement's output leaks exactly when a row holds a ``uuid`` other than the bound
tenant's (:func:`foreign_rows`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from tenantry import Tenant, TenantConnection, Tenantry
from tests.model_app import TABLES

#: the columns compared per table (``created_at`` is left out: the model cannot predict it)
COLUMNS: dict[str, tuple[str, ...]] = {
    "projects": ("tenant_id", "id", "name"),
    "tasks": ("tenant_id", "id", "project_id", "title", "points", "priority", "done"),
    "comments": ("tenant_id", "id", "task_id", "body"),
}
assert tuple(COLUMNS) == TABLES

Row = tuple[Any, ...]
#: table -> rows, as one tenant (or the admin) sees them
View = dict[str, set[Row]]


@dataclass(frozen=True, slots=True)
class Violation:
    """One way a tenant's view differs from what isolation promises."""

    table: str
    kind: str  # "foreign": another tenant's row; "missing": an own row not seen; "unexpected": a phantom
    row: Row

    def __str__(self) -> str:
        return f"{self.table}: {self.kind} row {self.row!r}"


def empty_view() -> View:
    return {table: set() for table in TABLES}


def select_all(table: str, schema: str, where: sql.Composable | None = None) -> sql.Composed:
    """``SELECT <compared columns> FROM schema.table [WHERE ...]``."""
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS[table]), sql.Identifier(schema, table)
    )
    return query if where is None else query + sql.SQL(" WHERE ") + where


def read_view(conn: psycopg.Connection[Any], schema: str) -> View:
    """Every row of every model table that ``conn`` can see."""
    return {table: set(conn.execute(select_all(table, schema)).fetchall()) for table in TABLES}


def truth(admin: psycopg.Connection[Any], schema: str, tenant_ids: Iterable[uuid.UUID]) -> View:
    """The rows of ``tenant_ids`` as they are (read by the superuser, which bypasses RLS)."""
    where = sql.SQL("tenant_id = ANY(%s)")
    ids = list(tenant_ids)
    return {t: set(admin.execute(select_all(t, schema, where), (ids,)).fetchall()) for t in TABLES}


def snapshot(tn: Tenantry, *tenants: Tenant) -> View:
    """:func:`truth` through a fresh ``tn.admin()`` connection."""
    with tn.admin() as admin:
        return truth(admin, tn.settings.pooled_schema, [t.id for t in tenants])


def foreign_rows(rows: Iterable[Sequence[Any]], tenant_id: uuid.UUID) -> list[Row]:
    """The rows holding a tenant id other than ``tenant_id`` (strings are parsed as ids)."""
    foreign = []
    for row in rows:
        for value in row:
            if isinstance(value, str):
                try:
                    value = uuid.UUID(value)
                except ValueError:
                    continue
            if isinstance(value, uuid.UUID) and value != tenant_id:
                foreign.append(tuple(row))
                break
    return foreign


def view_violations(
    seen: Mapping[str, set[Row]], tenant_id: uuid.UUID, expected: Mapping[str, set[Row]]
) -> list[Violation]:
    """How ``seen`` (a tenant's view) differs from ``expected`` (exactly that tenant's rows)."""
    found = []
    for table in TABLES:
        found += [Violation(table, "foreign", row) for row in sorted(foreign_rows(seen[table], tenant_id), key=repr)]
        found += [Violation(table, "missing", row) for row in sorted(expected[table] - seen[table], key=repr)]
        extra = seen[table] - expected[table]
        found += [Violation(table, "unexpected", row) for row in sorted(extra, key=repr) if row[0] == tenant_id]
    return found


@contextmanager
def bound(tn: Tenantry, tenant: Tenant | None) -> Iterator[TenantConnection]:
    """``tn.connection()`` with ``tenant`` bound (``None``: no tenant)."""
    if tenant is None:
        with tn.connection() as conn:
            yield conn
    else:
        with tn.tenant(tenant.slug), tn.connection() as conn:
            yield conn


def probe(tn: Tenantry, tenant: Tenant) -> list[Violation]:
    """Read every model table under ``tenant``; report every row it must not or did not see."""
    schema = tn.settings.pooled_schema
    with bound(tn, tenant) as conn:
        seen = read_view(conn, schema)
    with tn.admin() as admin:
        everything = {t: set(admin.execute(select_all(t, schema)).fetchall()) for t in TABLES}
    expected = {t: {r for r in rows if r[0] == tenant.id} for t, rows in everything.items()}
    return view_violations(seen, tenant.id, expected)


@contextmanager
def unchanged(tn: Tenantry, *tenants: Tenant) -> Iterator[None]:
    """Assert that the ``with`` block leaves every row of ``tenants`` as it was."""
    before = snapshot(tn, *tenants)
    yield
    assert snapshot(tn, *tenants) == before


@dataclass(frozen=True, slots=True)
class Seeded:
    """A tenant with one project, one task in it and one comment on that task."""

    tenant: Tenant
    project: int
    task: int
    comment: int


def seed(tn: Tenantry, tenant: Tenant) -> Seeded:
    label = tenant.slug
    with bound(tn, tenant) as conn:
        project = _one(conn, "INSERT INTO projects (name) VALUES (%s) RETURNING id", (f"{label}-project",))
        task = _one(
            conn,
            "INSERT INTO tasks (project_id, title, points, priority, done)"
            " VALUES (%s, %s, 3, 'high', false) RETURNING id",
            (project, f"{label}-task"),
        )
        comment = _one(
            conn, "INSERT INTO comments (task_id, body) VALUES (%s, %s) RETURNING id", (task, f"{label}-comment")
        )
    return Seeded(tenant, project, task, comment)


def _one(conn: psycopg.Connection[Any], query: str, params: Sequence[Any]) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]
