"""Hand-over: what one borrower of a pooled connection leaves on its session never reaches the next.

Every test here uses a Tenantry whose pools hold one connection, so every borrow reuses the one
before it. A borrower dirties the session (a temporary table holding its rows, a holdable
cursor, its own context planted at session level, a hijacked bind statement, LISTEN, an
advisory lock, ``lastval()``, a session setting, ``SET ROLE``) and the next borrower looks,
first thing, through tenantry and around it (a raw cursor, ``raw_connection()``). Each attack
has a negative control: with the hand-over reset switched off, the same steps show the leak,
so these tests cannot pass by failing to see it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from tenantry import Tenant, TenantConnection, Tenantry
from tenantry.db import binding
from tests.db.isolation_probe import foreign_rows
from tests.db.support import switch_reset_off, traced

#: the session-level setting a borrower leaves (a value no default has)
MARK_WORK_MEM = "7777kB"
#: the shared tables, as a statement outside tenantry (no search_path of tenantry's) names them
SHARED = "tenant_data.projects"


@dataclass
class Seen:
    """What a borrower observed at the start of its borrow."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    #: session state it should never find: (what, value)
    state: list[tuple[str, Any]] = field(default_factory=list)

    def leaks(self, tenant_id: uuid.UUID) -> list[Any]:
        return [*foreign_rows(self.rows, tenant_id), *self.state]


@pytest.fixture(scope="module")
def one(tn: Tenantry) -> Iterator[Tenantry]:
    """A Tenantry on the test catalog whose pools (and engines) hold one connection."""
    assert SHARED.startswith(tn.settings.pooled_schema + ".")
    single = Tenantry(tn.settings.with_changes(pool_min_size=1, pool_max_size=1), metadata=tn.metadata)
    yield single
    single.close()


@pytest.fixture(scope="module")
def tenants(tn: Tenantry) -> list[Tenant]:
    """Two pooled tenants and a schema-tier one (all served by the main database's pool), each
    with a project."""
    made = [
        tn.tenants.create(f"ho-{uuid.uuid4().hex[:8]}"),
        tn.tenants.create(f"ho-{uuid.uuid4().hex[:8]}"),
        tn.tenants.create(f"ho-{uuid.uuid4().hex[:8]}", plan="business"),
    ]
    for tenant in made:
        with tn.tenant(tenant.slug), tn.connection() as conn:
            conn.execute("INSERT INTO projects (name) VALUES (%s)", (f"{tenant.slug}-secret",))
    return made


