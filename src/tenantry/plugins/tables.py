"""Plugins' tables: checked when a plugin is registered, merged into the tables tenantry manages,
and deployed into placements that predate the plugin.

The tables a Tenantry manages are the app's and every registered plugin's together
(:func:`merged_metadata`). Every path that builds or copies a placement reads that one
``MetaData``: ``tn.schema.init()``/``tn.schema.deploy()`` (the pooled tables), provisioning (a schema- or
database-tier tenant's tables), spares (their fingerprint, so spares built before a plugin
was added are not claimed) and moves (the rows copied). A plugin's tables are therefore
everywhere the app's are, under the same row-level security.

A plugin's tables reach placements that predate it in one of two ways:

* **Its own migrations** (``AppTables.migrations``, checked by :func:`check_migrations`): a
  directory of Alembic revisions, one branch labelled with the plugin's section, run by
  ``tenantry migrate`` beside the app's (:mod:`tenantry.migrations`). Its ``metadata`` is the
  head of that branch: new placements are built from it and stamped at every head.
* **No migrations**: :func:`deploy_everywhere` (``tenantry plugins deploy``) creates its
  tables from its metadata where they are missing; it is idempotent. With app migrations
  (``TENANTRY_MIGRATIONS``) the app's Alembic revisions are the only way its placements'
  tables change, so such a plugin's tables are added by a revision of the app (see
  docs/plugins.md) and :func:`deploy_everywhere` refuses to run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tenantry.db import catalog, rls
from tenantry.db.catalog import audit
from tenantry.db.catalog.placements import live_placements
from tenantry.db.connect import database_url
from tenantry.db.deploy import deploy_tables
from tenantry.errors import ConfigurationError, InvalidInput
from tenantry.plugins.base import AppTables

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = ["check_migrations", "check_tables", "deploy_everywhere", "merged_metadata", "plugin_metadata"]


def check_tables(plugin: AppTables) -> None:
    """Refuse (:class:`ConfigurationError`) tables that are not tenant-safe, not named
    ``<section>_...``, or that reference tables outside the plugin."""
    metadata = getattr(plugin, "metadata", None)
    if not isinstance(metadata, sa.MetaData) or not metadata.tables:
        raise ConfigurationError(f"plugin {plugin.name!r} has AppTables but no metadata with tables")
    prefix = plugin.section + "_"
    problems = [f"table {name!r} must be named {prefix}..." for name in metadata.tables if not name.startswith(prefix)]
    for table in metadata.tables.values():
        for fk in table.foreign_keys:
            target = fk.target_fullname.rsplit(".", 1)[0]
            if target not in metadata.tables:
                problems.append(f"{table.name}: foreign key to {target}, which is not one of the plugin's tables")
    if problems:
        raise ConfigurationError(f"plugin {plugin.name!r}: " + "; ".join(problems))
    try:
        rls.validate_metadata(metadata)
    except InvalidInput as err:
        raise ConfigurationError(f"plugin {plugin.name!r}: {err.message}") from err


def check_migrations(plugin: AppTables) -> tuple[str, tuple[str, ...]] | None:
    """Check the plugin's migrations directory, if it has one (:class:`ConfigurationError`
    naming the problem): the directory and its revision ids; ``None`` when it has none."""
    location = getattr(plugin, "migrations", None)
    if location is None:
        return None
    if not isinstance(location, (str, os.PathLike)):
        raise ConfigurationError(f"plugin {plugin.name!r}: migrations must be a directory path, not {location!r}")
    from tenantry.migrations.scripts import plugin_chain  # alembic loads only when needed

    return plugin_chain(plugin.name, plugin.section, location)


def merged_metadata(app: sa.MetaData, plugins: Sequence[AppTables]) -> sa.MetaData:
    """A new ``MetaData`` holding copies of the app's tables and the plugins' (``app`` itself
    when no plugin has tables). A plugin table named like an app table is refused."""
    if not plugins:
        return app
    merged = sa.MetaData()
    for table in app.tables.values():
        table.to_metadata(merged)
    for plugin in plugins:
        for name, table in plugin.metadata.tables.items():
            if name in merged.tables:
                raise ConfigurationError(f"plugin {plugin.name!r}'s table {name!r} clashes with a table of the app")
            table.to_metadata(merged)
    return merged


def plugin_metadata(plugins: Sequence[AppTables]) -> sa.MetaData | None:
    """The plugins' tables alone, in one ``MetaData``; ``None`` when they have none."""
    if not plugins:
        return None
    return merged_metadata(sa.MetaData(), plugins)


def deploy_everywhere(tn: ControlPlane, plugins: Sequence[AppTables]) -> list[dict[str, Any]]:
    """Create the plugins' tables (with RLS) in the pooled schema and in every active schema-
    and database-tier placement that lacks them; returns what each deploy did. Pass plugins
    without migrations of their own: those with migrations are deployed by ``tenantry migrate``."""
    from tenantry.services import app_migrations  # (lazy: alembic loads only when needed)

    chained = [p.name for p in plugins if getattr(p, "migrations", None) is not None]
    if chained:
        raise ConfigurationError(
            f"plugin(s) {', '.join(chained)} ship their own migrations: `tenantry migrate` deploys their tables"
        )
    metadata = plugin_metadata(plugins)
    if metadata is None:
        return []
    if app_migrations.migrations_directory(tn):
        raise ConfigurationError(
            "this app's tables change only through its migrations (TENANTRY_MIGRATIONS): add the"
            " plugins' tables with a revision of the app (see docs/plugins.md), then `tenantry migrate`"
        )
    s = tn.settings
    with tn.admin() as conn:
        catalog.require_catalog(conn)
        live = live_placements(conn)
    done: list[dict[str, Any]] = []
    report = deploy_tables(tn.admin_url, metadata, schema=s.pooled_schema, owner=s.owner_role, runtime=s.runtime_role)
    done.append({"placement": "pooled", **report.to_dict()})
    for slug, place in live:
        url = database_url(tn.cell_admin_url(place.cell), place.database)
        report = deploy_tables(url, metadata, schema=place.schema, owner=s.owner_role, runtime=s.runtime_role)
        done.append({"placement": slug, **report.to_dict()})
    with tn.admin() as conn, conn.transaction():
        audit.record(
            conn,
            actor=tn.actor,
            action="plugin.deploy",
            target_type="plugin",
            target=",".join(p.name for p in plugins),
            after={
                "placements": len(done),
                "created": sum(len(d["created"]) for d in done),
                "tables": sorted(metadata.tables),
            },
        )
    return done
