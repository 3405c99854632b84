"""Scopes of admin API tokens: what each allows, and what each implies.

Pure: no driver, no I/O. A token carries a set of scopes; an action needs one scope. A write
scope implies the matching read (``tenants:write`` reads tenants too); whoever may start a
long operation may poll its job (``tenants:write`` and ``moves:write`` imply ``jobs:read``);
``admin`` implies every scope::

    >>> granted = expand(["tenants:write"])
    >>> sorted(granted)
    ['jobs:read', 'tenants:read', 'tenants:write']
"""

from __future__ import annotations

from collections.abc import Iterable

from tenantry.errors import InvalidInput

__all__ = ["ADMIN", "SCOPES", "allows", "expand", "validate_scopes"]

ADMIN = "admin"

#: every scope, with what it allows
SCOPES: dict[str, str] = {
    "tenants:read": "list and read tenants and their placements",
    "tenants:write": "create, suspend, resume, archive and delete tenants",
    "plans:read": "list and read plans, and tenants' limits",
    "plans:write": "create, change and delete plans (limits, placement policy), and set tenants' own limits",
    "cells:read": "list and read cells",
    "cells:write": "add cells, drain and undrain them",
    "domains:read": "list and read tenants' domains",
    "domains:write": "add, verify and remove tenants' domains",
    "config:read": "read plans' and tenants' configuration, its history and diffs",
    "config:write": "set, unset and replace configuration values, roll back to a version",
    "flags:read": "list and read feature flags, and evaluate them for a tenant",
    "flags:write": "create, change, kill and delete feature flags",
    "brands:read": "read tenants' brands (theme, logo, favicon) and their warnings",
    "brands:write": "change, upload images of and reset tenants' brands",
    "plugins:read": "list plugins, read where they are switched on, what runs for a tenant and what they raised",
    "plugins:write": "switch plugins on and off for plans and tenants, and reset those settings",
    "moves:write": "move tenants between tiers and cells, abort moves",
    "jobs:read": "poll the jobs of long operations",
    "migrations:read": "read where the app migrations stand on every placement",
    "audit:read": "read the audit log",
    "metrics:read": "scrape the Prometheus metrics at /metrics",
    "usage:read": "read tenants' usage, storage and the hot tenants",
    ADMIN: "every scope",
}

_IMPLIED: dict[str, frozenset[str]] = {
    "tenants:write": frozenset({"tenants:read", "jobs:read"}),
    "plans:write": frozenset({"plans:read"}),
    "cells:write": frozenset({"cells:read"}),
    "domains:write": frozenset({"domains:read"}),
    "config:write": frozenset({"config:read"}),
    "flags:write": frozenset({"flags:read"}),
    "brands:write": frozenset({"brands:read"}),
    "plugins:write": frozenset({"plugins:read"}),
    "moves:write": frozenset({"jobs:read", "tenants:read"}),
    ADMIN: frozenset(SCOPES),
}


def validate_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes, deduplicated and sorted; raises :class:`InvalidInput` for an unknown one
    or for none at all."""
    chosen = sorted(set(scopes))
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown:
        raise InvalidInput(
            f"unknown scope(s) {', '.join(repr(s) for s in unknown)}; scopes: {', '.join(sorted(SCOPES))}"
        )
    if not chosen:
        raise InvalidInput(f"a token needs at least one scope; scopes: {', '.join(sorted(SCOPES))}")
    return chosen


def expand(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes granted, with everything they imply."""
    granted: set[str] = set()
    for scope in scopes:
        granted.add(scope)
        granted |= _IMPLIED.get(scope, frozenset())
    return frozenset(granted)


def allows(scopes: Iterable[str], needed: str) -> bool:
    """Whether a token with ``scopes`` may do what ``needed`` allows."""
    return needed in expand(scopes)
