"""Moves, builds and checks work from what placements hold, not from the caller's metadata.

A process that does not load a plugin (or whose models lack a column ``tenantry migrate``
added) once moved a tenant by copying only the tables it knew, then deleted every table of
the source: the plugin's rows were lost. Now the mover copies every table and column the
source holds and refuses, before anything changes, what the target would not have; a CLI
loads the installed plugins whose tables the app deployed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tenantry import Settings, Status, TablesDiffer, Tenant, Tenantry, TenantScoped
from tenantry.contrib.webhooks import WebhooksPlugin
from tenantry.db import change_capture, tenant_copy
from tenantry.services import placement_tables
from tenantry.testing import TIER_PLANS
from tests.model_app import Base
from tests.plugins.sample_plugins import Notes
from tests.support import Scratch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app(fresh_scratch: Scratch) -> Iterator[Tenantry]:
    """The app: the model app's tables and the notes plugin's, deployed in a catalog of its own."""
    tn = Tenantry(fresh_scratch.settings(), metadata=Base.metadata, plugins=[Notes()], actor="app")
    tn.schema.init()
    yield tn
    tn.close()


@pytest.fixture
def bare(fresh_scratch: Scratch, app: Tenantry) -> Iterator[Tenantry]:
    """Another process on the same catalog, with the app's models but not its plugin."""
    tn = Tenantry(fresh_scratch.settings(), metadata=Base.metadata, actor="bare")
    yield tn
    tn.close()


def _notes(tn: Tenantry, tenant: Tenant) -> list[str]:
    with tn.tenant(tenant.slug, allow_inactive=True), tn.connection() as conn:
        return [r[0] for r in conn.execute("SELECT body FROM notes_items ORDER BY id")]


def _unchanged(app: Tenantry, tenant: Tenant, notes: list[str]) -> None:
    """Refused before anything changed: still active and pooled, no job, no trigger, every row."""
    assert app.tenants.get(tenant.id).status is Status.ACTIVE
    assert app.tenants.placement(tenant.id).isolation.value == "pooled"  # type: ignore[union-attr]
    assert _notes(app, tenant) == notes
    with app.admin() as conn:
        assert conn.execute(
            "SELECT count(*) FROM tenantry.jobs WHERE tenant_id = %s AND status = 'running'", (tenant.id,)
        ).fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM tenantry.placements WHERE tenant_id = %s", (tenant.id,)
        ).fetchone() == (1,)
        assert change_capture.tenant_triggers(conn, str(tenant.id)) == []


def test_a_mover_without_the_plugin_refuses_or_carries_its_rows_never_loses_them(app: Tenantry, bare: Tenantry) -> None:
    tenant = app.tenants.create(f"plug-{uuid.uuid4().hex[:8]}")
    with app.tenant(tenant.slug), app.connection() as conn:
        for i in range(5):
            conn.execute("INSERT INTO notes_items (body) VALUES (%s)", (f"n{i}",))
    notes = _notes(app, tenant)
    for plan in (TIER_PLANS["schema"], TIER_PLANS["database"]):
        with pytest.raises(TablesDiffer, match="notes_items: no such table") as refused:
            bare.tenants.move(tenant.slug, plan=plan)
        assert refused.value.problems == ["notes_items: no such table in this process's app tables"]
        _unchanged(app, tenant, notes)
    # building a tenant or spares from the bare tables would leave the plugin's table out
    with pytest.raises(TablesDiffer, match="notes_items"):
        bare.tenants.create(f"new-{uuid.uuid4().hex[:8]}", plan=TIER_PLANS["schema"])
    with pytest.raises(TablesDiffer, match="notes_items"):
        bare.spares.fill(1)
    assert bare.spares.list() == []
    # the app moves it with the plugin's rows; back to the shared tables, which hold the
    # plugin's table, even the bare process carries them
    app.tenants.move(tenant.slug, plan=TIER_PLANS["schema"])
    assert _notes(app, tenant) == notes
    report = bare.tenants.move(tenant.slug, plan=TIER_PLANS["pooled"])
    assert report.rows["notes_items"] == 5
    assert _notes(app, tenant) == notes
    with app.admin() as conn:
        assert change_capture.tenant_triggers(conn, str(tenant.id)) == []


def test_a_column_added_by_migrate_but_missing_from_the_models_is_carried_or_refused(
    app: Tenantry, bare: Tenantry
) -> None:
    pooled = app.settings.pooled_schema
    with app.admin() as conn:  # what a migration the models do not follow did
        conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN budget integer").format(sql.Identifier(pooled, "projects")))
    tenant = app.tenants.create(f"col-{uuid.uuid4().hex[:8]}")
    with app.tenant(tenant.slug), app.connection() as conn:
        conn.execute("INSERT INTO projects (name, budget) VALUES ('p', 42)")
    assert placement_tables.drift(app.plane) == {"pooled": ["projects: no column budget in the app's tables"]}
    with pytest.raises(TablesDiffer, match="projects: no column budget"):
        app.tenants.move(tenant.slug, plan=TIER_PLANS["schema"])
    with app.tenant(tenant.slug), app.connection() as conn:
        assert conn.execute("SELECT budget FROM projects").fetchall() == [(42,)]
    # a schema-tier tenant whose schema got the column too moves into the shared tables with it
    other = app.tenants.create(f"sch-{uuid.uuid4().hex[:8]}", plan=TIER_PLANS["schema"])
    schema = app.tenants.placement(other.id).schema  # type: ignore[union-attr]
    with app.admin() as conn:
        conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN budget integer").format(sql.Identifier(schema, "projects")))
    with app.tenant(other.slug), app.connection() as conn:
        conn.execute("INSERT INTO projects (name, budget) VALUES ('q', 7)")
    bare.tenants.move(other.slug, plan=TIER_PLANS["pooled"])
    with app.tenant(other.slug), app.connection() as conn:
        assert conn.execute("SELECT name, budget FROM projects").fetchall() == [("q", 7)]


