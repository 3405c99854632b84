"""tenantry's schema tier against django-tenants, on the same 20-table app and the same server.

Run::

    python bench/vs_django_tenants.py [--server embedded|system] [--url URL] [--tenants 200]
                                      [--migrate-tenants 500] [--jobs 2] [--block 20]

Needs ``django`` and ``django-tenants`` (the ``dev`` extra).

The app
    The 20 tables of ``bench/provisioning.py`` (:func:`provisioning.app_tables`): for tenantry
    declared with SQLAlchemy and ``TenantScoped``; for django-tenants as Django models in a
    ``TENANT_APPS`` app (``bench/django_app/bench_tenant``) whose initial migration is made by
    ``makemigrations`` at the start of the run. Each framework gets a scratch database of its
    own on the same server (``bench/_scratch.py``); django-tenants' tenant and domain models
    (``bench/django_app/customers``) live in its ``public`` schema.

Creation (the ratio)
    ``--tenants`` tenants per side, in blocks of ``--block`` that alternate between the sides
    (and which side goes first), so that load on the machine falls on both alike. Timed per
    tenant, whole:

    * django-tenants: ``Client(schema_name=..., name=...).save()`` with
      ``auto_create_schema`` (``CREATE SCHEMA`` and ``migrate_schemas`` for the schema, which
      applies the app's migration) and its ``Domain`` row: what its documentation does.
    * tenantry, cold: ``tn.tenants.create(slug, plan="business")`` with no spares (a schema of
      its own built then: tables deployed from the metadata with RLS, the placement recorded
      at the migrations' head, catalog and audit rows).
    * tenantry, warm: the same call on a catalog of its own (a second scratch database, same
      server, same settings) whose spare pool was filled with ``--tenants`` spare schemas
      before the timed section (``tn.spares.fill``; its time is printed apart): each create
      claims one (checked), a catalog transaction.

    Ratios: tenantry's total / django-tenants' total, warm and cold; the warm one is the
    headline, and is also given with the fill's time added to tenantry's total.

Migration (the second ratio)
    Both sides are brought to ``--migrate-tenants`` schema tenants (the same alternating
    blocks, timed for information). Then one migration that adds a nullable ``text`` column to
    ``table_05``, across every tenant:

    * django-tenants: a ``0002`` migration (``AddField``), run by ``migrate_schemas`` with its
      default (``standard``) executor: public and every tenant schema, one after another.
    * tenantry: an Alembic script directory, configured from the start
      (``Settings(migrations=...)``), whose first revision is the app, so every placement is
      recorded at it as it is built (any left untracked are stamped before the timing); then a
      revision with ``op.add_column``, run by
      ``tenantry.services.app_migrations.migrate(tn.plane, jobs=--jobs)``: the pooled schema and
      every tenant schema, ``--jobs`` worker processes at a time.

    Both are checked afterwards: every tenant schema has the new column. Ratio: tenantry's
    seconds / django-tenants' seconds.

The migration runs on the cold side's catalog (the warm side is closed after the creation
ratio). The last line is ``vs_django_tenants creation_ratio=<warm> migration_ratio=<y or n/a>
creation_ratio_cold=<cold>``; the goals are 0.2 and 0.33.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from _scratch import (
    add_server_arguments,
    environment,
    load_averages,
    median_ms,
    percentile,
    run_took,
    scratch_database,
    server,
    verdict,
)
from provisioning import app_tables, make_metadata
from psycopg.conninfo import conninfo_to_dict

from tenantry import Settings, Tenantry, TenantryError

CREATION_GOAL = 0.2
MIGRATION_GOAL = 0.33
ALTERED_TABLE = "table_05"
ADDED_COLUMN = "added_note"
MIGRATIONS_PACKAGE = "bench_dt_migrations"

# -- django-tenants -------------------------------------------------------------------------


def configure_django(dsn: str, migrations: Path) -> None:
    """Settings for django-tenants on the database at ``dsn``; migrations go to ``migrations``."""
    import django
    from django.conf import settings

    params = conninfo_to_dict(dsn)
    shared = ["django_tenants", "django_app.customers", "django.contrib.contenttypes"]
    tenant = ["django_app.bench_tenant"]
    sys.path.insert(0, str(migrations))
    for app in ("customers", "bench_tenant"):
        package = migrations / MIGRATIONS_PACKAGE / app
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
    (migrations / MIGRATIONS_PACKAGE / "__init__.py").write_text("")
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench",
        USE_TZ=True,
        DATABASES={
            "default": {
                "ENGINE": "django_tenants.postgresql_backend",
                "NAME": params["dbname"],
                "USER": params.get("user", ""),
                "PASSWORD": params.get("password", ""),
                "HOST": params.get("host", ""),
                "PORT": params.get("port", ""),
            }
        },
        DATABASE_ROUTERS=("django_tenants.routers.TenantSyncRouter",),
        SHARED_APPS=shared,
        TENANT_APPS=tenant,
        INSTALLED_APPS=shared + tenant,
        TENANT_MODEL="customers.Client",
        TENANT_DOMAIN_MODEL="customers.Domain",
        MIGRATION_MODULES={app: f"{MIGRATIONS_PACKAGE}.{app}" for app in ("customers", "bench_tenant")},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()


class DjangoSide:
    """django-tenants, set up as its documentation says."""

    name = "django-tenants"

    def __init__(self, dsn: str, migrations: Path) -> None:
        self.migrations = migrations
        configure_django(dsn, migrations)
        from django.core.management import call_command
        from django_app.customers.models import Client, Domain

        self.call_command = call_command
        self.Client, self.Domain = Client, Domain
        call_command("makemigrations", "customers", "bench_tenant", verbosity=0)
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
        public = Client(schema_name="public", name="public")
        public.save(verbosity=0)
        Domain(domain="localhost", tenant=public, is_primary=True).save()

    def create(self, slug: str) -> None:
        tenant = self.Client(schema_name=slug.replace("-", "_"), name=slug)
        tenant.save(verbosity=0)
        self.Domain(domain=f"{slug}.example.com", tenant=tenant, is_primary=True).save()

    def add_migration(self) -> None:
        (self.migrations / MIGRATIONS_PACKAGE / "bench_tenant" / "0002_add_column.py").write_text(
            "from django.db import migrations, models\n\n\n"
            "class Migration(migrations.Migration):\n"
            '    dependencies = [("bench_tenant", "0001_initial")]\n'
            "    operations = [\n"
            f'        migrations.AddField("{ALTERED_TABLE.replace("_", "")}", "{ADDED_COLUMN}",'
            " models.TextField(null=True)),\n"
            "    ]\n"
        )
        importlib.invalidate_caches()

    def migrate(self) -> None:
        self.call_command("migrate_schemas", interactive=False, verbosity=0)

    def close(self) -> None:
        from django.db import connections

        connections.close_all()


# -- tenantry -------------------------------------------------------------------------------


class TenantrySide:
    """tenantry with the app's Alembic script directory configured (``Settings.migrations``,
    where this version of tenantry has it), so that new placements are recorded at its head as
    they are built, as django-tenants records the migrations it ran."""

    def __init__(self, settings: Settings, metadata: sa.MetaData, scripts: Path, name: str = "tenantry") -> None:
        self.name = name
        self.spare_ids: set[Any] | None = None
        """When set, every create must claim one of these spares."""
        self.scripts = scripts
        (scripts / "versions").mkdir(parents=True)
        _revision(
            scripts,
            "0001_app",
            None,
            "    from provisioning import make_metadata\n\n"
            "    make_metadata().create_all(op.get_bind())  # lands in the placement's schema",
        )
        self.tracks = "migrations" in Settings.__dataclass_fields__
        if self.tracks:
            settings = settings.with_changes(migrations=str(scripts))
        self.tn = Tenantry(settings, metadata=metadata, actor="bench")

    def create(self, slug: str) -> None:
        tenant = self.tn.tenants.create(slug, plan="business")
        if self.spare_ids is not None:
            assert tenant.id in self.spare_ids, f"{slug} did not claim a spare"
            self.spare_ids.discard(tenant.id)

    def fill(self, count: int) -> float:
        """Fill the spare pool with ``count`` schemas; the seconds it took."""
        begun = time.perf_counter()
        report = self.tn.spares.fill(count)
        took = time.perf_counter() - begun
        assert report.ready == count, report
        self.spare_ids = {s.id for s in self.tn.spares.list() if s.status == "ready"}
        return took

    def stamp(self) -> Any:
        from tenantry.services import app_migrations

        report = app_migrations.stamp_placements(self.tn.plane, "0001_app", jobs=2, directory=str(self.scripts))
        report.raise_for_failures()
        return len(report.results)

    def add_migration(self) -> None:
        _revision(
            self.scripts,
            "0002_add_column",
            "0001_app",
            f'    op.add_column("{ALTERED_TABLE}", sa.Column("{ADDED_COLUMN}", sa.Text(), nullable=True))',
        )

    def migrate(self, jobs: int) -> Any:
        from tenantry.services import app_migrations

        report = app_migrations.migrate(self.tn.plane, jobs=jobs, directory=str(self.scripts))
        report.raise_for_failures()
        return report


def _revision(directory: Path, revision: str, down: str | None, upgrade: str) -> None:
    (directory / "versions" / f"{revision}.py").write_text(
        f'"""Benchmark revision {revision}."""\n\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        f"revision = {revision!r}\ndown_revision = {down!r}\nbranch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade() -> None:\n{upgrade}\n\n\ndef downgrade() -> None:\n    pass\n"
    )


def tenantry_migrate_problem() -> str | None:
    """Why ``tenantry.services.app_migrations.migrate`` cannot be used here, or ``None``."""
    try:
        from tenantry.services import app_migrations
    except ImportError as err:
        return f"tenantry migrate not available yet ({err})"
    for name in ("migrate", "stamp_placements"):
        function = getattr(app_migrations, name, None)
        if function is None:
            return f"tenantry migrate not available yet (no app_migrations.{name})"
        if not {"jobs", "directory"} <= set(inspect.signature(function).parameters):
            return f"tenantry migrate not available yet (app_migrations.{name} takes no jobs/directory)"
    return None


# -- measuring ------------------------------------------------------------------------------

Side = DjangoSide | TenantrySide


def alternate(sides: Sequence[Side], slugs: Sequence[str], block: int, timings: dict[str, list[int]]) -> None:
    """Create every slug on every side, ``block`` at a time, the sides taking turns (and
    turns at going first)."""
    for b, start in enumerate(range(0, len(slugs), block)):
        chunk = slugs[start : start + block]
        for side in sides if b % 2 == 0 else list(reversed(sides)):
            for slug in chunk:
                begun = time.perf_counter_ns()
                side.create(slug)
                timings[side.name].append(time.perf_counter_ns() - begun)


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    begun = time.perf_counter()
    result = action()
    return time.perf_counter() - begun, result


#: the tenant schemas of each side, as regular expressions
DJANGO_SCHEMAS = "^t[0-9]{4}$"
TENANTRY_SCHEMAS = "^tenant_[0-9a-f]{32}$"


def schemas_with_column(dsn: str, pattern: str) -> tuple[int, int]:
    """(tenant schemas, those whose ``table_05`` has the added column) in a database."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM information_schema.columns c"
            "   WHERE c.table_schema = n.nspname AND c.table_name = %s AND c.column_name = %s))"
            " FROM pg_namespace n WHERE n.nspname ~ %s",
            (ALTERED_TABLE, ADDED_COLUMN, pattern),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def tables_per_schema(dsn: str, pattern: str) -> set[int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT count(t.tablename) FROM pg_namespace n LEFT JOIN pg_tables t"
            "   ON t.schemaname = n.nspname AND t.tablename LIKE 'table\\_%%'"
            " WHERE n.nspname ~ %s GROUP BY n.nspname",
            (pattern,),
        ).fetchall()
    return {int(r[0]) for r in rows}


