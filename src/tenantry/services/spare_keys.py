"""What a spare is built for, and claiming one: :class:`SpareKey` (the fingerprint of the app's
tables and the migration head), :func:`wanted` (the key this process may claim) and
:func:`claim` (inside a tenant's creating transaction, the oldest ready spare that fits).

Filling and dropping the pool of spares is :mod:`tenantry.services.spares`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import weakref
from typing import TYPE_CHECKING, Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from tenantry.core.model import Plan, Status, Tenant
from tenantry.core.placement import Placement
from tenantry.db import rls
from tenantry.db.catalog import audit
from tenantry.db.catalog.events import notify_tenant
from tenantry.db.catalog.placements import insert_placement
from tenantry.db.catalog.spares import SpareKey, delete_spare, oldest_ready
from tenantry.db.catalog.tenants import insert_tenant

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = ["claim", "fingerprint", "wanted"]

#: bumped when the way spares are built changes, so spares built the old way go stale
_FORMAT = "tenantry-spare-1"
#: the fingerprint of each metadata object (kept while the object lives), with the table
#: names it was computed for: a table added to the metadata later makes it stale
_FINGERPRINTS: weakref.WeakKeyDictionary[sa.MetaData, tuple[tuple[str, ...], str]] = weakref.WeakKeyDictionary()


def fingerprint(metadata: sa.MetaData) -> str:
    """A hash of what deploying ``metadata`` creates: each table's DDL, its indexes, its enum
    types, and tenantry's policy. Two metadata objects that deploy the same tables agree."""
    tables = rls.validate_metadata(metadata)
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    digest = hashlib.sha256(_FORMAT.encode())
    digest.update(rls.EXPECTED_EXPR.encode())
    for table in tables:
        digest.update(str(CreateTable(table).compile(dialect=dialect)).encode())
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            digest.update(str(CreateIndex(index).compile(dialect=dialect)).encode())
        for column in table.columns:
            enums = getattr(column.type, "enums", None)
            if enums:
                digest.update(f"{column.name}:{getattr(column.type, 'name', '')}:{list(enums)}".encode())
    return digest.hexdigest()[:32]


def wanted(tn: ControlPlane) -> SpareKey:
    """The key of the spares this process may claim: its app's tables and migrations head.

    The fingerprint is computed once per metadata object and set of tables (about 1.5 ms for
    20 tables), the head read from the script directory (cached until a file changes).
    """
    from tenantry.services import app_migrations  # alembic loads only when needed

    metadata = tn.app_metadata()
    names = tuple(metadata.tables)
    cached = _FINGERPRINTS.get(metadata)
    if cached is None or cached[0] != names:
        cached = _FINGERPRINTS[metadata] = (names, fingerprint(metadata))
    return SpareKey(cached[1], app_migrations.head_revision(tn))


def claim(
    tn: ControlPlane, conn: psycopg.Connection[Any], *, slug: str, name: str, plan: Plan, cell: str, key: SpareKey
) -> Tenant | None:
    """Inside the caller's transaction: turn the oldest ready spare of ``plan``'s tier on
    ``cell`` built for ``key`` into the active tenant ``slug``; ``None`` when there is none.

    Raises :class:`TenantExists` (the caller's transaction then rolls back, and the spare
    stays in the pool) when the slug is taken.
    """
    found = oldest_ready(conn, plan.isolation, cell, key)
    if found is None:
        return None
    spare_id, built_at, revision = found
    # no savepoint: on a taken slug the caller's whole transaction rolls back
    tenant = insert_tenant(conn, id=spare_id, slug=slug, name=name, plan=plan.name, status=Status.ACTIVE)
    placement = Placement.plan_for(spare_id, plan.isolation, cell=cell, pooled_schema=tn.settings.pooled_schema)
    # One round trip for the rest, the NOTIFY included: processes that were asked for this
    # slug before remember it as missing, briefly.
    with conn.pipeline():
        notify_tenant(conn, spare_id)
        insert_placement(conn, dataclasses.replace(placement, status="active"), app_revision=revision)
        delete_spare(conn, spare_id)
        audit.record(
            conn,
            actor=tn.actor,
            action="tenant.create",
            target_type="tenant",
            target=slug,
            after=tenant.to_dict()
            | {
                "placement": placement.to_dict() | {"status": "active"},
                "spare": True,
                "spare_built_at": built_at.isoformat(),
            },
        )
    return tenant
