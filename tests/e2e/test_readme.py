"""The README, walked top to bottom (issue 12): every command of its shell blocks runs, in
order, on one data directory, as a new user would run them from ``bash scripts/demo`` on.

The walk's environment is the one the README implies: no ``TENANTRY_DATABASE_URL``, so the CLI
starts and reuses the embedded server, whose data lives in ``TENANTRY_DATA_DIR`` (a directory
of this test's own); the working directory is a project of the user's own, holding the
README's ``myapp`` (whose tables are the example tracker's, the app the demo runs) and the
``acme.png`` it uploads. ``tenantry`` commands run in-process (a process each would cost
seconds); servers (``tenantry demo``, ``tenantry api serve``) run as processes of their own
until the end of their block, and ``curl`` runs as itself.

Every command must match a row of :data:`STEPS`, which says how it runs and, where the walk
cannot run it as written (a venv to create, the suite itself, a second server it does not
have), what stands in for it and why. A command that no row knows, or that fails, fails the
walk naming its README line: a README edit that breaks a step fails here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.branding.images import png
from tests.e2e.support import DemoProcess, start_demo_process, tenantry_command

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SHELL_BLOCKS = {"bash", "sh", "shell"}
#: how long a server may take to answer its first request
READY_TIMEOUT = 60.0


# -- the README's commands ----------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One command of the README: its line, and its text (continuation lines joined, the
    trailing comment dropped)."""

    line: int
    text: str

    def __str__(self) -> str:
        return f"README.md line {self.line}: {self.text}"


def readme_blocks(text: str) -> list[list[Step]]:
    """The commands of each fenced shell block (```bash, ```sh, ```shell), in order."""
    blocks: list[list[Step]] = []
    language: str | None = None  # None: outside a fence
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        fence = re.match(r"^```(\S*)\s*$", line)
        if fence:
            if language is None:
                language = fence.group(1)
                if language in SHELL_BLOCKS:
                    blocks.append([])
            else:
                language = None
            continue
        if language not in SHELL_BLOCKS:
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        command = " ".join(_uncommented(pending + line).split())
        pending = ""
        if command:
            blocks[-1].append(Step(start, command))
    return blocks


def _uncommented(line: str) -> str:
    """``line`` without its trailing ``# comment`` (a ``#`` in quotes or in a word is none)."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line


# -- the walk -------------------------------------------------------------------------------


@dataclass
class Server:
    """A long-running command the walk started: stopped with Ctrl-C at its block's end."""

    step: Step
    proc: subprocess.Popen[str] | None = None
    log: Path | None = None
    demo: DemoProcess | None = None

    def stop(self) -> None:
        if self.demo is not None:
            code = self.demo.stop(signal.SIGINT)
            detail = "".join(self.demo.stderr)[-2000:]
        else:
            assert self.proc is not None and self.log is not None
            self.proc.send_signal(signal.SIGINT)
            try:
                code = self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"{self.step}: did not stop within 30 s of Ctrl-C")
            detail = self.log.read_text()[-2000:]
        assert code == 0, f"{self.step}: exit {code} on Ctrl-C\n{detail}"


