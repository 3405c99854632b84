"""How many bytes tenants' rows take on a server: what ``tn.usage.measure_storage()`` reads.

* Schema-tier tenants: the relations of each tenant's schema (tables with their indexes and
  TOAST, ``pg_total_relation_size``), one query for every schema of a database.
* Database-tier tenants: the relations of the placement's schema in the tenant's own
  database (the app's tables; not the ~7 MB of system catalogs every database carries, which
  ``pg_database_size`` would count).
* Pooled tenants share tables, so their bytes are a share of each shared table's total
  size. One grouped query per shared table serves every tenant of the cell:

  - ``estimate`` (the default): the tenant's rows x the table's bytes per row
    (``count(*) ... GROUP BY tenant_id``, which an index on the leading ``tenant_id`` may
    answer without reading the rows);
  - ``exact``: the tenant's rows' own bytes (``sum(pg_column_size(t.*))``) x the table's bytes
    per byte of rows: the heap is read, but a tenant whose rows are wider than the average
    is charged for it.

  The estimate's error is the gap between the two (``bench/storage_measure.py`` and the
  tests measure it): nil when every tenant's rows are alike in width, and as large as the
  spread of widths when they are not.

Reading every tenant's rows of a shared table needs a connection that row-level security
does not filter: a superuser, or a role with ``BYPASSRLS``. :func:`sees_all_rows` says
whether a connection is one.
"""

from __future__ import annotations

from typing import Any, Literal

import psycopg
from psycopg import sql

__all__ = ["Method", "TableShare", "pooled_shares", "schema_bytes", "sees_all_rows"]

#: how pooled tenants' bytes are worked out (see the module docs)
Method = Literal["estimate", "exact"]
#: per tenant id: its bytes of one shared table, and its rows there
TableShare = dict[str, tuple[float, int]]


def sees_all_rows(conn: psycopg.Connection[Any]) -> bool:
    """Whether ``conn``'s role reads every tenant's rows (superuser or ``BYPASSRLS``)."""
    row = conn.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user").fetchone()
    return bool(row and row[0])


def schema_bytes(conn: psycopg.Connection[Any], schemas: list[str]) -> dict[str, int]:
    """The bytes of the tables (with indexes and TOAST) of each schema of ``schemas`` in
    ``conn``'s database, in one query; a schema that does not exist is left out."""
    rows = conn.execute(
        """
        SELECT n.nspname, coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
          FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'm')
         WHERE n.nspname = ANY(%s)
         GROUP BY n.nspname
        """,
        (schemas,),
    ).fetchall()
    return {name: int(size) for name, size in rows}


def pooled_shares(conn: psycopg.Connection[Any], schema: str, table: str, method: Method = "estimate") -> TableShare:
    """Every tenant's share of the shared table ``schema.table``: bytes and rows, by tenant id
    (text), from one grouped query and the table's total size (see the module docs)."""
    ident = sql.Identifier(schema, table)
    if method == "exact":
        query = sql.SQL("SELECT tenant_id::text, count(*), sum(pg_column_size(t.*))::float8 FROM {} t GROUP BY 1")
    else:
        query = sql.SQL("SELECT tenant_id::text, count(*), count(*)::float8 FROM {} GROUP BY 1")
    with conn.transaction():
        # one snapshot for the rows and the size; a scan of a big table may take a while
        conn.execute("SET LOCAL statement_timeout = 0")
        rows = conn.execute(query.format(ident)).fetchall()
        found = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (ident.as_string(conn),)).fetchone()
    total_size = float(found[0]) if found and found[0] is not None else 0.0
    weight = sum(float(r[2]) for r in rows)
    if not weight:
        return {}
    per_unit = total_size / weight
    return {tenant: (float(w) * per_unit, int(n)) for tenant, n, w in rows}
