"""Placements: where a tenant's rows live, and the route a connection takes to them.

Pure: no driver, no I/O. Names of tenant schemas and databases derive from the tenant's id,
never from its slug, so they are valid identifiers by construction and survive renames.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from tenantry.core.model import Isolation

__all__ = ["PRIMARY_CELL", "Placement", "Route", "database_name", "plan_steps", "schema_name"]

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
        return Route(self.cell, self.database, self.schema, self.isolation is Isolation.DATABASE)

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