def describe(name: str, values: Sequence[int]) -> str:
    return (
        f"  {name:<15} {len(values):>5} tenants  total {sum(values) / 1e9:8.2f} s"
        f"  p50 {median_ms(values):8.2f} ms  p95 {percentile(values, 0.95):8.2f} ms"
    )


WARM, COLD = "tenantry warm", "tenantry cold"


def creation_ratios(
    sides: Sequence[Side], slugs: Sequence[str], block: int, fill_seconds: float
) -> tuple[float, float]:
    """Create ``slugs`` on every side, print the figures; the warm and cold ratios."""
    creation: dict[str, list[int]] = {side.name: [] for side in sides}
    alternate(sides, slugs, block, creation)
    print(f"\ncreating {len(slugs)} schema tenants (blocks of {block}, the sides taking turns):")
    for side in sides:
        print(describe(side.name, creation[side.name]))
    theirs, theirs_p50 = sum(creation["django-tenants"]), median_ms(creation["django-tenants"])
    ratios = {}
    for name in (WARM, COLD):
        ratios[name] = sum(creation[name]) / theirs
        p50_ratio = median_ms(creation[name]) / theirs_p50
        print(
            f"  creation ratio {name}/django-tenants: {ratios[name]:.3f} on totals ({p50_ratio:.3f} on p50s),"
            f" goal <= {CREATION_GOAL:g}: {verdict(ratios[name], CREATION_GOAL)}"
        )
    with_fill = (sum(creation[WARM]) / 1e9 + fill_seconds) / (theirs / 1e9)
    print(
        f"  {WARM} with the {fill_seconds:.2f} s fill counted: {with_fill:.3f}"
        " (the fill runs ahead of time, off the creation path)"
    )
    return ratios[WARM], ratios[COLD]


