"""Durable steps: the one mechanism behind control-plane work that must survive a kill.

Provisioning, moves and spares are lists of named steps. Each step is run at most once to
its end: its completion is recorded in the catalog row of the work (``steps_done`` of a
``tenantry.jobs`` or ``tenantry.spares`` row, plus the job's ``payload``), and a process
killed anywhere leaves a row that a rerun reads to go on from the first step not recorded.
So every step must be idempotent up to its record: a step killed half-way runs again whole.

Right after each record comes the step's crash point (:func:`~tenantry.services.faults.crash_point`),
where the fault tests kill the process.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import psycopg

from tenantry.db.catalog.jobs import record_steps
from tenantry.services.faults import crash_point

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = ["Step", "StepLog"]

#: a step: its name, and what it does (returns what to add to the job's payload, or None)
Step = tuple[str, Callable[[], Mapping[str, Any] | None]]


@dataclass(slots=True)
class StepLog:
    """The recorded steps of one piece of durable work.

    ``table`` is the catalog table whose row ``id`` records it; ``done`` the steps recorded
    so far (as read with the row); ``payload`` the job's payload (``tenantry.jobs`` only: what
    a rerun needs of what the steps found). ``crash_prefix`` names the steps' crash points
    (``"move:"`` gives ``move:flip``). ``on_step(step)`` is called as a step starts.
    """

    table: Literal["jobs", "spares"]
    id: uuid.UUID
    done: list[str]
    payload: dict[str, Any] = field(default_factory=dict)
    crash_prefix: str = ""
    on_step: Callable[[str], None] | None = None

    def pending(self, step: str) -> bool:
        """Whether ``step`` is still to run (and, if so, tell ``on_step`` it starts)."""
        if step in self.done:
            return False
        if self.on_step is not None:
            self.on_step(step)
        return True

    def record(self, conn: psycopg.Connection[Any], step: str, **payload: Any) -> None:
        """Record ``step`` as done (and ``payload`` into the job's) in ``conn``'s transaction:
        the caller commits it with whatever else the step changed in the catalog."""
        self.done.append(step)
        self.payload.update(payload)
        record_steps(conn, self.table, self.id, self.done, payload)

    def run(self, tn: ControlPlane, steps: Iterable[Step]) -> None:
        """Run the steps not done yet, in order, each recorded as it ends.

        A step that changes the catalog records itself, in the same transaction
        (:meth:`record`); the others are recorded here, with the payload they return. A step
        may record others with its own (work that shares one session); those are skipped
        after it. Each record is followed by its crash point.
        """
        for name, action in steps:
            if not self.pending(name):
                continue
            before = len(self.done)
            payload = action()
            if name not in self.done:
                with tn.admin() as conn, conn.transaction():
                    self.record(conn, name, **(payload or {}))
            for step in self.done[before:]:  # each committed: where the fault tests kill
                crash_point(f"{self.crash_prefix}{step}")
