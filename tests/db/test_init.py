"""``init``: roles, catalog, app tables; idempotent; refuses unsafe runtime roles."""

from __future__ import annotations

from importlib import resources

import psycopg
import pytest
from psycopg import sql

from tenantry import CatalogNotInitialised, Tenantry, UnsafeRuntimeRole
from tenantry.db import catalog
from tests.model_app import TABLES, Base


def _shipped() -> list[str]:
    """The catalog migrations this tenantry ships, in order."""
    folder = resources.files("tenantry.db").joinpath("sql/catalog")
    return sorted(f.name for f in folder.iterdir() if f.name.endswith(".sql"))


def test_init_is_idempotent_and_secures_tables(fresh_scratch) -> None:
    tn = Tenantry(fresh_scratch.settings(), metadata=Base.metadata)
    try:
        first = tn.schema.init()
        shipped = _shipped()
        assert first.migrations_applied == shipped and shipped[0] == "0001_catalog.sql"
        assert set(first.roles_created) == {fresh_scratch.owner, fresh_scratch.runtime, fresh_scratch.reader}
        second = tn.schema.init()
        assert second.migrations_applied == [] and second.roles_created == []
        assert second.version == catalog.head_version()
        assert tn.schema.unprotected_tables() == []
        with tn.admin() as conn:
            roles = dict(
                (r[0], r[1:])
                for r in conn.execute(
                    "SELECT rolname, rolsuper, rolbypassrls, rolcanlogin, rolcreatedb, rolcreaterole"
                    " FROM pg_roles WHERE rolname = ANY(%s)",
                    ([fresh_scratch.owner, fresh_scratch.runtime],),
                ).fetchall()
            )
            assert roles[fresh_scratch.runtime] == (False, False, True, False, False)
            assert roles[fresh_scratch.owner][:2] == (False, False)
            owners = {
                r[0]
                for r in conn.execute(
                    "SELECT tableowner FROM pg_tables WHERE schemaname IN ('tenantry', %s)",
                    (tn.settings.pooled_schema,),
                ).fetchall()
            }
            assert owners == {fresh_scratch.owner}
            flags = conn.execute(
                "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND relkind = 'r'",
                (tn.settings.pooled_schema,),
            ).fetchall()
            assert sorted(flags) == sorted((t, True, True) for t in TABLES)
    finally:
        tn.close()


def test_tenant_traffic_needs_catalog(fresh_scratch) -> None:
    tn = Tenantry(fresh_scratch.settings())
    with pytest.raises(CatalogNotInitialised, match="tenantry init"):
        tn.tenants.list()
    with pytest.raises(CatalogNotInitialised):
        with tn.connection():
            pass


def test_superuser_runtime_is_refused(scratch, tn) -> None:
    """``tn`` initialised the catalog of ``scratch``; the superuser's URL then serves as runtime."""
    tn = Tenantry(scratch.settings(runtime_url=scratch.url))
    with pytest.raises(UnsafeRuntimeRole, match="superuser"):
        with tn.connection():
            pass
    with pytest.raises(UnsafeRuntimeRole):
        tn.engine()


def test_owner_member_runtime_is_refused(fresh_scratch) -> None:
    tn = Tenantry(fresh_scratch.settings(), metadata=Base.metadata)
    tn.schema.init()
    with psycopg.connect(fresh_scratch.url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} BYPASSRLS").format(sql.Identifier(fresh_scratch.runtime)))
    try:
        with pytest.raises(UnsafeRuntimeRole, match="BYPASSRLS"):
            with tn.connection():
                pass
    finally:
        tn.close()
    # init repairs the role
    tn2 = Tenantry(fresh_scratch.settings(), metadata=Base.metadata)
    tn2.schema.init()
    with tn2.connection() as conn:
        conn.execute("SELECT 1")
    tn2.close()


def test_concurrent_inits_converge(fresh_scratch) -> None:
    import threading

    errors: list[BaseException] = []

    def run() -> None:
        try:
            Tenantry(fresh_scratch.settings(), metadata=Base.metadata).schema.init()
        except BaseException as err:  # pragma: no cover - the assertion reports it
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    tn = Tenantry(fresh_scratch.settings())
    with tn.admin() as conn:
        assert catalog.catalog_version(conn) == catalog.head_version()
        assert conn.execute("SELECT count(*) FROM tenantry.schema_migrations").fetchone() == (len(_shipped()),)
        assert conn.execute("SELECT count(*) FROM tenantry.context_key").fetchone() == (1,)


def test_runtime_owning_a_tenant_table_is_refused(fresh_scratch) -> None:
    tn = Tenantry(fresh_scratch.settings(), metadata=Base.metadata)
    tn.schema.init()
    schema = tn.settings.pooled_schema
    with psycopg.connect(fresh_scratch.url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER TABLE {} OWNER TO {}").format(
                sql.Identifier(schema, "comments"), sql.Identifier(fresh_scratch.runtime)
            )
        )
    try:
        with pytest.raises(UnsafeRuntimeRole, match="owns 1"):
            with tn.connection():
                pass
    finally:
        tn.close()


def test_init_refreshes_database_tier_databases_whose_local_objects_are_older(tn: Tenantry, make_tenant) -> None:
    """After an upgrade, `init` brings every database-tier tenant's own database up to this
    tenantry's policy functions and context view (bindings are signed for them), once."""
    from tenantry.services.provisioning import database_url

    tenant = make_tenant("older", plan="enterprise")
    place = tn.tenants.placement(tenant.id)
    assert place is not None and place.database is not None
    url = database_url(tn.cells.admin_url(place.cell), place.database)
    with psycopg.connect(url, autocommit=True) as db:  # as an older tenantry left it
        db.execute("DROP FUNCTION tenantry.reset_session()")
    with tn.admin() as conn:
        conn.execute("UPDATE tenantry.placements SET local_digest = NULL WHERE tenant_id = %s", (tenant.id,))
    assert place.database in tn.schema.init().databases_refreshed
    with psycopg.connect(url, autocommit=True) as db:
        assert db.execute("SELECT to_regprocedure('tenantry.reset_session()')").fetchone() != (None,)
    assert place.database not in tn.schema.init().databases_refreshed
    with tn.tenant(tenant.slug), tn.connection() as conn:
        assert conn.execute("SELECT count(*) FROM projects").fetchone() == (0,)
