"""Plans of the user's own: create, update and delete plans, each change audited.

Each function is one catalog transaction. The change fires the catalog's ``plans_notify``
trigger, so every process drops the limits it cached for the plan when it commits; the caller
(``tn.plans``) also tells this process's caches at once.

A plan's ``limits`` document is checked against :class:`~tenantry.core.limit_schema.Limits`;
a key set to ``None`` is removed (no limit of that kind: on a plan, absent and ``null`` mean
the same).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg

from tenantry.core.limit_schema import check_limits, merge_limits
from tenantry.core.model import Isolation, Plan
from tenantry.core.naming import validate_plan_name
from tenantry.db.catalog import audit
from tenantry.db.catalog import plans as catalog_plans
from tenantry.db.catalog.plans import get_plan
from tenantry.errors import Conflict, InvalidInput, PlanExists, PlanInUse, PlanNotFound

__all__ = ["create_plan", "delete_plan", "update_plan"]

#: longest description a plan may have
MAX_DESCRIPTION = 500


def _isolation(value: Isolation | str) -> Isolation:
    try:
        return Isolation(value)
    except ValueError:
        raise InvalidInput(
            f"isolation must be one of {', '.join(i.value for i in Isolation)}, not {str(value)[:40]!r}"
        ) from None


def _description(value: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION or "\x00" in value:
        raise InvalidInput(f"description must be text of at most {MAX_DESCRIPTION} characters")
    return value


def _stored(limits: Mapping[str, Any]) -> dict[str, Any]:
    # on a plan, null and absent both mean "no limit": keep the document short
    return {k: v for k, v in limits.items() if v is not None}


def create_plan(
    conn: psycopg.Connection[Any],
    name: str,
    *,
    isolation: Isolation | str,
    description: str = "",
    limits: Mapping[str, Any] | None = None,
    actor: str,
) -> Plan:
    """Add a plan; :class:`PlanExists` when one of that name exists (as creating an existing
    tenant is refused): change it with :func:`update_plan`."""
    validate_plan_name(name)
    tier = _isolation(isolation)
    text = _description(description)
    document = _stored(check_limits(limits or {}))
    with conn.transaction():
        if not catalog_plans.insert_plan(conn, name, isolation=tier.value, description=text, limits=document):
            raise PlanExists(f"a plan named {name!r} exists already; change it with `tenantry plans update {name}`")
        plan = get_plan(conn, name)
        audit.record(conn, actor=actor, action="plan.create", target_type="plan", target=name, after=plan.to_dict())
    return plan


def update_plan(
    conn: psycopg.Connection[Any],
    name: str,
    *,
    isolation: Isolation | str | None = None,
    description: str | None = None,
    limits: Mapping[str, Any] | None = None,
    replace_limits: bool = False,
    actor: str,
) -> tuple[Plan, bool]:
    """Change what is given of a plan (``None``: keep). ``limits`` are merged into the plan's:
    each key given replaces that key, a key set to ``None`` lifts that limit, keys not given
    keep their value; with ``replace_limits`` the document given is the whole new one. The
    tier changes only while no tenant is on the plan (moving tenants is ``tn.tenants.move``).
    Returns the plan and whether anything changed (an update to the same values is a no-op,
    not audited)."""
    tier = None if isolation is None else _isolation(isolation)
    text = None if description is None else _description(description)
    change = None if limits is None else check_limits(limits)
    with conn.transaction():
        if not catalog_plans.lock_plan(conn, name):
            get_plan(conn, name)  # raises PlanNotFound, naming the plans there are
            raise PlanNotFound(f"no plan named {name!r}")
        before = get_plan(conn, name)
        if change is None:
            document = before.limits
        else:
            document = _stored(change if replace_limits else check_limits(merge_limits(before.limits, change)))
        if tier is not None and tier is not before.isolation:
            users = catalog_plans.plan_users(conn, name)["tenants"]
            if users:
                raise Conflict(
                    f"plan {name!r} has {users} tenant(s) on the {before.isolation.value} tier; its isolation"
                    f" cannot change under them (move them to a {tier.value} plan with `tenantry tenants move`)"
                )
        new_tier = before.isolation if tier is None else tier
        new_text = before.description if text is None else text
        if (new_tier, new_text, document) == (before.isolation, before.description, before.limits):
            return before, False
        catalog_plans.update_plan(conn, name, isolation=new_tier.value, description=new_text, limits=document)
        after = get_plan(conn, name)
        audit.record(
            conn,
            actor=actor,
            action="plan.update",
            target_type="plan",
            target=name,
            before=before.to_dict(),
            after=after.to_dict(),
        )
    return after, True


def delete_plan(conn: psycopg.Connection[Any], name: str, *, actor: str) -> Plan:
    """Remove a plan no tenant is on; :class:`PlanInUse` names how many tenants (and what
    else) still are. The plan's plugin settings go with it."""
    with conn.transaction():
        if not catalog_plans.lock_plan(conn, name):  # (a tenant being put on it waits for us)
            get_plan(conn, name)
            raise PlanNotFound(f"no plan named {name!r}")
        before = get_plan(conn, name)
        users = catalog_plans.plan_users(conn, name)
        if users["tenants"]:
            raise PlanInUse(
                f"plan {name!r} still has {users['tenants']} tenant(s); move them to another plan first"
                f" (`tenantry tenants list --plan {name}`, then `tenantry tenants move SLUG --plan OTHER`)",
                tenants=users["tenants"],
            )
        if users["deleted_tenants"]:
            raise PlanInUse(
                f"plan {name!r} is named by {users['deleted_tenants']} deleted tenant(s), whose records the"
                " catalog keeps; a plan that had tenants stays"
            )
        if users["config_versions"]:
            raise PlanInUse(
                f"plan {name!r} has a configuration layer ({users['config_versions']} row(s) of config and"
                " its history); a plan with configuration stays"
            )
        catalog_plans.delete_plan(conn, name)
        audit.record(conn, actor=actor, action="plan.delete", target_type="plan", target=name, before=before.to_dict())
    return before