@pytest.fixture
def defence_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Switch the hand-over reset off (the negative control)."""
    switch_reset_off(monkeypatch)


# -- what a borrower leaves ------------------------------------------------------------------


def _temp_table(conn: TenantConnection) -> None:
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS report AS SELECT tenant_id, name FROM projects")


def _holdable_cursor(conn: TenantConnection) -> None:
    conn.execute("DECLARE held CURSOR WITH HOLD FOR SELECT tenant_id, name FROM projects")


def _plant_context(conn: TenantConnection) -> None:
    conn.execute(
        "SELECT set_config(name, current_setting(name), false) FROM unnest(array['tenantry.tenant_id',"
        " 'tenantry.tenant_sig', 'tenantry.tenant_schema', 'tenantry.tenant_epoch', 'search_path']) name"
    )


def _hijack_bind(conn: TenantConnection) -> None:
    """Replace tenantry's prepared bind statement with one that binds this tenant, whatever it
    is given (the SQL and the protocol share one namespace of prepared statements)."""
    values = conn.execute(
        "SELECT current_setting('tenantry.tenant_id'), current_setting('tenantry.tenant_sig'),"
        " current_setting('search_path'), current_setting('tenantry.tenant_schema'),"
        " current_setting('tenantry.tenant_epoch')"
    ).fetchone()
    assert values is not None
    # every bind statement the next borrower may run: the plain one, the one with the default
    # plans' statement timeout, and any other this session holds (one parameter per setting)
    names = {"tenantry_bind": 5, "tenantry_bind_st": 6}
    for name, count in conn.execute(
        "SELECT name, cardinality(parameter_types) FROM pg_prepared_statements WHERE name LIKE 'tenantry_bind%'"
    ).fetchall():
        names[name] = count
        conn.execute(sql.SQL("DEALLOCATE {}").format(sql.Identifier(name)))
    for name, count in names.items():
        conn.execute(
            sql.SQL(
                "PREPARE {}({}) AS SELECT"
                " set_config('tenantry.tenant_id', {}, true), set_config('tenantry.tenant_sig', {}, true),"
                " set_config('search_path', {}, true), set_config('tenantry.tenant_schema', {}, true),"
                " set_config('tenantry.tenant_epoch', {}, true)"
            ).format(sql.Identifier(name), sql.SQL(", ".join(["text"] * count)), *(sql.Literal(v) for v in values))
        )


def _listen(conn: TenantConnection) -> None:
    conn.execute("LISTEN tenant_secrets")


def _advisory_lock(conn: TenantConnection) -> None:
    conn.execute("SELECT pg_advisory_lock(4242)")


def _session_settings(conn: TenantConnection) -> None:
    conn.execute(f"SET work_mem = '{MARK_WORK_MEM}'")
    conn.execute("SELECT set_config('role', current_user, false)")  # SET ROLE, to itself


def _lastval(conn: TenantConnection) -> None:
    conn.execute("INSERT INTO projects (name) VALUES ('counted')")


def _escape_and_plant(conn: TenantConnection) -> None:
    """Plant the context from a raw cursor, outside tenantry."""
    cur = psycopg.ClientCursor(conn)
    cur.execute("SELECT 1")
    conn.rollback()
    _plant_context(conn)


DIRTY: dict[str, Callable[[TenantConnection], None]] = {
    "temp table": _temp_table,
    "holdable cursor": _holdable_cursor,
    "planted context": _plant_context,
    "hijacked bind": _hijack_bind,
    "listen": _listen,
    "advisory lock": _advisory_lock,
    "session settings": _session_settings,
    "lastval": _lastval,
    "escape, then plant": _escape_and_plant,
    "nothing": lambda conn: None,
}


# -- what the next borrower looks at, first thing -------------------------------------------


def _raw_read(conn: TenantConnection) -> Seen:
    """Around tenantry: a raw cursor's first statement, then tenantry's own in that transaction."""
    cur = psycopg.ClientCursor(conn)
    cur.execute(f"SELECT tenant_id, name FROM {SHARED}")
    seen = Seen(rows=cur.fetchall())
    planted = cur.execute("SELECT current_setting('tenantry.tenant_id', true)").fetchone()
    if planted is not None and planted[0]:
        seen.state.append(("tenantry.tenant_id", planted[0]))
    seen.rows += conn.execute(f"SELECT tenant_id, name FROM {SHARED}").fetchall()
    return seen


def _report(conn: TenantConnection) -> Seen:
    """Careless report code: a temporary table made if missing, filled, read."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS report (tenant_id uuid, name text)")
    conn.execute("INSERT INTO report SELECT tenant_id, name FROM projects")
    return Seen(rows=conn.execute("SELECT tenant_id, name FROM report").fetchall())


def _fetch_held(conn: TenantConnection) -> Seen:
    try:
        with conn.transaction():
            return Seen(rows=conn.execute("FETCH ALL FROM held").fetchall())
    except psycopg.errors.InvalidCursorName:
        return Seen()


def _bound_read(conn: TenantConnection) -> Seen:
    return Seen(rows=conn.execute("SELECT tenant_id, name FROM projects").fetchall())


def _session_state(conn: TenantConnection) -> Seen:
    seen = Seen()
    row = conn.execute(
        "SELECT (SELECT count(*) FROM pg_listening_channels()),"
        " (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()),"
        " current_setting('work_mem'), current_setting('role'),"
        " (SELECT count(*) FROM pg_prepared_statements WHERE from_sql)"
    ).fetchone()
    assert row is not None
    channels, locks, work_mem, role, prepared = row
    seen.state += [("listening", channels)] if channels else []
    seen.state += [("advisory locks", locks)] if locks else []
    seen.state += [("work_mem", work_mem)] if work_mem == MARK_WORK_MEM else []
    seen.state += [("role", role)] if role != "none" else []
    seen.state += [("prepared from SQL", prepared)] if prepared else []
    try:
        with conn.transaction():
            seen.state.append(("lastval", conn.execute("SELECT lastval()").fetchone()))
    except psycopg.errors.ObjectNotInPrerequisiteState:
        pass  # lastval is not yet defined in this session: as it should be
    return seen


OBSERVE: dict[str, Callable[[TenantConnection], Seen]] = {
    "raw read": _raw_read,
    "report": _report,
    "fetch held": _fetch_held,
    "bound read": _bound_read,
    "session state": _session_state,
}


