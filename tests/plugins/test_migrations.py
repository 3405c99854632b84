"""An app that versions its tables with Alembic adds a plugin's tables with a revision of its
own (docs/plugins.md): the revision creates them from the plugin's metadata in every placement,
tenantry secures them, and tenants created afterwards get them from the merged metadata."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from sqlalchemy.orm import Session

from tenantry import ConfigurationError, Tenantry
from tenantry.contrib.webhooks import Delivery, WebhooksPlugin
from tenantry.db import rls
from tenantry.services import app_migrations
from tests.migrations.support import (  # noqa: F401
    HEAD,
    World,
    add_revision,
    head_metadata,
    make_world,
    mtn,
    scripts_copy,
    world,
)
from tests.support import Scratch

REVISION = "0003_webhooks"
UPGRADE = """    from tenantry.contrib.webhooks import WebhooksPlugin

    WebhooksPlugin.metadata.create_all(op.get_bind())"""


def test_a_revision_adds_a_plugins_tables_everywhere(world: World, scripts_copy: Path, fresh_scratch: Scratch) -> None:  # noqa: F811
    add_revision(scripts_copy, REVISION, HEAD, UPGRADE)
    report = app_migrations.migrate(world.tn.plane, directory=str(scripts_copy))
    assert len(report.migrated) == 5 and not report.failed
    assert all("webhooks_deliveries" in r.secured for r in report.migrated)
    for target in world.targets():
        with psycopg.connect(world.url(target)) as conn:
            assert rls.unprotected_tables(conn) == []
    app = Tenantry(
        fresh_scratch.settings(migrations=str(scripts_copy)), metadata=head_metadata(), plugins=[WebhooksPlugin()]
    )
    try:
        with pytest.raises(ConfigurationError, match="revision of the app"):
            app.plugins.deploy()
        newcomer = app.tenants.create(
            "after-the-plugin", plan="business"
        )  # built from the merged metadata, at the head
        assert world.catalog_revisions()[newcomer.slug] == REVISION
        for tenant in [*world.tenants, newcomer]:
            with app.tenant(tenant.id), Session(app.engine()) as session, session.begin():
                session.add(Delivery(event="test.event", payload={"tenant": tenant.slug}))
        for tenant in [*world.tenants, newcomer]:
            with app.tenant(tenant.id), Session(app.engine()) as session:
                assert [d.payload for d in session.query(Delivery)] == [{"tenant": tenant.slug}]
    finally:
        app.close()
