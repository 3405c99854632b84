"""The database roles: the owner that runs DDL, the runtime role the app's queries use, and
the reader role a data plane reads the catalog's routing views as.

The runtime role must not be able to step around row-level security: no superuser, no
BYPASSRLS, owns no tenant table, and is not a member of the owner role (``SET ROLE``). The
reader may SELECT the views of ``tenantry_routing`` and nothing else. :func:`role_problems`
verifies both from an admin connection (``tenantry check``).
"""

from __future__ import annotations

import secrets as _secrets
from typing import Any

import psycopg
from psycopg import sql

from tenantry.errors import ConfigurationError, UnsafeRuntimeRole

__all__ = ["check_runtime_role", "ensure_reader", "ensure_roles", "role_problems"]


def _role_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is not None


_ROLES_LOCK = 0x74656E72  # serialises concurrent inits on one database


def _create_role(conn: psycopg.Connection[Any], statement: sql.Composed) -> bool:
    """Run a CREATE ROLE; ``False`` when a concurrent init (another database) won the race."""
    try:
        with conn.transaction():
            conn.execute(statement)
    except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
        return False
    return True


def ensure_roles(conn: psycopg.Connection[Any], owner: str, runtime: str) -> str | None:
    """Create or correct both roles; return a new runtime password when the role was created.

    ``conn`` is in autocommit mode; the work runs in one transaction under an advisory lock, so
    concurrent inits on one database queue up. Roles are cluster-wide: a role created meanwhile
    by an init on another database is not an error.
    """
    me = conn.execute("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user").fetchone()
    if me is None or not (me[0] or me[1]):
        raise ConfigurationError("the admin connection needs a superuser or a role with CREATEROLE to run init")
    password: str | None = None
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ROLES_LOCK,))
        if not _role_exists(conn, owner):
            _create_role(conn, sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(owner)))
        password = _ensure_login(conn, runtime)
        conn.execute(sql.SQL("ALTER ROLE {} NOSUPERUSER NOBYPASSRLS").format(sql.Identifier(owner)))
        if not me[0]:
            # a CREATEROLE admin needs membership to run DDL as the owner
            conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(owner)))
        member = conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (runtime, owner)).fetchone()
        if member == (True,):
            raise UnsafeRuntimeRole(
                f"runtime role {runtime!r} is a member of owner role {owner!r}; revoke that membership"
            )
    return password


def _ensure_login(conn: psycopg.Connection[Any], name: str) -> str | None:
    """Create (or correct) a least-privileged LOGIN role; its password when created here."""
    password: str | None = None
    if not _role_exists(conn, name):
        candidate = _secrets.token_urlsafe(32)
        created = _create_role(
            conn, sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(candidate))
        )
        password = candidate if created else None
    conn.execute(
        sql.SQL("ALTER ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION NOINHERIT").format(
            sql.Identifier(name)
        )
    )
    return password


def ensure_reader(conn: psycopg.Connection[Any], reader: str) -> str | None:
    """Create or correct the reader role (as :func:`ensure_roles` does the runtime role);
    return its new password when it was created. Its grants come with the catalog
    (:func:`tenantry.db.catalog.migrate_catalog`)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ROLES_LOCK,))
        return _ensure_login(conn, reader)


#: predefined roles that read or write around row-level security or reach the server's files
_DANGEROUS_PREDEFINED = (
    "pg_read_all_data",
    "pg_write_all_data",
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
)

# Every role the connected role can act as (itself and all it is a member of, directly or
# not), what they may do, and where the connected role can create objects.
RUNTIME_CHECK_SQL = """
WITH reach AS (
    SELECT r.oid, r.rolname, r.rolsuper, r.rolbypassrls, r.rolcreaterole
      FROM pg_roles r
     WHERE pg_has_role(current_user, r.oid, 'MEMBER')
)
SELECT current_user::text,
       coalesce(bool_or(rolsuper), false),
       coalesce(bool_or(rolbypassrls), false),
       coalesce(bool_or(rolcreaterole), false),
       coalesce(array_agg(rolname::text ORDER BY rolname)
                FILTER (WHERE rolname = ANY(%(dangerous)s) OR rolname = %(owner)s), '{}'),
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relowner IN (SELECT oid FROM reach) AND c.relkind IN ('r', 'p', 'v', 'm')
           AND n.nspname IN (%(schema)s, 'tenantry')),
       coalesce(array_agg(DISTINCT n.nspname::text)
                FILTER (WHERE n.nspname IS NOT NULL), '{}')
  FROM reach
  LEFT JOIN pg_namespace n
    ON n.nspname IN (%(schema)s, 'tenantry', 'public')
   AND has_schema_privilege(current_user, n.oid, 'CREATE')
"""


def runtime_check_params(owner: str, pooled_schema: str) -> dict[str, object]:
    return {"dangerous": list(_DANGEROUS_PREDEFINED), "owner": owner, "schema": pooled_schema}


def runtime_problems(row: tuple[Any, ...] | None, owner: str) -> str | None:
    """Judge a :data:`RUNTIME_CHECK_SQL` row: ``None`` when safe, else why not."""
    if row is None:  # pragma: no cover - current_user always has a pg_roles row
        return "cannot inspect the runtime role"
    name, is_super, bypass, createrole, roles, owned, creatable = row
    problems = []
    if is_super:
        problems.append("is (or can become) a superuser")
    if bypass:
        problems.append("has (or can assume) BYPASSRLS")
    if createrole:
        problems.append("has (or can assume) CREATEROLE")
    if owner in roles:
        problems.append(f"is a member of the owner role {owner!r}")
    granted = [r for r in roles if r != owner]
    if granted:
        problems.append("is a member of " + ", ".join(granted))
    if owned:
        problems.append(f"owns {owned} tenant or catalog table(s)")
    if creatable:
        problems.append("may create objects in schema " + ", ".join(sorted(creatable)))
    if not problems:
        return None
    return (
        f"refusing to serve tenant traffic as role {name!r}: it {' and '.join(problems)},"
        " so row-level security would not protect tenants"
    )


def check_runtime_role(conn: psycopg.Connection[Any], owner: str, pooled_schema: str) -> None:
    """Raise :class:`UnsafeRuntimeRole` unless ``conn``'s role is safe for tenant traffic."""
    row = conn.execute(RUNTIME_CHECK_SQL, runtime_check_params(owner, pooled_schema)).fetchone()
    problem = runtime_problems(row, owner)
    if problem is not None:
        raise UnsafeRuntimeRole(problem)


