"""Sub-commands imported when they are used: ``tenantry --help`` lists every command without
importing one, and ``tenantry tenants list`` imports the ``tenants`` commands only.

A command is declared by its import spec and the one line its group's help shows for it; the
module behind the spec (and SQLAlchemy, psycopg, pydantic behind that) is imported when the
command runs or shows its own help. ``tests/cli/test_cli_lazy.py`` keeps the declared lines
equal to the commands' own.
"""

from __future__ import annotations

import inspect
import pkgutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

__all__ = ["LazyCommand", "LazyGroup", "load", "tidy_help"]


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """A command not imported yet: ``spec`` names a Typer app (a group) or a command function
    as ``module:attr``; ``help`` is its line in the group's list of commands."""

    spec: str
    help: str


class _Placeholder(TyperCommand):
    """What the group's help lists for a command that is not loaded: its name and line."""


class LazyGroup(TyperGroup):
    """A Typer group whose :attr:`lazy` commands are imported on first use. Subclass it with
    the table and give the subclass to ``typer.Typer(cls=...)``."""

    lazy: ClassVar[Mapping[str, LazyCommand]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._listing = False
        for name, declared in self.lazy.items():
            # placeholders keep the declared order, and the typo suggestions ("did you mean")
            # that Typer draws from the group's commands
            self.commands.setdefault(name, _Placeholder(name=name, help=declared.help, short_help=declared.help))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = super().get_command(ctx, cmd_name)
        if isinstance(found, _Placeholder) and not self._listing:
            found = self.commands[cmd_name] = load(cmd_name, self.lazy[cmd_name].spec)
        return found

    def format_help(self, ctx: Any, formatter: Any) -> None:
        with self._listed():
            super().format_help(ctx, formatter)

    @contextmanager
    def _listed(self) -> Iterator[None]:
        self._listing = True
        try:
            yield
        finally:
            self._listing = False


def load(name: str, spec: str) -> Any:
    """The command ``spec`` names, built as ``add_typer`` (a Typer app) or ``command`` (a
    function) would build it under the name ``name``, its help tidied."""
    target = pkgutil.resolve_name(spec)
    holder = typer.Typer(add_completion=False)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name=name)(target)
    built = typer.main.get_group(holder).commands[name]
    tidy_help(built)
    return built


def tidy_help(cmd: Any) -> None:
    """A flag shows no ``<bool>`` type (it takes no value), and a command's line in its
    group's list is its first paragraph unwrapped (a docstring's line breaks are not the
    terminal's). Commands not loaded yet are tidied when they load."""
    # (Typer's own click: the click package's classes are not these)
    help_option = cmd.get_help_option(typer.Context(cmd))
    for param in [*cmd.params, *([help_option] if help_option is not None else [])]:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    if cmd.help and not cmd.short_help:
        first = inspect.cleandoc(cmd.help).split("\n\n")[0]
        cmd.short_help = " ".join(first.split())
    for sub in getattr(cmd, "commands", {}).values():
        if not isinstance(sub, _Placeholder):
            tidy_help(sub)
