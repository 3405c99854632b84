"""The first hour on a running ``tenantry demo`` (issue 12): the README's quickstart runs after
the demo on the same server, the demo sends its webhooks (and its Webhooks page says why it
sends none), the CLI lines the demo prints run as printed, from a shell outside the venv, and
the tenant they make gets its first account on its site.

One demo for the module, on the first backend (as the rest of tests/e2e)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tenantry.cli import demo as demo_command
from tenantry.cli.main import main
from tenantry.contrib.webhooks import new_secret
from tests.e2e.support import DemoProcess, demo_env
from tests.support import Scratch

ROOT = Path(__file__).resolve().parents[2]
Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def demo_shell(demo_scratch: Scratch, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's environment as the demo's (its database, roles and keys; nothing else)."""
    for name in os.environ:
        if name.startswith("TENANTRY_"):
            monkeypatch.delenv(name)
    for name, value in demo_env(demo_scratch).items():
        if name.startswith("TENANTRY_"):
            monkeypatch.setenv(name, value)


@pytest.fixture
def demo_cli(demo_shell: None, capsys: pytest.CaptureFixture[str]) -> Cli:
    """``tenantry`` in-process on the demo's data, as a shell with the demo's environment runs it."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def quickstart_catalog(demo_scratch: Scratch) -> Iterator[str]:
    """The quickstart's own catalog beside the demo's (dropped at the end): its database name."""
    dbname = f"{demo_scratch.dbname}_quickstart"
    yield dbname
    with psycopg.connect(demo_scratch.server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        for role in (demo_scratch.owner, demo_scratch.runtime):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(f"{role}_quickstart")))


def test_the_quickstart_runs_after_the_demo(
    demo: DemoProcess,
    demo_scratch: Scratch,
    demo_shell: None,
    quickstart_catalog: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The demo's globex (business: its own schema, the tracker's tables) is not the
    quickstart's: the quickstart keeps a catalog of its own, and leaves the demo's alone."""
    import examples.quickstart as quickstart

    quickstart.main()
    out = capsys.readouterr().out
    assert out.count("refused") == 2, out
    with psycopg.connect(make_conninfo(demo_scratch.server_url, dbname=quickstart_catalog)) as conn:
        counts = dict(
            conn.execute(
                "SELECT t.slug, count(*) FROM tenant_data.demo_projects p JOIN tenantry.tenants t ON t.id = p.tenant_id GROUP BY 1"
            ).fetchall()
        )
    assert counts == {"acme": 3, "globex": 2}
    with psycopg.connect(demo_scratch.url) as conn:
        assert conn.execute("SELECT plan FROM tenantry.tenants WHERE slug = 'globex'").fetchone() == ("business",)
        assert conn.execute(
            "SELECT count(*) FROM tenantry.app_tables WHERE table_name = 'demo_projects'"
        ).fetchone() == (0,)


def test_webhooks_are_sent_and_the_page_says_why_not(demo: DemoProcess, demo_cli: Cli) -> None:
    port = int(demo.url("initech").rsplit(":", 1)[1].strip("/"))
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"host": f"initech.localhost:{port}"}, timeout=10
    ) as site:
        assert site.post("/login", data={"email": "bill@initech.example"}).status_code == 303
        page = site.get("/webhooks").text
        assert "no endpoint is set" in page and "Nothing sent yet" not in page
        command = re.search(r"<pre class=\"key\">(tenantry config set webhooks [^<]+)</pre>", page)
        assert command and command.group(1).endswith("--tenant initech")

        # the page's command, with no TENANTRY_PLUGINS: echoes no secret
        secret = new_secret()
        endpoint = {"url": "http://127.0.0.1:9/hooks", "secret": secret}  # nobody listens: an attempt that fails
        code, out, err = demo_cli("config", "set", "webhooks", json.dumps(endpoint), "--tenant", "initech")
        assert code == 0, err
        assert secret not in out + err and "127.0.0.1:9/hooks" in out
        deadline = time.monotonic() + 5
        while "127.0.0.1:9/hooks" not in site.get("/webhooks").text:  # the demo learns of it by NOTIFY
            assert time.monotonic() < deadline, "the demo never saw the endpoint"
            time.sleep(0.05)

        csrf = re.search(r'name="csrf" value="([^"]+)"', site.get("/projects").text)
        assert csrf
        created = site.post("/projects", data={"csrf": csrf.group(1), "name": "Hook Test", "key": "HOOK"})
        assert created.status_code == 303, created.text[:500]
        deadline = time.monotonic() + 15  # the sender looks every 2 s
        while True:
            latest = site.get("/_plugins/webhooks/deliveries").json()["deliveries"][0]
            if latest["last_error"] or latest["status"] != "pending":  # an attempt finished
                break
            assert time.monotonic() < deadline, f"the demo never sent the webhook: {latest}"
            time.sleep(0.1)
        assert latest["event"] == "project.created" and latest["attempts"] >= 1 and latest["last_error"], latest


def test_the_cli_lines_the_demo_prints_run_as_printed(
    demo: DemoProcess, demo_scratch: Scratch, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = demo.report["cli"]
    # started as `python -m tenantry.cli.main`: no `tenantry` script to name, so the interpreter's path
    assert cli["command"] == f"{shlex.quote(sys.executable)} -m tenantry"
    assert cli["environment"]["TENANTRY_APP"] == demo_command.TRACKER_APP
    demo_command._print_report(demo.report)
    printed = capsys.readouterr().out
    for line in [*cli["exports"], *cli["try"]]:
        assert f"  {line}\n" in printed
    assert "Try: tenantry" not in printed

    # a shell with the demo's database settings, PYTHONPATH without the checkout (only what
    # makes tenantry importable, as an installed venv does): the exports and a hint, as printed
    env = demo_env(demo_scratch)
    kept = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and (Path(p) / "tenantry").is_dir()]
    env["PYTHONPATH"] = os.pathsep.join(kept)
    create = next(line for line in cli["try"] if " tenants create " in line)
    script = "\n".join([*cli["exports"], f"{create} --json"])
    done = subprocess.run(
        ["bash", "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    assert created["plan"] == "business" and created["status"] == "active"

    # ...and it leads somewhere: the printed site offers its first account, which signs in its owner
    new = demo.report["new_tenant"]
    assert new["slug"] == created["slug"] and f"its site ({new['url']} for {new['slug']})" in " ".join(printed.split())
    port = int(new["url"].rsplit(":", 1)[1].strip("/"))
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"host": f"{new['slug']}.localhost:{port}"}, timeout=10
    ) as site:
        assert 'action="/first-account"' in site.get("/login").text
        made = site.post("/first-account", data={"name": "Peter Gibbons", "email": "peter@initrode.example"})
        assert made.status_code == 303, made.text[:500]
        assert '<span id="current-user">Peter Gibbons</span>' in site.get("/").text
        assert site.post("/first-account", data={"name": "Bob", "email": "bob@initrode.example"}).status_code == 409
