"""Switching plugins on and off for plans and tenants.

A plugin is off unless switched on. A plan's setting applies to every tenant on the plan; a
tenant's own setting wins over its plan's; removing a setting (``None``) lets the one below
show through. Every change is validated first (a known plugin, an existing plan or a live
tenant), then written in one transaction with its audit entry (``plugin.enable``,
``plugin.disable``, ``plugin.reset``) and a ``NOTIFY`` so that every process drops what it
cached. Setting what is already set is a no-op: no audit entry, no notice. The settings
themselves are :mod:`tenantry.db.catalog.plugins`.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import TYPE_CHECKING

from tenantry.core.naming import check_plugin_name
from tenantry.db.catalog import audit
from tenantry.db.catalog.events import notify_plugin
from tenantry.db.catalog.plugins import EnablementChange, read_setting, write_setting
from tenantry.db.catalog.scopes import scope_of
from tenantry.errors import PluginNotFound

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = ["set_enabled"]


def set_enabled(
    tn: ControlPlane,
    plugin: str,
    enabled: bool | None,
    *,
    known: Collection[str],
    tenant: str | uuid.UUID | None = None,
    plan: str | None = None,
) -> EnablementChange:
    """Switch ``plugin`` on (``True``) or off (``False``) for a tenant or a plan, or remove
    that setting (``None``). ``known`` are the plugin names that may be switched on."""
    check_plugin_name(plugin)
    if enabled is not None and plugin not in known:
        shown = ", ".join(sorted(known)) or "none"
        raise PluginNotFound(f"no plugin {plugin!r} is registered or installed (known: {shown})")
    with tn.admin() as conn, conn.transaction():
        scope = scope_of(conn, tenant=tenant, plan=plan)
        # one writer per setting: concurrent writes of it are judged one after the other
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"tenantry.plugin:{plugin}:{scope.kind}:{scope.value}",)
        )
        before = read_setting(conn, plugin, scope)
        change = EnablementChange(plugin, scope, before, enabled)
        if not change.changed:
            return change
        write_setting(conn, plugin, scope, enabled, before=before, actor=tn.actor)
        action = "plugin.reset" if enabled is None else ("plugin.enable" if enabled else "plugin.disable")
        audit.record(
            conn,
            actor=tn.actor,
            action=action,
            target_type="plugin",
            target=plugin,
            before=None if before is None else {**scope.to_dict(), "enabled": before},
            after=None if enabled is None else {**scope.to_dict(), "enabled": enabled},
        )
        notify_plugin(conn, scope.kind, scope.key)
    return change
