"""Creating the app's tables in one schema of one database, each secured with RLS.

The same code deploys the pooled tables, a schema-tier tenant's schema and a database-tier
tenant's database: the tables of the app's metadata, created where tenantry says (schema
translation), with row-level security enabled, forced and tenantry's policy on each.
Idempotent: existing tables are kept, policies re-applied, widening policies removed.
"""

from __future__ import annotations

import psycopg
import sqlalchemy as sa
from psycopg import sql

from tenantry.db import rls
from tenantry.db.connect import control_plane_url
from tenantry.errors import DatabaseUnavailable

__all__ = ["deploy_tables"]

#: serialises deploys into one database
DEPLOY_LOCK = 0x74656E64


def deploy_tables(
    url: str,
    metadata: sa.MetaData,
    *,
    schema: str,
    owner: str,
    runtime: str,
) -> rls.DeployReport:
    """Deploy ``metadata``'s tables into ``schema`` of the database at ``url`` (admin)."""
    tables = rls.validate_metadata(metadata)
    engine = sa.create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(control_plane_url(url)), poolclass=sa.NullPool
    )
    try:
        with engine.begin() as conn:
            raw = conn.connection.driver_connection
            assert isinstance(raw, psycopg.Connection)
            raw.execute("SELECT pg_advisory_xact_lock(%s)", (DEPLOY_LOCK,))
            existing = {
                r[0] for r in raw.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)).fetchall()
            }
            raw.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
            metadata.create_all(conn.execution_options(schema_translate_map={None: schema}), tables=tables)
            dropped: list[str] = []
            for table in tables:
                # a permissive policy beside tenantry's would widen what tenants see
                dropped += [f"{table.name}.{name}" for name in rls.drop_foreign_policies(raw, schema, table.name)]
                rls.apply_policies(raw, schema, table.name, runtime)
            raw.execute("RESET ROLE")
    except sa.exc.OperationalError as err:
        raise DatabaseUnavailable(f"cannot reach PostgreSQL: {err.orig}") from err
    finally:
        engine.dispose()
    return rls.DeployReport(
        schema=schema,
        created=[t.name for t in tables if t.name not in existing],
        secured=[t.name for t in tables],
        dropped_policies=dropped,
    )
