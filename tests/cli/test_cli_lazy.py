"""The CLI imports a command only when it is used: ``tenantry --help`` and each group's help
import none of the database or web stack, and the commands declared lazily are the real ones."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import pytest
import typer

import tenantry.cli
from tenantry.cli.lazy import load
from tenantry.cli.main import COMMANDS, command, main

HEAVY = ["alembic", "fastapi", "psycopg", "psycopg_pool", "sqlalchemy", "starlette", "uvicorn"]

# runs the CLI as `python -m tenantry` does, once per argument list, and says after each which
# of HEAVY it had imported by then
_PROBE = """
import contextlib, io, json, runpy, sys
heavy, runs, seen = set(sys.argv[1].split(",")), json.loads(sys.argv[2]), {}
for args in runs:
    sys.argv = ["tenantry", *args]
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            runpy.run_module("tenantry", run_name="__main__")
        except SystemExit as exit:
            assert exit.code == 0, (args, exit.code)
    seen[" ".join(args)] = sorted({m.split(".")[0] for m in sys.modules} & heavy)
print(json.dumps(seen))
"""


def _imported_by(*runs: list[str]) -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(HEAVY), json.dumps(runs)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, list[str]] = json.loads(done.stdout)
    return found


def test_top_level_help_imports_no_database_or_web_stack() -> None:
    assert _imported_by(["--help"]) == {"--help": []}


def test_each_group_help_imports_no_database_or_web_stack() -> None:
    runs = [[name, "--help"] for name in COMMANDS] + [["tenants", "list", "--help"], ["plugins", "hooks", "--help"]]
    assert _imported_by(*runs) == {" ".join(args): [] for args in runs}


def test_declared_commands_are_the_real_ones() -> None:
    """Each declared line is the command's own (its first paragraph of help), and every Typer
    app among the CLI's modules is a declared command or a group inside one."""
    reached: set[int] = set()

    def visit(app: typer.Typer) -> None:
        reached.add(id(app))
        for group in app.registered_groups:
            assert group.typer_instance is not None
            visit(group.typer_instance)

    for name, declared in COMMANDS.items():
        built = load(name, declared.spec)
        assert built.short_help == declared.help, name
        target = pkgutil.resolve_name(declared.spec)
        if isinstance(target, typer.Typer):
            visit(target)
    for module in pkgutil.iter_modules(tenantry.cli.__path__, "tenantry.cli."):
        app = getattr(importlib.import_module(module.name), "app", None)
        if isinstance(app, typer.Typer) and module.name != "tenantry.cli.main":
            assert id(app) in reached, f"{module.name}.app is not among tenantry.cli.main.COMMANDS"


def _paths() -> list[list[str]]:
    found: list[list[str]] = []

    def walk(group: typer.core.TyperGroup, path: list[str]) -> None:
        ctx = typer.Context(group)
        for name in group.list_commands(ctx):
            sub = group.get_command(ctx, name)
            found.append([*path, name])
            if isinstance(sub, typer.core.TyperGroup):
                walk(sub, [*path, name])

    walk(command(), [])
    return found


@pytest.mark.parametrize("path", _paths(), ids=" ".join)
def test_every_command_shows_its_help(path: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*path, "--help"]) == 0
    shown = capsys.readouterr().out
    assert f"Usage: tenantry {' '.join(path)}" in " ".join(shown.split())


def test_top_level_help_lists_every_declared_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    listed = [
        line.split()[1]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("│ ") and line.split()[1] in COMMANDS
    ]
    assert listed == list(COMMANDS)
