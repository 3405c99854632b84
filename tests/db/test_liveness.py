"""Dead pooled connections and outages (issue 16, items 3 and 4).

A server that ended the pooled sessions (a restart; ``pg_terminate_backend`` of the runtime
connections stands in for one on the shared server) costs no request an error, on any path.
A private embedded server killed with SIGKILL fails requests fast while it is down, and
serves again within 2 s of accepting connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tenantry import DatabaseUnavailable, Tenantry
from tenantry.db import liveness
from tenantry.db.server import EmbeddedServer
from tenantry.testing import ScratchCatalog
from tests.model_app import Base

WARM = 4  # idle connections each pool holds before the "restart"


def _warm(tn: Tenantry) -> None:
    """Leave WARM idle connections in the psycopg pool and in the engine's pool."""
    with contextlib.ExitStack() as stack:
        for _ in range(WARM):
            stack.enter_context(tn.connection()).execute("SELECT 1")
    with contextlib.ExitStack() as stack:
        for _ in range(WARM):
            stack.enter_context(tn.engine().connect()).execute(sa.text("SELECT 1"))


async def _awarm(tn: Tenantry) -> None:
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(WARM):
            conn = await stack.enter_async_context(tn.async_connection())
            await conn.execute("SELECT 1")
        for _ in range(WARM):
            econn = await stack.enter_async_context(tn.async_engine().connect())
            await econn.execute(sa.text("SELECT 1"))


def _terminate_runtime_sessions(tn: Tenantry) -> int:
    """What a restart does to the pools: every runtime session ends (waiting until it has)."""
    with tn.admin() as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = %s",
            (tn.settings.runtime_role,),
        ).fetchall()
    return len(rows)


def _sync_requests(tn: Tenantry) -> list[BaseException]:
    errors: list[BaseException] = []
    for _ in range(WARM + 2):
        try:
            with tn.connection() as conn:
                conn.execute("SELECT count(*) FROM projects").fetchone()
        except Exception as err:
            errors.append(err)
        try:
            with tn.engine().begin() as econn:
                econn.execute(sa.text("SELECT count(*) FROM projects")).one()
        except Exception as err:
            errors.append(err)
    return errors


async def _async_requests(tn: Tenantry) -> list[BaseException]:
    errors: list[BaseException] = []
    for _ in range(WARM + 2):
        try:
            async with tn.async_connection() as conn:
                await (await conn.execute("SELECT count(*) FROM projects")).fetchone()
        except Exception as err:
            errors.append(err)
        try:
            async with tn.async_engine().begin() as econn:
                (await econn.execute(sa.text("SELECT count(*) FROM projects"))).one()
        except Exception as err:
            errors.append(err)
    return errors


def _restart_then_request(
    tn: Tenantry, slug: str, after_warming: Callable[[], None] = lambda: None
) -> list[BaseException]:
    with tn.tenant(slug):
        _warm(tn)

        async def run() -> list[BaseException]:
            await _awarm(tn)
            after_warming()
            assert _terminate_runtime_sessions(tn) >= 2 * WARM
            errors = await _async_requests(tn)
            await tn.router.aclose()  # the async pools belong to this loop
            return errors

        errors = asyncio.run(run())
        _terminate_runtime_sessions(tn)
        return errors + _sync_requests(tn)


@pytest.mark.parametrize("plan", ["free", "enterprise"])  # the shared pools; a tenant database's own
def test_dead_pooled_connections_cost_no_request(tn: Tenantry, make_tenant: Callable[..., object], plan: str) -> None:
    slug = make_tenant(plan=plan).slug  # type: ignore[attr-defined]
    assert _restart_then_request(tn, slug) == []


def test_negative_control_dead_connections_are_handed_out_without_the_check(
    tn: Tenantry, make_tenant: Callable[..., object], monkeypatch: pytest.MonkeyPatch
) -> None:
    slug = make_tenant().slug  # type: ignore[attr-defined]

    def defence_off() -> None:
        monkeypatch.setattr(liveness, "is_dead", lambda pgconn: pgconn.status != 0)  # status only: no poll

    errors = _restart_then_request(tn, slug, defence_off)
    assert len(errors) >= 4, errors  # each path handed out a dead connection at least once
    monkeypatch.undo()
    with tn.tenant(slug):  # the defence back on clears what the control left behind
        _sync_requests(tn)


def _held_across_a_restart(tn: Tenantry, slug: str) -> int:
    with tn.tenant(slug), tn.engine().connect() as conn:
        conn.execute(sa.text("SELECT 1"))
        conn.commit()
        _terminate_runtime_sessions(tn)
        count: int = conn.execute(sa.text("SELECT count(*) FROM projects")).scalar_one()
        conn.commit()
        return count


