"""Deploying the app's tenant-scoped tables into the pooled schema, guarded by RLS.

Each table gets row-level security ENABLEd and FORCEd, and one policy for every command::

    CREATE POLICY tenant_isolation ON schema.t
        USING      (tenant_id = (SELECT c.tenant_id FROM tenantry.context c
                                  WHERE c.schema_name = 'schema'))
        WITH CHECK (the same)

``tenantry.context`` yields the bound tenant only where its rows live (the signature covers the
schema), so a tenant can neither read nor write its rows into another placement's tables.

The sub-select makes PostgreSQL evaluate the context view once per query (an InitPlan) instead
of once per row, so the comparison stays an index condition on the leading ``tenant_id`` column.

Before anything is created the tables are checked: ``tenant_id`` must lead the primary key,
every foreign key between tenant tables must include ``tenant_id`` (PostgreSQL checks foreign
keys without row-level security, so a single-column key could point at another tenant's row),
and so must every unique key, unique index (partial and expression ones too) and exclusion
constraint: PostgreSQL checks uniqueness across all rows of a shared table, so with a unique
``email`` tenant A would learn from a duplicate-key error that tenant B has that address.
:func:`unscoped_unique_indexes` finds such keys in a database, whoever made them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.dialects import postgresql

from tenantry.errors import InvalidInput

__all__ = [
    "DeployReport",
    "apply_policies",
    "drop_foreign_policies",
    "policy_state",
    "table_order",
    "unprotected_tables",
    "unscoped_unique_indexes",
    "validate_metadata",
]

POLICY = "tenant_isolation"


@dataclass(slots=True)
class DeployReport:
    """Which tables a deploy created and which it (re)secured."""

    schema: str
    created: list[str]
    secured: list[str]
    dropped_policies: list[str]

    def to_dict(self) -> dict[str, object]:
        return {
            "schema": self.schema,
            "created": self.created,
            "secured": self.secured,
            "dropped_policies": self.dropped_policies,
        }


def validate_metadata(metadata: sa.MetaData) -> list[sa.Table]:
    """The tables of ``metadata`` in dependency order, or :class:`InvalidInput` naming each problem."""
    problems: list[str] = []
    tables = list(metadata.sorted_tables)
    if not tables:
        raise InvalidInput("the app metadata declares no tables")
    for table in tables:
        if table.schema is not None:
            problems.append(f"{table.name}: declare tenant tables without a schema (tenantry places them)")
        pk = list(table.primary_key.columns)
        if not pk or pk[0].name != "tenant_id":
            problems.append(f"{table.name}: the primary key must start with tenant_id")
        elif not isinstance(pk[0].type, sa.Uuid):
            problems.append(f"{table.name}: tenant_id must be a UUID column")
        for fk in table.foreign_key_constraints:
            if "tenant_id" not in fk.column_keys:
                target = fk.referred_table.name
                problems.append(
                    f"{table.name}: foreign key to {target} must include tenant_id"
                    " (ForeignKeyConstraint(['tenant_id', ...], [...]))"
                )
        problems += _unscoped_unique_keys(table)
    if problems:
        raise InvalidInput("app tables are not tenant-safe: " + "; ".join(problems))
    return tables


def _unscoped_unique_keys(table: sa.Table) -> list[str]:
    """What ``table`` declares unique (constraints, indexes, exclusions) without ``tenant_id``
    as one of the keys: each is an existence oracle across tenants."""
    problems: list[str] = []
    why = "else a duplicate-key error reveals another tenant's values"
    for constraint in table.constraints:
        if isinstance(constraint, (sa.UniqueConstraint, postgresql.ExcludeConstraint)):
            columns = [c.name for c in constraint.columns]
            if "tenant_id" in columns:
                continue
            kind = "unique key" if isinstance(constraint, sa.UniqueConstraint) else "exclusion constraint"
            named = f" {constraint.name}" if isinstance(constraint.name, str) else ""
            fix = ", ".join(f'"{c}"' for c in ["tenant_id", *columns])
            hint = f"UniqueConstraint({fix})" if kind == "unique key" else 'ExcludeConstraint(("tenant_id", "="), ...)'
            problems.append(
                f"{table.name}: {kind}{named} on ({', '.join(columns)}) must include tenant_id, {why} ({hint})"
            )
    for index in table.indexes:
        keys = [e for e in index.expressions if isinstance(e, sa.Column)]
        if not index.unique or any(c.name == "tenant_id" for c in keys):
            continue
        shown = ", ".join(c.name if isinstance(c, sa.Column) else str(c) for c in index.expressions)
        partial = " (partial)" if index.dialect_options["postgresql"]["where"] is not None else ""
        plain = len(keys) == len(index.expressions)
        rest = ", ".join(f'"{c.name}"' for c in keys) if plain else "..."
        problems.append(
            f"{table.name}: unique index {index.name} on ({shown}){partial} must include tenant_id, {why}"
            f' (Index("{index.name}", "tenant_id", {rest}, unique=True))'
        )
    return problems


def apply_policies(conn: psycopg.Connection[Any], schema: str, table: str, runtime: str) -> None:
    """Enable and force RLS on ``schema.table``, (re)create its policy, grant the runtime role."""
    ident = sql.Identifier(schema, table)
    check = sql.SQL("tenant_id = (SELECT c.tenant_id FROM tenantry.context c WHERE c.schema_name = {})").format(
        sql.Literal(schema)
    )
    conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(ident))
    conn.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(ident))
    conn.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(POLICY), ident))
    conn.execute(
        sql.SQL("CREATE POLICY {} ON {} FOR ALL USING ({}) WITH CHECK ({})").format(
            sql.Identifier(POLICY), ident, check, check
        )
    )
    conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(ident, sql.Identifier(runtime)))
    # the sequences the table's columns own; filtering on the classes and the table's oid
    # lets PostgreSQL use pg_depend's index (by name, it read all of pg_depend per table)
    sequences = conn.execute(
        """
        SELECT s.relname FROM pg_depend d
          JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
         WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
           AND d.refobjid = %s::regclass AND d.deptype IN ('a', 'i')
        """,
        (f'"{schema}"."{table}"',),
    ).fetchall()
    for (seq,) in sequences:
        # USAGE is all a column default's nextval() needs; SELECT would let any tenant read
        # last_value of a sequence the pooled tier shares (revoked too from tables deployed
        # before). USAGE alone still shows it through pg_sequence_last_value(), and the ids
        # themselves count the others' inserts: docs/app-tables.md says to use UUIDv7 keys
        seq_ident = sql.Identifier(schema, seq)
        conn.execute(sql.SQL("REVOKE SELECT, UPDATE ON SEQUENCE {} FROM {}").format(seq_ident, sql.Identifier(runtime)))
        conn.execute(sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(seq_ident, sql.Identifier(runtime)))
    conn.execute(
        """
        INSERT INTO tenantry.app_tables (schema_name, table_name) VALUES (%s, %s)
        ON CONFLICT DO NOTHING
        """,
        (schema, table),
    )


#: how PostgreSQL prints tenantry's policy expression back (PostgreSQL 15 to 18); the schema
#: is the table's own (tenantry's schema names need no quoting)
EXPECTED_EXPR = (
    "(tenant_id = ( SELECT c.tenant_id\n   FROM tenantry.context c\n  WHERE (c.schema_name = '{schema}'::text)))"
)

# One row per registered table: is RLS on and forced, is tenantry's policy exactly as deployed
# (all commands, for PUBLIC, permissive, the expected USING and WITH CHECK), and which other
# permissive policies widen it. Restrictive policies only narrow access and are left alone.
_POLICY_STATE_SQL = """
SELECT a.schema_name, a.table_name, c.oid IS NOT NULL,
       coalesce(c.relrowsecurity AND c.relforcerowsecurity, false),
       EXISTS (SELECT 1 FROM pg_policy p
                WHERE p.polrelid = c.oid AND p.polname = %(policy)s AND p.polcmd = '*'
                  AND p.polpermissive AND p.polroles = '{0}'
                  AND pg_get_expr(p.polqual, p.polrelid) = replace(%(expr)s, '{schema}', a.schema_name)
                  AND pg_get_expr(p.polwithcheck, p.polrelid) = replace(%(expr)s, '{schema}', a.schema_name)),
       coalesce((SELECT array_agg(p.polname::text ORDER BY p.polname) FROM pg_policy p
                  WHERE p.polrelid = c.oid AND p.polpermissive AND p.polname <> %(policy)s), '{}')
  FROM tenantry.app_tables a
  LEFT JOIN pg_namespace n ON n.nspname = a.schema_name
  LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = a.table_name
 ORDER BY 1, 2
