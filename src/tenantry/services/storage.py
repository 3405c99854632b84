"""Measuring every tenant's storage, and marking who is over the plan's ``storage_mb``.

One pass (:func:`measure_storage`, ``tn.usage.measure_storage()``) reads, per cell:

* the shared tables of the pooled schema: one grouped query per table for every pooled
  tenant of the cell (:func:`tenantry.db.sizes.pooled_shares`; 10,000 tenants cost the same
  few queries as ten);
* the schemas of the schema-tier tenants: one query for all of them;
* each database-tier tenant's own database: one query in each.

It keeps the bytes in ``tenantry.storage`` (one statement) and, in the same transaction,
compares the set of tenants over their quota (the view ``tenantry.storage_over_quota``)
before and after: each tenant that went over or came back under is audited
(``tenant.storage_over_quota``, ``tenant.storage_within_quota``), and a ``storage:*`` event tells every process to read the set
again, so a tenant that went over is bound read-only (its writes refused with
:class:`~tenantry.errors.StorageQuotaExceeded`) and one back under writes again, within a
second, with no read of the catalog per transaction.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tenantry.core.events import EventKind
from tenantry.db import sizes
from tenantry.db.catalog import audit
from tenantry.db.catalog import usage as usage_catalog
from tenantry.db.catalog.events import notify
from tenantry.db.connect import admin_connection, database_url
from tenantry.db.rls import table_order
from tenantry.errors import ConfigurationError, InvalidInput
from tenantry.services.plane import ControlPlane

__all__ = ["StorageReport", "measure_storage"]


@dataclass(slots=True)
class StorageReport:
    """What one measuring pass did."""

    method: str
    tenants: int = 0
    seconds: float = 0.0
    #: the queries it ran on the cells (not counting the catalog's)
    queries: int = 0
    #: bytes per tenant id, as stored
    bytes: dict[uuid.UUID, int] = field(default_factory=dict)
    #: the slugs over their quota after the pass
    over_quota: list[str] = field(default_factory=list)
    #: whether the set of tenants over quota changed (and every process was told)
    changed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "tenants": self.tenants,
            "seconds": round(self.seconds, 3),
            "queries": self.queries,
            "over_quota": self.over_quota,
            "changed": self.changed,
        }


def measure_storage(plane: ControlPlane, *, method: sizes.Method = "exact") -> StorageReport:
    """Measure every tenant with an active placement, keep the bytes in the catalog, and tell
    every process when the set of tenants over their quota changed (see the module docs)."""
    if method not in ("estimate", "exact"):
        raise InvalidInput(f"method must be 'estimate' or 'exact', not {method!r}")
    started = time.perf_counter()
    report = StorageReport(method=method)
    with plane.admin() as conn:
        placements = usage_catalog.active_placements(conn)
    by_cell: dict[str, list[tuple[uuid.UUID, str, str | None, str]]] = defaultdict(list)
    for tenant_id, cell, isolation, database, schema in placements:
        by_cell[cell].append((tenant_id, isolation, database, schema))
    measured: list[tuple[uuid.UUID, int, str]] = []
    for cell, tenants in by_cell.items():
        measured.extend(_measure_cell(plane, cell, tenants, method, report))
    sized = {t: b for t, b, _m in measured}
    with plane.admin() as conn, conn.transaction():
        before = usage_catalog.over_quota(conn)
        usage_catalog.store_storage(conn, measured)
        after = usage_catalog.over_quota(conn)
        report.changed = before != after
        if report.changed:
            notify(conn, EventKind.STORAGE, "*")
        slugs = usage_catalog.slugs_of(conn, before | after)
        for tenant_id in sorted(before ^ after):  # who went over, or came back under: audited
            over = tenant_id in after
            audit.record(
                conn,
                actor=plane.actor,
                action="tenant.storage_over_quota" if over else "tenant.storage_within_quota",
                target_type="tenant",
                target=slugs.get(tenant_id, str(tenant_id)),
                after={"bytes": sized.get(tenant_id), "writes": "refused" if over else "allowed"},
            )
        report.over_quota = sorted(slugs[t] for t in after if t in slugs)
    if report.changed:
        plane.publish(EventKind.STORAGE, "*")
    report.tenants = len(measured)
    report.bytes = sized
    report.seconds = time.perf_counter() - started
    return report


def _measure_cell(
    plane: ControlPlane,
    cell: str,
    tenants: list[tuple[uuid.UUID, str, str | None, str]],
    method: sizes.Method,
    report: StorageReport,
) -> list[tuple[uuid.UUID, int, str]]:
    url = plane.cell_admin_url(cell)
    pooled = [t for t in tenants if t[1] == "pooled"]
    schemas = {t[3]: t[0] for t in tenants if t[1] == "schema"}
    found: list[tuple[uuid.UUID, int, str]] = []
    with admin_connection(url, autocommit=True) as conn:
        if schemas:
            sized = sizes.schema_bytes(conn, list(schemas))
            report.queries += 1
            found.extend((tenant_id, sized.get(schema, 0), "relations") for schema, tenant_id in schemas.items())
        if pooled:
            found.extend(_measure_pooled(conn, plane.settings.pooled_schema, pooled, method, report))
    for tenant_id, _isolation, database, schema in tenants:
        if _isolation != "database" or database is None:
            continue
        with admin_connection(database_url(url, database), autocommit=True) as conn:
            found.append((tenant_id, sizes.schema_bytes(conn, [schema]).get(schema, 0), "relations"))
            report.queries += 1
    return found


def _measure_pooled(
    conn: Any,
    schema: str,
    pooled: list[tuple[uuid.UUID, str, str | None, str]],
    method: sizes.Method,
    report: StorageReport,
) -> list[tuple[uuid.UUID, int, str]]:
    if not sizes.sees_all_rows(conn):
        raise ConfigurationError(
            "measuring pooled tenants reads every tenant's rows of the shared tables: the admin role needs"
            " to bypass row-level security (superuser, or ALTER ROLE ... BYPASSRLS)"
        )
    totals: dict[str, float] = defaultdict(float)
    for table_schema, table in table_order(conn, schema):
        for tenant, (size, _rows) in sizes.pooled_shares(conn, table_schema, table, method).items():
            totals[tenant] += size
        report.queries += 1
    return [(tenant_id, round(totals.get(str(tenant_id), 0.0)), method) for tenant_id, *_ in pooled]
