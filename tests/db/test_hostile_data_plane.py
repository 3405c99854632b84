"""Hostile cases for a data-plane process: with the runtime role's or the reader role's
connection (all such a process holds), try to write the catalog, become the owner or the admin,
and read secrets. Each attempt's negative control runs the same statement through the admin
connection (rolled back), where it works: the test could see the attack succeed.

Also: ``tenantry check`` (``tn.schema.role_problems()``) finds each privilege a role should not have,
and a data-plane ``Tenantry`` refuses control-plane work with a typed error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from tenantry import ControlPlaneOnly, Settings, Tenant, Tenantry
from tests.model_app import Base

#: what a data-plane connection tries (formatted with the owner's, the admin's and its own name)
ATTACKS = {
    "insert a tenant": "INSERT INTO tenantry.tenants (slug, name, plan) VALUES ('evil', 'Evil', 'free')",
    "reactivate through the view": "UPDATE tenantry_routing.tenants SET status = 'active' WHERE false",
    "repoint a placement": "UPDATE tenantry.placements SET cell = 'primary' WHERE false",
    "drop placements through the view": "DELETE FROM tenantry_routing.placements WHERE false",
    "claim a domain": "INSERT INTO tenantry_routing.domains (hostname, tenant_id, token)"
    " SELECT 'evil.example', id, 'xxxxxxxxxxxxxxxxxxxx' FROM tenantry_routing.tenants LIMIT 1",
    "truncate the audit log": "TRUNCATE tenantry.audit_log",
    "set role owner": "SET ROLE {owner}",
    "set role admin": "SET ROLE {admin}",
    "session authorization owner": "SET SESSION AUTHORIZATION {owner}",
    "session authorization admin": "SET SESSION AUTHORIZATION {admin}",
    "grant itself the owner": "GRANT {owner} TO {me}",
    "grant itself the secrets": "GRANT SELECT ON tenantry.secrets TO {me}",
    "read the secrets table": "SELECT * FROM tenantry.secrets",
    "read the runtime password": "SELECT value FROM tenantry.secrets WHERE name = 'runtime_password'",
    "read cell DSNs": "SELECT dsn, runtime_password FROM tenantry.cells",
    "read config layers as stored": "SELECT document FROM tenantry.config_layers",
    "read config history": "SELECT * FROM tenantry.config_versions",
    "read token hashes": "SELECT * FROM tenantry.api_tokens",
    "read the audit log": "SELECT * FROM tenantry.audit_log",
    "lift its own limits through the view": "UPDATE tenantry_routing.tenant_limits SET limits = '{{}}' WHERE false",
    "give itself an override": "INSERT INTO tenantry.tenant_limits (tenant_id, limits)"
    " SELECT id, '{{}}' FROM tenantry_routing.tenants LIMIT 1",
    "raise its plan's limits": "UPDATE tenantry_routing.plans SET limits = '{{}}' WHERE false",
    "create a view beside the routing views": "CREATE VIEW tenantry_routing.planted AS SELECT 1",
    "create a table in public": "CREATE TABLE public.planted (x int)",
    "create a schema": "CREATE SCHEMA planted",
}
#: what the reader may read by design, but the runtime role may not
RUNTIME_ONLY = {
    "read the routing views": "SELECT * FROM tenantry_routing.tenants",
    "read the context keys": "SELECT * FROM tenantry_routing.context_key",
}


@pytest.fixture(scope="module")
def plane(tn: Tenantry) -> Iterator[Tenantry]:
    """A data-plane Tenantry on the session catalog."""
    with Tenantry(tn.data_plane_settings(), metadata=Base.metadata) as plane:
        yield plane


@pytest.fixture(scope="module", params=["runtime", "reader"])
def role_conn(request: pytest.FixtureRequest, plane: Tenantry) -> Iterator[tuple[str, psycopg.Connection[Any]]]:
    s = plane.settings
    url = s.runtime_url if request.param == "runtime" else s.reader_url
    assert url is not None
    with psycopg.connect(url.get_secret_value(), autocommit=True) as conn:
        yield request.param, conn


def _statement(query: str, tn: Tenantry, me: str) -> sql.Composed:
    admin = conninfo_to_dict(tn.admin_url).get("user") or "postgres"
    names = {"owner": tn.settings.owner_role, "admin": admin, "me": me}
    return sql.SQL(query).format(**{k: sql.Identifier(v) for k, v in names.items()})


def _cases() -> list[Any]:
    found = [pytest.param(q, False, id=name) for name, q in ATTACKS.items()]
    return found + [pytest.param(q, True, id=name) for name, q in RUNTIME_ONLY.items()]


@pytest.mark.parametrize(("query", "runtime_only"), _cases())
def test_a_data_plane_connection_cannot(
    tn: Tenantry, role_conn: tuple[str, psycopg.Connection[Any]], query: str, runtime_only: bool
) -> None:
    kind, conn = role_conn
    statement = _statement(query, tn, str(conn.info.user))
    if runtime_only and kind == "reader":
        with conn.transaction(force_rollback=True):
            conn.execute(statement)  # the reader's part: routing needs it
        return
    with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
        conn.execute(statement)
    assert conn.execute("SELECT current_user, session_user").fetchone() == (conn.info.user, conn.info.user)
    # negative control: the admin connection runs it (and rolls it back)
    with tn.admin() as admin, admin.transaction(force_rollback=True):
        admin.execute(statement)


def test_the_reader_sees_no_secret_column(plane: Tenantry) -> None:
    with plane.catalog_reader() as conn:
        columns = conn.execute(
            "SELECT table_name || '.' || column_name FROM information_schema.columns"
            " WHERE table_schema = 'tenantry_routing'"
        ).fetchall()
    shown = {c[0] for c in columns}
    assert "cells.name" in shown and "tenants.slug" in shown  # the control: the query sees the views
    assert not {
        c for c in shown if c.split(".")[1] in ("dsn", "runtime_password", "token_hash", "value", "before", "after")
    }


def test_a_data_plane_tenantry_refuses_control_plane_work(make_tenant: Callable[..., Tenant], plane: Tenantry) -> None:
    slug = make_tenant("dp").slug  # the control plane may
    for work in (
        plane.tenants.list,
        plane.cells.list,
        lambda: plane.tenants.get(slug),
        lambda: plane.tenants.suspend(slug),
    ):
        with pytest.raises(ControlPlaneOnly):
            work()
    assert plane.tenants.lookup(slug).slug == slug  # the request path's read is its part


#: privileges a role must not have, and what `tenantry check` says of each
WIDENED = {
    "reader may insert": (
        "reader",
        "GRANT INSERT ON tenantry_routing.tenants TO {reader}",
        "may change tenantry_routing.tenants",
    ),
    "reader may read secrets": (
        "reader",
        "GRANT USAGE ON SCHEMA tenantry TO {reader}; GRANT SELECT ON tenantry.secrets TO {reader}",
        "may read tenantry.secrets",
    ),
    "reader may create in public": (
        "reader",
        "GRANT CREATE ON SCHEMA public TO {reader}",
        "may create objects in schema public",
    ),
    "reader may create schemas": ("reader", "GRANT CREATE ON DATABASE {db} TO {reader}", "may create schemas"),
    "runtime is the owner's member": ("runtime", "GRANT {owner} TO {runtime}", "is a member of"),
    "runtime may read the routing views": (
        "runtime",
        "GRANT USAGE ON SCHEMA tenantry_routing TO {runtime}",
        "may use schema tenantry_routing",
    ),
    "runtime may write the catalog": (
        "runtime",
        "GRANT UPDATE ON tenantry.tenants TO {runtime}",
        "may change tenantry.tenants",
    ),
}


@pytest.mark.parametrize(("kind", "grant", "said"), [pytest.param(*v, id=k) for k, v in WIDENED.items()])
def test_check_finds_a_role_that_can_do_more(tn: Tenantry, kind: str, grant: str, said: str) -> None:
    s = tn.settings
    role = s.reader_role if kind == "reader" else s.runtime_role
    assert role not in tn.schema.role_problems()  # the control: as init left it, nothing to say
    with tn.admin() as conn:
        names = {
            "reader": s.reader_role,
            "runtime": s.runtime_role,
            "owner": s.owner_role,
            "db": conn.info.dbname,
        }
        statement = sql.SQL(grant).format(**{k: sql.Identifier(v) for k, v in names.items()})
        revoke = sql.SQL(grant.replace("GRANT", "REVOKE").replace(" TO ", " FROM ")).format(
            **{k: sql.Identifier(v) for k, v in names.items()}
        )
        conn.execute(statement)
        try:
            found = tn.schema.role_problems()
        finally:
            conn.execute(revoke)
    assert any(said in problem for problem in found.get(role, [])), found
    assert role not in tn.schema.role_problems()


def test_credentials_prints_the_data_planes_urls_only(
    cli: Callable[..., tuple[int, str, str]], tn: Tenantry, make_tenant: Callable[..., Tenant]
) -> None:
    tenant = make_tenant("cred")
    code, out, _ = cli("credentials", "--json")
    found = json.loads(out)
    assert code == 0 and set(found) <= {"TENANTRY_RUNTIME_URL", "TENANTRY_READER_URL", "TENANTRY_CELL_RUNTIME_URLS"}
    users = {conninfo_to_dict(found[k]).get("user") for k in ("TENANTRY_RUNTIME_URL", "TENANTRY_READER_URL")}
    assert users == {tn.settings.runtime_role, tn.settings.reader_role}
    with Tenantry(Settings.from_env(found)) as plane:  # what it printed serves
        assert plane.settings.data_plane and plane.tenants.lookup(tenant.id).slug == tenant.slug
