"""The demo as a user runs it: ``tenantry demo`` in a subprocess on a scratch database.

These tests run once, on the first backend of ``TENANTRY_TEST_BACKENDS`` (the demo is the
same program on either server; the tracker's tests cover both backends).
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tenantry.testing import SYSTEM_URL, reachable, servers
from tests.support import Scratch, catalog_env

START_TIMEOUT = 90.0


@pytest.fixture(scope="session")
def demo_scratch(request: pytest.FixtureRequest) -> Iterator[Scratch]:
    if servers(request.config)[0] == "embedded":
        url = request.getfixturevalue("embedded_server").url
    else:
        url = reachable(SYSTEM_URL)
    db = Scratch(url)
    yield db
    db.drop()


@dataclass
class DemoProcess:
    """A running ``tenantry demo --json`` and what it printed."""

    proc: subprocess.Popen[str]
    report: dict[str, Any]
    stderr: list[str] = field(default_factory=list)
    pumps: list[threading.Thread] = field(default_factory=list)

    def url(self, slug: str) -> str:
        return next(t["url"] for t in self.report["tenants"] if t["slug"] == slug)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"tenantry demo did not stop within {timeout:g} s of signal {sig}")
        finally:
            self.close()

    def close(self) -> None:
        for pump in self.pumps:
            pump.join(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def demo_env(scratch: Scratch) -> dict[str, str]:
    env = catalog_env(
        scratch,
        TENANTRY_SECRET_KEYS=scratch.secret_keys,
        PYTHONUNBUFFERED="1",
    )
    return env


def tenantry_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tenantry.cli.main", *args]


def start_demo(scratch: Scratch, *args: str) -> DemoProcess:
    """Start ``tenantry demo --json`` on free ports and wait for its report."""
    return start_demo_process(demo_env(scratch), "--port", "0", "--admin-port", "0", "--json", *args)


def start_demo_process(env: dict[str, str], *args: str, cwd: Path | None = None) -> DemoProcess:
    """Start ``tenantry demo ARGS`` (``--json`` among them) with ``env`` and wait for its report."""
    proc = subprocess.Popen(
        tenantry_command("demo", *args),
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    stderr: list[str] = []

    def pump(stream: Any, sink: Any) -> None:
        for line in stream:
            sink(line)
        if sink is lines.put:
            lines.put(None)

    pumps = [
        threading.Thread(target=pump, args=(proc.stdout, lines.put), daemon=True),
        threading.Thread(target=pump, args=(proc.stderr, stderr.append), daemon=True),
    ]
    for thread in pumps:
        thread.start()
    running = DemoProcess(proc=proc, report={}, stderr=stderr, pumps=pumps)
    text = ""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:
            proc.kill()
            proc.wait()
            running.close()
            pytest.fail(f"tenantry demo printed no report (exit {proc.returncode}):\n{''.join(stderr)[-3000:]}")
        text += line
        try:
            report = json.loads(text)
        except json.JSONDecodeError:
            continue
        running.report = report
        return running


@pytest.fixture(scope="module")
def demo(demo_scratch: Scratch) -> Iterator[DemoProcess]:
    """``tenantry demo`` serving the scratch database; stopped with Ctrl-C (SIGINT) at the end,
    which must exit 0 and say so."""
    running = start_demo(demo_scratch)
    try:
        yield running
    finally:
        code = running.stop(signal.SIGINT)
        assert code == 0, "".join(running.stderr)[-3000:]
        assert "demo stopped" in "".join(running.stderr)
