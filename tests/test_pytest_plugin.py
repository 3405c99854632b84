"""tenantry's pytest plugin, used as an app's test suite would use it: a conftest that gives
the app's tables, tests on every tier, a client that calls the app as a tenant's site, and a
server that cannot be reached failing the run (never skipping it)."""

from __future__ import annotations

import pytest

from tenantry.db.server import EmbeddedServer

CONFTEST = """
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tenantry import TenantScoped


class Base(DeclarativeBase):
    pass


class Note(TenantScoped, Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    body: Mapped[str] = mapped_column(sa.Text)


@pytest.fixture(scope="session")
def tenantry_metadata():
    return Base.metadata
"""

TESTS = """
import asyncio

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tenantry import current_tenant
from tenantry.web import SubdomainResolver, TenantMiddleware


def test_each_tenant_sees_its_own_rows(tn, make_tier_tenant, tier):
    a, b = make_tier_tenant("a"), make_tier_tenant("b")
    assert tn.tenants.placement(a.slug).isolation.value == tier
    with tn.tenant(a.slug), tn.connection() as conn:
        conn.execute("INSERT INTO notes (body) VALUES ('mine')")
    with tn.tenant(b.slug), tn.connection() as conn:
        assert conn.execute("SELECT count(*) FROM notes").fetchone() == (0,)
    with tn.tenant(a.slug), tn.connection() as conn:
        assert conn.execute("SELECT body FROM notes").fetchall() == [("mine",)]


def test_the_client_calls_the_app_as_the_tenants_site(tn, make_tenant, tenant_client):
    tenant = make_tenant("site")

    async def home(request):
        return PlainTextResponse(current_tenant().slug)

    app = TenantMiddleware(Starlette(routes=[Route("/", home)]), tn, resolvers=[SubdomainResolver("localhost")])

    async def call():
        async with tenant_client(app, tenant.slug) as client:
            return await client.get("/")

    response = asyncio.run(call())
    assert response.status_code == 200 and response.text == tenant.slug
"""


def test_an_apps_suite_runs_on_the_plugins_fixtures(pytester: pytest.Pytester, embedded_server: EmbeddedServer) -> None:
    # (on one server: what is tested is the plugin; the suite tests both servers everywhere else)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest_subprocess(
        "-p", "tenantry.pytest_plugin", "--tenantry-servers", embedded_server.url, "-q"
    )
    result.assert_outcomes(passed=4)  # three tiers, and the client


def test_a_server_that_cannot_be_reached_fails_the_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app="def test_needs_a_server(tn):\n    pass\n")
    result = pytester.runpytest_subprocess(
        "-p", "tenantry.pytest_plugin", "--tenantry-servers", "host=127.0.0.1 port=1 user=postgres", "-q"
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*is not reachable*"])
