"""The kinds of catalog change event, as ``NOTIFY tenantry_catalog`` carries them.

Pure: no I/O. A payload is ``<kind>:<key>``; :class:`EventKind` names every kind a sender may
send and the listener may hand on, so neither side spells one as a bare string. Senders are in
:mod:`tenantry.db.catalog.events` (and the SQL of :mod:`tenantry.db.catalog.hooks`); the
listener parses each payload with :meth:`EventKind.parse`.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["EventKind"]


class EventKind(StrEnum):
    """What a catalog change event is about, and what its key names."""

    TENANT = "tenant"
    """A tenant's status, plan, slug or placement changed (or it was made): key is its id."""
    CELL = "cell"
    """A cell changed (status, connection strings): key is its name."""
    DOMAIN = "domain"
    """A custom domain was added, verified or removed: key is the hostname."""
    CONFIG = "config"
    """A config layer changed: key is ``tenant:<id>`` or ``plan:<name>``."""
    FLAG = "flag"
    """A feature flag was created, changed, killed or deleted: key is the flag's key."""
    PLUGIN = "plugin"
    """A plugin was switched on or off: key is ``tenant:<id>`` or ``plan:<name>``."""
    BRAND = "brand"
    """A tenant's brand changed: key is the tenant's id."""
    HOOK = "hook"
    """A call to a plugin's hook was queued: key is the plugin's name."""
    PLAN = "plan"
    """A plan was made, changed or deleted (a trigger on the plans table sends it, whatever
    made the change): key is the plan's name."""
    LIMITS = "limits"
    """A tenant's overrides of its plan's limits were set or unset (a trigger on the
    ``tenant_limits`` table sends it): key is the tenant's id."""
    STORAGE = "storage"
    """A storage measurement changed which tenants are over their plan's ``storage_mb``: key
    is ``*`` (every process reads the set of over-quota tenants again)."""

    def payload(self, key: str) -> str:
        """The NOTIFY payload of this kind of event about ``key``."""
        return f"{self.value}:{key}"

    @classmethod
    def parse(cls, payload: str) -> tuple[EventKind, str] | None:
        """``(kind, key)`` of a NOTIFY payload; ``None`` for a kind this version does not know
        (sent by a newer process: nothing here caches what it is about)."""
        kind, _, key = payload.partition(":")
        try:
            return cls(kind), key
        except ValueError:
            return None
