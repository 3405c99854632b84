"""Shared fixtures: real PostgreSQL servers (embedded and system), a catalog, tenants.

Most come from tenantry's own pytest plugin (:mod:`tenantry.pytest_plugin`: ``tn``,
``make_tenant``, ``tier``, ``make_tier_tenant``, the servers); this file gives them the
model app's tables and the project's older names. Every database test runs against each
server named in ``TENANTRY_TEST_BACKENDS`` (the ini file says ``embedded,system``). A server
that cannot be reached fails the run with a clear message; it is never skipped silently.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# the plain modules the tests share: their asserts explain themselves as the tests' do
pytest.register_assert_rewrite(
    *(f"tests.{name}support" for name in ("", "api.", "branding.", "config.", "migrations.", "examples.", "e2e."))
)

import sqlalchemy as sa  # noqa: E402

from tenantry import Tenantry  # noqa: E402
from tenantry.db.server import EmbeddedServer  # noqa: E402
from tenantry.testing import (  # noqa: E402
    SYSTEM_URL,
    ScratchCatalog,  # noqa: E402
    reachable,
    servers,
)
from tests.model_app import Base  # noqa: E402
from tests.support import Scratch  # noqa: E402

#: the fixtures of tenantry's pytest plugin (also loaded by its entry point once installed)
pytest_plugins = ["tenantry.pytest_plugin", "pytester"]


@pytest.fixture(scope="session")
def tenantry_metadata() -> sa.MetaData:
    """The model app's tables, for the plugin's ``tn``."""
    return Base.metadata


# the project's own names for the plugin's fixtures
@pytest.fixture(scope="session")
def embedded_server(tenantry_embedded_server: EmbeddedServer) -> EmbeddedServer:
    return tenantry_embedded_server


@pytest.fixture(scope="session")
def backend(tenantry_server: str) -> str:
    return tenantry_server


@pytest.fixture(scope="session")
def server_url(tenantry_server_url: str) -> str:
    """Superuser URL to the ``postgres`` database of the backend under test."""
    return tenantry_server_url


@pytest.fixture(scope="session")
def scratch(tenantry_catalog: ScratchCatalog) -> ScratchCatalog:
    return tenantry_catalog


@pytest.fixture
def fresh_scratch(server_url: str) -> Iterator[Scratch]:
    """A database of the test's own (for tests of init itself)."""
    db = Scratch(server_url)
    yield db
    db.drop()


@pytest.fixture(scope="session")
def other_server_url(backend: str, request: pytest.FixtureRequest) -> str:
    """Superuser URL of a second, different PostgreSQL server (the other backend)."""
    if backend == "system":
        server: EmbeddedServer = request.getfixturevalue("embedded_server")
        return server.url
    return reachable(SYSTEM_URL)


@pytest.fixture
def second_cell(other_server_url: str) -> Iterator[Scratch]:
    """A scratch database on the other server, to register as a cell; its tenant databases
    and roles are dropped at the end."""
    db = Scratch(other_server_url)
    yield db
    db.drop()


@pytest.fixture
def cli(
    scratch: Scratch, tn: Tenantry, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """Run ``tenantry`` in-process against the session's scratch database: ``cli(*args)`` gives
    ``(exit code, stdout, stderr)``."""
    from tenantry.cli.main import main

    monkeypatch.setenv("TENANTRY_DATABASE_URL", scratch.url)
    monkeypatch.setenv("TENANTRY_OWNER_ROLE", scratch.owner)
    monkeypatch.setenv("TENANTRY_RUNTIME_ROLE", scratch.runtime)
    monkeypatch.setenv("TENANTRY_READER_ROLE", scratch.reader)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture(scope="module")
def demo_db(request: pytest.FixtureRequest) -> Iterator[Scratch]:
    """A scratch database for a running ``tenantry demo``, on the first backend only (the demo
    is the same program on either server)."""
    first = servers(request.config)[0]
    url = request.getfixturevalue("embedded_server").url if first == "embedded" else reachable(SYSTEM_URL)
    db = Scratch(url)
    yield db
    db.drop()


@pytest.fixture(scope="module")
def demo(demo_db: Scratch) -> Iterator[Any]:
    """``tenantry demo --json`` running on :func:`demo_db` (a ``tests.e2e.support.DemoProcess``);
    it must stop cleanly on SIGINT at the end."""
    from tests.e2e.support import start_demo

    running = start_demo(demo_db)
    try:
        yield running
    finally:
        assert running.stop(signal.SIGINT) == 0, "".join(running.stderr)[-3000:]


#: the slowest files (seconds of both servers' tests, measured 2026-12-08): handed out first, so
#: that with ``--dist loadfile`` no worker is left running a long file alone at the end
SLOW_FIRST = (
    "tests/api/test_schemathesis.py",
    "tests/services/test_moves.py",
    "tests/migrations/test_plugin_chains.py",
    "tests/e2e/test_readme.py",
    "tests/e2e/test_browser.py",
    "tests/services/test_move_tables.py",
    "tests/api/test_jobs.py",
    "tests/db/test_scope_sharing.py",
    "tests/examples/test_tracker_features.py",
    "tests/migrations/test_workers.py",
    "tests/plugins/test_tables.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow files first (a stable sort: each file keeps its own order)."""
    rank = {path: i for i, path in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))
