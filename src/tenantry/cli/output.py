"""How the CLI prints: Rich tables for people, ``--json`` for scripts, one-line errors."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["console", "emit_json", "error", "failure", "runnable", "table", "warning"]

console = Console(highlight=False)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(value: Any) -> None:
    """Print ``value`` as JSON on stdout (no colour, no wrapping)."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def error(message: str) -> None:
    """Print a one-line error on stderr."""
    line = " ".join(str(message).split())
    _err.print(f"[bold red]error:[/] {line}", markup=True, highlight=False)


def failure(message: str, *, code: str, exit_code: int, as_json: bool) -> int:
    """Report why the command failed: one line on stderr, or under ``--json`` one JSON object
    (``{"error": …, "code": …, "exit": …}``) on stderr; returns ``exit_code``."""
    if as_json:
        line = " ".join(str(message).split())
        sys.stderr.write(json.dumps({"error": line, "code": code, "exit": exit_code}) + "\n")
    else:
        error(message)
    return exit_code


def warning(message: str) -> None:
    """Print a one-line warning on stderr (stdout stays parseable under ``--json``)."""
    line = " ".join(str(message).split())
    _err.print(f"[bold yellow]warning:[/] {line}", markup=True, highlight=False)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    grid = Table(title=title, show_edge=False, header_style="bold")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*("" if v is None else str(v) for v in row))
    console.print(grid)


def runnable() -> str:
    """This CLI as a shell runs it, for hints that name a command: ``tenantry`` when that is
    the script on the PATH, else the script's absolute path (a venv not activated), else
    ``<python> -m tenantry``."""
    script = Path(sys.argv[0])
    if script.name == "tenantry" and script.is_file():
        found = shutil.which("tenantry")
        if found is not None and Path(found).resolve() == script.resolve():
            return "tenantry"
        return shlex.quote(str(script.absolute()))
    return f"{shlex.quote(sys.executable)} -m tenantry"
