"""One placement's migration (or stamp), in one transaction, on one connection.

:func:`run_work` is what the worker processes run; it never raises: every failure comes back
as an :class:`Outcome` with the error's first line. The steps, all in one transaction of an
admin connection to the placement's database (PostgreSQL's DDL is transactional, so a
failure anywhere leaves the placement exactly as it was)::

    SET LOCAL ROLE <owner>                      -- tables belong to the owner, as deployed
    SELECT pg_advisory_xact_lock(...)           -- one migration per placement at a time
    SET LOCAL search_path = <schema>, public, pg_temp
    <alembic upgrade, version table in <schema>>
    <secure_schema: tenant-safety check, RLS on tables that lack it>
    COMMIT

The search path makes the app's migration scripts tier-agnostic: they name no schema, and
their tables land in the placement's schema (``tenant_data``, or ``tenant_<hex>``).

Because each placement migrates in one transaction, a revision cannot leave it: Alembic's
``autocommit_block()`` (for ``CREATE INDEX CONCURRENTLY`` and the like) fails the placement.

Alembic keeps the running migration in process-global proxies (``alembic.op``,
``alembic.context``), so upgrades run one at a time per process; the fan-out runs them in
worker processes (:mod:`tenantry.migrations.fanout`). Stamping uses no proxy and can run
anywhere.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import psycopg
import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, MigrationInfo
from psycopg import sql

from tenantry.db.connect import control_plane_url
from tenantry.errors import TenantryError
from tenantry.migrations.scripts import Scripts, join_revisions, load_scripts, split_revisions
from tenantry.migrations.secure import secure_schema

__all__ = ["MIGRATE_LOCK", "VERSION_TABLE", "Outcome", "Work", "first_line", "run_work"]

#: the Alembic version table, one in each placement's schema
VERSION_TABLE = "alembic_version"
#: advisory lock class of a placement's migration (second key: hashtext(schema))
MIGRATE_LOCK = 0x746D6967

#: engines of the databases used last (each initialises its dialect once)
_engines: OrderedDict[str, sa.Engine] = OrderedDict()
_ENGINES_KEPT = 16
_engines_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Work:
    """One placement to migrate or stamp, as a worker process receives it."""

    key: str
    """Who the placement is, for the reports: ``pooled`` or the tenant's id."""
    url: str = field(repr=False)
    """Admin connection string of the placement's database (a secret)."""
    schema: str
    owner: str
    runtime: str
    directory: str | None
    """The app's Alembic script directory; ``None`` when only plugins have migrations."""
    mode: Literal["upgrade", "stamp"] = "upgrade"
    revision: str = "heads"
    """Where to go: an upgrade's destination, or the revision(s) to stamp (``"a,b"``: one per
    branch)."""
    only_if_untracked: bool = False
    """Stamp only a placement that has no revision yet (a fresh deploy)."""
    plugin_locations: tuple[str, ...] = ()
    """The registered plugins' revision directories (workers register no plugin: they load
    the revision files by path)."""
    untracked_is_base: bool = False
    """An untracked placement with tables is at base (only plugins have migrations: the app's
    tables are unversioned), rather than refused as deployed before migrations were tracked."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Work:
        return cls(**{**data, "plugin_locations": tuple(data.get("plugin_locations", ()))})


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one placement."""

    key: str
    ok: bool
    before: str | None = None
    after: str | None = None
    applied: tuple[str, ...] = ()
    secured: tuple[str, ...] = ()
    error: str | None = None
    failed_revision: str | None = None
    started: float = 0.0
    finished: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        return cls(**{**data, "applied": tuple(data["applied"]), "secured": tuple(data["secured"])})


class PlacementError(TenantryError):
    """The placement cannot be migrated as it is (no schema; tables but no revision)."""


def first_line(err: BaseException) -> str:
    """The first line of an error's message (the driver's own message for database errors)."""
    if isinstance(err, sa.exc.DBAPIError) and err.orig is not None:
        err = err.orig
    if isinstance(err, psycopg.Error) and err.diag.message_primary:
        return err.diag.message_primary
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _revision(heads: tuple[str, ...]) -> str | None:
    return join_revisions(heads)


def _engine(url: str) -> sa.Engine:
    # one engine per database, without a pool: each placement gets a connection of its own,
    # closed when it is done; the dialect is initialised once per database
    with _engines_lock:  # stamp() runs in the app's own (threaded) processes too
        engine = _engines.pop(url, None)
        if engine is None:
            engine = sa.create_engine(
                "postgresql+psycopg://", creator=lambda: psycopg.connect(control_plane_url(url)), poolclass=sa.NullPool
            )
        _engines[url] = engine
        while len(_engines) > _ENGINES_KEPT:
            _engines.popitem(last=False)[1].dispose()
    return engine


@contextmanager
def _placement_transaction(work: Work) -> Iterator[tuple[sa.Connection, psycopg.Connection[Any]]]:
    with _engine(work.url).connect() as conn, conn.begin():
        raw = conn.connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        raw.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(work.owner)))
        raw.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (MIGRATE_LOCK, work.schema))
        if raw.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (work.schema,)).fetchone() is None:
            raise PlacementError(f"schema {work.schema} does not exist in database {raw.info.dbname}")
        path = f"{sql.Identifier(work.schema).as_string(raw)}, public, pg_temp"
        raw.execute("SELECT set_config('search_path', %s, true)", (path,))
        yield conn, raw


