"""Helpers the project's tests share (a plain module: conftest files are not imported)."""

from __future__ import annotations

from tenantry.testing import ScratchCatalog

__all__ = ["Scratch"]


class Scratch(ScratchCatalog):
    """A fresh database with its own pair of roles (created at once), dropped with them at the end."""

    def __init__(self, server_url: str) -> None:
        super().__init__(server_url, prefix="tenantry_test", role_prefix="tt")
        self.create()