# What a role can reach, asked about it by name from an admin connection: the attributes of
# every role it can act as, its memberships (SET ROLE needs one), where it may create, and the
# relations of the catalog, the routing views and the pooled schema it may read or change.
ROLE_PRIVILEGES_SQL = """
WITH me AS (SELECT oid FROM pg_roles WHERE rolname = %(role)s),
reach AS (SELECT r.* FROM pg_roles r, me WHERE pg_has_role(me.oid, r.oid, 'MEMBER')),
rel AS (
    SELECT format('%%I.%%I', n.nspname, c.relname) AS name, c.oid, c.relowner
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname IN ('tenantry', 'tenantry_routing', %(schema)s) AND c.relkind IN ('r', 'p', 'v', 'm')
)
SELECT coalesce(bool_or(r.rolsuper), false),
       coalesce(bool_or(r.rolbypassrls), false),
       coalesce(bool_or(r.rolcreaterole OR r.rolcreatedb OR r.rolreplication), false),
       coalesce(array_agg(r.rolname::text ORDER BY r.rolname) FILTER (WHERE r.oid <> me.oid), '{}'),
       ARRAY(SELECT n.nspname::text FROM pg_namespace n
              WHERE has_schema_privilege(me.oid, n.oid, 'CREATE') AND n.nspname !~ '^pg_(toast_)?temp_'
              ORDER BY 1),
       has_database_privilege(me.oid, current_database(), 'CREATE'),
       ARRAY(SELECT n.nspname::text FROM pg_namespace n
              WHERE n.nspname IN ('tenantry', 'tenantry_routing', %(schema)s)
                AND has_schema_privilege(me.oid, n.oid, 'USAGE') ORDER BY 1),
       ARRAY(SELECT name FROM rel WHERE has_any_column_privilege(me.oid, rel.oid, 'SELECT') ORDER BY 1),
       ARRAY(SELECT name FROM rel
              WHERE has_any_column_privilege(me.oid, rel.oid, 'INSERT, UPDATE, REFERENCES')
                 OR has_table_privilege(me.oid, rel.oid, 'DELETE, TRUNCATE, TRIGGER') ORDER BY 1),
       ARRAY(SELECT name FROM rel WHERE rel.relowner IN (SELECT oid FROM reach) ORDER BY 1)
  FROM me JOIN reach r ON true
 GROUP BY me.oid
"""


def role_problems(conn: psycopg.Connection[Any], role: str, *, kind: str, pooled_schema: str) -> list[str]:
    """What ``role`` can do beyond its part (``kind``: ``"runtime"`` or ``"reader"``), judged
    from ``conn``, an admin connection to the database it serves; empty when nothing.

    Both: no superuser, BYPASSRLS, CREATEROLE, CREATEDB or REPLICATION, no membership of any
    role (so no ``SET ROLE`` to the owner or the admin), no CREATE on any schema or on the
    database, owns nothing. The runtime role reads only the context view of the schema
    ``tenantry``; the reader only the views of ``tenantry_routing``, with no USAGE on the
    catalog's schema or the pooled one. Neither may write a catalog relation.
    """
    row = conn.execute(ROLE_PRIVILEGES_SQL, {"role": role, "schema": pooled_schema}).fetchone()
    if row is None:
        return [f"role {role!r} does not exist; run `tenantry init`"]
    is_super, bypass, creates_roles, member_of, creatable, create_db, usage, readable, writable, owned = row
    problems = []
    if is_super:
        problems.append("is (or can become) a superuser")
    if bypass:
        problems.append("has (or can assume) BYPASSRLS")
    if creates_roles:
        problems.append("has (or can assume) CREATEROLE, CREATEDB or REPLICATION")
    if member_of:
        problems.append("is a member of " + ", ".join(member_of) + " (SET ROLE)")
    if creatable:
        problems.append("may create objects in schema " + ", ".join(creatable))
    if create_db:
        problems.append("may create schemas in the database")
    if owned:
        problems.append("owns " + ", ".join(owned))
    catalog_writes = [name for name in writable if name.startswith(("tenantry.", "tenantry_routing."))]
    if catalog_writes:
        problems.append("may change " + ", ".join(catalog_writes))
    if kind == "reader":
        extra_usage = [name for name in usage if name != "tenantry_routing"]
        extra_reads = [name for name in readable if not name.startswith("tenantry_routing.")]
        if "tenantry_routing" not in usage:
            problems.append("cannot use the schema tenantry_routing (run `tenantry init`)")
        data_writes = [name for name in writable if name not in catalog_writes]
        if data_writes:
            problems.append("may change " + ", ".join(data_writes))
    else:
        extra_usage = [name for name in usage if name == "tenantry_routing"]
        extra_reads = [
            name
            for name in readable
            if name.startswith(("tenantry.", "tenantry_routing.")) and name != "tenantry.context"
        ]
    if extra_usage:
        problems.append("may use schema " + ", ".join(extra_usage))
    if extra_reads:
        problems.append("may read " + ", ".join(extra_reads))
    return problems
