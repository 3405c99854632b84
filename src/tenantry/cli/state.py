"""The CLI's shared state: settings from options and environment, and one lazy Tenantry."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from tenantry.app import Tenantry
    from tenantry.settings import Settings

__all__ = ["State", "get_state"]


@dataclass
class State:
    database_url: str | None = None
    data_dir: Path | None = None
    _tn: Tenantry | None = field(default=None, repr=False)
    _deployed: bool = field(default=False, repr=False)

    def settings(self) -> Settings:
        from tenantry.settings import Settings  # (imported when a command needs it, not for --help)

        # the CLI is where the embedded server is wanted: a command with no URL starts it
        return Settings.from_env(database_url=self.database_url, data_dir=self.data_dir, embedded=True)

    def tenantry(self, *, app_plugins: bool = False) -> Tenantry:
        """The CLI's Tenantry. ``app_plugins``: for commands that build, move or check
        placements, which must know every table the app has: with ``TENANTRY_PLUGINS``
        unset, the installed plugins whose tables the app deployed are loaded too
        (:meth:`Plugins.load_deployed`)."""
        if self._tn is None:
            from tenantry.app import Tenantry

            self._tn = Tenantry(self.settings(), actor=f"cli:{getpass.getuser()}")
        if app_plugins and not self._deployed and not self._tn.settings.plugins:
            self._tn.plugins.load_deployed()
            self._deployed = True
        return self._tn

    def close(self) -> None:
        if self._tn is not None:
            self._tn.close()


def get_state(ctx: typer.Context) -> State:
    state = ctx.find_root().obj
    assert isinstance(state, State)
    return state
