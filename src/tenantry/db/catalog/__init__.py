"""The catalog: the ``tenantry`` schema of the catalog database, and the only home of the SQL
that reads and writes it.

* :mod:`.schema`: the catalog's own versioned migrations (``db/sql/catalog``).
* one module per area of the catalog (tenants, placements, plans, cells, domains, audit, ...):
  plain functions that take a psycopg connection and run that area's statements. Services
  compose them; nothing above ``db`` writes catalog SQL of its own.
"""

from __future__ import annotations

from tenantry.db.catalog.schema import (
    CATALOG_SCHEMA,
    ROUTING_SCHEMA,
    InitReport,
    catalog_version,
    head_version,
    migrate_catalog,
    require_catalog,
    require_routing,
    stored_password,
)

__all__ = [
    "CATALOG_SCHEMA",
    "ROUTING_SCHEMA",
    "InitReport",
    "catalog_version",
    "head_version",
    "migrate_catalog",
    "require_catalog",
    "require_routing",
    "stored_password",
]
