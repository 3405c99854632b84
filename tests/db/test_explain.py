"""The tenant check in query plans: an index condition or a one-time InitPlan, never a per-row call.

RLS adds ``tenant_id = (SELECT tenant_id FROM tenantry.context)`` to every query on a pooled
table. The sub-select makes PostgreSQL evaluate the context view (which reads
``tenantry.tenant_id`` and checks its signature) once per query, as an InitPlan, and compare
``tenant_id`` with the InitPlan's result: inside an index condition when an index leads with
``tenant_id``, else in a filter. A bare ``current_setting(...)`` in a policy is instead called for
every row a sequential scan reads. These tests read ``EXPLAIN (FORMAT JSON, VERBOSE)`` of queries
run through ``tn.connection()`` under a bound tenant.

PostgreSQL names InitPlan results differently across versions: up to 15 the filter says ``$0``
and the InitPlan is called ``InitPlan 1 (returns $0)``; from 16 (as on the embedded 18) it is
``(InitPlan 1).col1`` and ``InitPlan 1``. The plan walker below understands both.

The model app's tables hold few rows, so the planner would rather scan them than use an index;
the index tests turn sequential scans off (``SET LOCAL``) to see the plan an index gives.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tenantry import Tenant, Tenantry
from tests.support import Scratch

Plan = dict[str, Any]

#: expressions evaluated for each row a node handles
PER_ROW_KEYS = ("Filter", "Join Filter", "Recheck Cond", "Hash Cond", "Merge Cond")
#: expressions evaluated when a scan starts (their comparison values), or per row
CONDITION_KEYS = ("Index Cond", *PER_ROW_KEYS)
TENANT_CALL = re.compile(r"\b(?:current_setting|current_tenant_id|refuse_context)\s*\(")
PARAM = r"\$\d+|\(InitPlan \d+\)\.col\d+"
TENANT_COMPARISON = re.compile(
    rf"(?:\b\w+\.)?tenant_id\s*=\s*(?P<right>{PARAM})|(?P<left>{PARAM})\s*=\s*(?:\b\w+\.)?tenant_id\b"
)
NO_SEQ_SCAN = "SET LOCAL enable_seqscan = off"
FORCE_SEQ_SCAN = (
    "SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_indexonlyscan = off"
)


# -- the plan checker -----------------------------------------------------------------------


def nodes(plan: Plan) -> Iterator[Plan]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def scans(plan: Plan, relation: str | None = None) -> Iterator[tuple[Plan, str | None]]:
    """Every node with the table it reads (a bitmap index scan reads for its heap scan)."""
    if "Relation Name" in plan:
        relation = plan["Relation Name"]
    elif not plan["Node Type"].startswith("Bitmap"):
        relation = None
    yield plan, relation
    for child in plan.get("Plans", []):
        yield from scans(child, relation)


def initplans(plan: Plan) -> dict[str, Plan]:
    """InitPlan nodes by every name a condition may use for their results."""
    found: dict[str, Plan] = {}
    for node in nodes(plan):
        if node.get("Parent Relationship") != "InitPlan":
            continue
        name = node.get("Subplan Name", "")
        number = re.match(r"InitPlan (\d+)", name)
        if number:  # PostgreSQL 16+: "(InitPlan 1).col1"
            found[f"(InitPlan {number.group(1)})"] = node
        returns = re.search(r"\(returns (.+)\)", name)
        if returns:  # PostgreSQL 15 and older: "InitPlan 1 (returns $0)"
            for param in returns.group(1).split(","):
                found[param.strip()] = node
    return found


def _initplan_for(param: str, known: dict[str, Plan]) -> Plan | None:
    return known.get(param) or known.get(param.split(".col")[0])


@dataclass(frozen=True, slots=True)
class TenantCheck:
    """One comparison of ``tenant_id`` with an InitPlan's result, and where the plan puts it."""

    relation: str | None
    node_type: str
    key: str
    expression: str
    initplan_output: tuple[str, ...]

    @property
    def from_current_tenant_id(self) -> bool:
        """The InitPlan computes the bound tenant: the context view (as inlined) or the function."""
        return any(
            "current_tenant_id()" in out
            or "'tenantry.tenant_id'" in out
            or re.fullmatch(r"c(_\d+)?\.tenant_id", out) is not None  # the context view, aliased
            for out in self.initplan_output
        )


