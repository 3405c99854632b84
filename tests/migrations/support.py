"""Fixtures of the app-migration tests: a catalog of its own, and tenants on every tier
stamped at the fixture's first revision (the model app), with a row or two each."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql

from tenantry import Tenant, Tenantry
from tenantry.core.placement import Placement
from tenantry.services import app_migrations
from tenantry.services.provisioning import database_url
from tenantry.testing import TIER_PLANS
from tests.model_app import Base
from tests.support import Scratch

FIXTURE = str(Path(__file__).parent / "versions_fixture")
OLD, HEAD = "0001_model", "0002_labels"


def head_metadata() -> sa.MetaData:
    """The model app's tables as ``HEAD`` leaves them (``tasks.estimate``, ``labels``): the
    models of an app that follows its migrations. (``Base`` is the model app at ``OLD``.)"""
    head = sa.MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(head)
    head.tables["tasks"].append_column(sa.Column("estimate", sa.Integer(), nullable=True))
    sa.Table(
        "labels",
        head,
        sa.Column("tenant_id", sa.Uuid(), server_default=sa.text("tenantry.require_tenant_id()"), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
    )
    return head


@dataclass
class World:
    """A catalog with tenants on all three tiers, every placement at ``OLD``."""

    tn: Tenantry
    scratch: Scratch
    tenants: list[Tenant]

    def placement(self, tenant: Tenant) -> Placement:
        found = self.tn.tenants.placement(tenant.id)
        assert found is not None
        return found

    def url(self, tenant: Tenant | None) -> str:
        """Admin URL of the database holding ``tenant``'s placement (``None``: the catalog's)."""
        if tenant is None:
            return self.scratch.url
        placement = self.placement(tenant)
        return database_url(self.tn.cells.admin_url(placement.cell), placement.database)

    def schema(self, tenant: Tenant | None) -> str:
        return self.tn.settings.pooled_schema if tenant is None else self.placement(tenant).schema

    def by_tier(self, tier: str) -> list[Tenant]:
        return [t for t in self.tenants if t.plan == TIER_PLANS[tier]]

    def targets(self) -> list[Tenant | None]:
        """Each placement once: the pooled schema (``None``), then the other tiers' tenants."""
        return [None, *self.by_tier("schema"), *self.by_tier("database")]

    def query(self, tenant: Tenant | None, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url(tenant), autocommit=True) as conn:
            return conn.execute(statement, params).fetchall()

    def execute(self, tenant: Tenant | None, statement: str) -> None:
        """Run a statement as the superuser in the database of ``tenant``'s placement."""
        with psycopg.connect(self.url(tenant), autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def version(self, tenant: Tenant | None) -> str | None:
        rows = self.query(
            tenant, sql.SQL("SELECT version_num FROM {}").format(sql.Identifier(self.schema(tenant), "alembic_version"))
        )
        return rows[0][0] if rows else None

    def has_column(self, tenant: Tenant | None, table: str, column: str) -> bool:
        return bool(
            self.query(
                tenant,
                "SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND table_name = %s AND column_name = %s",
                (self.schema(tenant), table, column),
            )
        )

    def catalog_revisions(self) -> dict[str | None, str | None]:
        """slug (``None``: the pooled schema) -> the revision the catalog records."""
        rows = self.query(
            None,
            "SELECT t.slug, p.app_revision FROM tenantry.placements p JOIN tenantry.tenants t ON t.id = p.tenant_id"
            " WHERE p.status = 'active' AND p.isolation <> 'pooled'",
        )
        shared = self.query(
            None,
            "SELECT app_revision FROM tenantry.shared_placements WHERE schema_name = %s",
            (self.tn.settings.pooled_schema,),
        )
        return {None: shared[0][0] if shared else None, **dict(rows)}


def make_world(tn: Tenantry, scratch: Scratch, tiers: dict[str, int], *, cell: str | None = None) -> World:
    tenants = []
    for tier, count in tiers.items():
        for _ in range(count):
            extra = {"cell": cell} if cell and tier == "database" else {}
            tenants.append(tn.tenants.create(f"m{tier[0]}-{uuid.uuid4().hex[:8]}", plan=TIER_PLANS[tier], **extra))
    for tenant in tenants:
        placement = tn.tenants.placement(tenant.id)
        assert placement is not None
        if placement.isolation.value != "pooled":
            assert app_migrations.stamp(tn.plane, placement, revision=OLD, directory=FIXTURE) == OLD
        with tn.tenant(tenant.id), tn.connection() as conn:
            conn.execute("INSERT INTO projects (name) VALUES (%s)", (tenant.slug,))
            conn.execute(
                "INSERT INTO tasks (project_id, title, points, priority, done)"
                " SELECT id, %s, 1, 'low', false FROM projects",
                (tenant.slug,),
            )
    return World(tn, scratch, tenants)


@pytest.fixture
def mtn(fresh_scratch: Scratch) -> Iterator[Tenantry]:
    """A Tenantry on a catalog of the test's own, its pooled schema stamped at ``OLD``."""
    tn = Tenantry(fresh_scratch.settings(), metadata=Base.metadata, actor="pytest")
    tn.schema.init()
    assert app_migrations.stamp(tn.plane, app_migrations.POOLED, revision=OLD, directory=FIXTURE) == OLD
    yield tn
    tn.close()


@pytest.fixture
def world(mtn: Tenantry, fresh_scratch: Scratch) -> World:
    """Two tenants on each tier, every placement at ``OLD``."""
    return make_world(mtn, fresh_scratch, {"pooled": 2, "schema": 2, "database": 2})


@pytest.fixture
def scripts_copy(tmp_path: Path) -> Path:
    """A copy of the fixture script directory, to add revisions to."""
    target = tmp_path / "migrations"
    shutil.copytree(FIXTURE, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def add_revision(directory: Path, revision: str, down: str, upgrade: str) -> None:
    """Write a revision whose ``upgrade()`` body is ``upgrade`` (Python, indented 4)."""
    (directory / "versions" / f"{revision}.py").write_text(
        f'"""Test revision {revision}."""\n\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        f"revision = {revision!r}\ndown_revision = {down!r}\nbranch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade() -> None:\n{upgrade}\n\n\ndef downgrade() -> None:\n    pass\n"
    )
