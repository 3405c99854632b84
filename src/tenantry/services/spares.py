"""Spare placements: schemas (and databases) built ahead of time, claimed by new tenants.

A schema-tier tenant's schema holds the app's tables, their indexes, row-level security and
grants; building it is most of what creating such a tenant costs (about 150 ms for 20 tables,
as much as django-tenants spends on the same DDL). A *spare* is that work done ahead of time,
for a tenant id that does not exist yet: schema and database names derive from the tenant's id
(:func:`tenantry.core.placement.schema_name`), so ``create_tenant`` claims a ready spare by
inserting the tenant row with the spare's id and its placement active, and deleting the spare,
in its one catalog transaction. Nothing is renamed: the policies name the schema, and the
tenant context is signed over the id and schema when a tenant is bound.

Lifecycle of a spare (a row of ``tenantry.spares``)::

    fill    building --steps, each recorded--> ready       (killed midway: the next fill
                                                            finishes it, or drops it if stale)
    claim   ready --create_tenant: tenant row with the spare's id, active placement,
                    spare row deleted, in one transaction--> a tenant
    drop    building | ready --> dropping --schema or database dropped, registry rows
                                            removed, row deleted--> gone

A spare records what it was built for: a fingerprint of the app's tables (a hash of their DDL,
enum types and tenantry's policy) and the app migration its tables are stamped at. A process
claims only spares built for exactly its own metadata and migrations head, so a spare built
before a deploy or a ``tenantry migrate`` is never handed out; ``fill`` drops such stale spares
and builds new ones. Spares are not migrated: rebuilding is as cheap as migrating, and simpler.

A claim takes the oldest ready spare of the tenant's tier and cell with ``FOR UPDATE SKIP
LOCKED``, so concurrent creates never share a spare; a create whose slug is taken rolls back
and leaves the spare in the pool. With no usable spare, the tenant is built as before.

Safety. A spare has no tenant row and no placement, so routing cannot reach it (a tenant is
bound by slug or id through its active placement). Its tables carry tenantry's policy for their
own schema, which admits only a context signed for that schema: none exists until the spare is
a tenant's placement. Spare tables are registered (``tenantry.app_tables``) like any
placement's, so ``tenantry check`` covers them; database-tier spares too.

Nothing fills the pool by itself: ``create_tenant`` must stay a catalog transaction, and a
build started behind it would compete with the app for the server. Run ``tenantry spares fill``
(``tn.spares.fill()``) after each deploy or migration and from a periodic job; it tops the pool
up to ``count`` (default :attr:`Settings.spare_schemas`), resumes or discards half-built spares,
and drops stale ones. One fill or drop runs at a time per catalog.

``TENANTRY_TEST_CRASH_AFTER=spare:<step>`` (a build step, or ``dropping``) kills the process
there, for the fault tests (:mod:`tenantry.services.faults`).
"""

from __future__ import annotations

import builtins
import functools
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tenantry.core.model import Isolation
from tenantry.core.placement import PRIMARY_CELL, Placement, plan_steps
from tenantry.db.catalog import audit, require_catalog
from tenantry.db.catalog.cells import get_cell
from tenantry.db.catalog.spares import (
    Spare,
    SpareKey,
    count_ready,
    delete_spare,
    insert_spare,
    mark_dropping,
    mark_ready,
    select_spares,
)
from tenantry.db.connect import admin_connection
from tenantry.errors import ConfigurationError, Conflict, InvalidInput
from tenantry.services import placement_tables, placements
from tenantry.services.faults import crash_point
from tenantry.services.spare_keys import wanted
from tenantry.services.steps import StepLog

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = [
    "SpareService",
    "MAX_SPARES",
    "FillProgress",
    "SpareReport",
    "drop",
    "fill",
    "list_spares",
]