@dataclass
class Walk:
    project: Path
    """The working directory: the user's project."""
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    ports: dict[str, str] = field(default_factory=dict)
    """The README's ports -> the free ones the walk's servers listen on."""
    servers: list[Server] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """The shell's environment, for a process of its own (the checkout importable, as the
        venv's editable install makes it)."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def tenantry(self, step: Step, argv: list[str]) -> str:
        """``tenantry ARGV`` in-process, as the shell would run it; its stdout."""
        from tenantry.cli.main import main

        code = main(argv)
        out = self.capsys.readouterr()
        assert code == 0, f"{step}: exit {code}\n{out.err[-2000:]}"
        return out.out

    def finish_block(self) -> None:
        servers, self.servers = self.servers, []
        for server in reversed(servers):
            server.stop()
        self.ports.clear()


def _free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def _wait_for(step: Step, url: str, proc: subprocess.Popen[str], log: Path) -> httpx.Response:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{step}: exited {proc.returncode} before answering\n{log.read_text()[-2000:]}")
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                pytest.fail(f"{step}: {url} did not answer within {READY_TIMEOUT:g} s")
            time.sleep(0.1)


# -- how each kind of step runs -------------------------------------------------------------


def run_nothing(walk: Walk, step: Step, command: str) -> None:
    pass


def run_suite(walk: Walk, step: Step, command: str) -> None:
    done = subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")], capture_output=True, text=True)
    assert done.returncode == 0, f"{step}: .ci/run does not parse: {done.stderr}"


def run_export(walk: Walk, step: Step, command: str) -> None:
    name, _, value = shlex.split(command)[1].partition("=")
    walk.monkeypatch.setenv(name, value)


def run_installed(walk: Walk, step: Step, command: str) -> None:
    import uvicorn  # noqa: F401

    import tenantry.api  # noqa: F401 - the web extra's admin API imports


def run_demo(walk: Walk, step: Step, command: str) -> None:
    args = shlex.split(command)[2:]  # after `tenantry demo`, or `bash scripts/demo`
    demo = start_demo_process(walk.env(), *args, "--port", "0", "--admin-port", "0", "--json", cwd=walk.project)
    walk.servers.append(Server(step, demo=demo))
    acme = demo.url("acme")
    port = acme.rsplit(":", 1)[1].strip("/")
    site = httpx.get(f"http://127.0.0.1:{port}/login", headers={"host": f"acme.localhost:{port}"}, timeout=10)
    assert site.status_code == 200 and "Acme" in site.text, f"{step}: acme's site answered {site.status_code}"
    admin = httpx.get(demo.report["admin_api"]["url"], timeout=10)
    assert admin.status_code == 200 and "tenantry admin API" in admin.text, (
        f"{step}: the admin API's / answered {admin.status_code}"
    )


def run_serve(walk: Walk, step: Step, command: str) -> None:
    argv = shlex.split(command)
    readme_port = argv[argv.index("--port") + 1]
    port = walk.ports.setdefault(readme_port, _free_port())
    argv[argv.index("--port") + 1] = port
    log = walk.project.parent / f"server-{step.line}.log"
    with log.open("w") as sink:  # uvicorn logs every request: a pipe nobody reads would fill
        proc = subprocess.Popen(
            tenantry_command(*argv[1:]),
            env=walk.env(),
            cwd=walk.project,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    walk.servers.append(Server(step, proc=proc, log=log))
    front = _wait_for(step, f"http://127.0.0.1:{port}/", proc, log)
    assert front.status_code == 200 and "tenantry admin API" in front.text, f"{step}: / answered {front.status_code}"


def run_token(walk: Walk, step: Step, command: str) -> None:
    out = walk.tenantry(step, shlex.split(command)[1:])
    secrets = re.findall(r"^tnt_\S+$", out, re.M)
    assert len(secrets) == 1, f"{step}: printed no token\n{out}"
    walk.monkeypatch.setenv("TOKEN", secrets[0])


def run_verify(walk: Walk, step: Step, command: str) -> None:
    from starlette.responses import PlainTextResponse

    from tenantry import Settings, Tenantry
    from tenantry.web import CustomDomainResolver, TenantMiddleware
    from tests.net_servers import AsgiServer

    settings = Settings.from_env({**os.environ, "TENANTRY_EMBEDDED": "1"})
    with Tenantry(settings) as tn:
        edge = TenantMiddleware(PlainTextResponse("the app"), tenantry=tn, resolvers=[CustomDomainResolver()])
        with AsgiServer(edge) as server:
            walk.tenantry(step, [*shlex.split(command)[1:], "--connect-to", server.address])


def run_cli(walk: Walk, step: Step, command: str) -> None:
    walk.tenantry(step, shlex.split(command)[1:])


def run_curl(walk: Walk, step: Step, command: str) -> None:
    done = subprocess.run(
        ["bash", "-c", re.sub(r"^curl ", "curl --fail-with-body -sS ", command)],
        env=walk.env(),
        cwd=walk.project,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"{step}: curl exit {done.returncode}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"


def server_url(walk: Walk) -> str:
    """The walk's server, as `tenantry server url` prints it (quoted for the shell)."""
    return shlex.quote(walk.tenantry(Step(0, "tenantry server url"), ["server", "url"]).strip())