def borrow(one: Tenantry, tenant: Tenant, observe: str, dirty: str) -> Seen:
    """One borrow of the single pooled connection under ``tenant``: look first, then dirty."""
    with one.tenant(tenant.slug), one.connection() as conn:
        seen = OBSERVE[observe](conn)
        DIRTY[dirty](conn)
    return seen


#: (what the first borrower leaves, how the next one finds it)
ATTACKS = [
    ("temp table", "report"),
    ("holdable cursor", "fetch held"),
    ("planted context", "raw read"),
    ("hijacked bind", "bound read"),
    ("listen", "session state"),
    ("advisory lock", "session state"),
    ("session settings", "session state"),
    ("lastval", "session state"),
]


@pytest.mark.parametrize(("dirty", "observe"), ATTACKS, ids=[a for a, _ in ATTACKS])
def test_nothing_a_borrower_leaves_reaches_the_next(
    one: Tenantry, tenants: list[Tenant], dirty: str, observe: str
) -> None:
    a, b, _ = tenants
    borrow(one, a, "bound read", dirty)
    assert borrow(one, b, observe, "nothing").leaks(b.id) == []


@pytest.mark.parametrize(("dirty", "observe"), ATTACKS, ids=[a for a, _ in ATTACKS])
def test_negative_control_each_attack_leaks_without_the_reset(
    one: Tenantry, tenants: list[Tenant], defence_off: None, dirty: str, observe: str
) -> None:
    a, b, _ = tenants
    try:
        borrow(one, a, "bound read", dirty)
        assert borrow(one, b, observe, "nothing").leaks(b.id) != []
    finally:
        one.close()  # the one connection is dirty: the next test gets a fresh one


def _rolled_back_then_report(one: Tenantry, tenant: Tenant) -> Seen:
    """A borrow whose first transaction (the one that carries the reset) rolls back, then
    runs the careless report in a second transaction on the same connection."""
    with one.tenant(tenant.slug), one.connection() as conn:
        conn.execute("SELECT count(*) FROM projects WHERE name = %s", ["x"]).fetchone()
        conn.rollback()
        return _report(conn)


def test_the_reset_outlives_the_borrowers_rollback(one: Tenantry, tenants: list[Tenant]) -> None:
    """The reset commits on its own, ahead of the borrower's BEGIN: rolling back the
    borrower's first transaction does not bring the previous borrower's session back."""
    a, b, _ = tenants
    borrow(one, a, "bound read", "temp table")
    assert _rolled_back_then_report(one, b).leaks(b.id) == []


def test_negative_control_a_reset_inside_the_borrowers_transaction_is_rolled_back(
    one: Tenantry, tenants: list[Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without its own COMMIT the reset belongs to the borrower's transaction: the rollback
    undoes it, and the second transaction reads the previous borrower's temporary table."""
    a, b, _ = tenants
    monkeypatch.setattr(binding, "_COMMIT", b"SELECT 1")  # BEGIN; reset; ...; BEGIN (already in one)
    try:
        borrow(one, a, "bound read", "temp table")
        assert _rolled_back_then_report(one, b).leaks(b.id) != []
    finally:
        one.close()  # the one connection is dirty: the next test gets a fresh one


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(sorted(OBSERVE)), st.sampled_from(sorted(DIRTY))),
        min_size=2,
        max_size=8,
    )
)
def test_property_no_borrower_ever_sees_another_tenants_rows_or_state(
    one: Tenantry, tenants: list[Tenant], steps: list[tuple[int, str, str]]
) -> None:
    for index, observe, dirty in steps:
        tenant = tenants[index]
        assert borrow(one, tenant, observe, dirty).leaks(tenant.id) == [], (observe, dirty)


# -- the binding is never skipped on client-side memory ------------------------------------


@pytest.fixture
def no_reset_no_guard(monkeypatch: pytest.MonkeyPatch, defence_off: None) -> None:
    """Both defences off: no reset, and the connection believes what it last bound."""
    monkeypatch.setattr(TenantConnection, "wait", psycopg.Connection.wait)


def _skip_attack(one: Tenantry, a: Tenant, b: Tenant) -> Seen:
    """A plants its context; B binds (and commits); B's next borrow opens its transaction with a
    raw statement, then reads through tenantry. Starts on a fresh connection: with the reset
    off, whatever an earlier test left on the old one (a hijacked bind statement from the
    property test's last example, say) would still be there and decide the outcome."""
    one.close()
    borrow(one, a, "bound read", "planted context")
    borrow(one, b, "bound read", "nothing")
    with one.tenant(b.slug), one.connection() as conn:
        psycopg.ClientCursor(conn).execute("SELECT 1")
        return Seen(rows=conn.execute(f"SELECT tenant_id, name FROM {SHARED}").fetchall())