def tenant_checks(plan: Plan) -> list[TenantCheck]:
    """Every place the plan compares ``tenant_id`` with the result of an InitPlan."""
    known = initplans(plan)
    checks = []
    for node, relation in scans(plan):
        for key in CONDITION_KEYS:
            expression = node.get(key)
            if not expression:
                continue
            for match in TENANT_COMPARISON.finditer(expression):
                initplan = _initplan_for(match.group("right") or match.group("left"), known)
                if initplan is not None:
                    output = tuple(initplan.get("Output", ()))
                    checks.append(TenantCheck(relation, node["Node Type"], key, expression, output))
    return checks


def _outside_initplans(plan: Plan) -> Iterator[Plan]:
    """The nodes that may run per row: an InitPlan's subtree runs once per query (the context
    view's own probe of ``tenantry.fences`` lives there)."""
    yield plan
    for child in plan.get("Plans", []):
        if child.get("Parent Relationship") != "InitPlan":
            yield from _outside_initplans(child)


def per_row_calls(plan: Plan) -> list[str]:
    """Per-row expressions that call ``current_setting`` or ``current_tenant_id``: the trap."""
    return [
        f"{node['Node Type']} {key}: {node[key]}"
        for node in _outside_initplans(plan)
        for key in PER_ROW_KEYS
        if TENANT_CALL.search(node.get(key) or "")
    ]


def assert_tenant_checked_once(plan: Plan, *, where: str) -> list[TenantCheck]:
    """The tenant check is a comparison with the current_tenant_id() InitPlan, found in ``where``
    (``"Index Cond"`` or ``"Filter"``), and nothing calls the context functions per row."""
    assert per_row_calls(plan) == [], plan
    checks = tenant_checks(plan)
    assert checks, f"no tenant_id comparison with an InitPlan result in {plan}"
    assert all(c.from_current_tenant_id for c in checks), checks
    assert any(c.key == where for c in checks), checks
    return checks


# -- running EXPLAIN ------------------------------------------------------------------------


def explain(conn: psycopg.Connection[Any], query: str, params: Any = None, *, setup: str | None = None) -> Plan:
    if setup is not None:
        conn.execute(setup)
    row = conn.execute(f"EXPLAIN (FORMAT JSON, VERBOSE) {query}", params).fetchone()
    assert row is not None
    plan: Plan = row[0][0]["Plan"]
    return plan


