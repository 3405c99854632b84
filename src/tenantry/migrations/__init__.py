"""App migrations across every placement: Alembic, fanned out over tiers, cells and tenants.

The service is :mod:`tenantry.services.app_migrations` (``stamp``, ``migrate``, ``status``);
this package holds its parts:

* :mod:`~tenantry.migrations.scripts`: the app's Alembic script directory, loaded once;
* :mod:`~tenantry.migrations.runner`: one placement's upgrade (or stamp) in one transaction;
* :mod:`~tenantry.migrations.secure`: the tenant-safety check and RLS after a migration;
* :mod:`~tenantry.migrations.fanout`: many placements in at most ``jobs`` worker processes;
* :mod:`~tenantry.migrations.tracking`: the revisions the catalog records, failures, plans;
* :mod:`~tenantry.migrations.report`: the reports and :class:`MigrationFailed`.

The app's migration scripts are ordinary Alembic revisions that name no schema: tenantry runs
each with the placement's schema first on the search path and the version table
(``alembic_version``) in that schema, so the same scripts serve the pooled schema, a
schema-tier tenant's schema and a database-tier tenant's database. The script directory's
``env.py`` is not used by tenantry (it drives Alembic itself); keep one for ``alembic
revision --autogenerate`` if you like.
"""

from tenantry.migrations.report import MigrationFailed, MigrationReport, PlacementResult, StatusReport

__all__ = ["MigrationFailed", "MigrationReport", "PlacementResult", "StatusReport"]
