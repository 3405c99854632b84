"""How many bytes tenants' rows take on a server: what ``tn.usage.measure_storage()`` reads.

* Schema-tier tenants: the relations of each tenant's schema (tables with their indexes and
  TOAST, ``pg_total_relation_size``), one query for every schema of a database.
* Database-tier tenants: the relations of the placement's schema in the tenant's own
  database (the app's tables; not the ~7 MB of system catalogs every database carries, which
  ``pg_database_size`` would count).
* Pooled tenants share tables, so their bytes are a share of each shared table's total
  size. One grouped query per shared table serves every tenant of the cell:

  - ``estimate``: the tenant's rows x the table's bytes per row
    (``count(*) ... GROUP BY tenant_id``, which an index on the leading ``tenant_id`` may
    answer without reading the rows);
  - ``exact`` (the default: a quota should not depend on whose rows are wider): the tenant's rows'
    own bytes (``pg_column_size`` of the whole row: header, columns, alignment, a TOASTed
    value at its stored size; plus its line pointer) x the heap's and TOAST's bytes per byte
    of rows, plus its rows x the indexes' bytes per row. It reads the heap (and the TOAST of
    values stored out of line), and a tenant whose rows are wider than the average is
    charged for it.

  The estimate's error is the gap between the two: nil when every tenant's rows are alike
  in width, and as large as the spread of widths when they are not. With rows 10 to 400
  characters wide, drawn per tenant, ``|estimate / exact - 1|`` has a median of 24% and a p95
  of 88% (``bench/storage_measure.py``, 10,000 tenants), and ``exact`` took 1.3-1.5x the
  estimate's time (0.58 s against 0.46 s a pass). ``exact`` charges two tenants in the ratio
  a copy of each one's rows into a table of its own (with its indexes) takes, within 15%
  (11% in ``tests/usage/test_storage.py``: rows 40 and 400 characters wide).

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


def pooled_shares(conn: psycopg.Connection[Any], schema: str, table: str, method: Method = "exact") -> TableShare:
    """Every tenant's share of the shared table ``schema.table``: bytes and rows, by tenant id
    (text), from one grouped query and the table's total size (see the module docs)."""
    ident = sql.Identifier(schema, table)
    if method == "exact":
        # the row as stored: tuple header, columns and their alignment (a TOASTed value at its
        # stored size), and its line pointer
        query = sql.SQL(
            "SELECT tenant_id::text, count(*), sum(pg_column_size(t.*) + 4)::float8 FROM {} t GROUP BY 1"
        ).format(ident)
    else:
        query = sql.SQL("SELECT tenant_id::text, count(*), count(*)::float8 FROM {} GROUP BY 1").format(ident)
    with conn.transaction():
        # one snapshot for the rows and the size; a scan of a big table may take a while
        conn.execute("SET LOCAL statement_timeout = 0")
        rows = conn.execute(query).fetchall()
        found = conn.execute(
            "SELECT pg_table_size(%(t)s::regclass), pg_indexes_size(%(t)s::regclass)", {"t": ident.as_string(conn)}
        ).fetchone()
    table_size, index_size = (float(found[0] or 0), float(found[1] or 0)) if found else (0.0, 0.0)
    weight = sum(float(r[2]) for r in rows)
    count = sum(int(r[1]) for r in rows)
    if not weight or not count:
        return {}
    # the heap and TOAST by the weight (rows or their bytes); the indexes by rows: an index
    # holds an entry per row whatever the row's width
    per_unit, per_row = table_size / weight, index_size / count
    return {tenant: (float(w) * per_unit + int(n) * per_row, int(n)) for tenant, n, w in rows}
