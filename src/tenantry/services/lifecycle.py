"""``tn.tenants`` and ``tn.plans``: tenants along their lifecycle, and the plans they are on.

Each verb does its own after-effects: the change is audited and queues its plugin hooks in the
catalog transaction that makes it, this process's caches forget the tenant at once (others
within a second, by the catalog's NOTIFY), and the hooks queued for this process's plugins run
before the verb returns. Calling the functions behind them (``provisioning.provision``,
``moves.move``, :func:`set_status`) does the same: no path skips them.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from tenantry.core.events import EventKind
from tenantry.core.model import Isolation, Plan, Status, Tenant
from tenantry.core.placement import Placement
from tenantry.db import catalog
from tenantry.db.catalog import placements as catalog_placements
from tenantry.db.catalog import plans as catalog_plans
from tenantry.db.catalog import tenants as catalog_tenants
from tenantry.services import fences, moves, plan_edits, provisioning
from tenantry.services import tenant_limits as limit_service
from tenantry.services import tenants as tenant_service
from tenantry.services.connection_limits import apply_connection_limits
from tenantry.services.directory import Directory
from tenantry.services.moves import MoveReport
from tenantry.services.plane import ControlPlane
from tenantry.services.tenant_limits import TenantLimits

__all__ = ["PlanService", "TenantService", "set_status"]

#: statuses whose change fences the bindings made before it, and the fence's reason
_FENCED: dict[Status, fences.Reason] = {Status.SUSPENDED: "suspended", Status.ARCHIVED: "archived"}


def set_status(plane: ControlPlane, key: str | uuid.UUID, status: Status) -> Tenant:
    """Move a tenant to ``status`` (a no-op when it is there already): audited, its bindings
    open elsewhere fenced when it stops serving, its hooks delivered, this process's caches told."""
    with plane.admin() as conn:
        tenant, changed = tenant_service.transition(conn, key, status, actor=plane.actor, origin=plane.origin())
        placement = catalog_placements.read_placement(conn, tenant.id)
    if tenant.status in _FENCED and placement is not None:
        # bindings already open elsewhere are refused from their next statement (also when
        # the status was set already: a rerun finishes a change whose fence was not written)
        fences.fence_placement(plane, placement, tenant.epoch, _FENCED[tenant.status])
    plane.publish(EventKind.TENANT, str(tenant.id))
    if changed:
        plane.after_change(tenant.id)
    return tenant


