"""The nouns of the catalog as plain data: tenants, their lifecycle, plans.

Pure: no driver, no I/O. The lifecycle is a table of allowed transitions, so the services ask
it rather than encoding the rules again.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tenantry.errors import InvalidTransition

__all__ = ["Isolation", "Plan", "Status", "Tenant", "check_transition"]


class Status(str, enum.Enum):
    """Where a tenant is in its life. Only ``active`` tenants serve traffic."""

    PROVISIONING = "provisioning"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    ARCHIVED = "archived"
    DELETED = "deleted"
    MOVING = "moving"


_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PROVISIONING: frozenset({Status.ACTIVE, Status.DELETED}),
    Status.ACTIVE: frozenset({Status.SUSPENDED, Status.ARCHIVED, Status.MOVING, Status.DELETED}),
    Status.SUSPENDED: frozenset({Status.ACTIVE, Status.ARCHIVED, Status.DELETED}),
    Status.ARCHIVED: frozenset({Status.ACTIVE, Status.DELETED}),
    Status.MOVING: frozenset({Status.ACTIVE}),
    Status.DELETED: frozenset(),
}


def check_transition(slug: str, current: Status, target: Status) -> None:
    """Raise :class:`InvalidTransition` unless ``current -> target`` is allowed."""
    if target not in _TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in _TRANSITIONS[current])) or "nothing"
        raise InvalidTransition(f"tenant {slug!r} is {current.value}; it can go to {allowed}, not {target.value}")


class Isolation(str, enum.Enum):
    """Where a plan's tenants keep their rows."""

    POOLED = "pooled"
    SCHEMA = "schema"
    DATABASE = "database"


@dataclass(frozen=True, slots=True)
class Plan:
    """A tier: how isolated its tenants are, their limits and defaults."""

    name: str
    isolation: Isolation
    description: str = ""
    limits: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    cell: str | None = None
    """Cell every tenant of the plan is placed on (``None``: chosen by the policy)."""
    cell_labels: dict[str, str] = field(default_factory=dict)
    """Labels a cell must carry to take the plan's tenants."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "isolation": self.isolation.value,
            "description": self.description,
            "limits": self.limits,
            "defaults": self.defaults,
            "cell": self.cell,
            "cell_labels": self.cell_labels,
        }


@dataclass(frozen=True, slots=True)
class Tenant:
    """A customer organisation as the catalog records it."""

    id: uuid.UUID
    slug: str
    name: str
    plan: str
    status: Status
    created_at: datetime
    updated_at: datetime
    #: raised by every change of status or placement: a binding made at an older epoch is
    #: refused by the database (see ``tenantry.fences``)
    epoch: int = 1

    @property
    def is_active(self) -> bool:
        return self.status is Status.ACTIVE

    @property
    def serves(self) -> bool:
        """Whether it may serve traffic: active, or active while being moved."""
        return self.status in (Status.ACTIVE, Status.MOVING)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "slug": self.slug,
            "name": self.name,
            "plan": self.plan,
            "status": self.status.value,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tenant:
        """The tenant :meth:`to_dict` gave (as a queued hook call carries it)."""
        return cls(
            id=uuid.UUID(data["id"]),
            slug=data["slug"],
            name=data["name"],
            plan=data["plan"],
            status=Status(data["status"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            updated_at=datetime.fromisoformat(data["updated_at"]),
        )
