"""App migrations across every placement: Alembic, fanned out over tiers, cells and tenants.

The service is :mod:`tenantry.services.app_migrations` (``stamp``, ``migrate``, ``status``);
this package holds its parts:

* :mod:`~tenantry.migrations.scripts`: the app's Alembic script directory and the plugins'
  revision directories, loaded once as one script directory;
* :mod:`~tenantry.migrations.runner`: one placement's upgrade (or stamp) in one transaction;
* :mod:`~tenantry.migrations.secure`: the tenant-safety check and RLS after a migration;
* :mod:`~tenantry.migrations.fanout` and :mod:`~tenantry.migrations.worker`: many
  placements in at most ``jobs`` worker processes;
* the revisions the catalog records, failures and plans: :mod:`tenantry.db.catalog.app_revisions`;
* :mod:`~tenantry.migrations.report`: the reports and :class:`MigrationFailed`.

Writing the app's migrations
----------------------------
They are ordinary Alembic revisions in one script directory (``TENANTRY_MIGRATIONS``) that
**name no schema**: tenantry runs each placement's upgrade with the placement's schema first
on the search path (``<schema>, public, pg_temp``) and its version table
(``alembic_version``) in that schema, so one script serves the pooled schema, a schema-tier
tenant's schema and a database-tier tenant's database. A new tenant table needs what
:class:`tenantry.TenantScoped` gives a declared one: ``tenant_id`` (uuid, server default
``tenantry.require_tenant_id()``) leading the primary key, and ``tenant_id`` in every foreign
key; tenantry refuses a placement whose tables break this, and puts row-level security on the
new tables itself. Each placement migrates in one transaction, so a revision cannot use
``autocommit_block()`` (``CREATE INDEX CONCURRENTLY``).

New placements are created from the app's metadata and stamped at the head, so the metadata
must describe the head revision.

Plugins' branches
-----------------
A plugin with tables may ship a directory of revisions of its own (``AppTables.migrations``),
one branch labelled with its section; the app's ``versions`` and every plugin's directory are
the ``version_locations`` of one Alembic script directory. A placement's revision is then its
heads, sorted and joined with ``,``, and ``migrate`` upgrades to every head. With no app
directory (only plugins have migrations) the app's tables are unversioned and an untracked
placement is at base for the plugins' branches. See docs/plugins.md. The script directory's ``env.py`` is not used by tenantry
(it drives Alembic itself); keep one for ``alembic revision --autogenerate`` if you like.
"""

from tenantry.migrations.report import MigrationFailed, MigrationReport, PlacementResult, StatusReport

__all__ = ["MigrationFailed", "MigrationReport", "PlacementResult", "StatusReport"]
