"""Shared fixtures: real PostgreSQL servers (embedded and system), a catalog, tenants.

Every database test runs against each backend named in ``TENANTRY_TEST_BACKENDS``
(default ``embedded,system``). A backend that cannot be reached fails the run with a clear
message; it is never skipped silently.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tenantry import Tenant, Tenantry
from tenantry.db.server import EmbeddedServer
from tenantry.testing import ScratchCatalog
from tests.model_app import Base

SYSTEM_URL = os.environ.get("TENANTRY_TEST_SYSTEM_URL", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
BACKENDS = [b.strip() for b in os.environ.get("TENANTRY_TEST_BACKENDS", "embedded,system").split(",") if b.strip()]


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[EmbeddedServer]:
    """One embedded server for the whole run, in a fresh directory, stopped at the end."""
    root = Path(tempfile.mkdtemp(prefix="tenantry-test-"))
    root.chmod(0o755)
    server = EmbeddedServer(root / "pg")
    try:
        server.ensure_running()
    except Exception as err:  # pragma: no cover - environment failure
        pytest.fail(f"cannot start the embedded PostgreSQL server: {err}")
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def _system_base_url() -> str:
    try:
        with psycopg.connect(SYSTEM_URL, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as err:
        pytest.fail(
            f"the system PostgreSQL at {SYSTEM_URL!r} is not reachable ({str(err).strip()});"
            " start it, point TENANTRY_TEST_SYSTEM_URL at a server, or set"
            " TENANTRY_TEST_BACKENDS=embedded"
        )
    return SYSTEM_URL


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def server_url(backend: str, request: pytest.FixtureRequest) -> str:
    """Superuser URL to the ``postgres`` database of the backend under test."""
    if backend == "embedded":
        server: EmbeddedServer = request.getfixturevalue("embedded_server")
        return server.url
    if backend == "system":
        return _system_base_url()
    raise pytest.UsageError(f"unknown backend {backend!r} in TENANTRY_TEST_BACKENDS")


class Scratch(ScratchCatalog):
    """A fresh database with its own pair of roles (created at once), dropped with them at the end."""

    def __init__(self, server_url: str) -> None:
        super().__init__(server_url, prefix="tenantry_test", role_prefix="tt")
        self.create()


@pytest.fixture(scope="session")
def scratch(server_url: str) -> Iterator[Scratch]:
    db = Scratch(server_url)
    yield db
    db.drop()


@pytest.fixture
def fresh_scratch(server_url: str) -> Iterator[Scratch]:
    """A database of the test's own (for tests of init itself)."""
    db = Scratch(server_url)
    yield db
    db.drop()


@pytest.fixture(scope="session")
def tn(scratch: Scratch) -> Iterator[Tenantry]:
    """A Tenantry with the catalog initialised and the model app deployed."""
    tenantry = Tenantry(scratch.settings(), metadata=Base.metadata, actor="pytest")
    tenantry.init()
    yield tenantry
    tenantry.close()


@pytest.fixture
def make_tenant(tn: Tenantry) -> Callable[..., Tenant]:
    """Create a tenant with a unique slug (prefix optional; pooled unless ``plan`` says)."""

    def make(prefix: str = "t", **kwargs: object) -> Tenant:
        return tn.create_tenant(f"{prefix}-{uuid.uuid4().hex[:10]}", **kwargs)  # type: ignore[arg-type]

    return make


#: the plan of each isolation tier, as seeded
TIER_PLANS = {"pooled": "free", "schema": "business", "database": "enterprise"}


@pytest.fixture(params=list(TIER_PLANS))
def tier(request: pytest.FixtureRequest) -> str:
    """Each isolation tier in turn: tests that take it run the same code on all three."""
    return str(request.param)


@pytest.fixture
def make_tier_tenant(make_tenant: Callable[..., Tenant], tier: str) -> Callable[..., Tenant]:
    """Create a tenant on the tier under test."""

    def make(prefix: str = "t", **kwargs: object) -> Tenant:
        return make_tenant(prefix, plan=TIER_PLANS[tier], **kwargs)

    return make


@pytest.fixture(scope="session")
def other_server_url(backend: str, request: pytest.FixtureRequest) -> str:
    """Superuser URL of a second, different PostgreSQL server (the other backend)."""
    if backend == "system":
        server: EmbeddedServer = request.getfixturevalue("embedded_server")
        return server.url
    return _system_base_url()


@pytest.fixture
def second_cell(other_server_url: str) -> Iterator[Scratch]:
    """A scratch database on the other server, to register as a cell; its tenant databases
    and roles are dropped at the end."""
    db = Scratch(other_server_url)
    yield db
    db.drop()


@pytest.fixture
def cli(scratch: Scratch, tn: Tenantry, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
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
    url = request.getfixturevalue("embedded_server").url if BACKENDS[0] == "embedded" else _system_base_url()
    db = Scratch(url)
    yield db
    db.drop()


@pytest.fixture(scope="module")
def demo(demo_db: Scratch) -> Iterator[Any]:
    """``tenantry demo --json`` running on :func:`demo_db` (a ``tests.e2e.conftest.DemoProcess``);
    it must stop cleanly on SIGINT at the end."""
    from tests.e2e.conftest import start_demo

    running = start_demo(demo_db)
    try:
        yield running
    finally:
        assert running.stop(signal.SIGINT) == 0, "".join(running.stderr)[-3000:]
