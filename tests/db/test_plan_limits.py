"""A plan's database limits travel with every binding of its tenants: the bind sets the
statement timeout, the idle-in-transaction timeout and ``work_mem`` transaction-locally (no
round trip of their own), on every tier, raw psycopg and SQLAlchemy; each limit hit is a typed
error; nothing of it outlives the transaction into the next borrower; a plan change reaches
new transactions within a second."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
import pytest
import sqlalchemy as sa

from tenantry import IdleInTransactionTimeout, StatementTimeout, Tenant, Tenantry
from tenantry.db import binding
from tests.db.support import make_tier_plan, switch_reset_off, traced
from tests.web.limits_support import set_plan_limits

SHOW = "SELECT current_setting('statement_timeout'), current_setting('work_mem') WHERE %s::int = 1"


def _settings(tn: Tenantry, tenant: Tenant) -> tuple[str, str]:
    with tn.tenant(tenant.slug), tn.connection() as conn:
        row = conn.execute(SHOW, [1]).fetchone()
    assert row is not None
    return row[0], row[1]


def test_a_plans_statement_timeout_cancels_a_long_statement(
    tn: Tenantry, make_tenant: Callable[..., Tenant], tier: str
) -> None:
    limited = make_tenant("lim", plan=make_tier_plan(tn, tier, {"statement_timeout_ms": 150, "work_mem": "7MB"}))
    free = make_tenant("lim", plan=make_tier_plan(tn, tier, {}))
    assert _settings(tn, limited) == ("150ms", "7MB")
    with tn.tenant(limited.slug):
        # (inside the block psycopg's QueryCanceled; tn.connection() names it as it leaves)
        with pytest.raises(StatementTimeout) as raised, tn.connection() as conn, traced(conn) as trace:
            conn.execute("SELECT pg_sleep(%s)", [1])
        assert raised.value.limit == "statement_timeout_ms"
        assert trace.round_trips == 1  # the settings rode in the first statement's pipeline
        with pytest.raises(StatementTimeout), tn.engine().connect() as c:  # SQLAlchemy, simple protocol
            c.exec_driver_sql("SELECT pg_sleep(1)")
    # the control: the same statement under a plan without limits runs to its end
    with tn.tenant(free.slug), tn.connection() as conn:
        assert conn.execute("SELECT pg_sleep(%s), 1", [0.3]).fetchone() == ("", 1)
    assert _settings(tn, free)[0] != "150ms"


def test_a_plans_idle_timeout_ends_a_transaction_left_idle(
    tn: Tenantry, make_tenant: Callable[..., Tenant], tier: str
) -> None:
    t = make_tenant("lim", plan=make_tier_plan(tn, tier, {"idle_in_transaction_timeout_ms": 200}))
    with tn.tenant(t.slug), pytest.raises(IdleInTransactionTimeout), tn.connection() as conn:
        conn.execute("SELECT 1 WHERE %s::int = 1", [1])
        time.sleep(0.6)
        conn.execute("SELECT 2 WHERE %s::int = 1", [1])
    with tn.tenant(t.slug), tn.connection() as conn:  # the pool replaced the closed connection
        assert conn.execute("SELECT 3 WHERE %s::int = 1", [1]).fetchone() == (3,)


def _session_level_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The negative control: the plan's settings set for the session, not the transaction,
    and the hand-over reset (which would undo them) off."""
    made = binding._with_settings

    def session_level(query: tuple[bytes, bytes], names: tuple[str, ...]) -> tuple[bytes, bytes]:
        name, text = made(query, names)
        for i, setting in enumerate(names):
            text = text.replace(f"'{setting}', ${6 + i}, true)".encode(), f"'{setting}', ${6 + i}, false)".encode())
        return name + b"_session", text

    monkeypatch.setattr(binding, "_with_settings", session_level)
    switch_reset_off(monkeypatch)


@pytest.mark.parametrize("defence", ["on", "off"])
def test_the_settings_end_with_the_transaction(
    tn: Tenantry, make_tenant: Callable[..., Tenant], monkeypatch: pytest.MonkeyPatch, defence: str
) -> None:
    """On one pooled connection: a limited tenant (schema tier), then a pooled one without
    limits, then a statement outside tenantry: neither sees the first one's settings; unless
    they are set for the session and the hand-over reset is off (the negative control)."""
    if defence == "off":
        _session_level_settings(monkeypatch)
    limited = make_tenant("lim", plan=make_tier_plan(tn, "schema", {"work_mem": "9MB"}))
    other = make_tenant("lim", plan=make_tier_plan(tn, "pooled", {}))
    one = Tenantry(tn.settings.with_changes(pool_min_size=1, pool_max_size=1), metadata=tn.metadata)
    try:
        assert _settings(one, limited)[1] == "9MB"
        seen = [_settings(one, other)[1]]
        with one.connection() as conn:  # no tenant: the same (only) connection
            raw = psycopg.ClientCursor(conn).execute("SELECT current_setting('work_mem')").fetchone()
        assert raw is not None
        seen.append(raw[0])
    finally:
        one.close()
    if defence == "on":
        assert "9MB" not in seen
    else:
        assert seen == ["9MB", "9MB"], "the negative control must see the first tenant's setting"


def test_a_plan_change_reaches_new_transactions_within_a_second(
    tn: Tenantry, make_tenant: Callable[..., Tenant], tier: str
) -> None:
    plan = make_tier_plan(tn, tier, {"statement_timeout_ms": 5000})
    t = make_tenant("lim", plan=plan)
    assert _settings(tn, t)[0] == "5s"
    set_plan_limits(tn, plan, {"statement_timeout_ms": 1234})
    deadline = time.monotonic() + 1.5
    while _settings(tn, t)[0] != "1234ms":
        assert time.monotonic() < deadline, "the plan's new limit did not reach the binding"
        time.sleep(0.05)
    with tn.tenant(t.slug), tn.engine().begin() as c:
        assert c.execute(sa.text("SELECT current_setting('statement_timeout')")).scalar() == "1234ms"