@dataclass(frozen=True)
class Row:
    """How one kind of README command runs in the walk, and why so."""

    pattern: str
    """A regular expression the whole command matches."""
    run: Callable[[Walk, Step, str], None]
    why: str
    replace: tuple[tuple[str, str | Callable[[Walk], str]], ...] = ()
    """Text of the command changed before it runs (the ``why`` says why)."""

    def prepare(self, walk: Walk, text: str) -> str:
        """The command as it runs: this row's replacements made, and the README's ports
        replaced by those of the servers the walk runs in this block."""
        for old, new in self.replace:
            if old in text:
                text = text.replace(old, new(walk) if callable(new) else new)
        for readme_port, port in walk.ports.items():
            text = re.sub(rf"(?<=[:\s]){readme_port}\b", port, text)
        return text


#: THE TABLE: every kind of command the README shows, how the walk runs it, and why. The
#: first row whose pattern matches the whole command runs it; a command no row matches fails
#: the walk.
STEPS = (
    Row(
        r"bash scripts/demo( .*)?",
        run_demo,
        "sets up .venv (this test runs in one) and execs `tenantry demo`: that runs, as below",
    ),
    Row(r"bash \.ci/run", run_suite, "runs this very suite: not from inside it; checked to parse (bash -n)"),
    Row(r"\. \.venv/bin/activate", run_nothing, "this test runs in the venv already"),
    Row(r"export [A-Za-z_][A-Za-z0-9_]*=\S+", run_export, "sets the variable for the steps after it"),
    Row(r"pip install 'tenantry\[web\]'", run_installed, "installed already: checked by importing the admin API"),
    Row(
        r"tenantry demo( .*)?",
        run_demo,
        "serves until stopped: runs on free ports (--port 0 --admin-port 0), its admin API's / and acme's"
        " site are requested once, and Ctrl-C stops it at the block's end (exit 0)",
    ),
    Row(
        r"tenantry api serve .*--port \d+.*",
        run_serve,
        "serves until stopped: runs on a free port in place of the README's (the block's later lines use it),"
        " its / is requested once, and Ctrl-C stops it at the block's end (exit 0)",
    ),
    Row(
        r"tenantry tokens create .*", run_token, "runs as written; the secret it prints is $TOKEN, as its comment says"
    ),
    Row(
        r"tenantry domains verify .*",
        run_verify,
        "the walk serves the app's edge (TenantMiddleware) on a loopback port and adds --connect-to it,"
        " standing in for DNS that points the hostname at this machine",
    ),
    Row(
        r"tenantry cells add .*",
        run_cli,
        "the README's second server (host=db2) is one the walk has not got: eu-2 is the walk's own server"
        " under another name",
        replace=(('"host=db2 user=postgres"', server_url),),
    ),
    Row(
        r"tenantry spares fill .*",
        run_cli,
        "fewer spares, the same command: time",
        replace=(("--count 20", "--count 2"),),
    ),
    Row(r"tenantry .*", run_cli, "runs as written"),
    Row(
        r"curl .*",
        run_curl,
        "runs as written with $TOKEN, the server's port for the README's, and --fail-with-body -sS (an HTTP"
        " error fails the step)",
    ),
)


def row_for(step: Step) -> Row:
    for row in STEPS:
        if re.fullmatch(row.pattern, step.text):
            return row
    pytest.fail(
        f"{step}\n  is a command the README walk does not know: add a row for it to STEPS in"
        " tests/e2e/test_readme.py, saying how it runs here"
    )


