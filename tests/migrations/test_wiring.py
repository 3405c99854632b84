"""Migrations wired into the rest: new placements start at head, deploy leaves versioned
tables alone, a tenant behind head cannot move until migrated."""

from __future__ import annotations

import uuid

import pytest

from tenantry import InvalidInput, TablesDiffer, Tenantry
from tenantry.services import app_migrations
from tests.migrations.support import FIXTURE, OLD, head_metadata
from tests.model_app import Base


@pytest.fixture
def versioned(fresh_scratch) -> Tenantry:
    tn = Tenantry(fresh_scratch.settings(migrations=FIXTURE), metadata=Base.metadata, actor="pytest")
    tn.schema.init()
    yield tn
    tn.close()


def test_new_placements_are_recorded_at_head(versioned: Tenantry) -> None:
    head = app_migrations.head_revision(versioned.plane)
    assert head is not None and head != OLD
    assert app_migrations.recorded_revision(versioned.plane, app_migrations.POOLED) == head
    t = versioned.tenants.create(f"w-{uuid.uuid4().hex[:8]}", plan="business")
    assert app_migrations.recorded_revision(versioned.plane, versioned.tenants.placement(t.id)) == head  # type: ignore[arg-type]
    # deploy (init again) leaves versioned tables to `tenantry migrate`
    assert versioned.schema.deploy().secured == []


def test_a_tenant_behind_head_must_migrate_before_moving(versioned: Tenantry) -> None:
    t = versioned.tenants.create(f"w-{uuid.uuid4().hex[:8]}", plan="business")
    placement = versioned.tenants.placement(t.id)
    assert placement is not None
    app_migrations.stamp(versioned.plane, placement, revision=OLD)
    with pytest.raises(InvalidInput, match="tenantry migrate"):
        versioned.tenants.move(t.slug, plan="enterprise")
    report = app_migrations.migrate(versioned.plane, jobs=1)
    assert not report.failed
    # the models lag the migrations: the target, built from them, would lose the new column
    # and table, so the move is refused; with models at the head it goes
    with pytest.raises(TablesDiffer, match="tasks: no column estimate"):
        versioned.tenants.move(t.slug, plan="enterprise")
    versioned.metadata = head_metadata()
    moved = versioned.tenants.move(t.slug, plan="enterprise")
    assert moved.target["isolation"] == "database"
    head = app_migrations.head_revision(versioned.plane)
    assert app_migrations.recorded_revision(versioned.plane, versioned.tenants.placement(t.id)) == head  # type: ignore[arg-type]
