"""Catalog SQL of the database tier's server-side connection limits: which databases hold a
tenant, and what its plan's limits say (:mod:`tenantry.services.connection_limits`)."""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

import psycopg

__all__ = ["OwnDatabase", "own_databases"]


class OwnDatabase(NamedTuple):
    """A database-tier tenant's active database, its plan's ``limits`` document and the
    tenant's own overrides of it (``{}``: none)."""

    tenant_id: uuid.UUID
    cell: str
    database: str
    limits: dict[str, Any]
    overrides: dict[str, Any] = {}


def own_databases(
    conn: psycopg.Connection[Any], *, plan: str | None = None, tenant_id: uuid.UUID | None = None
) -> list[OwnDatabase]:
    """The active own databases of the tenants (not deleted) on ``plan``, or of ``tenant_id``,
    or of every tenant when neither is given; by cell and database."""
    rows = conn.execute(
        "SELECT t.id, p.cell, p.database_name, pl.limits, tl.limits"
        " FROM tenantry.tenants t"
        " JOIN tenantry.placements p ON p.tenant_id = t.id AND p.status = 'active'"
        " JOIN tenantry.plans pl ON pl.name = t.plan"
        " LEFT JOIN tenantry.tenant_limits tl ON tl.tenant_id = t.id"
        " WHERE p.database_name IS NOT NULL AND t.status <> 'deleted'"
        " AND (%(plan)s::text IS NULL OR t.plan = %(plan)s)"
        " AND (%(tenant)s::uuid IS NULL OR t.id = %(tenant)s)"
        " ORDER BY p.cell, p.database_name",
        {"plan": plan, "tenant": tenant_id},
    ).fetchall()
    return [
        OwnDatabase(r[0], r[1], r[2], r[3] if isinstance(r[3], dict) else {}, r[4] if isinstance(r[4], dict) else {})
        for r in rows
    ]