#: the most spares one fill keeps (a typo such as --count 100000 is refused, not obeyed)
MAX_SPARES = 10_000
#: advisory lock (two keys: this class, 0) held by the one fill or drop at a time
_LOCK_CLASS = 0x7370

#: ``progress(done, total)``: called with ``(0, total)`` when the work is known, then after each spare
FillProgress = Callable[[int, int], None]


@dataclass(slots=True)
class SpareReport:
    """What a fill or a drop did, and how many claimable spares its tier and cell have now."""

    tier: str | None
    cell: str | None
    target: int | None = None
    built: int = 0
    resumed: int = 0
    dropped: int = 0
    ready: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.built or self.resumed or self.dropped)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "cell": self.cell,
            "target": self.target,
            "built": self.built,
            "resumed": self.resumed,
            "dropped": self.dropped,
            "ready": self.ready,
            "seconds": round(self.seconds, 3),
        }


# -- what a spare is built for ---------------------------------------------------------------


# -- claiming --------------------------------------------------------------------------------


# -- filling and dropping --------------------------------------------------------------------


def _tier(tier: Isolation | str) -> Isolation:
    try:
        isolation = Isolation(tier)
    except ValueError:
        raise InvalidInput(f"no tier named {tier!r} (spares exist for the schema and database tiers)") from None
    if isolation is Isolation.POOLED:
        raise InvalidInput("pooled tenants need no spares: creating one is a catalog row already")
    return isolation


def _cell(tn: ControlPlane, isolation: Isolation, cell: str | None) -> str:
    """The cell to fill: schema-tier spares live in the primary cell, as their tenants do; a
    database-tier spare goes to an active cell (tenants are never placed on a draining one)."""
    name = cell or PRIMARY_CELL
    if isolation is Isolation.SCHEMA and name != PRIMARY_CELL:
        raise InvalidInput(f"schema-tier tenants live in the primary cell; no spares on cell {name!r}")
    with tn.admin() as conn:
        found = get_cell(conn, name)
    if found.status != "active":
        raise InvalidInput(f"cell {name!r} is {found.status} and takes no new tenants, so no spares either")
    return name


def list_spares(tn: ControlPlane, *, tier: Isolation | str | None = None, cell: str | None = None) -> list[Spare]:
    """Every spare (of ``tier`` and ``cell``), oldest first, each marked current or stale when
    the app's tables are known here."""
    try:
        key: SpareKey | None = wanted(tn)
    except ConfigurationError:
        key = None
    with tn.admin() as conn:
        return select_spares(conn, None if tier is None else _tier(tier), cell, key)


@contextmanager
def _exclusive(tn: ControlPlane) -> Iterator[None]:
    """One fill or drop at a time per catalog: a session advisory lock on a connection of its
    own, released when the work ends (or its process dies)."""
    with admin_connection(tn.admin_url, timeout=tn.settings.connect_timeout, autocommit=True) as lock:
        got = lock.execute("SELECT pg_try_advisory_lock(%s, %s)", (_LOCK_CLASS, 0)).fetchone()
        if not (got and got[0]):
            raise Conflict(
                "another `tenantry spares fill` or `drop` is running on this catalog; try again when it is done"
            )
        try:
            yield
        finally:
            lock.execute("SELECT pg_advisory_unlock(%s, %s)", (_LOCK_CLASS, 0))


def _count_ready(tn: ControlPlane, isolation: Isolation, cell: str, key: SpareKey) -> int:
    with tn.admin() as conn:
        return count_ready(conn, isolation, cell, key)


