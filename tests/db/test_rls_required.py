"""Row-level security is what keeps tenants apart: take it away and the isolation checks fail.

For each model table, RLS is switched off (``NO FORCE`` + ``DISABLE``), or its policy dropped,
or a permissive policy added beside it; then the same probe the hostile and property tests
assert with must report violations, and ``tn.schema.unprotected_tables()`` must name the table.
That is what proves those tests' assertions can fail. Every change is undone in a ``finally``
(``tn.schema.deploy()`` re-applies the policies), so no other test sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import Phase
from psycopg import sql

from tenantry import Tenant, Tenantry
from tests.db.isolation_probe import Seeded, probe, seed
from tests.db.test_isolation_property import run_machine
from tests.model_app import TABLES

#: ways to take a table's protection away, as the owner (superuser) could
BREAKS = {
    "rls disabled": (
        "ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
        "ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
    ),
    "policy dropped": ("DROP POLICY tenant_isolation ON {table}",),
    "permissive policy added": ("CREATE POLICY open_door ON {table} USING (true)",),
}
#: what the probe then reports under tenant A: B's rows, or (no policy: nothing visible) A's own missing
EXPECTED_KIND = {"rls disabled": "foreign", "policy dropped": "missing", "permissive policy added": "foreign"}


@contextmanager
def broken(tn: Tenantry, table: str, how: str) -> Iterator[None]:
    """``table`` without the protection ``how`` names, restored (policies re-applied) on exit."""
    ident = sql.Identifier(tn.settings.pooled_schema, table)
    try:
        with tn.admin() as admin:
            for statement in BREAKS[how]:
                admin.execute(sql.SQL(statement).format(table=ident))
        yield
    finally:
        with tn.admin() as admin:  # deploy re-creates tenantry's policy but leaves others
            admin.execute(sql.SQL("DROP POLICY IF EXISTS open_door ON {}").format(ident))
        tn.schema.deploy()
    assert tn.schema.unprotected_tables() == []


@pytest.fixture
def victims(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> tuple[Seeded, Seeded]:
    return seed(tn, make_tenant("rls-a")), seed(tn, make_tenant("rls-b"))


@pytest.mark.parametrize("how", BREAKS)
@pytest.mark.parametrize("table", TABLES)
def test_probe_reports_a_table_without_protection(
    tn: Tenantry, victims: tuple[Seeded, Seeded], table: str, how: str
) -> None:
    a, b = victims
    assert probe(tn, a.tenant) == []
    with broken(tn, table, how):
        found = probe(tn, a.tenant)
        assert {v.table for v in found} == {table}
        assert EXPECTED_KIND[how] in {v.kind for v in found}
        if how != "policy dropped":
            assert b.tenant.id in {v.row[0] for v in found}, "B's rows are the leak"
    assert probe(tn, a.tenant) == []


@pytest.mark.parametrize("how", [h for h in BREAKS if h != "permissive policy added"])
@pytest.mark.parametrize("table", TABLES)
def test_unprotected_tables_names_the_table(tn: Tenantry, victims: tuple[Seeded, Seeded], table: str, how: str) -> None:
    with broken(tn, table, how):
        assert tn.schema.unprotected_tables() == [f"{tn.settings.pooled_schema}.{table}"]


def test_unprotected_tables_names_a_table_with_an_extra_permissive_policy(tn: Tenantry) -> None:
    with broken(tn, "projects", "permissive policy added"):
        assert tn.schema.unprotected_tables() == [f"{tn.settings.pooled_schema}.projects"]


@pytest.mark.parametrize("table", TABLES)
def test_property_test_fails_without_rls(tn: Tenantry, table: str) -> None:
    """The state machine of test_isolation_property catches the leak at its first check."""
    with broken(tn, table, "rls disabled"), pytest.raises(AssertionError):
        run_machine(tn, max_examples=1, stateful_step_count=2, phases=[Phase.generate], print_blob=False)
