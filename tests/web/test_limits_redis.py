"""The edge's rate limits with their state in a real Redis (the ``limits`` package): shared by
two edges as by two processes, and what happens when Redis dies: fail open or fail closed,
a log line and a metric, never a 500, and limits back when it returns."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tenantry import Tenantry
from tenantry.observability import TenantryMetrics
from tenantry.web import PathPrefixResolver
from tenantry.web.limits import EdgeLimiter, RedisRates
from tests.web.edge_app import client, starlette_app, wrap
from tests.web.limits_support import header_items, make_plan

REDIS = ("127.0.0.1", 6379)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="module")
def redis_url() -> str:
    if not _answers(*REDIS):
        pytest.fail(
            f"no Redis answers at {REDIS[0]}:{REDIS[1]}: the limits' Redis tests need one"
            " (.ci/run starts it: redis-server --daemonize yes --port 6379 --save '')"
        )
    return f"redis://{REDIS[0]}:{REDIS[1]}/0"


@pytest.fixture
def own_redis() -> Iterator[tuple[str, Any]]:
    """A redis-server of this test's own on a free port (to kill): its URL and a handle whose
    ``kill()`` stops it and ``start()`` starts it again on the same port."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: apt-get install redis-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    class Server:
        process: subprocess.Popen[bytes] | None = None

        def start(self) -> None:
            self.process = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while not _answers("127.0.0.1", port):
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)

        def kill(self) -> None:
            if self.process is not None:
                self.process.kill()
                self.process.wait()
                self.process = None

    server = Server()
    server.start()
    try:
        yield f"redis://127.0.0.1:{port}/0", server
    finally:
        server.kill()


def edge(tn: Tenantry, limiter: EdgeLimiter) -> Any:
    return wrap(tn, starlette_app(tn, []), [PathPrefixResolver("/t")], limits=limiter)


def test_two_edges_share_each_tenants_budget(tn: Tenantry, make_tenant, run, redis_url: str) -> None:
    plan = make_plan(tn, {"requests_per_second": 2, "burst": 3})  # stated as 4 in any 2 s
    t = make_tenant("lim", plan=plan)
    limiters = [EdgeLimiter(tn, store=RedisRates(redis_url, timeout=0.5)) for _ in range(2)]
    one, two = (edge(tn, limiter) for limiter in limiters)

    async def main() -> list[Any]:
        answers = []
        try:
            async with client(one) as a, client(two) as b:
                for i in range(6):
                    answers.append(await (a if i % 2 else b).get(f"/t/{t.slug}/who"))
        finally:
            for limiter in limiters:
                await limiter.aclose()
        return answers

    answers = run(main())
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 429, 429]
    assert all(a.headers["ratelimit-policy"] == '"rate";q=4;w=2' for a in answers)
    refused = answers[4]
    assert header_items(refused.headers["ratelimit"])["rate"]["r"] == "0"
    assert 1 <= int(refused.headers["retry-after"]) <= 2
    assert 1 <= int(header_items(refused.headers["ratelimit"])["rate"]["t"]) <= 2
    assert refused.json()["type"] == "urn:tenantry:problem:rate-limited"


@pytest.mark.parametrize("fail_open", [True, False], ids=["fail-open", "fail-closed"])
def test_redis_dies_and_comes_back(
    tn: Tenantry, make_tenant, run, own_redis: tuple[str, Any], fail_open: bool, caplog: pytest.LogCaptureFixture
) -> None:
    url, server = own_redis
    t = make_tenant("lim", plan=make_plan(tn, {"requests_per_second": 1, "burst": 1}))
    metrics = TenantryMetrics()
    limiter = EdgeLimiter(tn, store=RedisRates(url, timeout=0.2), fail_open=fail_open, metrics=metrics)
    app = wrap(tn, starlette_app(tn, []), [PathPrefixResolver("/t")], limits=limiter, metrics=metrics)

    def codes(n: int) -> list[Any]:
        async def main() -> list[Any]:
            try:
                async with client(app) as c:
                    return [await c.get(f"/t/{t.slug}/who") for _ in range(n)]
            finally:
                await limiter.aclose()  # (its connections belong to this event loop)

        return run(main())

    assert [a.status_code for a in codes(2)] == [200, 429]
    server.kill()
    with caplog.at_level(logging.WARNING, logger="tenantry.limits"):
        down = codes(4)
    assert [a.status_code for a in down] == ([200] * 4 if fail_open else [503] * 4)
    if not fail_open:
        assert all(a.headers["retry-after"] == "1" for a in down)
        assert {a.json()["type"] for a in down} == {"urn:tenantry:problem:overloaded"}
    said = [r.getMessage() for r in caplog.records if "out of reach" in r.getMessage()]
    assert len(said) == 1 and ("failing open" if fail_open else "failing closed") in said[0]  # once, not per request
    exposed = metrics.exposition().decode()
    assert "tenantry_limiter_errors_total 1.0" in exposed  # then left alone for a second
    assert "tenantry_limiter_store_up 0.0" in exposed
    if not fail_open:
        assert 'tenantry_limit_refusals_total{limit="store",plan="' in exposed
    server.start()
    time.sleep(1.05)  # the back-off
    with caplog.at_level(logging.WARNING, logger="tenantry.limits"):
        back = codes(2)
    assert [a.status_code for a in back] == [200, 429]
    assert any("answers again" in r.getMessage() for r in caplog.records)
    assert "tenantry_limiter_store_up 1.0" in metrics.exposition().decode()