def fill(
    tn: ControlPlane,
    count: int | None = None,
    *,
    tier: Isolation | str = Isolation.SCHEMA,
    cell: str | None = None,
    progress: FillProgress | None = None,
) -> SpareReport:
    """Top the pool of ``tier`` on ``cell`` up to ``count`` ready spares (schema tier: default
    :attr:`Settings.spare_schemas`, on the primary cell). Idempotent: spares already ready are
    kept (never removed, even beyond ``count``), half-built ones finished, stale ones (built
    for other tables or another revision) and half-dropped ones dropped."""
    clock = time.monotonic()
    isolation = _tier(tier)
    if count is None:
        if isolation is not Isolation.SCHEMA:
            raise InvalidInput("say how many database-tier spares to keep (count)")
        count = tn.settings.spare_schemas
    if not 0 <= count <= MAX_SPARES:
        raise InvalidInput(f"the spare count must be between 0 and {MAX_SPARES}, not {count}")
    place = _cell(tn, isolation, cell)
    key = wanted(tn)
    # spares are built from this process's tables, and the ones it finds built for others stale
    placement_tables.require_known(tn, "spares")
    report = SpareReport(isolation.value, place, count)
    with _exclusive(tn):
        error: str | None = None
        try:
            with tn.admin() as conn:
                found = select_spares(conn, isolation, place)
            stale = [s for s in found if s.status == "dropping" or not s.matches(key)]
            report.dropped = len(_discard(tn, stale))
            unfinished = [s for s in found if s.status == "building" and s.matches(key)]
            todo = max(0, count - _count_ready(tn, isolation, place, key) - len(unfinished))
            total = len(unfinished) + todo
            if progress is not None:
                progress(0, total)
            for spare in unfinished:
                _build(tn, spare, key)
                report.resumed += 1
                if progress is not None:
                    progress(report.resumed, total)
            for _ in range(todo):
                _build(tn, _new(tn, isolation, place, key), key)
                report.built += 1
                if progress is not None:
                    progress(report.resumed + report.built, total)
            report.ready = _count_ready(tn, isolation, place, key)
        except BaseException as err:
            error = str(err) or type(err).__name__
            raise
        finally:
            report.seconds = time.monotonic() - clock
            if report.changed:  # what was done is audited even when the fill then failed
                with tn.admin() as conn, conn.transaction():
                    audit.record(
                        conn,
                        actor=tn.actor,
                        action="spare.fill",
                        target_type="spares",
                        target=f"{isolation.value}@{place}",
                        after=report.to_dict()
                        | {"fingerprint": key.fingerprint, "app_revision": key.revision, "error": error},
                    )
    return report


def _new(tn: ControlPlane, isolation: Isolation, cell: str, key: SpareKey) -> Spare:
    """Record a new spare, ``building``, under an id no tenant has."""
    with tn.admin() as conn:
        while True:
            spare_id = uuid.uuid4()
            where = Placement.plan_for(spare_id, isolation, cell=cell, pooled_schema=tn.settings.pooled_schema)
            spare = insert_spare(conn, where, key)
            if spare is not None:
                return spare


def _build(tn: ControlPlane, spare: Spare, key: SpareKey) -> None:
    """Run the provisioning steps a tenant of the spare's tier would run, except activation,
    each recorded; then mark the spare ready."""
    from tenantry.services import app_migrations  # alembic loads only when needed

    placement = spare.placement
    log = StepLog("spares", spare.id, list(spare.steps_done), crash_prefix="spare:")
    building = plan_steps(spare.tier)[:-1]  # all but activation: a tenant claims the spare
    log.run(tn, [(step, functools.partial(placements.build_step, tn, step, placement)) for step in building])
    # the revision the tables were stamped at (a no-op that reads it; None: untracked)
    revision = app_migrations.stamp(tn, placement)
    if revision != key.revision:
        raise ConfigurationError(
            f"the app's migrations changed while spares were built (head {key.revision!r}, spare stamped at"
            f" {revision!r}); run the fill again"
        )
    with tn.admin() as conn:
        mark_ready(conn, spare.id)