def test_a_connection_held_across_transactions_is_replaced_at_begin(
    tn: Tenantry, make_tenant: Callable[..., object], monkeypatch: pytest.MonkeyPatch
) -> None:
    slug = make_tenant().slug  # type: ignore[attr-defined]
    assert _held_across_a_restart(tn, slug) == 0
    with tn.tenant(slug):
        _sync_requests(tn)  # (the pools' other connections were ended too)
    monkeypatch.setattr(liveness, "is_dead", lambda pgconn: pgconn.status != 0)  # negative control
    with pytest.raises(DatabaseUnavailable):
        _held_across_a_restart(tn, slug)


def test_a_server_lost_mid_transaction_is_unavailable_on_every_path(
    tn: Tenantry, make_tenant: Callable[..., object]
) -> None:
    """What in-flight requests see when the server goes away: 503s, not 500s."""
    slug = make_tenant().slug  # type: ignore[attr-defined]
    with tn.tenant(slug):
        with pytest.raises(DatabaseUnavailable):  # at the commit of tn.connection()
            with tn.connection() as conn:
                conn.execute("SELECT count(*) FROM projects").fetchone()
                _terminate_runtime_sessions(tn)
        with pytest.raises(DatabaseUnavailable):  # a statement of an engine's transaction
            with tn.engine().begin() as econn:
                econn.execute(sa.text("SELECT 1"))
                _terminate_runtime_sessions(tn)
                econn.execute(sa.text("SELECT count(*) FROM projects"))
        assert _sync_requests(tn) == []


# -- a private server, killed and restarted -------------------------------------------------------


@pytest.fixture(scope="module")
def private() -> Iterator[tuple[EmbeddedServer, Tenantry, str]]:
    """A server of this module's own (it gets killed), a catalog on it, one tenant."""
    root = Path(tempfile.mkdtemp(prefix="tenantry-outage-"))
    root.chmod(0o755)
    server = EmbeddedServer(root / "pg")
    server.ensure_running()
    scratch = ScratchCatalog(server.url, prefix="tenantry_outage", role_prefix="to").create()
    tn = Tenantry(scratch.settings(), metadata=Base.metadata, actor="pytest")
    try:
        tn.schema.init()
        slug = tn.tenants.create(f"o-{uuid.uuid4().hex[:8]}").slug
        yield server, tn, slug
    finally:
        tn.close()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _kill(server: EmbeddedServer) -> None:
    pid = server.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.pid() is not None:  # the postmaster is gone
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _until_served(request: Callable[[], object], limit: float) -> float:
    """Seconds until ``request`` succeeds (tried every 50 ms), failing after ``limit``."""
    t0 = time.monotonic()
    while True:
        try:
            request()
            return time.monotonic() - t0
        except DatabaseUnavailable:
            if time.monotonic() - t0 > limit:
                raise
            time.sleep(0.05)


def _select(tn: Tenantry) -> None:
    with tn.connection() as conn:
        conn.execute("SELECT count(*) FROM projects").fetchone()


def _select_engine(tn: Tenantry) -> None:
    with tn.engine().connect() as conn:
        conn.execute(sa.text("SELECT count(*) FROM projects")).one()


def test_an_outage_fails_fast_and_ends_within_two_seconds(private: tuple[EmbeddedServer, Tenantry, str]) -> None:
    server, tn, slug = private
    with tn.tenant(slug):
        _warm(tn)
        _kill(server)
        # backends outlive their postmaster by a moment, and a checkout that sends nothing can
        # still get one of their connections: from the first refusal on, every request fails
        # (each pool's warm connections: the engine's too, which a busy machine's orphaned
        # backends may keep answering a moment longer)
        requests = (lambda: _select(tn), lambda: _select_engine(tn))
        refused_by = time.monotonic() + 2.0
        for request in requests:
            while True:
                try:
                    request()
                except DatabaseUnavailable:
                    break
                assert time.monotonic() < refused_by, "requests were still served 2 s after the server was killed"
                time.sleep(0.02)
        outage_end = time.monotonic() + 3.0
        slowest = 0.0
        while time.monotonic() < outage_end:  # every request fails, fast, however often asked
            for request in (*requests, lambda: tn.engine().connect().close()):
                t0 = time.monotonic()
                with pytest.raises(DatabaseUnavailable):
                    request()
                slowest = max(slowest, time.monotonic() - t0)
            time.sleep(0.1)
        assert slowest <= 1.0, f"a request waited {slowest:.2f} s while the server was down"

        server.ensure_running()  # returns once the server accepts connections
        back = time.monotonic()
        _until_served(lambda: _select(tn), 2.0)
        with tn.engine().begin() as econn:
            econn.execute(sa.text("SELECT count(*) FROM projects")).one()

        async def served_async() -> None:
            async with tn.async_connection() as conn:
                await conn.execute("SELECT 1")
            async with tn.async_engine().begin() as econn:
                await econn.execute(sa.text("SELECT 1"))
            await tn.router.aclose()

        asyncio.run(served_async())
        assert time.monotonic() - back <= 2.0
        assert _sync_requests(tn) == []
