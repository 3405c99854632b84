"""Placements: where a tenant's rows live, and the route a connection takes to them.

Pure: no driver, no I/O. Names of tenant schemas and databases derive from the tenant's id,
never from its slug, so they are valid identifiers by construction and survive renames.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from tenantry.core.model import Isolation, Plan
from tenantry.errors import InvalidInput

__all__ = [
    "PRIMARY_CELL",
    "CellLoad",
    "Placement",
    "Route",
    "choose_cell",
    "database_name",
    "plan_steps",
    "schema_name",
]

#: the cell of the catalog's own server
PRIMARY_CELL = "primary"


def schema_name(tenant_id: uuid.UUID) -> str:
    """Schema of a schema-tier tenant: ``tenant_<32 hex digits>``."""
    return f"tenant_{tenant_id.hex}"


def database_name(tenant_id: uuid.UUID) -> str:
    """Database of a database-tier tenant: ``tenant_<32 hex digits>``."""
    return f"tenant_{tenant_id.hex}"


@dataclass(frozen=True, slots=True)
class Route:
    """How to reach a placement: which server, which database (``None``: the cell's main
    database), which schema on the search path, and whether the database is the tenant's own
    (then its marker must name the tenant)."""

    cell: str
    database: str | None
    schema: str
    own_database: bool = False
    schema_tier: bool = False
    """The schema is one of many in a shared database: connections serve other schemas too,
    so statements prepared for one schema must not be reused (their types would be the
    other schema's)."""

    @property
    def pool_key(self) -> tuple[str, str | None]:
        """Connections are pooled per server and database."""
        return (self.cell, self.database)


@dataclass(frozen=True, slots=True)
class Placement:
    """One placement of a tenant as the catalog records it."""

    tenant_id: uuid.UUID
    cell: str
    isolation: Isolation
    database: str | None
    schema: str
    status: str

    @classmethod
    def plan_for(cls, tenant_id: uuid.UUID, isolation: Isolation, *, cell: str, pooled_schema: str) -> Placement:
        """Where a new tenant of this isolation goes."""
        if isolation is Isolation.POOLED:
            return cls(tenant_id, cell, isolation, None, pooled_schema, "building")
        if isolation is Isolation.SCHEMA:
            return cls(tenant_id, cell, isolation, None, schema_name(tenant_id), "building")
        return cls(tenant_id, cell, isolation, database_name(tenant_id), pooled_schema, "building")

    @property
    def route(self) -> Route:
        return Route(
            self.cell,
            self.database,
            self.schema,
            own_database=self.isolation is Isolation.DATABASE,
            schema_tier=self.isolation is Isolation.SCHEMA,
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "tier": self.isolation.value,
            "cell": self.cell,
            "database": self.database,
            "schema": self.schema,
            "status": self.status,
        }


def plan_steps(isolation: Isolation) -> tuple[str, ...]:
    """The provisioning steps of a tier, in order; each is idempotent."""
    if isolation is Isolation.POOLED:
        return ("activate",)
    if isolation is Isolation.SCHEMA:
        return ("create_schema", "deploy_tables", "activate")
    return ("create_database", "install_local", "deploy_tables", "activate")


@dataclass(frozen=True, slots=True)
class CellLoad:
    """What the placement policy knows of a cell."""

    name: str
    status: str
    capacity: int
    labels: dict[str, str]
    placements: int


def choose_cell(plan: Plan, cells: list[CellLoad], *, requested: str | None = None) -> str:
    """The cell a new tenant of ``plan`` goes to.

    Pooled and schema tiers live in the primary cell's shared database. A database-tier
    tenant goes to the requested cell, else the plan's pinned cell, else the active cell
    carrying the plan's labels with the most room left (primary included), so small cells fill
    up evenly and a label such as ``region=eu`` keeps tenants where they must be.
    """
    by_name = {c.name: c for c in cells}
    wanted = requested or plan.cell
    if plan.isolation is not Isolation.DATABASE:
        if wanted not in (None, PRIMARY_CELL):
            raise InvalidInput(
                f"{plan.isolation.value}-tier tenants live in the primary cell; only the database tier"
                f" can be placed on cell {wanted!r}"
            )
        return PRIMARY_CELL
    if wanted is not None:
        cell = by_name.get(wanted)
        if cell is None:
            raise InvalidInput(f"no cell named {wanted!r}")
        if cell.status != "active":
            raise InvalidInput(f"cell {wanted!r} is {cell.status} and takes no new tenants")
        return cell.name
    fitting = [
        c for c in cells if c.status == "active" and all(c.labels.get(k) == v for k, v in plan.cell_labels.items())
    ]
    if not fitting:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(plan.cell_labels.items())) or "none"
        raise InvalidInput(f"no active cell fits plan {plan.name!r} (labels: {labels})")
    return max(fitting, key=lambda c: (c.capacity - c.placements, c.name == PRIMARY_CELL)).name