"""


def policy_state(conn: psycopg.Connection[Any]) -> list[tuple[str, str, bool, bool, bool, list[str]]]:
    """``(schema, table, exists, rls_forced, policy_exact, extra_permissive)`` per app table."""
    return [tuple(row) for row in conn.execute(_POLICY_STATE_SQL, {"policy": POLICY, "expr": EXPECTED_EXPR}).fetchall()]


def unprotected_tables(conn: psycopg.Connection[Any]) -> list[str]:
    """Registered app tables that are missing, have RLS off or unforced, lack tenantry's exact
    policy, or carry another permissive policy that widens it."""
    return [
        f"{schema}.{table}"
        for schema, table, exists, forced, exact, extra in policy_state(conn)
        if not (exists and forced and exact and not extra)
    ]


# Unique indexes (constraints' too), partial and expression ones included, and exclusion
# constraints of the given tables that lack tenant_id among their key columns (an INCLUDE
# column does not scope uniqueness; indkey holds 0 for an expression). Primary keys have a
# check of their own: tenant_id leads them.
_UNSCOPED_UNIQUE_SQL = """
SELECT n.nspname, c.relname, ic.relname, pg_get_indexdef(i.indexrelid)
  FROM {targets} AS a (schema_name, table_name)
  JOIN pg_namespace n ON n.nspname = a.schema_name
  JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = a.table_name
  JOIN pg_index i ON i.indrelid = c.oid
  JOIN pg_class ic ON ic.oid = i.indexrelid
 WHERE (i.indisunique OR i.indisexclusion) AND NOT i.indisprimary
   AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey::int2[]) WITH ORDINALITY k (attnum, position)
                     JOIN pg_attribute t ON t.attrelid = c.oid AND t.attnum = k.attnum
                    WHERE k.position <= i.indnkeyatts AND t.attname = 'tenant_id')
 ORDER BY 1, 2, 3