def benchmark(server_url: str, args: argparse.Namespace) -> tuple[float, float | None, float]:
    specs = app_tables()
    work = Path(tempfile.mkdtemp(prefix="tenantry-bench-dt-"))
    with scratch_database(server_url) as scratch, scratch_database(server_url) as warm_scratch:
        ours = TenantrySide(scratch.settings(), make_metadata(specs), work / "alembic", name=COLD)
        warm = TenantrySide(warm_scratch.settings(), make_metadata(specs), work / "alembic-warm", name=WARM)
        tn = ours.tn
        django_side: DjangoSide | None = None
        try:
            django_dsn = scratch.database("dt")
            tn.schema.init()
            warm.tn.schema.init()
            with tn.admin() as admin:
                version = admin.execute("SHOW server_version").fetchone()
            print(f"server: PostgreSQL {version[0] if version else '?'} ({args.server})")
            django_side = DjangoSide(django_dsn, work / "django")
            fill_seconds = warm.fill(args.tenants)
            print(
                f"{WARM}: {args.tenants} spare schemas filled in {fill_seconds:.2f} s"
                f" ({fill_seconds / args.tenants * 1000:.1f} ms each), before the timed section"
            )
            sides: list[Side] = [django_side, warm, ours]

            slugs = [f"t{i:04d}" for i in range(args.migrate_tenants)]
            creation_ratio, cold_ratio = creation_ratios(sides, slugs[: args.tenants], args.block, fill_seconds)
            for dsn, pattern in (
                (django_dsn, DJANGO_SCHEMAS),
                (scratch.url, TENANTRY_SCHEMAS),
                (warm_scratch.url, TENANTRY_SCHEMAS),
            ):
                assert tables_per_schema(dsn, pattern) == {len(specs)}, (dsn, pattern)
            assert warm.spare_ids == set() and warm.tn.schema.unprotected_tables() == []
            print(
                f"  checked: every tenant schema of every side has the {len(specs)} tables;"
                " every warm create claimed a spare"
            )
            warm.tn.close()
            sides = [django_side, ours]

            problem = tenantry_migrate_problem()
            if problem is not None:
                print(f"\nmigration: not measured ({problem})")
                return creation_ratio, None, cold_ratio
            rest = slugs[args.tenants :]
            if rest:
                more: dict[str, list[int]] = {side.name: [] for side in sides}
                alternate(sides, rest, max(args.block, 50), more)
                print(f"\ncreating {len(rest)} more schema tenants of each (information):")
                for side in sides:
                    print(describe(side.name, more[side.name]))
            print(
                f"\nmigration across {args.migrate_tenants} schema tenants (adding a nullable column to {ALTERED_TABLE}):"
            )
            try:
                stamp_seconds, stamped = timed(ours.stamp)
            except TenantryError as err:
                print(f"migration: not measured (tenantry stamp failed: {str(err).splitlines()[0]})")
                return creation_ratio, None, cold_ratio
            print(
                f"  tenantry: {stamped} untracked placements stamped at the app's first revision"
                f" in {stamp_seconds:.1f} s (not timed; new placements are recorded as they are built"
                f"{'' if ours.tracks else ', but not by this version of tenantry'})"
            )
            django_side.add_migration()
            ours.add_migration()
            theirs_s, _ = timed(django_side.migrate)
            print(
                f"  {'django-tenants':<15} {theirs_s:8.2f} s  migrate_schemas, standard executor (public + every tenant)"
            )
            try:
                ours_s, report = timed(lambda: ours.migrate(args.jobs))
            except TenantryError as err:
                print(f"migration: not measured (tenantry migrate failed: {str(err).splitlines()[0]})")
                return creation_ratio, None, cold_ratio
            print(
                f"  {'tenantry':<15} {ours_s:8.2f} s  app_migrations.migrate(jobs={args.jobs}):"
                f" {len(report.migrated)} of {report.total} placements migrated (the pooled schema too)"
            )
            found = {
                "django-tenants": schemas_with_column(django_dsn, DJANGO_SCHEMAS),
                "tenantry": schemas_with_column(scratch.url, TENANTRY_SCHEMAS),
            }
            for name, (schemas, altered) in found.items():
                assert schemas == altered == args.migrate_tenants, (name, schemas, altered)
            print(f"  checked: all {args.migrate_tenants} tenant schemas of both sides have the new column")
            migration_ratio = ours_s / theirs_s
            print(
                f"  migration ratio tenantry/django-tenants: {migration_ratio:.3f},"
                f" goal <= {MIGRATION_GOAL:g}: {verdict(migration_ratio, MIGRATION_GOAL)}"
            )
            return creation_ratio, migration_ratio, cold_ratio
        finally:
            if django_side is not None:
                django_side.close()
            tn.close()
            warm.tn.close()
            shutil.rmtree(work, ignore_errors=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_server_arguments(parser)
    parser.add_argument("--tenants", type=int, default=200, help="tenants created per side for the creation ratio")
    parser.add_argument("--migrate-tenants", type=int, default=500, help="tenants per side for the migration")
    parser.add_argument("--jobs", type=int, default=2, help="tenantry's migration worker processes")
    parser.add_argument("--block", type=int, default=20, help="tenants per turn of a side")
    args = parser.parse_args(argv)
    if args.tenants < 1 or args.block < 1 or args.jobs < 1:
        parser.error("--tenants, --block and --jobs must be positive")
    args.migrate_tenants = max(args.migrate_tenants, args.tenants)
    return args


def versions() -> str:
    from importlib.metadata import version

    import django

    return f"Django {django.get_version()}, django-tenants {version('django-tenants')}"


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = datetime.now(UTC)
    print(
        f"tenantry vs django-tenants: {args.tenants} tenants created, {args.migrate_tenants} migrated,"
        f" {environment(started)}, {versions()}, load average {load_averages()}"
    )
    with server(args.server, args.url) as url:
        creation, migration, cold = benchmark(url, args)
    print(f"\n{run_took(started)}")
    shown = "n/a" if migration is None else f"{migration:.3f}"
    print(f"vs_django_tenants creation_ratio={creation:.3f} migration_ratio={shown} creation_ratio_cold={cold:.3f}")


if __name__ == "__main__":
    main()
