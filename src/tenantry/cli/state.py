"""The CLI's shared state: settings from options and environment, and one lazy Tenantry."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path

import typer

from tenantry.app import Tenantry
from tenantry.settings import Settings

__all__ = ["State", "get_state"]


@dataclass
class State:
    database_url: str | None = None
    data_dir: Path | None = None
    _tn: Tenantry | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        # the CLI is where the embedded server is wanted: a command with no URL starts it
        return Settings.from_env(database_url=self.database_url, data_dir=self.data_dir, embedded=True)

    def tenantry(self) -> Tenantry:
        if self._tn is None:
            self._tn = Tenantry(self.settings(), actor=f"cli:{getpass.getuser()}")
        return self._tn

    def close(self) -> None:
        if self._tn is not None:
            self._tn.close()


def get_state(ctx: typer.Context) -> State:
    state = ctx.find_root().obj
    assert isinstance(state, State)
    return state