@pytest.fixture
def explain_as(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> Callable[..., Plan]:
    """EXPLAIN a query through ``tn.connection()`` under a fresh tenant."""
    tenant = make_tenant("explain")

    def run(query: str, params: Any = None, *, setup: str | None = None) -> Plan:
        with tn.tenant(tenant.slug), tn.connection() as conn:
            return explain(conn, query, params, setup=setup)

    return run


# -- the model app's queries ----------------------------------------------------------------


def test_point_lookup_by_primary_key_checks_the_tenant_in_the_index(explain_as: Callable[..., Plan]) -> None:
    plan = explain_as("SELECT id, name FROM projects WHERE id = %s", (42,), setup=NO_SEQ_SCAN)
    checks = assert_tenant_checked_once(plan, where="Index Cond")
    assert any("projects_pkey" in str(node.get("Index Name")) for node in nodes(plan)), plan
    assert {c.relation for c in checks} == {"projects"}, checks


def test_range_scan_by_primary_key_checks_the_tenant_in_the_index(explain_as: Callable[..., Plan]) -> None:
    plan = explain_as(
        "SELECT id, body FROM comments WHERE id BETWEEN %s AND %s ORDER BY id", (10, 110), setup=NO_SEQ_SCAN
    )
    assert_tenant_checked_once(plan, where="Index Cond")


def test_list_by_a_secondary_index_checks_the_tenant_in_the_index(explain_as: Callable[..., Plan]) -> None:
    # text comparison operators are LEAKPROOF, so they may join the tenant check in the index
    plan = explain_as(
        "SELECT id, title FROM tasks WHERE title >= %s AND title < %s ORDER BY title",
        ("a", "b"),
        setup=NO_SEQ_SCAN,
    )
    checks = assert_tenant_checked_once(plan, where="Index Cond")
    assert any("title" in c.expression for c in checks if c.key == "Index Cond"), checks


def test_join_checks_the_tenant_on_each_table(explain_as: Callable[..., Plan]) -> None:
    plan = explain_as(
        "SELECT t.title, c.body FROM tasks t"
        " JOIN comments c ON c.tenant_id = t.tenant_id AND c.task_id = t.id WHERE t.id = %s",
        (7,),
        setup=NO_SEQ_SCAN,
    )
    checks = assert_tenant_checked_once(plan, where="Index Cond")
    assert {c.relation for c in checks if c.key == "Index Cond"} == {"tasks", "comments"}, checks


def test_forced_seq_scan_filters_on_the_initplan_result(explain_as: Callable[..., Plan]) -> None:
    plan = explain_as("SELECT count(*) FROM tasks WHERE points > %s", (3,), setup=FORCE_SEQ_SCAN)
    checks = assert_tenant_checked_once(plan, where="Filter")
    assert any("Seq Scan" in c.node_type for c in checks), checks
    for check in checks:
        assert not TENANT_CALL.search(check.expression), check


# -- the checker catches the trap -----------------------------------------------------------


def test_checker_flags_a_bare_current_setting_policy(tn: Tenantry, scratch: Scratch) -> None:
    """A policy calling current_setting() per row, made and dropped in a rolled-back transaction."""
    schema, table = sql.Identifier("explain_probe"), sql.Identifier("explain_probe", "items")
    runtime = sql.Identifier(tn.settings.runtime_role)
    with psycopg.connect(scratch.url) as conn:  # the superuser, in one transaction
        for statement in (
            sql.SQL("CREATE SCHEMA {}").format(schema),
            sql.SQL("CREATE TABLE {} (tenant_id uuid, id bigint, PRIMARY KEY (tenant_id, id))").format(table),
            sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(table),
            sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(table),
            sql.SQL(
                "CREATE POLICY bare ON {} USING (tenant_id = current_setting('tenantry.tenant_id', true)::uuid)"
            ).format(table),
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, runtime),
            sql.SQL("GRANT SELECT ON {} TO {}").format(table, runtime),
            sql.SQL("SET LOCAL ROLE {}").format(runtime),
        ):
            conn.execute(statement)
        plan = explain(conn, "SELECT count(*) FROM explain_probe.items", setup=FORCE_SEQ_SCAN)
        conn.rollback()
    assert per_row_calls(plan), plan
    assert tenant_checks(plan) == []
    with pytest.raises(AssertionError):
        assert_tenant_checked_once(plan, where="Filter")


# -- the checker on hand-made plans of both PostgreSQL generations --------------------------


def _seq_scan(filter_: str, initplan_name: str) -> Plan:
    return {
        "Node Type": "Seq Scan",
        "Relation Name": "projects",
        "Filter": filter_,
        "Plans": [
            {
                "Node Type": "Result",
                "Parent Relationship": "InitPlan",
                "Subplan Name": initplan_name,
                "Output": ["tenantry.current_tenant_id()"],
            }
        ],
    }


@pytest.mark.parametrize(
    ("filter_", "initplan_name"),
    [
        ("(projects.tenant_id = $0)", "InitPlan 1 (returns $0)"),  # PostgreSQL 15
        ("(projects.tenant_id = (InitPlan 1).col1)", "InitPlan 1"),  # PostgreSQL 16+
        ("((InitPlan 1).col1 = tenant_id)", "InitPlan 1"),
    ],
)
def test_checker_reads_initplan_params_of_each_version(filter_: str, initplan_name: str) -> None:
    checks = assert_tenant_checked_once(_seq_scan(filter_, initplan_name), where="Filter")
    assert [c.key for c in checks] == ["Filter"]


@pytest.mark.parametrize(
    "filter_",
    [
        "(tenant_id = (current_setting('tenantry.tenant_id'::text, true))::uuid)",
        "(tenant_id = tenantry.current_tenant_id())",
    ],
)
def test_checker_flags_per_row_calls(filter_: str) -> None:
    plan = _seq_scan(filter_, "InitPlan 1 (returns $0)")
    assert per_row_calls(plan) == [f"Seq Scan Filter: {filter_}"]
    with pytest.raises(AssertionError):
        assert_tenant_checked_once(plan, where="Filter")


def test_checker_ignores_params_that_are_not_initplans() -> None:
    plan = _seq_scan("(tenant_id = $1)", "InitPlan 1 (returns $0)")
    assert tenant_checks(plan) == []
