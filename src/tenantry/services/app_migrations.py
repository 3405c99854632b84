"""App migrations: the app's Alembic revisions, applied to every placement of every tier.

The app keeps one Alembic script directory (``TENANTRY_MIGRATIONS``) whose scripts name no
schema. ``migrate`` runs ``upgrade head`` on the pooled schema (once), on every active
schema-tier placement and on every active database-tier placement (in its own database, on
its cell), each in one transaction as the owner role with the placement's schema on the
search path and its own version table; the tables are then secured (row-level security on new
tables, tenant-safety checked) and the revision recorded in the catalog
(:mod:`tenantry.db.catalog.app_revisions`).

* Fast when nothing changed: placements recorded at the head are not connected to, so a
  no-op run over thousands of tenants is one catalog query.
* Bounded: at most ``jobs`` placements migrate at once, each in a worker process holding one
  connection (:mod:`tenantry.migrations.fanout`); one more connection holds the run's lock
  and records the outcomes.
* Isolated failures: a placement that fails is rolled back, recorded (``tenantry.jobs``, kind
  ``migrate``) and reported; the others go on; a rerun retries only what is behind.

Every run that has work is recorded in the audit log (action ``app.migrate``, with counts).

Plugins with tables may ship revisions of their own (``AppTables.migrations``): their
directories are loaded with the app's (:mod:`tenantry.migrations.scripts`), the head is then
every head, sorted and joined with ``,``, and migrations are :func:`configured` when the app
has a directory or any registered plugin has a branch. Without an app directory the app's
tables are unversioned: an untracked placement is at base for the plugins' branches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from tenantry.core.model import Isolation
from tenantry.core.placement import PRIMARY_CELL, Placement
from tenantry.db.catalog import app_revisions as tracking
from tenantry.db.catalog import audit, require_catalog
from tenantry.db.catalog.app_revisions import POOLED, Tracked
from tenantry.db.connect import admin_connection, database_url
from tenantry.errors import ConfigurationError, Conflict, InvalidInput
from tenantry.migrations import fanout
from tenantry.migrations.report import MigrationFailed, MigrationReport, PlacementResult, Result, StatusReport
from tenantry.migrations.runner import Outcome, Work, run_work
from tenantry.migrations.scripts import Scripts, load_scripts, split_revisions

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = [
    "POOLED",
    "MigrationFailed",
    "MigrationReport",
    "PlacementResult",
    "Progress",
    "StatusReport",
    "configured",
    "head_revision",
    "migrate",
    "migrations_directory",
    "plugin_locations",
    "recorded_revision",
    "stamp",
    "stamp_placements",
    "status",
]

#: ``progress(done, total, result)``: called with ``(0, total, None)`` when a run starts, then
#: after each placement, in the calling process
Progress = Callable[[int, int, PlacementResult | None], None]

#: advisory lock (on the catalog) held by the one run at a time
RUN_LOCK = 0x746D7275


def migrations_directory(tn: ControlPlane, directory: str | None = None) -> str | None:
    """The app's Alembic script directory: ``directory`` if given, else ``Settings.migrations``
    (``TENANTRY_MIGRATIONS``); ``None`` when neither is set."""
    return directory or getattr(tn.settings, "migrations", None)


def plugin_locations(tn: ControlPlane) -> tuple[str, ...]:
    """The revision directories of the registered plugins that ship migrations, by name."""
    return tuple(tn.extensions.migrations().values())


def configured(tn: ControlPlane, directory: str | None = None) -> bool:
    """Whether migrations are configured: an app script directory or a plugin's chain. Then
    placements record a revision, deploys stamp it, and ``tenantry migrate`` changes tables."""
    return migrations_directory(tn, directory) is not None or bool(plugin_locations(tn))


def _scripts(tn: ControlPlane, directory: str | None) -> Scripts:
    path = migrations_directory(tn, directory)
    plugins = plugin_locations(tn)
    if path is None and not plugins:
        raise ConfigurationError(
            "no migrations directory: set TENANTRY_MIGRATIONS to the app's Alembic script directory"
            " (or register a plugin that ships migrations)"
        )
    return load_scripts(path, plugins)


def _where(scripts: Scripts) -> str:
    return scripts.directory or ", ".join(scripts.plugin_locations)


def _revision(scripts: Scripts, revision: str | None) -> str:
    wanted = revision or scripts.head or "base"
    if wanted in ("head", "heads"):
        return scripts.head or "base"
    if wanted != "base":
        unknown = scripts.unknown(wanted)
        if unknown or not split_revisions(wanted):
            raise InvalidInput(f"no revision {', '.join(map(repr, unknown)) or repr(wanted)} in {_where(scripts)}")
    return wanted


def _tracked(tn: ControlPlane, target: Placement | Literal["pooled"]) -> Tracked:
    if target == POOLED or (isinstance(target, Placement) and target.isolation is Isolation.POOLED):
        return Tracked(POOLED, None, None, "pooled", PRIMARY_CELL, None, tn.settings.pooled_schema, None)
    assert isinstance(target, Placement)
    return Tracked(
        str(target.tenant_id),
        None,
        target.tenant_id,
        target.isolation.value,
        target.cell,
        target.database,
        target.schema,
        None,
        placement_status=target.status,
    )


def _work(
    tn: ControlPlane,
    placement: Tracked,
    scripts: Scripts,
    *,
    mode: Literal["upgrade", "stamp"],
    revision: str,
    only_if_untracked: bool = False,
) -> Work:
    s = tn.settings
    url = database_url(tn.cell_admin_url(placement.cell), placement.database)
    return Work(
        placement.key,
        url,
        placement.schema,
        s.owner_role,
        s.runtime_role,
        scripts.directory,
        mode=mode,
        revision=revision,
        only_if_untracked=only_if_untracked,
        plugin_locations=scripts.plugin_locations,
        # no app directory: the app's tables are deployed from its metadata, unversioned, and
        # an untracked placement is at base for the plugins' branches
        untracked_is_base=scripts.directory is None,
    )


def stamp(
    tn: ControlPlane,
    placement_or_pooled: Placement | Literal["pooled"],
    *,
    revision: str | None = None,
    directory: str | None = None,
) -> str | None:
    """Record the app revision a placement's tables are at, without running migrations.

    Call it right after a placement's tables were deployed from the app's metadata: with no
    ``revision`` it records the head, and only if the placement has no revision yet (so a
    redeploy never hides pending migrations). An explicit ``revision`` is recorded whatever
    the placement had. Writes the Alembic version table in the placement's schema and the
    catalog (``placements.app_revision``; for the pooled schema, ``tenantry.shared_placements``).
    Returns the revision the placement is at; ``None`` and no I/O when no migrations are
    configured (no app directory, no plugin chain: see :func:`configured`).
    """
    if not configured(tn, directory):
        return None
    scripts = _scripts(tn, directory)
    placement = _tracked(tn, placement_or_pooled)
    outcome = run_work(
        _work(
            tn,
            placement,
            scripts,
            mode="stamp",
            revision=_revision(scripts, revision),
            only_if_untracked=revision is None,
        )
    )
    if not outcome.ok:
        raise MigrationFailed(f"cannot record the app revision of schema {placement.schema}: {outcome.error}")
    with tn.admin() as conn:
        if placement.key == POOLED:
            tracking.ensure_shared_table(conn, tn.settings.owner_role)
        with conn.transaction():
            tracking.record_revision(conn, placement, outcome.after)
    return outcome.after


def head_revision(tn: ControlPlane, *, directory: str | None = None) -> str | None:
    """The head of the migrations: the app's and the plugins' heads, sorted, joined with
    ``,`` (the app's single head when no plugin has a chain); ``None`` when none is configured."""
    if not configured(tn, directory):
        return None
    return _scripts(tn, directory).head


def recorded_revision(tn: ControlPlane, placement_or_pooled: Placement | Literal["pooled"]) -> str | None:
    """The app revision the catalog records for a placement (``None``: untracked); no
    connection to the placement itself."""
    placement = _tracked(tn, placement_or_pooled)
    with tn.admin() as conn:
        return tracking.recorded(conn, placement)


def migrate(
    tn: ControlPlane,
    *,
    jobs: int = 4,
    dry_run: bool = False,
    tenants: list[str] | None = None,
    progress: Progress | None = None,
    directory: str | None = None,
) -> MigrationReport:
    """Upgrade every placement (or those of ``tenants``; a pooled tenant stands for the whole
    pooled schema) to the head, ``jobs`` at a time.

    Placements the catalog records at the head are not touched; when that is all of them the
    answer comes from the catalog alone. ``dry_run`` lists what would run (from -> to, the
    revisions in between) and changes nothing. Failed placements are rolled back and listed
    in the report; the run does not raise for them (see :meth:`MigrationReport.raise_for_failures`).
    """
    if jobs < 1:
        raise InvalidInput("jobs must be at least 1")
    clock = time.monotonic()
    scripts = _scripts(tn, directory)
    with tn.admin() as conn:
        require_catalog(conn)
        found = tracking.plan(conn, head=scripts.head, pooled_schema=tn.settings.pooled_schema, slugs=tenants)
    report = MigrationReport(scripts.head, found.total, found.total - len(found.behind), jobs=jobs, dry_run=dry_run)
    if dry_run or not found.behind:
        report.from_catalog = True
        report.results = [
            PlacementResult.of(p, "skipped", p.revision, error=_MOVING)
            if p.moving
            else PlacementResult.of(p, "planned", scripts.head, steps=_steps(scripts, p))
            for p in found.behind
        ]
    else:
        _run(tn, scripts, report, progress, mode="upgrade", revision="heads", tenants=tenants)
    report.seconds = time.monotonic() - clock
    return report


def stamp_placements(
    tn: ControlPlane,
    revision: str | None = None,
    *,
    tenants: list[str] | None = None,
    jobs: int = 4,
    progress: Progress | None = None,
    directory: str | None = None,
) -> MigrationReport:
    """Record ``revision`` (default: the head) as the revision of every untracked placement
    (no revision in the catalog), or of every placement of ``tenants``, running nothing.

    For placements deployed before their migrations were tracked: say which revision their
    tables are at, and ``migrate`` takes them from there.
    """
    if jobs < 1:
        raise InvalidInput("jobs must be at least 1")
    clock = time.monotonic()
    scripts = _scripts(tn, directory)
    wanted = _revision(scripts, revision)
    with tn.admin() as conn:
        require_catalog(conn)
    report = MigrationReport(scripts.head, 0, 0, jobs=jobs)
    _run(tn, scripts, report, progress, mode="stamp", revision=wanted, tenants=tenants)
    report.seconds = time.monotonic() - clock
    return report


_MOVING = "the tenant is being moved; rerun once the move is done"


def _steps(scripts: Scripts, placement: Tracked) -> tuple[str, ...]:
    if placement.revision is None and scripts.directory is not None:
        return ()  # untracked: refused until stamped
    return tuple(scripts.steps(placement.revision))


def _run(
    tn: ControlPlane,
    scripts: Scripts,
    report: MigrationReport,
    progress: Progress | None,
    *,
    mode: Literal["upgrade", "stamp"],
    revision: str,
    tenants: list[str] | None,
) -> None:
    """Run ``mode`` on the placements that need it, under the run lock, recording each outcome
    in the catalog as it arrives and the run in the audit log."""
    s = tn.settings
    with admin_connection(tn.admin_url, timeout=s.connect_timeout, autocommit=True) as conn:
        locked = conn.execute("SELECT pg_try_advisory_lock(%s, 0)", (RUN_LOCK,)).fetchone()
        if not (locked and locked[0]):
            raise Conflict("another `tenantry migrate` is running on this catalog; try again when it is done")
        tracking.ensure_shared_table(conn, s.owner_role)
        found = tracking.plan(
            conn, head=scripts.head, pooled_schema=s.pooled_schema, slugs=tenants, only_behind=mode == "upgrade"
        )
        report.total, report.up_to_date = found.total, found.total - len(found.behind)
        chosen = found.behind
        if mode == "stamp" and tenants is None:
            chosen = [p for p in chosen if p.revision is None]
        report.results = [PlacementResult.of(p, "skipped", p.revision, error=_MOVING) for p in chosen if p.moving]
        todo = {p.key: p for p in chosen if not p.moving}
        works = [_work(tn, p, scripts, mode=mode, revision=revision) for p in todo.values()]
        done: list[PlacementResult] = []
        if progress is not None:
            progress(0, len(works), None)

        target = (scripts.head or "base") if mode == "upgrade" else revision

        def finished(work: Work, outcome: Outcome) -> None:
            placement = todo[work.key]
            result = _result(placement, outcome, mode)
            with conn.transaction():
                if outcome.ok:
                    tracking.record_revision(conn, placement, outcome.after)
                else:
                    error = f"{mode} {placement.revision or 'untracked'} -> {target}: {outcome.error}"
                    tracking.record_failure(conn, placement, error)
            done.append(result)
            if progress is not None:
                progress(len(done), len(works), result)

        try:
            fanout.run_all(works, jobs=report.jobs, on_outcome=finished)
        finally:
            report.results += sorted(done, key=lambda r: (r.slug is not None, r.slug or ""))
        with conn.transaction():
            audit.record(
                conn,
                actor=tn.actor,
                action="app.migrate" if mode == "upgrade" else "app.stamp",
                target_type="app",
                target=target,
                after=report.counts() | {"failed_placements": [r.label for r in report.failed][:100]},
            )


def _result(placement: Tracked, outcome: Outcome, mode: str) -> PlacementResult:
    result: Result = "failed" if not outcome.ok else ("migrated" if mode == "upgrade" else "stamped")
    return PlacementResult.of(
        placement,
        result,
        outcome.after if outcome.ok else placement.revision,
        steps=outcome.applied,
        error=outcome.error,
        failed_revision=outcome.failed_revision,
        secured=outcome.secured,
        seconds=outcome.finished - outcome.started,
    )


def status(tn: ControlPlane, *, directory: str | None = None) -> StatusReport:
    """Where every live placement is, from the catalog alone: how many at each revision, which
    are behind the head (none listed when no migrations directory is configured), and which
    failed their last migration."""
    scripts = _scripts(tn, directory) if configured(tn, directory) else None
    head = scripts.head if scripts is not None else None
    with tn.admin() as conn:
        require_catalog(conn)
        counts = tracking.revision_counts(conn, tn.settings.pooled_schema)
        behind = (
            []
            if scripts is None
            else [
                PlacementResult.of(p, "behind", head, steps=_steps(scripts, p))
                for p in tracking.plan(conn, head=head, pooled_schema=tn.settings.pooled_schema, slugs=None).behind
            ]
        )
        failed = tracking.failures(conn)
    revisions = {revision or "untracked": n for revision, n in sorted(counts.items(), key=lambda kv: kv[0] or "")}
    return StatusReport(head, revisions, behind, failed)
