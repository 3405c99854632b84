"""What a new user meets in the CLI's first hour (issue 12): errors that speak JSON under
``--json``, usage errors in one line, help that wraps where the terminal does, exit codes
the README lists, the app's modules found from the working directory, plugins' config
sections found as the app runs them, and messages that say what happened."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tenantry import errors
from tenantry.contrib.webhooks import new_secret
from tenantry.testing import ScratchCatalog

README = Path(__file__).resolve().parents[2] / "README.md"


def _slug(prefix: str = "fh") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _one_line_and_json(
    run: Callable[..., tuple[int, str, str]], args: tuple[str, ...], exit_code: int, code: str, fragment: str
) -> None:
    status, out, err = run(*args)
    assert status == exit_code and out == ""
    assert err.startswith("error:") and err.count("\n") == 1 and fragment in err, err
    assert "Usage:" not in err and "╭" not in err and "Traceback" not in err
    status, out, err = run(*args, "--json")
    assert status == exit_code and out == "" and err.count("\n") == 1
    assert json.loads(err) == {"error": json.loads(err)["error"], "code": code, "exit": exit_code}
    assert fragment in json.loads(err)["error"]


def test_an_error_is_one_line_and_json_under_json(cli) -> None:
    _one_line_and_json(cli, ("tenants", "show", "nobody-here"), 6, "tenant-not-found", "no tenant")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("tenants", "list", "--status", "bogus"), "'bogus' is not one of"),
        (("spares", "fill", "--count", "-1"), "--count"),
        (("tenants", "list", "--no-such-option"), "No such option"),
    ],
)
def test_usage_errors_are_one_line_and_json_under_json(capsys, args, fragment) -> None:
    """Typer's own errors, before any command runs (no database)."""
    from tenantry.cli.main import main

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    _one_line_and_json(run, args, 2, "usage", fragment)


def test_every_exit_code_is_in_the_readme() -> None:
    text = README.read_text()
    listed = re.search(r"non-zero exit code \((.*?)\)", text, re.S)
    assert listed, "the README lists the CLI's exit codes as 'non-zero exit code (2 bad input, ...)'"
    documented = {int(n) for n in re.findall(r"\b(\d+) [a-z]", listed.group(1))}
    import tenantry.migrations  # noqa: F401 - MigrationFailed (exit 10) lives there

    def tree(cls: type[errors.TenantryError]) -> set[type[errors.TenantryError]]:
        return {cls}.union(*(tree(sub) for sub in cls.__subclasses__()))

    defined = {cls.exit_code for cls in tree(errors.TenantryError) if cls.__module__.startswith("tenantry.")}
    assert {10, 13} <= defined and defined <= documented, f"not in the README: {sorted(defined - documented)}"


def test_help_shows_no_bool_type_and_unwraps_docstrings(capsys, monkeypatch) -> None:
    from tenantry.cli.main import main

    monkeypatch.setenv("COLUMNS", "200")
    assert main(["tenants", "move", "--help"]) == 0
    own = capsys.readouterr().out
    assert "--help" in own and "--abort" in own and "<bool>" not in own
    assert "<str>" in own  # options that take a value still show its type
    assert main(["tenants", "--help"]) == 0
    listing = capsys.readouterr().out
    # the docstring breaks after "an"; the list shows the sentence whole
    assert "Rerun to finish an interrupted move." in listing
    assert main(["--help"]) == 0
    assert "its policy in place, and that every unique index" in capsys.readouterr().out


def test_the_app_module_is_found_in_the_working_directory(cli, tmp_path: Path, monkeypatch) -> None:
    """``TENANTRY_APP=module:Base`` names a module of the project the CLI runs in, as under
    ``python -m``: the console script puts the working directory on the path."""
    module = f"fh_app_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text("from tests.model_app import Base\n")  # the tables deployed already
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert importlib.util.find_spec(module) is None  # control: not importable by itself
    code, out, err = cli("init", "--app", f"{module}:Base", "--json")
    assert code == 0, err
    assert sorted(json.loads(out)["app"]["secured"]) == ["comments", "projects", "tasks"]
    assert str(tmp_path) not in sys.path  # and taken off again


def test_config_finds_a_plugin_switched_on_and_echoes_no_secret(cli, scratch: ScratchCatalog, monkeypatch) -> None:
    """The Webhooks page's command works with no TENANTRY_PLUGINS: the CLI loads the installed
    plugins the catalog shows the app runs. What it prints shows the secret redacted."""
    monkeypatch.delenv("TENANTRY_PLUGINS", raising=False)
    monkeypatch.setenv("TENANTRY_SECRET_KEYS", scratch.secret_keys)
    slug = _slug()
    assert cli("tenants", "create", slug)[0] == 0
    try:
        assert cli("plugins", "enable", "webhooks", "--tenant", slug)[0] == 0
        secret, other = new_secret(), new_secret()
        value = json.dumps({"url": "https://hooks.example.com/tracker", "secret": secret})
        code, out, err = cli("config", "set", "webhooks", value, "--tenant", slug, "--json")
        assert code == 0, err
        assert secret not in out + err and "hooks.example.com" in out
        code, out, err = cli("config", "set", "webhooks.secret", other, "--tenant", slug)
        assert code == 0, err
        assert other not in out + err and secret not in out + err and "webhooks.secret" in out
        code, out, _ = cli("config", "get", "webhooks", "--tenant", slug, "--json")
        assert code == 0 and other not in out and json.loads(out)["value"]["url"] == "https://hooks.example.com/tracker"
    finally:
        assert cli("tenants", "delete", slug, "--yes")[0] == 0  # its setting no longer counts


def test_deleting_a_database_tier_tenant_says_the_database_was_dropped(cli, monkeypatch) -> None:
    monkeypatch.setenv("TENANTRY_APP", "tests.model_app:Base")
    slug = _slug()
    code, out, err = cli("tenants", "create", slug, "--plan", "enterprise")
    assert code == 0, err
    code, out, _ = cli("tenants", "show", slug, "--json")
    database = json.loads(out)["placement"]["database"]
    code, out, err = cli("tenants", "delete", slug, "--yes")
    assert code == 0, err
    assert f"dropped its database {database}" in " ".join(out.split()) and "row(s)" not in out
