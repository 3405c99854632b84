"""Durable steps: each step runs to its record once; a rerun after a failure goes on from
the first step not recorded; steps that record themselves (in their own catalog transaction)
and steps recorded together pass their crash points once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from psycopg.types.json import Jsonb

from tenantry import Tenantry
from tenantry.core.placement import PRIMARY_CELL
from tenantry.services import steps as steps_module
from tenantry.services.steps import StepLog


@pytest.fixture
def job(tn: Tenantry) -> Iterator[StepLog]:
    """A job row of its own kind, removed afterwards."""
    with tn.admin() as conn:
        row = conn.execute(
            "INSERT INTO tenantry.jobs (kind, payload) VALUES ('test', %s) RETURNING id, steps_done, payload",
            (Jsonb({"kept": 1}),),
        ).fetchone()
    yield StepLog("jobs", row[0], list(row[1]), dict(row[2]), crash_prefix="test:")
    with tn.admin() as conn:
        conn.execute("DELETE FROM tenantry.jobs WHERE id = %s", (row[0],))


def _stored(tn: Tenantry, job_id: uuid.UUID) -> tuple[list[str], dict]:
    with tn.admin() as conn:
        row = conn.execute("SELECT steps_done, payload FROM tenantry.jobs WHERE id = %s", (job_id,)).fetchone()
    return list(row[0]), dict(row[1])


def test_a_rerun_goes_on_from_the_first_step_not_recorded(
    tn: Tenantry, job: StepLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []
    crashes: list[str] = []
    monkeypatch.setattr(steps_module, "crash_point", crashes.append)
    fail = {"c": True}

    def step(name: str, payload: dict | None = None):  # type: ignore[no-untyped-def]
        def action() -> dict | None:
            ran.append(name)
            if fail.get(name):
                raise RuntimeError(f"{name} failed")
            return payload

        return name, action

    plan = [step("a", {"found": 1}), step("b"), step("c", {"more": 2})]
    with pytest.raises(RuntimeError, match="c failed"):
        job.run(tn, plan)
    assert _stored(tn, job.id) == (["a", "b"], {"kept": 1, "found": 1})
    assert crashes == ["test:a", "test:b"]
    # a new process reads the row again
    fail.clear()
    with tn.admin() as conn:
        row = conn.execute("SELECT steps_done, payload FROM tenantry.jobs WHERE id = %s", (job.id,)).fetchone()
    again = StepLog("jobs", job.id, list(row[0]), dict(row[1]), crash_prefix="test:")
    seen: list[str] = []
    again.on_step = seen.append
    again.run(tn, plan)
    assert ran == ["a", "b", "c", "c"] and seen == ["c"]
    assert _stored(tn, job.id) == (["a", "b", "c"], {"kept": 1, "found": 1, "more": 2})
    assert crashes == ["test:a", "test:b", "test:c"]


def test_steps_that_record_themselves_and_steps_recorded_together(
    tn: Tenantry, job: StepLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    crashes: list[str] = []
    monkeypatch.setattr(steps_module, "crash_point", crashes.append)

    def both() -> None:  # one session, one catalog transaction for two steps
        with tn.admin() as conn, conn.transaction():
            if "x" not in job.done:
                job.record(conn, "x", x=1)
            job.record(conn, "y", y=2)

    job.run(tn, [("x", both), ("y", both)])
    assert _stored(tn, job.id) == (["x", "y"], {"kept": 1, "x": 1, "y": 2})
    assert crashes == ["test:x", "test:y"]  # each once, in order


def test_spares_record_their_steps_without_a_payload(tn: Tenantry) -> None:
    spare_id = uuid.uuid4()
    with tn.admin() as conn:
        conn.execute(
            "INSERT INTO tenantry.spares (id, isolation, cell, schema_name, fingerprint)"
            " VALUES (%s, 'schema', %s, %s, 'test') ",
            (spare_id, PRIMARY_CELL, f"spare_test_{spare_id.hex[:8]}"),
        )
    try:
        StepLog("spares", spare_id, [], crash_prefix="spare:").run(tn, [("create_schema", lambda: None)])
        with tn.admin() as conn:
            assert conn.execute("SELECT steps_done FROM tenantry.spares WHERE id = %s", (spare_id,)).fetchone() == (
                ["create_schema"],
            )
    finally:
        with tn.admin() as conn:
            conn.execute("DELETE FROM tenantry.spares WHERE id = %s", (spare_id,))
