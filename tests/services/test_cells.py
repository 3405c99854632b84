"""Cells: a second real PostgreSQL server holds database-tier tenants."""

from __future__ import annotations

import uuid

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.orm import Session

from tenantry import Conflict, InvalidInput, NotFound, Tenantry
from tests.model_app import Base, Project
from tests.services.test_cell_counts import assert_counts_match


@pytest.fixture
def cell_tn(fresh_scratch, second_cell):
    """A catalog on one server, with the other server registered as cell 'second'.

    The second server's roles must be the catalog's roles, so the cell gets the same names."""
    tn = Tenantry(fresh_scratch.settings(), metadata=Base.metadata, actor="pytest")
    tn.schema.init()
    # the cell's scratch database is where its roles live; tenant databases go beside it
    second_cell.owner, second_cell.runtime = fresh_scratch.owner, fresh_scratch.runtime
    tn.cells.add("second", second_cell.server_url, capacity=10, labels={"region": "eu"})
    yield tn
    second_databases = [database for cell, database in _tenant_databases(fresh_scratch.url) if cell == "second"]
    tn.close()
    with psycopg.connect(second_cell.server_url, autocommit=True) as conn:
        for name in second_databases:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _tenant_databases(url: str) -> list[tuple[str, str]]:
    """``(cell, database)`` of every database-tier placement the catalog at ``url`` made."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT cell, database_name FROM tenantry.placements WHERE database_name IS NOT NULL"
        ).fetchall()


def _slug() -> str:
    return f"c-{uuid.uuid4().hex[:8]}"


def test_cells_listed_with_primary(cell_tn: Tenantry) -> None:
    cells = {c.name: c for c in cell_tn.cells.list()}
    assert set(cells) == {"primary", "second"}
    assert cells["second"].labels == {"region": "eu"} and cells["second"].capacity == 10
    shown = cells["second"].to_dict()
    assert "password" not in str(shown) and shown["status"] == "active"
    # adding it again is a no-op; another server under the same name is a conflict
    assert cell_tn.cells.add("second", cell_tn.cells.get("second").dsn).name == "second"  # type: ignore[arg-type]
    with pytest.raises(Conflict):
        cell_tn.cells.add("second", "host=127.0.0.1 port=1 dbname=x")
    with pytest.raises(InvalidInput):
        cell_tn.cells.add("primary", "host=x")
    with pytest.raises(NotFound):
        cell_tn.cells.get("nowhere")


def test_database_tenant_on_second_server(cell_tn: Tenantry) -> None:
    here, there = _slug(), _slug()
    cell_tn.tenants.create(here, plan="enterprise", cell="primary")
    cell_tn.tenants.create(there, plan="enterprise", cell="second")
    assert cell_tn.tenants.placement(there).cell == "second"  # type: ignore[union-attr]
    servers = {}
    for slug in (here, there):
        with cell_tn.tenant(slug), Session(cell_tn.engine()) as session:
            session.add(Project(name=slug))
            session.commit()
            assert session.scalars(sa.select(Project.name)).all() == [slug]
            servers[slug] = session.execute(sa.text("SELECT version()")).scalar()
        with cell_tn.tenant(slug), cell_tn.connection() as conn:
            assert conn.execute("SELECT name FROM projects").fetchall() == [(slug,)]
    assert servers[here] != servers[there]  # two different servers (PostgreSQL 15 and 18)
    sized = cell_tn.usage.measure_storage().bytes  # (each measured on its own server)
    assert all(sized[cell_tn.tenants.get(slug).id] > 8192 for slug in (here, there))
    database = cell_tn.tenants.placement(there).database  # type: ignore[union-attr]
    assert cell_tn.tenants.delete(there) == {f"database {database}": 1}
    with psycopg.connect(cell_tn.cells.get("second").dsn) as conn:  # type: ignore[arg-type]
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
    assert database not in names


def test_plan_pins_and_labels_choose_the_cell(cell_tn: Tenantry) -> None:
    cell_tn.plans.pin("enterprise", cell="second")
    a = cell_tn.tenants.create(_slug(), plan="enterprise")
    assert cell_tn.tenants.placement(a.id).cell == "second"  # type: ignore[union-attr]
    cell_tn.plans.pin("enterprise", labels={"region": "us"})
    with pytest.raises(InvalidInput, match="no active cell fits"):
        cell_tn.tenants.create(_slug(), plan="enterprise")
    cell_tn.plans.pin("enterprise", labels={"region": "eu"})
    b = cell_tn.tenants.create(_slug(), plan="enterprise")
    assert cell_tn.tenants.placement(b.id).cell == "second"  # type: ignore[union-attr]
    with pytest.raises(InvalidInput, match="primary cell"):
        cell_tn.tenants.create(_slug(), plan="business", cell="second")


def test_draining_cell_takes_no_new_tenants(cell_tn: Tenantry) -> None:
    assert cell_tn.cells.drain("second").status == "draining"
    with pytest.raises(InvalidInput, match="draining"):
        cell_tn.tenants.create(_slug(), plan="enterprise", cell="second")
    cell_tn.plans.pin("enterprise", labels={"region": "eu"})
    with pytest.raises(InvalidInput, match="no active cell fits"):
        cell_tn.tenants.create(_slug(), plan="enterprise")
    assert cell_tn.cells.undrain("second").status == "active"
    assert [e.action for e in cell_tn.audit.list(target_type="cell", target="second")][:2] == [
        "cell.activate",
        "cell.drain",
    ]


def test_move_a_database_tenant_to_another_server(cell_tn: Tenantry) -> None:
    slug = _slug()
    cell_tn.tenants.create(slug, plan="enterprise", cell="primary")
    with cell_tn.tenant(slug), cell_tn.connection() as conn:
        conn.execute("INSERT INTO projects (name) SELECT 'p' || g FROM generate_series(1, 50) g")
    old = cell_tn.tenants.placement(slug)
    report = cell_tn.tenants.move(slug, cell="second")
    assert report.rows["projects"] == 50 and report.target["cell"] == "second"
    assert cell_tn.tenants.placement(slug).cell == "second"  # type: ignore[union-attr]
    assert assert_counts_match(cell_tn.admin_url) == {"second": 1}  # (the first server's is retired)
    with cell_tn.tenant(slug), cell_tn.connection() as conn:
        assert conn.execute("SELECT count(*) FROM projects").fetchone() == (50,)
        conn.execute("INSERT INTO projects (name) VALUES ('there')")
    with psycopg.connect(cell_tn.admin_url) as conn:  # the copy on the first server is gone
        assert (
            conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s",
                (old.database,),  # type: ignore[union-attr]
            ).fetchone()
            is None
        )