def _discard(tn: ControlPlane, spares: list[Spare]) -> list[uuid.UUID]:
    """Drop ``spares`` (schema or database, and their registry rows); returns the ids dropped.
    Spares a concurrent create is claiming right now are skipped (they become tenants, or stay)."""
    if not spares:
        return []
    with tn.admin() as conn:
        with conn.transaction():
            dropping = mark_dropping(conn, [s.id for s in spares])
        crash_point("spare:dropping")
        for spare in dropping:
            with conn.transaction():
                placements.drop_copy(tn, conn, spare.id, spare.placement)
                delete_spare(conn, spare.id)
    return [spare.id for spare in dropping]


def drop(
    tn: ControlPlane,
    *,
    tier: Isolation | str | None = None,
    cell: str | None = None,
    stale_only: bool = False,
) -> SpareReport:
    """Drop the spares of ``tier`` and ``cell`` (default: all), or only the stale ones (built
    for other app tables or another revision, or half-dropped)."""
    clock = time.monotonic()
    isolation = None if tier is None else _tier(tier)
    key = wanted(tn) if stale_only else None
    if stale_only:  # spares built for the app's tables must not look stale to a process without them
        placement_tables.require_known(tn, "a list of stale spares")
    report = SpareReport(None if isolation is None else isolation.value, cell)
    with _exclusive(tn):
        with tn.admin() as conn:
            found = select_spares(conn, isolation, cell)
        if key is not None:
            found = [s for s in found if s.status == "dropping" or not s.matches(key)]
        dropped = _discard(tn, found)
        report.dropped = len(dropped)
        with tn.admin() as conn:
            left = select_spares(conn, isolation, cell)
        report.ready = sum(1 for s in left if s.status == "ready" and (key is None or s.matches(key)))
        report.seconds = time.monotonic() - clock
        if report.changed:
            with tn.admin() as conn, conn.transaction():
                audit.record(
                    conn,
                    actor=tn.actor,
                    action="spare.drop",
                    target_type="spares",
                    target=f"{report.tier or 'all'}@{cell or 'all'}",
                    after=report.to_dict() | {"stale_only": stale_only, "ids": [str(i) for i in dropped][:100]},
                )
    return report


class SpareService:
    """``tn.spares``: placements built ahead of time, which ``tn.tenants.create`` claims.

    ::

        tn.spares.fill(20)                              # 20 schemas ready on the primary cell
        tn.tenants.create("acme", plan="business")      # claims one: a catalog transaction
    """

    def __init__(self, plane: ControlPlane) -> None:
        self._plane = plane

    def fill(
        self,
        count: int | None = None,
        *,
        tier: Isolation | str = Isolation.SCHEMA,
        cell: str | None = None,
        progress: FillProgress | None = None,
    ) -> SpareReport:
        """Keep ``count`` spare placements of ``tier`` (on ``cell``) ready.

        Schema tier by default, with ``count`` defaulting to :attr:`Settings.spare_schemas`.
        Idempotent and resumable: spares already ready are kept, half-built ones finished,
        stale ones (built for other app tables or another migration head) dropped. Nothing
        calls it for you: run it after each deploy and periodically (``tenantry spares fill``).
        """
        with self._plane.admin() as conn:
            require_catalog(conn)
        return fill(self._plane, count, tier=tier, cell=cell, progress=progress)

    def list(self, *, tier: Isolation | str | None = None, cell: str | None = None) -> builtins.list[Spare]:
        """The spare placements (of ``tier``, on ``cell``), oldest first."""
        with self._plane.admin() as conn:
            require_catalog(conn)
        return list_spares(self._plane, tier=tier, cell=cell)

    def drop(
        self, *, tier: Isolation | str | None = None, cell: str | None = None, stale_only: bool = False
    ) -> SpareReport:
        """Drop spare placements (of ``tier``, on ``cell``; with ``stale_only``, only those no
        process of this app version would claim): their schemas or databases, and their rows."""
        with self._plane.admin() as conn:
            require_catalog(conn)
        return drop(self._plane, tier=tier, cell=cell, stale_only=stale_only)