def test_a_transaction_opened_outside_tenantry_is_bound_before_tenantry_reads(
    one: Tenantry, tenants: list[Tenant], defence_off: None
) -> None:
    a, b, _ = tenants
    try:
        seen = _skip_attack(one, a, b)  # the reset is off: only the guard stands
        assert seen.leaks(b.id) == []
        assert seen.rows, "B reads its own rows"
    finally:
        one.close()


def test_negative_control_binding_skipped_on_remembered_state_reads_the_planted_tenant(
    one: Tenantry, tenants: list[Tenant], no_reset_no_guard: None
) -> None:
    a, b, _ = tenants
    try:
        assert foreign_rows(_skip_attack(one, a, b).rows, b.id) != []
    finally:
        one.close()


# -- every pool: psycopg and SQLAlchemy, sync and async -------------------------------------


def _plant_sql() -> str:
    return (
        "CREATE TEMP TABLE IF NOT EXISTS report AS SELECT tenant_id, name FROM projects;"
        " SELECT set_config(name, current_setting(name), false) FROM unnest(array['tenantry.tenant_id',"
        " 'tenantry.tenant_sig', 'tenantry.tenant_schema', 'tenantry.tenant_epoch', 'search_path']) name"
    )


_PEEK = (
    f"SELECT tenant_id, name FROM {SHARED} UNION ALL SELECT tenant_id, name FROM"
    " (SELECT * FROM pg_class WHERE relname = 'report' AND relpersistence = 't') c,"
    " LATERAL (SELECT NULL::uuid AS tenant_id, 'temp table left: ' || c.relname AS name) x"
)


def _psycopg(one: Tenantry, a: Tenant, b: Tenant) -> list[tuple[Any, ...]]:
    with one.tenant(a.slug), one.connection() as conn:
        for statement in _plant_sql().split(";"):
            conn.execute(statement)
    with one.tenant(b.slug), one.connection() as conn:
        return psycopg.ClientCursor(conn).execute(_PEEK).fetchall()


def _psycopg_async(one: Tenantry, a: Tenant, b: Tenant) -> list[tuple[Any, ...]]:
    async def run() -> list[tuple[Any, ...]]:
        try:
            async with one.tenant(a.slug), one.async_connection() as conn:
                for statement in _plant_sql().split(";"):
                    await conn.execute(statement)
            async with one.tenant(b.slug), one.async_connection() as conn:
                cur = psycopg.AsyncClientCursor(conn)
                await cur.execute(_PEEK)
                return await cur.fetchall()
        finally:
            await one.aclose()

    return asyncio.run(run())


def _sqlalchemy(one: Tenantry, a: Tenant, b: Tenant) -> list[tuple[Any, ...]]:
    with one.tenant(a.slug):
        with one.engine().connect() as conn:
            for statement in _plant_sql().split(";"):
                conn.exec_driver_sql(statement)
            conn.commit()
    with one.tenant(b.slug):
        raw = one.engine().raw_connection()
        try:
            cur = raw.cursor()
            cur.execute(_PEEK)
            return list(cur.fetchall())
        finally:
            raw.close()


def _sqlalchemy_async(one: Tenantry, a: Tenant, b: Tenant) -> list[tuple[Any, ...]]:
    async def run() -> list[tuple[Any, ...]]:
        try:
            async with one.tenant(a.slug), one.async_engine().connect() as conn:
                for statement in _plant_sql().split(";"):
                    await conn.exec_driver_sql(statement)
                await conn.commit()
            async with one.tenant(b.slug), one.async_engine().connect() as conn:
                raw = await conn.get_raw_connection()
                cur = psycopg.AsyncClientCursor(raw.driver_connection)
                await cur.execute(_PEEK)
                return await cur.fetchall()
        finally:
            await one.aclose()

    return asyncio.run(run())


POOLS: dict[str, Callable[[Tenantry, Tenant, Tenant], list[tuple[Any, ...]]]] = {
    "psycopg": _psycopg,
    "psycopg-async": _psycopg_async,
    "sqlalchemy": _sqlalchemy,
    "sqlalchemy-async": _sqlalchemy_async,
}


