"""Securing a placement's tables after its migrations ran, inside the same transaction.

Every table in the placement's schema (but the Alembic version table) must be tenant-safe,
as :func:`tenantry.db.rls.validate_metadata` demands of declared tables: ``tenant_id`` (a
uuid) leads the primary key, and every foreign key, unique index and exclusion constraint
includes ``tenant_id``. A migration that breaks this fails its placement, which is then rolled
back.

Tables not exactly protected (RLS enabled and forced, tenantry's policy as deployed and no
other permissive one, the runtime role's grants on it and USAGE alone on its sequences,
registered in ``tenantry.app_tables``) are secured with :func:`tenantry.db.rls.apply_policies`. Tables that
are already protected are left alone, so the migration takes no lock on tables it did not
touch. Registry rows of tables a migration dropped are removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from tenantry.db import rls
from tenantry.errors import InvalidInput

__all__ = ["SecureReport", "secure_schema"]

# The schema's tables are found through pg_depend (each relation depends on its schema), whose
# index answers by schema: pg_class has no index on relnamespace, and a scan of it grows with
# every tenant schema in the database.
#
# Functions that open relations (pg_get_expr) or insist on a kind (has_sequence_privilege)
# appear only in aggregate inputs and the select list, which PostgreSQL evaluates after the
# WHERE clauses: in a WHERE clause it may call them on other schemas' rows first, locking
# tables other migrations hold (a deadlock) or failing on a toast table.
_TABLES_SQL = """
SELECT c.relname,
       (SELECT a.attname FROM pg_index i
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = c.oid AND i.indisprimary),
       (SELECT a.atttypid = 'uuid'::regtype FROM pg_attribute a
         WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped),
       coalesce((SELECT array_agg(k.conname::text ORDER BY k.conname) FROM pg_constraint k
                  WHERE k.conrelid = c.oid AND k.contype = 'f'
                    AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                                     WHERE a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)
                                       AND a.attname = 'tenant_id')), '{}'),
       c.relrowsecurity AND c.relforcerowsecurity
       AND (SELECT count(*) = 1 AND bool_and(p.polname = %(policy)s AND p.polcmd = '*' AND p.polroles = '{0}'
                                             AND pg_get_expr(p.polqual, p.polrelid) = replace(%(expr)s, '{schema}', n.nspname)
                                             AND pg_get_expr(p.polwithcheck, p.polrelid) = replace(%(expr)s, '{schema}', n.nspname))
              FROM pg_policy p WHERE p.polrelid = c.oid AND p.polpermissive)
       AND has_table_privilege(%(runtime)s, c.oid, 'SELECT, INSERT, UPDATE, DELETE')
       AND (SELECT coalesce(bool_and(has_sequence_privilege(%(runtime)s, s.oid, 'USAGE')
                                     AND NOT has_sequence_privilege(%(runtime)s, s.oid, 'SELECT, UPDATE')), true)
              FROM pg_depend d JOIN pg_class s ON s.oid = d.objid
             WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
               AND d.refobjid = c.oid AND d.deptype IN ('a', 'i')
               AND s.relkind = 'S')
       AND EXISTS (SELECT 1 FROM tenantry.app_tables r
                    WHERE r.schema_name = n.nspname AND r.table_name = c.relname)
  FROM pg_namespace n
  JOIN pg_depend d ON d.refclassid = 'pg_namespace'::regclass AND d.refobjid = n.oid
                  AND d.classid = 'pg_class'::regclass AND d.deptype = 'n'
  JOIN pg_class c ON c.oid = d.objid
 WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND c.relname <> %(skip)s
 ORDER BY 1
"""


@dataclass(slots=True)
class SecureReport:
    """What securing a schema did: tables (re)secured, foreign policies dropped, registry rows
    of vanished tables removed."""

    secured: list[str] = field(default_factory=list)
    dropped_policies: list[str] = field(default_factory=list)
    unregistered: list[str] = field(default_factory=list)


def secure_schema(conn: psycopg.Connection[Any], schema: str, runtime: str, *, skip: str) -> SecureReport:
    """Check every table of ``schema`` (but ``skip``) is tenant-safe, and protect those that
    are not yet; raise :class:`InvalidInput` naming each unsafe table. Runs as the owner."""
    rows = conn.execute(
        _TABLES_SQL,
        {"policy": rls.POLICY, "expr": rls.EXPECTED_EXPR, "runtime": runtime, "schema": schema, "skip": skip},
    ).fetchall()
    problems: list[str] = []
    for table, pk_first, uuid_tenant, loose_fks, _protected in rows:
        if pk_first != "tenant_id":
            problems.append(f"{table}: the primary key must start with tenant_id")
        elif not uuid_tenant:
            problems.append(f"{table}: tenant_id must be a uuid column")
        problems += [f"{table}: foreign key {name} must include tenant_id" for name in loose_fks]
    problems += [
        f"{table}: unique index {index} must include tenant_id ({definition})"
        for _schema, table, index, definition in rls.unscoped_unique_indexes(conn, [(schema, r[0]) for r in rows])
    ]
    if problems:
        raise InvalidInput("tables are not tenant-safe: " + "; ".join(problems))
    report = SecureReport()
    for table, *_checks, protected in rows:
        if protected:
            continue
        report.dropped_policies += [f"{table}.{p}" for p in rls.drop_foreign_policies(conn, schema, table)]
        rls.apply_policies(conn, schema, table, runtime)
        report.secured.append(table)
    report.unregistered = rls.unregister_tables(conn, schema, keep=[row[0] for row in rows])
    return report