"""


def unscoped_unique_indexes(
    conn: psycopg.Connection[Any], tables: list[tuple[str, str]] | None = None
) -> list[tuple[str, str, str, str]]:
    """``(schema, table, index, definition)`` of each unique index or exclusion constraint
    without ``tenant_id`` among its keys, on ``tables`` (default: the registered app tables).
    Whoever made them (a migration, a hand-run ``CREATE UNIQUE INDEX``), each lets a tenant
    test whether another tenant holds a value."""
    if tables is None:
        targets: sql.Composable = sql.SQL("(SELECT schema_name, table_name FROM tenantry.app_tables)")
        params: dict[str, Any] = {}
    else:
        targets = sql.SQL("unnest(%(schemas)s::text[], %(tables)s::text[])")
        params = {"schemas": [t[0] for t in tables], "tables": [t[1] for t in tables]}
    rows = conn.execute(sql.SQL(_UNSCOPED_UNIQUE_SQL).format(targets=targets), params).fetchall()
    return [(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]


def drop_foreign_policies(conn: psycopg.Connection[Any], schema: str, table: str) -> list[str]:
    """Drop permissive policies other than tenantry's on ``schema.table``; return their names."""
    names = [
        r[0]
        for r in conn.execute(
            """
            SELECT p.polname FROM pg_policy p
             WHERE p.polrelid = %s::regclass AND p.polpermissive AND p.polname <> %s
            """,
            (f'"{schema}"."{table}"', POLICY),
        ).fetchall()
    ]
    for name in names:
        conn.execute(sql.SQL("DROP POLICY {} ON {}").format(sql.Identifier(name), sql.Identifier(schema, table)))
    return names


def registered_tables(conn: psycopg.Connection[Any], schema: str) -> list[str]:
    """The app tables registered in ``schema`` (``tenantry.app_tables`` of ``conn``'s
    database), by name."""
    rows = conn.execute(
        "SELECT table_name FROM tenantry.app_tables WHERE schema_name = %s ORDER BY 1", (schema,)
    ).fetchall()
    return [str(r[0]) for r in rows]


def unregister_tables(conn: psycopg.Connection[Any], schema: str, *, keep: list[str] | None = None) -> list[str]:
    """Forget the registered app tables of ``schema`` but those of ``keep`` (``None``: every
    one, as when the schema is dropped); returns the names forgotten."""
    rows = conn.execute(
        "DELETE FROM tenantry.app_tables WHERE schema_name = %s AND NOT (table_name = ANY (%s)) RETURNING table_name",
        (schema, keep or []),
    ).fetchall()
    return sorted(str(r[0]) for r in rows)


def table_order(conn: psycopg.Connection[Any], schema: str) -> list[tuple[str, str]]:
    """Registered app tables of ``schema``, referencing tables before those they reference."""
    tables = [(schema, name) for name in registered_tables(conn, schema)]
    edges = conn.execute(
        """
        SELECT cn.nspname, c.relname, rn.nspname, r.relname
          FROM pg_constraint k
          JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
          JOIN pg_class r ON r.oid = k.confrelid JOIN pg_namespace rn ON rn.oid = r.relnamespace
         WHERE k.contype = 'f'
        """
    ).fetchall()
    referenced_by: dict[tuple[str, str], set[tuple[str, str]]] = {t: set() for t in tables}
    for cs, ct, rs, rt in edges:
        child, parent = (cs, ct), (rs, rt)
        if child in referenced_by and parent in referenced_by and child != parent:
            referenced_by[parent].add(child)
    ordered: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()

    def visit(node: tuple[str, str]) -> None:
        if node in seen:
            return
        seen.add(node)
        for child in sorted(referenced_by[node]):
            visit(child)
        ordered.append(node)

    for table in tables:
        visit(table)
    # visit() appends parents after their children; deletes must run children first
    return ordered
