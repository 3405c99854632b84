"""tenantry in one screen: two tenants, one set of tables, PostgreSQL keeping them apart.

Run it with ``.venv/bin/python examples/quickstart.py`` (``bash scripts/demo`` makes the venv).
With no ``TENANTRY_DATABASE_URL`` it starts the embedded PostgreSQL server; rerunning reuses it.

It keeps a catalog of its own on that server (the database ``tenantry_quickstart`` and roles
of its own; with ``TENANTRY_DATABASE_URL``, the database named there with ``_quickstart``), so
it never meets the tenants of ``tenantry demo`` or of your app, which share the server: the
demo's ``globex`` has a schema of its own and the tracker's tables, not these.
"""

from __future__ import annotations

import psycopg
import sqlalchemy as sa
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from tenantry import IsolationError, Settings, TenantExists, Tenantry, TenantScoped, current_tenant

OWN = "_quickstart"
"""What the quickstart adds to the configured database and role names for its own catalog."""


class Base(DeclarativeBase):
    pass


class Project(TenantScoped, Base):
    """A tenant-scoped table: no tenant_id in sight in the app's code."""

    __tablename__ = "demo_projects"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    name: Mapped[str]


SEED = {
    "acme": ["Rocket skates", "Giant magnet", "Tornado seeds"],
    "globex": ["Doomsday device", "Hammock district"],
}


def own_catalog(settings: Settings) -> Settings:
    """Settings for the quickstart's own catalog, beside the configured one on the same server:
    its database (created if missing) and its owner and runtime roles."""
    with Tenantry(settings) as server:  # starts the embedded server when no URL is set
        url = server.admin_url
    dbname = f"{conninfo_to_dict(url).get('dbname') or 'postgres'}{OWN}"
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    return settings.with_changes(
        database_url=make_conninfo(url, dbname=dbname),
        owner_role=f"{settings.owner_role}{OWN}",
        runtime_role=f"{settings.runtime_role}{OWN}",
    )


def main() -> None:
    console = Console()
    settings = own_catalog(Settings.from_env(embedded=True))
    tn = Tenantry(settings, metadata=Base.metadata, actor="quickstart")
    console.print("[bold]1. init[/] catalog, roles and the app's tables (idempotent)")
    report = tn.schema.init()
    console.print(f"   catalog version {report.version}; row-level security on {tn.schema.deploy().secured}")

    console.print("[bold]2. tenants[/]")
    for slug in SEED:
        try:
            tn.tenants.create(slug, name=slug.title())
            console.print(f"   created {slug}")
        except TenantExists:
            console.print(f"   {slug} exists already")

    console.print("[bold]3. the same code under each tenant[/]")
    engine = tn.engine()
    for slug, names in SEED.items():
        with tn.tenant(slug), Session(engine) as session:
            if not session.scalar(sa.select(sa.func.count()).select_from(Project)):
                session.add_all(Project(name=n) for n in names)
                session.commit()

    grid = Table("bound tenant", "SELECT name FROM demo_projects", "count(*)")
    for slug in SEED:
        with tn.tenant(slug), Session(engine) as session:
            names = session.scalars(sa.select(Project.name).order_by(Project.name)).all()
            count = session.scalar(sa.select(sa.func.count()).select_from(Project))
            grid.add_row(current_tenant().slug, ", ".join(names), str(count))  # type: ignore[union-attr]
    with Session(engine) as session:
        grid.add_row("(none)", "", str(session.scalar(sa.select(sa.func.count()).select_from(Project))))
    console.print(grid)

    console.print("[bold]4. what a hostile query gets[/]")
    globex = tn.tenants.get("globex")
    with tn.tenant("acme"), tn.connection() as conn:
        try:
            conn.execute("INSERT INTO demo_projects (tenant_id, name) VALUES (%s, 'Trojan')", (globex.id,))
        except IsolationError as err:
            console.print(f"   insert into another tenant: refused ({err})")
            conn.rollback()
        except psycopg.Error as err:
            console.print(f"   insert into another tenant: refused ({err.diag.message_primary})")
            conn.rollback()
        try:
            conn.execute("SELECT set_config('tenantry.tenant_id', %s, true)", (str(globex.id),))
            conn.execute("SELECT name FROM demo_projects").fetchall()
        except psycopg.Error as err:
            console.print(f"   switching tenant from SQL: refused ({err.diag.message_primary})")
            conn.rollback()
    console.print("\nNext: `tenantry tenants list`, `tenantry --help`, and the README.")
    tn.close()


if __name__ == "__main__":
    main()