# -- the tests ------------------------------------------------------------------------------


def test_every_readme_command_is_one_the_walk_knows() -> None:
    """No database: a new kind of command is named at once, before anything runs."""
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 3 and sum(map(len, blocks)) >= 40
    for block in blocks:
        for step in block:
            row_for(step)


def test_the_parser_joins_lines_and_drops_comments() -> None:
    text = "x\n```bash\na --b '#c' d#e  # note\nf \\\n  g  # h\n```\n```python\nnot = 'run'\n```\n```bash\n# only a comment\n```\n"
    assert readme_blocks(text) == [[Step(3, "a --b '#c' d#e"), Step(4, "f g")], []]


#: the README's ``myapp.models``: the example tracker's tables, and a config schema with the
#: ``limits.max_projects`` the README sets
MYAPP_MODELS = '''"""The README's app, in its walk: the example tracker's tables and a config schema."""

from pydantic import BaseModel, Field

from examples.tracker.models import Base


class Limits(BaseModel):
    max_projects: int = 10


class Config(BaseModel):
    limits: Limits = Field(default_factory=Limits)


TENANTRY_CONFIG = Config
__all__ = ["Base", "TENANTRY_CONFIG"]
'''


@pytest.fixture
def project(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A user's project: ``myapp`` (the tracker's tables, a config schema, and an Alembic
    directory whose one revision is their baseline), ``acme.png``; the shell's
    environment: tenantry's settings unset but for ``TENANTRY_DATA_DIR``."""
    root = Path(tempfile.mkdtemp(prefix="tenantry-readme-"))
    root.chmod(0o755)  # the embedded server's own user reaches its data directory through it
    project = root / "project"
    (project / "myapp").mkdir(parents=True)
    (project / "myapp" / "__init__.py").write_text("")
    (project / "myapp" / "models.py").write_text(MYAPP_MODELS)
    (project / "myapp" / "migrations" / "versions").mkdir(parents=True)
    (project / "myapp" / "migrations" / "versions" / "0001_baseline.py").write_text(
        '"""The tracker\'s tables as its models declare them: the revision the app starts its history at.\n\n'
        'Revision ID: 0001_baseline\nRevises:\n"""\n\n'
        'revision = "0001_baseline"\ndown_revision = None\nbranch_labels = None\ndepends_on = None\n\n\n'
        "def upgrade() -> None:\n    pass\n"
    )
    (project / "acme.png").write_bytes(png(48, 48, b"\xc2\x41\x0c\xff"))
    for name in list(os.environ):
        if name.startswith("TENANTRY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TENANTRY_DATA_DIR", str(root / "pg"))
    monkeypatch.chdir(project)
    try:
        yield project
    finally:
        for name in [m for m in sys.modules if m == "myapp" or m.startswith("myapp.")]:
            del sys.modules[name]
        from tenantry.db.server import EmbeddedServer

        EmbeddedServer(root / "pg").stop()
        shutil.rmtree(root, ignore_errors=True)


def test_the_readme_runs_top_to_bottom(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    walk = Walk(project, monkeypatch, capsys)
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    took: list[tuple[float, Step]] = []
    started = time.monotonic()
    for block in blocks:
        try:
            for step in block:
                began = time.monotonic()
                row = row_for(step)
                row.run(walk, step, row.prepare(walk, step.text))
                took.append((time.monotonic() - began, step))
        finally:
            walk.finish_block()  # its servers stopped, even when a step failed
    slowest = ", ".join(f"line {step.line} {seconds:.1f} s" for seconds, step in sorted(took, key=lambda t: -t[0])[:5])
    with capsys.disabled():
        print(
            f"\n  README walk: {len(took)} commands in {len(blocks)} blocks, {time.monotonic() - started:.0f} s"
            f" (slowest: {slowest})"
        )
