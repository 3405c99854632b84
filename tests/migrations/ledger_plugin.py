"""A plugin whose tables have their own Alembic branch ("ledger", two revisions), for the
tests of plugins' migrations; ``tests.migrations.ledger_plugin:Ledger`` names it in
``TENANTRY_PLUGINS``."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tenantry import TenantScoped
from tenantry.plugins import AppTables

LEDGER_VERSIONS = Path(__file__).parent / "ledger_versions"
L1, L2 = "l001_items", "l002_note"


class LedgerV1Base(DeclarativeBase):
    pass


class LedgerItemV1(TenantScoped, LedgerV1Base):
    """``ledger_items`` as l001_items creates it."""

    __tablename__ = "ledger_items"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    body: Mapped[str] = mapped_column(sa.Text)


class LedgerBase(DeclarativeBase):
    pass


class LedgerItem(TenantScoped, LedgerBase):
    """``ledger_items`` at the head (l002_note added the note)."""

    __tablename__ = "ledger_items"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    body: Mapped[str] = mapped_column(sa.Text)
    note: Mapped[str | None] = mapped_column(sa.Text)


#: the plugin's tables as each of its revisions leaves them
METADATA = {1: LedgerV1Base.metadata, 2: LedgerBase.metadata}


class Ledger(AppTables):
    """Tenant-scoped ledger items, owned by the revisions in ``migrations``."""

    name = "ledger"
    description = "items with their own migrations (tests)"

    def __init__(self, migrations: str | os.PathLike[str] | None = LEDGER_VERSIONS, version: int = 2) -> None:
        self.migrations = migrations
        self.metadata = METADATA[version]