def _leftovers(rows: list[tuple[Any, ...]], tenant_id: uuid.UUID) -> list[tuple[Any, ...]]:
    return [r for r in rows if r[0] is None or r[0] != tenant_id]


@pytest.mark.parametrize("pool", sorted(POOLS))
@pytest.mark.parametrize("defence", ["on", "off"])
def test_every_pool_resets_the_session_it_hands_over(
    one: Tenantry, tenants: list[Tenant], monkeypatch: pytest.MonkeyPatch, pool: str, defence: str
) -> None:
    """A (pooled) leaves a temporary table of its rows and its context planted; B (schema tier)
    looks around tenantry first thing: B sees nothing of A, unless the reset is off."""
    a, _, b = tenants
    if defence == "off":
        switch_reset_off(monkeypatch)
    try:
        leftovers = _leftovers(POOLS[pool](one, a, b), b.id)
    finally:
        one.close()
    if defence == "on":
        assert leftovers == []
    else:
        assert leftovers != [], "the negative control must see A's leftovers"


def test_a_database_tier_pool_resets_between_borrows(tn: Tenantry, make_tenant: Callable[..., Tenant]) -> None:
    """The database tier's own pool hands over too: a borrower's temporary table is gone for
    the next."""
    tenant = make_tenant("hod", plan="enterprise")
    single = Tenantry(tn.settings.with_changes(tenant_pool_max_size=1), metadata=tn.metadata)
    try:
        with single.tenant(tenant.slug), single.connection() as conn:
            conn.execute("CREATE TEMP TABLE left_behind (x int)")
        with single.tenant(tenant.slug), single.connection() as conn:
            row = psycopg.ClientCursor(conn).execute("SELECT to_regclass('pg_temp.left_behind')").fetchone()
        assert row == (None,)
    finally:
        single.close()


@pytest.mark.parametrize("statement", ["with parameters", "simple protocol"])
def test_the_reset_costs_no_round_trip_on_the_bound_path(one: Tenantry, tenants: list[Tenant], statement: str) -> None:
    """The reset rides in the first statement's pipeline (or, for a statement psycopg sends
    through the simple protocol, in the bind's): a handed-over connection makes the same round
    trips as any other."""
    a = tenants[0]
    query, params = ("SELECT %s::int", [1]) if statement == "with parameters" else ("SELECT 1", None)
    counts = {}
    for handed_over in (True, False):
        borrow(one, a, "bound read", "nothing")  # the connection is now due for a reset
        with one.tenant(a.slug), one.connection() as conn:
            if not handed_over:
                conn.execute("SELECT 1")
                conn.commit()
            assert binding.reset_due(conn) is handed_over
            with traced(conn) as trace:
                assert conn.execute(query, params).fetchone() == (1,)
                conn.commit()
            assert not binding.reset_due(conn)
        counts[handed_over] = trace.round_trips
        assert ("reset_session" in "\n".join(trace.lines)) is handed_over
    # BEGIN, the bind and the statement in one pipeline, then COMMIT; the simple protocol
    # carries no pipeline: BEGIN and the bind, the statement, COMMIT
    assert counts == ({True: 2, False: 2} if statement == "with parameters" else {True: 3, False: 3})


def test_a_transaction_of_one_query_makes_fewer_round_trips_than_psycopg(one: Tenantry, tenants: list[Tenant]) -> None:
    """The bind rides with the transaction's first statement: two round trips for a
    one-statement transaction, where psycopg alone makes three (BEGIN, the query, COMMIT)."""
    a = tenants[0]
    with one.tenant(a.slug), one.connection() as conn, traced(conn) as trace:
        conn.execute("SELECT count(*) FROM projects WHERE id = %s", [1]).fetchone()
        conn.commit()
    with psycopg.connect(one.runtime_url) as plain, traced(plain) as baseline:
        plain.execute("SELECT %s::int", [1]).fetchone()
        plain.commit()
    assert (trace.round_trips, baseline.round_trips) == (2, 3)
    assert trace.sent().count("Sync") == 1 and trace.sent()[-1] == "Query"  # the pipeline, COMMIT


def test_sqlalchemy_engine_connections_are_tenant_connections(one: Tenantry, tenants: list[Tenant]) -> None:
    """The engines' connections carry the hand-over guard too (``raw_connection()`` escapes
    SQLAlchemy, not tenantry)."""
    with one.tenant(tenants[0].slug), one.engine().connect() as conn:
        conn.execute(sa.text("SELECT 1"))
        assert isinstance(conn.connection.driver_connection, TenantConnection)
