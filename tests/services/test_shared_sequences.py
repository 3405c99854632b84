"""A move into shared tables advances their sequences without ever setting one back: other
tenants draw from them meanwhile, and a sequence set back below a value one of them drew
would give that tenant a key it has already used (the duplicate key a bystander's writer saw
in the tier-move benchmark)."""

from __future__ import annotations

import threading

import psycopg
import pytest

from tenantry import Tenantry
from tenantry.db import tenant_copy
from tenantry.db.tenant_copy import TableSpec, act_as_tenant


def _spec() -> TableSpec:
    return TableSpec("projects", ("tenant_id", "id", "name", "created_at"), ("tenant_id", "id"))


def _race(tn: Tenantry, make_tenant, shared: bool, rounds: int) -> list[str]:  # type: ignore[no-untyped-def]
    """A bystander inserts as fast as it can while the mover, again and again, copies a row
    whose id is just past the sequence and syncs it; returns the bystander's errors."""
    mover, bystander = make_tenant("seq-mv"), make_tenant("seq-by")
    schema = tn.settings.pooled_schema
    seq = f'"{schema}".projects_id_seq'
    stop, errors = threading.Event(), []

    def insert() -> None:
        with tn.tenant(bystander.slug), tn.connection() as conn:
            while not stop.is_set():
                try:
                    conn.execute("INSERT INTO projects (name) VALUES ('by')")
                    conn.commit()
                except psycopg.errors.UniqueViolation as err:
                    errors.append(str(err).splitlines()[0])
                    conn.rollback()

    thread = threading.Thread(target=insert)
    thread.start()
    try:
        with tn.admin() as conn:
            signed = tn.plane.binder().signed(mover.id, schema)
            for _ in range(rounds):
                with conn.transaction():
                    act_as_tenant(conn, owner=tn.settings.owner_role, signed=signed)
                    last = conn.execute("SELECT coalesce(pg_sequence_last_value(%s::regclass), 0)", (seq,)).fetchone()[
                        0
                    ]
                    conn.execute(
                        "INSERT INTO projects (id, name) OVERRIDING SYSTEM VALUE VALUES (%s, 'copied')", (last + 2,)
                    )
                    tenant_copy.sync_sequences(conn, schema, _spec(), shared=shared)
                    after = conn.execute("SELECT coalesce(pg_sequence_last_value(%s::regclass), 0)", (seq,)).fetchone()[
                        0
                    ]
                    assert after >= last + 2
    finally:
        stop.set()
        thread.join()
    return errors


def test_a_shared_sequence_only_moves_forward_while_other_tenants_draw(tn: Tenantry, make_tenant) -> None:
    assert _race(tn, make_tenant, shared=True, rounds=300) == []


def test_negative_control_a_shared_sequence_set_back_gives_a_used_key(tn: Tenantry, make_tenant) -> None:
    """What the private tables' ``setval`` does to a shared sequence when another tenant draws
    between its read and its write (forced here; the race above hits it now and then)."""
    mover, bystander = make_tenant("seq-mv"), make_tenant("seq-by")
    schema = tn.settings.pooled_schema
    seq = f'"{schema}".projects_id_seq'

    def insert() -> None:
        with tn.tenant(bystander.slug), tn.connection() as conn:
            conn.execute("INSERT INTO projects (name) VALUES ('by')")

    insert()
    with tn.admin() as conn, conn.transaction():
        act_as_tenant(conn, owner=tn.settings.owner_role, signed=tn.plane.binder().signed(mover.id, schema))
        wanted = conn.execute(
            "SELECT greatest((SELECT max(id) FROM projects), pg_sequence_last_value(%s::regclass), 1)", (seq,)
        ).fetchone()[0]
        for _ in range(3):  # the bystander draws meanwhile
            insert()
        conn.execute("SELECT setval(%s::regclass, %s)", (seq, wanted + 1))
    with pytest.raises(psycopg.errors.UniqueViolation):
        insert()
