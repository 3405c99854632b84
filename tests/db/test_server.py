"""The embedded server on its own: initialised under a private (mode 0700) directory when run
as root, and started again after its postmaster was killed with SIGKILL.

Runs on a private server in a directory of its own, never on the session's."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenantry.cli.main import main
from tenantry.db.server import EmbeddedServer


@pytest.fixture(scope="module")
def private_server() -> Iterator[EmbeddedServer]:
    # mkdtemp makes the parent 0700, as a careful user's or a CI's temporary directory is
    root = Path(tempfile.mkdtemp(prefix="tenantry-private-"))
    server = EmbeddedServer(root / "pg")
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


def test_initialises_under_a_private_parent_directory(private_server: EmbeddedServer) -> None:
    private_server.ensure_running(timeout=60)
    assert private_server.accepts_connections()
    # the data directory stays private; a root-owned parent gains only the traverse bit
    assert stat.S_IMODE(private_server.data_dir.stat().st_mode) == 0o700
    if os.geteuid() == 0:
        assert stat.S_IMODE(private_server.data_dir.parent.stat().st_mode) == 0o701


def test_start_after_sigkill_starts_the_server(
    private_server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [k for k in os.environ if k.startswith("TENANTRY_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TENANTRY_DATA_DIR", str(private_server.data_dir))
    private_server.ensure_running(timeout=60)
    pid = private_server.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while private_server.accepts_connections():
        assert time.monotonic() < deadline, "the killed server still accepts connections"
        time.sleep(0.05)
    # what a crash leaves: the pid file (naming a zombie or a gone process) and the socket
    assert (private_server.data_dir / "postmaster.pid").exists()
    capsys.readouterr()

    assert main(["server", "status"]) == 1
    assert "running:        no" in capsys.readouterr().out
    assert main(["server", "start"]) == 0
    assert capsys.readouterr().out.startswith("started: ")
    assert private_server.accepts_connections() and private_server.pid() not in (None, pid)
    assert main(["server", "status"]) == 0
    assert main(["server", "start"]) == 0
    assert "already running" in capsys.readouterr().out
