"""Helpers the project's tests share (a plain module: conftest files are not imported)."""

from __future__ import annotations

import os
import subprocess
import sys

from tenantry.testing import ScratchCatalog

__all__ = ["Scratch", "catalog_env", "run_cli"]


class Scratch(ScratchCatalog):
    """A fresh database with its own pair of roles (created at once), dropped with them at the end."""

    def __init__(self, server_url: str) -> None:
        super().__init__(server_url, prefix="tenantry_test", role_prefix="tt")
        self.create()


def catalog_env(catalog: ScratchCatalog, **extra: str) -> dict[str, str]:
    """This process's environment without its ``TENANTRY_*`` settings, pointed at ``catalog``
    (for a ``tenantry`` or app process the test starts), with ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_")}
    env.update(
        TENANTRY_DATABASE_URL=catalog.url,
        TENANTRY_OWNER_ROLE=catalog.owner,
        TENANTRY_RUNTIME_ROLE=catalog.runtime,
        TENANTRY_READER_ROLE=catalog.reader,
        **extra,
    )
    return env


def run_cli(catalog: ScratchCatalog, *args: str) -> subprocess.CompletedProcess[str]:
    """``tenantry *args`` in a process of its own on ``catalog``."""
    return subprocess.run(
        [sys.executable, "-m", "tenantry.cli.main", *args],
        env=catalog_env(catalog),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