def _has_tables(raw: psycopg.Connection[Any], schema: str) -> bool:
    row = raw.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename <> %s)",
        (schema, VERSION_TABLE),
    ).fetchone()
    return bool(row and row[0])


def _current(conn: sa.Connection, work: Work) -> MigrationContext:
    return MigrationContext.configure(conn, opts={"version_table_schema": work.schema, "version_table": VERSION_TABLE})


@dataclass(slots=True)
class _Run:
    """A placement's run so far: where it started, which revisions were applied."""

    before: str | None = None
    applied: list[str] = field(default_factory=list)
    after: str | None = None
    secured: tuple[str, ...] = ()
    migrating: bool = False


def _stamp(conn: sa.Connection, raw: psycopg.Connection[Any], work: Work, scripts: Scripts, run: _Run) -> None:
    context = _current(conn, work)
    run.before = _revision(context.get_current_heads())
    if run.before is None or not work.only_if_untracked:
        if run.before is not None:
            # the placement is at exactly what is stamped: rows of other branches go too (so a
            # revision no location has any more, an unregistered plugin's, can be dropped)
            raw.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(work.schema, VERSION_TABLE)))
        for destination in split_revisions(work.revision) or ("base",):
            # one branch at a time: given several revisions at once, Alembic stamps the heads
            # of every branch they touch to each of them in turn
            _current(conn, work).stamp(scripts.script, destination)
    run.after = _revision(_current(conn, work).get_current_heads())


def _heads(raw: psycopg.Connection[Any], schema: str) -> str | None:
    """The placement's revision, read straight from its version table (Alembic's own reading
    first looks the table up through a catalog query that costs more with every schema)."""
    table = sql.Identifier(schema, VERSION_TABLE)
    found = raw.execute("SELECT to_regclass(%s)", (table.as_string(raw),)).fetchone()
    if found is None or found[0] is None:
        return None
    rows = raw.execute(sql.SQL("SELECT version_num FROM {}").format(table)).fetchall()
    return _revision(tuple(r[0] for r in rows))


def _require_known(work: Work, scripts: Scripts, revision: str | None) -> None:
    unknown = scripts.unknown(revision)
    if unknown:
        raise PlacementError(
            f"schema {work.schema} is at revision {', '.join(map(repr, unknown))}, which none of the migrations"
            " directories has: a plugin whose migrations ran there is no longer registered (register it"
            " again), or a revision file of the app was removed"
        )


def _upgrade(conn: sa.Connection, raw: psycopg.Connection[Any], work: Work, scripts: Scripts, run: _Run) -> None:
    run.before = _heads(raw, work.schema)
    _require_known(work, scripts, run.before)
    if run.before is None and not work.untracked_is_base and _has_tables(raw, work.schema):
        raise PlacementError(
            f"schema {work.schema} has tables but no recorded revision (deployed before migrations"
            " were tracked); record the revision it is at with `tenantry migrate stamp REVISION`"
        )

    # "head" is one branch's; with plugins' branches every head is the destination
    destination = "heads" if work.revision == "head" else work.revision

    def upgrade_steps(rev: Any, context: MigrationContext) -> Any:
        return scripts.script._upgrade_revs(destination, rev)  # what `alembic upgrade` runs

    def applied_one(
        ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
    ) -> None:
        run.applied.append(step.up_revision_id or "")

    config = Config()
    config.set_main_option("script_location", scripts.script.dir)
    with EnvironmentContext(config, scripts.script, fn=upgrade_steps, destination_rev=destination) as env:
        env.configure(
            connection=conn,
            version_table=VERSION_TABLE,
            version_table_schema=work.schema,
            transaction_per_migration=False,
            on_version_apply=applied_one,
        )
        run.migrating = True
        env.run_migrations()
        run.migrating = False
    run.after = _heads(raw, work.schema)
    run.secured = tuple(secure_schema(raw, work.schema, work.runtime, skip=VERSION_TABLE).secured)


def _target(work: Work) -> str | None:
    return None if work.revision in ("head", "heads") else work.revision


def run_work(work: Work) -> Outcome:
    """Migrate (or stamp) one placement in one transaction; report, never raise."""
    started = time.time()
    run = _Run()
    scripts: Scripts | None = None
    try:
        scripts = load_scripts(work.directory, work.plugin_locations)
        with _placement_transaction(work) as (conn, raw):
            if work.mode == "stamp":
                _stamp(conn, raw, work, scripts, run)
            else:
                _upgrade(conn, raw, work, scripts, run)
    except Exception as err:
        # the transaction was rolled back: the placement is still at run.before
        failed = None
        if run.migrating and scripts is not None:
            # the first revision the upgrade had yet to apply (several branches: in
            # Alembic's order, which is the one the upgrade followed)
            pending = [step for step in scripts.steps(run.before, _target(work)) if step not in run.applied]
            failed = pending[0] if pending else None
        return Outcome(
            work.key,
            False,
            before=run.before,
            after=run.before,
            error=first_line(err),
            failed_revision=failed,
            started=started,
            finished=time.time(),
        )
    return Outcome(
        work.key,
        True,
        before=run.before,
        after=run.after,
        applied=tuple(run.applied),
        secured=run.secured,
        started=started,
        finished=time.time(),
    )