def test_the_cli_loads_the_installed_plugins_whose_tables_the_app_deployed(fresh_scratch: Scratch) -> None:
    with Tenantry(fresh_scratch.settings(), metadata=Base.metadata, plugins=[WebhooksPlugin()]) as app:
        app.schema.init()
        tenant = app.tenants.create(f"hooks-{uuid.uuid4().hex[:8]}")
        with app.tenant(tenant.slug), app.connection() as conn:
            for i in range(5):
                conn.execute(
                    "INSERT INTO webhooks_deliveries (event_id, event, payload, status) VALUES (gen_random_uuid(), %s, '{}', 'failed')",
                    (f"e{i}",),
                )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_")} | {
        "TENANTRY_DATABASE_URL": fresh_scratch.url,
        "TENANTRY_OWNER_ROLE": fresh_scratch.owner,
        "TENANTRY_RUNTIME_ROLE": fresh_scratch.runtime,
        "TENANTRY_READER_ROLE": fresh_scratch.reader,
        "TENANTRY_APP": "tests.model_app:Base",  # and no TENANTRY_PLUGINS, as the README's CLI section
        "PYTHONPATH": os.pathsep.join((str(ROOT / "src"), str(ROOT))),
    }
    moved = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tenantry.cli.main import run; run()",
            "tenants",
            "move",
            tenant.slug,
            "--plan",
            TIER_PLANS["database"],
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert moved.returncode == 0, moved.stderr
    with Tenantry(fresh_scratch.settings(), metadata=Base.metadata, plugins=[WebhooksPlugin()]) as app:
        with app.tenant(tenant.slug), app.connection() as conn:
            assert conn.execute("SELECT count(*) FROM webhooks_deliveries").fetchone() == (5,)
        assert app.tenants.placement(tenant.id).isolation.value == "database"  # type: ignore[union-attr]
    checked = subprocess.run(
        [sys.executable, "-c", "from tenantry.cli.main import run; run()", "check", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert checked.returncode == 0 and '"differ": {}' in checked.stdout, (checked.stdout, checked.stderr)


def test_a_plugin_named_in_the_settings_and_passed_explicitly_runs_once() -> None:
    explicit = WebhooksPlugin(allow_private=True)
    settings = Settings.from_env({"TENANTRY_PLUGINS": "webhooks,*,webhooks", "TENANTRY_EMBEDDED": "1"})
    with Tenantry(settings, plugins=[explicit]) as tn:
        assert tn.plugins.names() == ["webhooks"] and tn.plugins.get("webhooks") is explicit
    with Tenantry(settings) as tn:
        assert tn.plugins.names() == ["webhooks"]


def test_tenantry_check_reports_a_placement_without_the_app_tables(app: Tenantry) -> None:
    tenant = app.tenants.create(f"drop-{uuid.uuid4().hex[:8]}", plan=TIER_PLANS["schema"])
    schema = app.tenants.placement(tenant.id).schema  # type: ignore[union-attr]
    with app.admin() as conn:
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, "notes_items")))
        conn.execute("DELETE FROM tenantry.app_tables WHERE schema_name = %s AND table_name = 'notes_items'", (schema,))
    assert placement_tables.drift(app.plane) == {tenant.slug: ["notes_items: no such table in the placement"]}


class _AutoBase(DeclarativeBase):
    pass


class _Counter(TenantScoped, _AutoBase):
    __tablename__ = "counters"
    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=True)
    n: Mapped[int]


def test_a_model_whose_key_the_ddl_orders_otherwise_moves(fresh_scratch: Scratch) -> None:
    # SQLAlchemy's DDL puts an explicit autoincrement column first in a composite key: the
    # tables hold (id, tenant_id) where the metadata says (tenant_id, id). The same columns
    # name the same rows, so the move carries them (it once refused, as if the tables differed)
    with Tenantry(fresh_scratch.settings(), metadata=_AutoBase.metadata, actor="app") as tn:
        tn.schema.init()
        tenant = tn.tenants.create(f"auto-{uuid.uuid4().hex[:8]}")
        [held] = placement_tables.held(tn.plane, tn.tenants.placement(tenant.id))  # type: ignore[arg-type]
        [declared] = tenant_copy.specs(_AutoBase.metadata)
        assert (held.key, declared.key) == (("id", "tenant_id"), ("tenant_id", "id"))
        with tn.tenant(tenant.slug), tn.connection() as conn:
            conn.execute("INSERT INTO counters (n) VALUES (1), (2)")
        assert tn.tenants.move(tenant.slug, plan=TIER_PLANS["schema"]).rows == {"counters": 2}
        with tn.tenant(tenant.slug), tn.connection() as conn:
            conn.execute("INSERT INTO counters (n) VALUES (3)")
            assert conn.execute("SELECT id, n FROM counters ORDER BY id").fetchall() == [(1, 1), (2, 2), (3, 3)]
    # a key of other columns is still a difference
    ours = tenant_copy.TableSpec("t", ("tenant_id", "id", "x"), ("tenant_id", "id"))
    reordered = tenant_copy.TableSpec("t", ours.columns, ("id", "tenant_id"))
    other = tenant_copy.TableSpec("t", ours.columns, ("x", "tenant_id"))
    assert tenant_copy.differences([ours], [reordered], "there") == []
    assert tenant_copy.differences([ours], [other], "there") == ["t: primary key (tenant_id, id), (x, tenant_id) there"]
