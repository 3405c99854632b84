"""``tn.schema``: roles, the catalog and the app's tables: set them up, deploy, check.

``init`` creates or upgrades the roles and the catalog (and, given the app's metadata, deploys
its tables); ``deploy`` creates the app's tables in the pooled schema, each secured with
row-level security; ``check`` reports what would let one tenant see another's rows.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import sqlalchemy as sa

from tenantry.db import catalog, rls
from tenantry.db.catalog import audit
from tenantry.db.catalog.placements import own_databases
from tenantry.db.connect import admin_connection, database_url
from tenantry.db.deploy import deploy_tables
from tenantry.db.roles import ensure_reader, ensure_roles
from tenantry.services import placement_tables, placements, role_checks
from tenantry.services.plane import ControlPlane

__all__ = ["CheckReport", "SchemaService"]

#: advisory lock serialising `init` on one database
_INIT_LOCK = 0x74656E69


@dataclass(slots=True)
class CheckReport:
    """What ``tn.schema.check()`` found; empty lists and dicts when all is well."""

    unprotected: list[str] = field(default_factory=list)
    """App tables without their row-level security (see :meth:`SchemaService.unprotected_tables`)."""
    unscoped_unique: list[str] = field(default_factory=list)
    """Unique indexes without ``tenant_id`` (see :meth:`SchemaService.unscoped_unique_indexes`)."""
    roles: dict[str, list[str]] = field(default_factory=dict)
    """What the runtime and reader roles may do beyond their part (see :meth:`SchemaService.role_problems`)."""
    differ: dict[str, list[str]] = field(default_factory=dict)
    """Placements whose tables or columns differ from the app's (only when the app's tables are known)."""

    @property
    def ok(self) -> bool:
        return not (self.unprotected or self.unscoped_unique or self.roles or self.differ)

    def to_dict(self) -> dict[str, Any]:
        return {
            "unprotected": self.unprotected,
            "unscoped_unique": self.unscoped_unique,
            "roles": self.roles,
            "differ": self.differ,
            "ok": self.ok,
        }


def _own_databases(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """``(cell, database)`` of every database-tier tenant and ready spare, which hold app
    tables of their own."""
    return own_databases(conn)


class SchemaService:
    """``tn.schema``: ``init``, ``deploy`` and ``check``."""

    def __init__(self, plane: ControlPlane) -> None:
        self._plane = plane

    def init(self) -> catalog.InitReport:
        """Create or upgrade roles, catalog and (given metadata) the app's tables. Idempotent.

        Concurrent inits of one database run one after the other (a session advisory lock on a
        connection of its own), so their DDL never interleaves into a deadlock.
        """
        plane = self._plane
        with admin_connection(plane.admin_url, timeout=plane.settings.connect_timeout, autocommit=True) as lock:
            lock.execute("SELECT pg_advisory_lock(%s)", (_INIT_LOCK,))
            try:
                report = self._init()
            finally:
                lock.execute("SELECT pg_advisory_unlock(%s)", (_INIT_LOCK,))
        plane.extensions.after_init()  # the plugins' flags; changes made from now on queue their hooks
        return report

    def _init(self) -> catalog.InitReport:
        report = catalog.InitReport()
        plane, s = self._plane, self._plane.settings
        with plane.admin() as conn:
            existed = {
                r[0]
                for r in conn.execute(
                    "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                    ([s.owner_role, s.runtime_role, s.reader_role],),
                ).fetchall()
            }
            passwords = {
                "runtime": ensure_roles(conn, s.owner_role, s.runtime_role),
                "reader": ensure_reader(conn, s.reader_role),
            }
            report.roles_created = [r for r in (s.owner_role, s.runtime_role, s.reader_role) if r not in existed]
            report.migrations_applied = catalog.migrate_catalog(
                conn,
                owner=s.owner_role,
                runtime=s.runtime_role,
                reader=s.reader_role,
                pooled_schema=s.pooled_schema,
                passwords={role: password for role, password in passwords.items() if password is not None},
            )
            report.version = catalog.catalog_version(conn)
            if report.migrations_applied or report.roles_created:
                with conn.transaction():
                    audit.record(
                        conn,
                        actor=plane.actor,
                        action="catalog.init",
                        target_type="catalog",
                        target=conn.info.dbname,
                        after=report.to_dict(),
                    )
        report.databases_refreshed = placements.refresh_local(plane)
        if plane.metadata is not None or s.app:
            self.deploy()
        return report

    def deploy(self, metadata: sa.MetaData | None = None) -> rls.DeployReport:
        """Create the app's tenant tables in the pooled schema and secure each with RLS."""
        from tenantry.services import app_migrations  # (a downward import, lazy: alembic loads only when needed)

        plane = self._plane
        metadata = plane.app_metadata(metadata)
        s = plane.settings
        with plane.admin() as conn:
            catalog.require_catalog(conn)
        if app_migrations.configured(plane) and app_migrations.recorded_revision(plane, app_migrations.POOLED):
            # versioned tables change only through `tenantry migrate`: creating tables of a
            # newer metadata here would make the pending migration fail
            if app_migrations.migrations_directory(plane):
                return rls.DeployReport(schema=s.pooled_schema, created=[], secured=[], dropped_policies=[])
            # only plugins have migrations: the app's tables (and those of plugins without
            # migrations) are unversioned and deployed from the metadata as ever
            metadata = self._unversioned(metadata)
        report = deploy_tables(
            plane.admin_url, metadata, schema=s.pooled_schema, owner=s.owner_role, runtime=s.runtime_role
        )
        app_migrations.stamp(plane, app_migrations.POOLED)
        with plane.admin() as conn, conn.transaction():
            audit.record(
                conn,
                actor=plane.actor,
                action="app.deploy",
                target_type="schema",
                target=s.pooled_schema,
                after=report.to_dict(),
            )
        return report

    def _unversioned(self, metadata: sa.MetaData) -> sa.MetaData:
        """``metadata`` without the tables of plugins that ship migrations."""
        versioned = self._plane.extensions.versioned_tables()
        if not versioned & set(metadata.tables):
            return metadata
        kept = sa.MetaData()
        for table in metadata.tables.values():
            if table.name not in versioned:
                table.to_metadata(kept)
        return kept

    # -- checks ------------------------------------------------------------------------------
    def check(self, *, tables: bool | None = None) -> CheckReport:
        """Everything below in one report; with ``tables`` (default: when the app's tables are
        known here), also whether every placement holds the app's tables and columns, no fewer
        and no more. What ``tenantry check`` prints."""
        plane = self._plane
        if tables is None:
            tables = plane.metadata is not None or bool(plane.settings.app)
        return CheckReport(
            unprotected=self.unprotected_tables(),
            unscoped_unique=self.unscoped_unique_indexes(),
            roles=self.role_problems(),
            differ=placement_tables.drift(plane) if tables else {},
        )

    def unprotected_tables(self) -> builtins.list[str]:
        """App tables whose row-level security is off, unforced, missing its exact policy, or
        widened by another permissive policy: in the shared database (``schema.table``, spare
        schemas included) and in every database-tier tenant's (or ready spare's) own database
        (``database:schema.table``)."""
        found: list[str] = []
        for database, conn in self._each_database():
            found += [f"{database}{name}" for name in rls.unprotected_tables(conn)]
        return found

    def unscoped_unique_indexes(self) -> builtins.list[str]:
        """Unique indexes (of constraints too, partial and expression ones included) and
        exclusion constraints on app tables without ``tenant_id`` among their keys, wherever
        :meth:`unprotected_tables` looks: ``[database:]schema.table.index: definition``. Each
        lets one tenant learn from a duplicate-key error which values another tenant uses."""
        found: list[str] = []
        for database, conn in self._each_database():
            found += [f"{database}{s}.{t}.{i}: {d}" for s, t, i, d in rls.unscoped_unique_indexes(conn)]
        return found

    def _each_database(self) -> Iterator[tuple[str, psycopg.Connection[Any]]]:
        """(prefix, connection): the shared database, then each one with app tables of its own,
        opened one at a time as the caller iterates."""
        plane = self._plane
        with plane.admin() as conn:
            yield "", conn
            databases = _own_databases(conn)
        for cell, database in databases:
            url = database_url(plane.cell_admin_url(cell), database)
            with admin_connection(url, timeout=plane.settings.connect_timeout, autocommit=True) as conn:
                yield f"{database}:", conn

    def role_problems(self) -> dict[str, builtins.list[str]]:
        """What the runtime and reader roles can do beyond their part, by role (``cell:role``
        on the cells other than ``primary``); empty when nothing: a runtime role that may write
        the catalog, ``SET ROLE`` to the owner or create in a schema; a reader that may read
        more than the routing views; a database-tier tenant's database the runtime role cannot
        connect to.

        >>> tn.schema.role_problems()   # doctest: +SKIP
        {}
        """
        return role_checks.check_roles(self._plane)
