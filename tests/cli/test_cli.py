"""The CLI: every command, --json output, one-line errors with the right exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tenantry.cli.main import main


def _slug() -> str:
    return f"cli-{uuid.uuid4().hex[:8]}"


def test_create_list_show_json(cli) -> None:
    slug = _slug()
    code, out, err = cli("tenants", "create", slug, "--name", "Acme", "--json")
    assert code == 0, err
    created = json.loads(out)
    assert created["slug"] == slug and created["status"] == "active"
    code, out, _ = cli("tenants", "list", "--json")
    assert code == 0 and slug in {t["slug"] for t in json.loads(out)}
    code, out, _ = cli("tenants", "show", slug, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["isolation"] == "pooled" and shown["placement"]["tier"] == "pooled"
    code, out, _ = cli("tenants", "show", slug)
    assert code == 0 and "pooled" in out


def test_lifecycle_commands(cli) -> None:
    slug = _slug()
    cli("tenants", "create", slug)
    for command, status in (("suspend", "suspended"), ("resume", "active"), ("archive", "archived")):
        code, out, _ = cli("tenants", command, slug, "--json")
        assert code == 0 and json.loads(out)["status"] == status
    code, _, err = cli("tenants", "suspend", slug)
    assert code == 7 and err.count("\n") == 1 and "archived" in err
    code, out, _ = cli("tenants", "list", "--status", "archived", "--json")
    assert slug in {t["slug"] for t in json.loads(out)}


def test_delete_needs_yes(cli) -> None:
    slug = _slug()
    cli("tenants", "create", slug)
    code, _, err = cli("tenants", "delete", slug)
    assert code == 2 and "--yes" in err
    code, out, _ = cli("tenants", "delete", slug, "--yes", "--json")
    assert code == 0 and json.loads(out)["status"] == "deleted"
    code, _, err = cli("tenants", "show", slug)
    assert code == 6 and "no tenant" in err


@pytest.mark.parametrize(
    ("args", "exit_code", "fragment"),
    [
        (("tenants", "create", 'a"; drop'), 2, "not a DNS label"),
        (("tenants", "create", "public"), 2, "reserved"),
        (("tenants", "create", "x" * 64), 2, "longer than 63"),
        (("tenants", "create", "ok-slug-x", "--plan", "gold"), 6, "no plan named"),
        (("tenants", "show", "nobody-here"), 6, "no tenant"),
        (("plans", "show", "gold"), 6, "no plan named"),
    ],
)
def test_bad_input_is_one_line(cli, args, exit_code, fragment) -> None:
    code, out, err = cli(*args)
    assert code == exit_code
    assert fragment in err and err.startswith("error:") and err.count("\n") == 1
    assert "Traceback" not in out + err


def test_duplicate_slug(cli) -> None:
    slug = _slug()
    assert cli("tenants", "create", slug)[0] == 0
    code, _, err = cli("tenants", "create", slug)
    assert code == 7 and "exists already" in err


def test_plans_and_audit(cli) -> None:
    code, out, _ = cli("plans", "list", "--json")
    # (other tests add plans of their own to the session's catalog)
    assert code == 0 and {p["name"] for p in json.loads(out)} >= {"free", "business", "enterprise"}
    code, out, _ = cli("plans", "show", "free", "--json")
    assert json.loads(out)["isolation"] == "pooled"
    slug = _slug()
    cli("tenants", "create", slug)
    code, out, _ = cli("audit", "list", "--tenant", slug, "--json")
    entries = json.loads(out)
    assert code == 0 and entries[0]["action"] == "tenant.create" and entries[0]["actor"].startswith("cli:")


def test_init_and_check_are_idempotent(cli) -> None:
    code, out, _ = cli("init", "--app", "tests.model_app:Base", "--json")
    report = json.loads(out)
    assert (
        code == 0
        and report["migrations_applied"] == []
        and sorted(report["app"]["secured"])
        == [
            "comments",
            "projects",
            "tasks",
        ]
    )
    code, out, _ = cli("check", "--json")
    assert code == 0 and json.loads(out) == {
        "unprotected": [],
        "unscoped_unique": [],
        "roles": {},
        "differ": {},
        "ok": True,
    }


def test_bad_app_spec(cli) -> None:
    code, _, err = cli("init", "--app", "no.such.module:Base")
    assert code == 2 and "cannot import" in err


def test_unreachable_database(monkeypatch, capsys) -> None:
    monkeypatch.setenv("TENANTRY_DATABASE_URL", "host=127.0.0.1 port=1 user=nobody dbname=x connect_timeout=2")
    code = main(["tenants", "list"])
    err = capsys.readouterr().err
    assert code == 3 and "cannot connect" in err and err.count("\n") == 1


def test_help_and_usage_errors(capsys) -> None:
    assert main(["--help"]) == 0
    assert "tenants" in capsys.readouterr().out
    assert main(["tenants", "bogus"]) == 2


def test_version(capsys) -> None:
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"tenantry {version('tenantry')}\n"


def test_console_script_on_embedded_server_with_no_configuration(tmp_path: Path) -> None:
    """The README's promise: init, create and list work with nothing configured but a data dir."""
    data_dir = Path("/tmp") / f"tenantry-cli-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_")}
    env["TENANTRY_DATA_DIR"] = str(data_dir / "pg")
    exe = [sys.executable, "-c", "from tenantry.cli.main import run; run()"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*exe, *args], env=env, capture_output=True, text=True, timeout=120)

    try:
        assert run("init").returncode == 0
        assert run("init").stdout.startswith("catalog already at version")
        created = run("tenants", "create", "acme")
        assert created.returncode == 0, created.stderr
        listed = run("tenants", "list", "--json")
        assert [t["slug"] for t in json.loads(listed.stdout)] == ["acme"]
        status = json.loads(run("server", "status", "--json").stdout)
        assert status["running"] and status["data_dir"] == str(data_dir / "pg")
        assert run("server", "url").stdout.startswith("postgresql://")
    finally:
        stopped = run("server", "stop", "--json")
        assert json.loads(stopped.stdout) == {"stopped": True}
        assert run("server", "status").returncode == 1
        subprocess.run(["rm", "-rf", str(data_dir)], check=False)


def test_a_move_on_a_terminal_shows_every_step(cli, make_tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal the move shows each step as it starts: every step has its words (a step
    without them crashed the move after its first step, leaving the tenant moving)."""
    from tenantry.cli import tenants as tenants_cli
    from tenantry.services.moves import STEPS

    assert set(STEPS) <= set(tenants_cli._STEP_TEXT)
    tenant = make_tenant("tty")
    shown: list[str] = []
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setattr(tenants_cli, "_STEP_TEXT", {**tenants_cli._STEP_TEXT})
    real_status = tenants_cli.console.status

    def status(*args, **kwargs):  # type: ignore[no-untyped-def]
        handle = real_status(*args, **kwargs)
        real_update = handle.update
        handle.update = lambda text, *a, **k: (shown.append(text), real_update(text, *a, **k))[1]
        return handle

    monkeypatch.setattr(tenants_cli.console, "status", status)
    monkeypatch.setenv("TENANTRY_APP", "tests.model_app:Base")
    code, out, err = cli("tenants", "move", tenant.slug, "--plan", "business")
    assert code == 0, err
    assert "moved" in out and len(shown) == len(STEPS)
