"""Shared identity sequences of the pooled tier: a tenant cannot read how far they went.

Every pooled tenant's inserts draw ids from one sequence per table. The runtime role needs
USAGE on it (a column default calls ``nextval``), never SELECT, which would let tenant A read
``last_value`` and so count tenant B's inserts.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tenantry import Tenant, Tenantry
from tenantry.db import rls
from tests.db.isolation_probe import bound
from tests.support import Scratch, catalog_env


def _sequence(tn: Tenantry) -> str:
    with tn.admin() as conn:
        row = conn.execute(
            "SELECT pg_get_serial_sequence(%s, 'id')", (f"{tn.settings.pooled_schema}.projects",)
        ).fetchone()
    assert row is not None and row[0]
    return str(row[0])


def _insert_project(tn: Tenantry, tenant: Tenant) -> int:
    with bound(tn, tenant) as conn, conn.transaction():
        row = conn.execute("INSERT INTO projects (name) VALUES ('p') RETURNING id").fetchone()
    assert row is not None
    return int(row[0])


def _last_value_as(tn: Tenantry, tenant: Tenant, sequence: str) -> int:
    with bound(tn, tenant) as conn:
        row = conn.execute(sql.SQL("SELECT last_value FROM {}").format(sql.SQL(sequence))).fetchone()
    assert row is not None
    return int(row[0])


def test_a_tenant_cannot_read_the_shared_sequence_of_anothers_inserts(
    tn: Tenantry, make_tenant: Callable[..., Tenant]
) -> None:
    a, b = make_tenant(), make_tenant()
    sequence = _sequence(tn)
    runtime = sql.Identifier(tn.settings.runtime_role)
    schema, table = tn.settings.pooled_schema, "projects"
    try:
        # negative control: with SELECT granted (as deploy used to), A reads B's latest id
        with tn.admin() as conn:
            conn.execute(sql.SQL("GRANT SELECT ON SEQUENCE {} TO {}").format(sql.SQL(sequence), runtime))
        b_id = _insert_project(tn, b)
        assert _last_value_as(tn, a, sequence) == b_id
    finally:
        with tn.admin() as conn, conn.transaction():  # what init and deploy do to existing tables
            rls.apply_policies(conn, schema, table, tn.settings.runtime_role)
    b_id = _insert_project(tn, b)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _last_value_as(tn, a, sequence)
    # what the runtime role keeps is what inserts need: nextval through the default
    assert _insert_project(tn, a) > b_id
    with tn.admin() as conn:
        row = conn.execute(
            "SELECT has_sequence_privilege(%(r)s, %(s)s, 'USAGE'), has_sequence_privilege(%(r)s, %(s)s, 'SELECT'),"
            " has_sequence_privilege(%(r)s, %(s)s, 'UPDATE')",
            {"r": tn.settings.runtime_role, "s": sequence},
        ).fetchone()
    assert row == (True, False, False)


ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "uuid7_keys.py"


def test_the_guide_shows_the_uuid7_example_verbatim() -> None:
    doc = (ROOT / "docs" / "app-tables.md").read_text()
    block = re.search(r"<!-- example:begin -->\n```python\n(.*?)```\n<!-- example:end -->", doc, re.S)
    assert block and block.group(1) == EXAMPLE.read_text()


def test_the_uuid7_example_runs_and_its_ids_are_version_7(server_url: str) -> None:
    db = Scratch(server_url)
    try:
        env = catalog_env(db)
        done = subprocess.run(
            [sys.executable, str(EXAMPLE)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.splitlines() == ["keys-acme 7 True", "keys-globex 7 True", "keys-acme 7 True"]
        with psycopg.connect(db.url) as conn:  # a UUIDv7's first 48 bits are its time in ms
            rows = conn.execute(
                "SELECT id, (extract(epoch FROM created) * 1000)::bigint FROM (SELECT id, now() AS created"
                " FROM tenant_data.invoices) s"
            ).fetchall()
        assert len(rows) == 3
        for key, now_ms in rows:
            assert key.version == 7 and key.variant == uuid.RFC_4122
            assert abs((key.int >> 80) - now_ms) < 600_000
    finally:
        db.drop()


def test_the_runtime_role_cannot_read_a_shared_sequence_through_pg_sequence_last_value(
    tn: Tenantry, make_tenant: Callable[..., Tenant]
) -> None:
    """USAGE (what inserts need) would let ``pg_sequence_last_value`` and ``pg_sequences``
    report the shared sequence's position: init revokes that function from PUBLIC here."""
    from tenantry.db.local import last_value_readable

    a, b = make_tenant(), make_tenant()
    sequence = _sequence(tn)
    peek = sql.SQL("SELECT pg_sequence_last_value({}::regclass)").format(sql.Literal(sequence))
    runtime = sql.Identifier(tn.settings.runtime_role)
    try:
        # negative control: EXECUTE granted as PostgreSQL ships it, A reads B's latest id
        with tn.admin() as conn:
            conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION pg_sequence_last_value(regclass) TO {}").format(runtime))
        b_id = _insert_project(tn, b)
        with bound(tn, a) as conn:
            assert conn.execute(peek).fetchone() == (b_id,)
    finally:
        with tn.admin() as conn:
            conn.execute(sql.SQL("REVOKE EXECUTE ON FUNCTION pg_sequence_last_value(regclass) FROM {}").format(runtime))
    with tn.admin() as conn:
        assert not last_value_readable(conn, tn.settings.runtime_role)
    with bound(tn, a) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(peek)
    assert _insert_project(tn, a) > b_id  # inserts go on