class TenantService:
    """``tn.tenants``: create, read, list, suspend, resume, archive, delete and move tenants.

    >>> tn.tenants.create("acme", plan="business")     # doctest: +SKIP
    >>> tn.tenants.suspend("acme").status              # doctest: +SKIP
    <Status.SUSPENDED: 'suspended'>
    """

    def __init__(self, plane: ControlPlane, directory: Directory) -> None:
        self._plane = plane
        self._directory = directory

    def create(self, slug: str, *, name: str | None = None, plan: str = "free", cell: str | None = None) -> Tenant:
        """Create a tenant on ``plan``'s tier and make it active.

        Pooled tenants cost one catalog transaction. Schema- and database-tier tenants claim
        a spare placement built ahead of time when one is ready (``tn.spares.fill``), also in
        one catalog transaction; otherwise they are built in recorded steps, and if the process
        dies midway, calling this again with the same slug and plan finishes the job. ``cell``
        places a database-tier tenant on that server (default: the plan's pinned cell, or the
        fitting cell with the most room).
        """
        with self._plane.admin() as conn:
            catalog.require_catalog(conn)
        return provisioning.provision(self._plane, slug, name=name, plan=plan, cell=cell)

    def get(self, key: str | uuid.UUID) -> Tenant:
        """The tenant (by slug or id) as the catalog holds it now (see :meth:`lookup`)."""
        with self._plane.admin() as conn:
            return catalog_tenants.get_tenant(conn, key)

    def list(
        self,
        *,
        status: Status | None = None,
        plan: str | None = None,
        include_deleted: bool = False,
        prefix: str | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> builtins.list[Tenant]:
        """Tenants by slug (byte order), optionally only those with ``status``, on ``plan``,
        or whose slug starts with ``prefix``."""
        with self._plane.admin() as conn:
            catalog.require_catalog(conn)
            return catalog_tenants.list_tenants(
                conn,
                status=status,
                plan=plan,
                include_deleted=include_deleted,
                prefix=prefix,
                limit=limit,
                offset=offset,
            )

    def placement(self, key: str | uuid.UUID) -> Placement | None:
        """The tenant's active placement (``None`` while it is being built)."""
        with self._plane.admin() as conn:
            tenant = catalog_tenants.get_tenant(conn, key)
            return catalog_placements.read_placement(conn, tenant.id)

    def lookup(self, key: str | uuid.UUID) -> Tenant:
        """The tenant as the request path knows it: from this process's cache (dropped within
        a second of a change anywhere), else read through the routing views. Works in a
        data-plane process, and costs no round trip once warm::

            with tn.tenant("acme") as bound:
                name = tn.tenants.lookup(bound.id).name
        """
        return self._directory.resolved(key)[0]

    def lookup_placement(self, key: str | uuid.UUID) -> Placement | None:
        """The tenant's active placement as the request path knows it (see :meth:`lookup`)."""
        return self._directory.resolved(key)[1]

    def suspend(self, key: str | uuid.UUID) -> Tenant:
        """Stop a tenant from serving traffic; its data stays."""
        return set_status(self._plane, key, Status.SUSPENDED)

    def resume(self, key: str | uuid.UUID) -> Tenant:
        """Let a suspended or archived tenant serve traffic again."""
        return set_status(self._plane, key, Status.ACTIVE)

    def archive(self, key: str | uuid.UUID) -> Tenant:
        """Retire a tenant: it serves no traffic and awaits deletion or revival."""
        return set_status(self._plane, key, Status.ARCHIVED)

    def delete(self, key: str | uuid.UUID) -> dict[str, int]:
        """Remove every row of the tenant (its schema or database on those tiers) and mark it
        deleted; returns what was removed."""
        return provisioning.deprovision(self._plane, key)

    def move(
        self,
        key: str | uuid.UUID,
        *,
        plan: str | None = None,
        cell: str | None = None,
        on_step: Callable[[str], None] | None = None,
    ) -> MoveReport:
        """Move a tenant to ``plan``'s tier (and, for the database tier, ``cell``) without
        losing a row; run it again to finish a move that was interrupted."""
        return moves.move(self._plane, key, plan=plan, cell=cell, on_step=on_step)

    def abort_move(self, key: str | uuid.UUID) -> bool:
        """Undo a move that has not flipped yet; ``False`` when there is none."""
        return moves.abort(self._plane, key)

    # -- per-tenant limits (over the plan's) --------------------------------------------------
    def limits(self, key: str | uuid.UUID) -> TenantLimits:
        """The tenant's limits: its plan's, its overrides, and the effective ones (an
        override wins; ``None`` is no limit)."""
        with self._plane.admin() as conn:
            return limit_service.read_limits(conn, key)

    def limits_set(self, key: str | uuid.UUID, **limits: Any) -> TenantLimits:
        """Override limits of the tenant's plan for this tenant alone (other keys keep their
        overrides); a value of ``None`` lifts that limit for the tenant. Audited; every
        process applies it from the tenant's next request or transaction (within a second)::

            tn.tenants.limits_set("acme", requests_per_second=50, statement_timeout_ms=2000)
        """
        with self._plane.admin() as conn:
            found, changed = limit_service.set_limits(conn, key, limits, actor=self._plane.actor)
        if changed:
            self._plane.publish(EventKind.LIMITS, str(found.tenant_id))
        # (also when unchanged: a rerun after a failed ALTER DATABASE sets it)
        apply_connection_limits(self._plane, tenant_id=found.tenant_id)
        return found

    def limits_replace(self, key: str | uuid.UUID, limits: Mapping[str, Any]) -> TenantLimits:
        """Make ``limits`` the tenant's whole overrides (``{}``: none; its plan's apply)."""
        with self._plane.admin() as conn:
            found, changed = limit_service.replace_limits(conn, key, limits, actor=self._plane.actor)
        if changed:
            self._plane.publish(EventKind.LIMITS, str(found.tenant_id))
        # (also when unchanged: a rerun after a failed ALTER DATABASE sets it)
        apply_connection_limits(self._plane, tenant_id=found.tenant_id)
        return found

    def limits_unset(self, key: str | uuid.UUID, *keys: str) -> TenantLimits:
        """Drop the tenant's overrides of ``keys`` (all of them when none is named): its plan's
        limits apply again."""
        with self._plane.admin() as conn:
            found, changed = limit_service.unset_limits(conn, key, keys, actor=self._plane.actor)
        if changed:
            self._plane.publish(EventKind.LIMITS, str(found.tenant_id))
        # (also when unchanged: a rerun after a failed ALTER DATABASE sets it)
        apply_connection_limits(self._plane, tenant_id=found.tenant_id)
        return found


class PlanService:
    """``tn.plans``: the plans tenants are on, several per tier if you like, each with its
    limits (:class:`~tenantry.core.limit_schema.Limits`). Every change is audited and reaches
    every process's cached limits within a second (this one's at once).

    >>> tn.plans.create("starter", isolation="pooled", limits={"requests_per_second": 20})  # doctest: +SKIP
    >>> tn.plans.update("starter", limits={"statement_timeout_ms": 3000})  # doctest: +SKIP
    """

    def __init__(self, plane: ControlPlane) -> None:
        self._plane = plane

    def list(self) -> builtins.list[Plan]:
        """Every plan, by name."""
        with self._plane.admin() as conn:
            return catalog_plans.list_plans(conn)

    def get(self, name: str) -> Plan:
        """The plan; :class:`~tenantry.PlanNotFound` names the plans there are."""
        with self._plane.admin() as conn:
            return catalog_plans.get_plan(conn, name)

    def create(
        self,
        name: str,
        *,
        isolation: Isolation | str = Isolation.POOLED,
        description: str = "",
        limits: Mapping[str, Any] | None = None,
    ) -> Plan:
        """Add a plan (a lowercase name: a-z, 0-9, ``_`` and ``-``, starting with a letter) on
        the ``isolation`` tier with ``limits``. :class:`~tenantry.PlanExists` if the name is
        taken; a bad value is :class:`~tenantry.InvalidInput` naming the field, nothing saved."""
        with self._plane.admin() as conn:
            catalog.require_catalog(conn)
            plan = plan_edits.create_plan(
                conn, name, isolation=isolation, description=description, limits=limits, actor=self._plane.actor
            )
        self._plane.publish(EventKind.PLAN, plan.name)
        return plan

    def update(
        self,
        name: str,
        *,
        isolation: Isolation | str | None = None,
        description: str | None = None,
        limits: Mapping[str, Any] | None = None,
        replace_limits: bool = False,
    ) -> Plan:
        """Change what is given (``None``: keep). ``limits`` are merged into the plan's: each
        key given replaces that key, a key set to ``None`` lifts that limit, other keys stay
        (``replace_limits=True``: the document given is the whole new one). The tier changes
        only while no tenant is on the plan."""
        with self._plane.admin() as conn:
            plan, changed = plan_edits.update_plan(
                conn,
                name,
                isolation=isolation,
                description=description,
                limits=limits,
                replace_limits=replace_limits,
                actor=self._plane.actor,
            )
        if changed:
            self._plane.publish(EventKind.PLAN, plan.name)
        if limits is not None:  # (also when unchanged: a rerun after a failed ALTER DATABASE sets it)
            apply_connection_limits(self._plane, plan=plan.name)
        return plan

    def delete(self, name: str) -> Plan:
        """Remove a plan no tenant is on and return what it was; :class:`~tenantry.PlanInUse`
        says how many tenants (or what else) still name it."""
        with self._plane.admin() as conn:
            plan = plan_edits.delete_plan(conn, name, actor=self._plane.actor)
        self._plane.publish(EventKind.PLAN, plan.name)
        return plan

    def pin(self, name: str, *, cell: str | None = None, labels: dict[str, str] | None = None) -> Plan:
        """Place the plan's new database-tier tenants on ``cell``, or on cells with ``labels``."""
        with self._plane.admin() as conn:
            return tenant_service.pin_plan(conn, name, cell=cell, labels=labels or {}, actor=self._plane.actor)

    def apply_connection_limits(self, name: str | None = None) -> dict[str, int]:
        """Set the ``CONNECTION LIMIT`` of the own databases of the database-tier tenants on
        plan ``name`` (every plan when ``None``) from the plan's ``db_connections`` x
        ``Settings.database_connection_limit_factor`` (no cap: ``-1``); returns the databases
        changed and their new limit. Creating and moving tenants, and changing a plan's or a
        tenant's limits through tenantry, do it by themselves; run it after a change made
        another way. Idempotent."""
        if name is not None:
            self.get(name)  # PlanNotFound for a plan that is not there
        return apply_connection_limits(self._plane, plan=name)
