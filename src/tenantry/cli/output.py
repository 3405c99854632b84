"""How the CLI prints: Rich tables for people, ``--json`` for scripts, one-line errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["console", "emit_json", "error", "table", "warning"]

console = Console(highlight=False)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(value: Any) -> None:
    """Print ``value`` as JSON on stdout (no colour, no wrapping)."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def error(message: str) -> None:
    """Print a one-line error on stderr."""
    line = " ".join(str(message).split())
    _err.print(f"[bold red]error:[/] {line}", markup=True, highlight=False)


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
