"""How the CLI prints: Rich tables for people, ``--json`` for scripts, one-line errors."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.table import Table

__all__ = ["ProgressUpdate", "console", "emit_json", "error", "failure", "progress_bar", "runnable", "table", "warning"]

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


class ProgressUpdate(Protocol):
    """``update(done, total)``: moves a :func:`progress_bar`; a third argument (what was just
    done, as the migrations report it) is accepted and not shown."""

    def __call__(self, done: int, total: int, result: object = None, /) -> None: ...


@contextmanager
def progress_bar(enabled: bool, label: str) -> Iterator[ProgressUpdate | None]:
    """A Rich progress bar on stderr, shown (once there is work) when stderr is a terminal;
    ``None`` when it is not, or not ``enabled`` (``--json``)."""
    stderr = Console(stderr=True)
    if not enabled or not stderr.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    )
    task = bar.add_task(label, total=None)

    def update(done: int, total: int, result: object = None, /) -> None:
        if total and not bar.live.is_started:
            bar.start()
        bar.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        if bar.live.is_started:
            bar.stop()


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
