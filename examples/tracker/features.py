"""What makes one tenant's tracker differ from another's besides its brand: a feature flag and
a plugin, both switched per tenant (or per plan) from the CLI while the app runs.

* Flag ``csv-export``: a project page offers its tasks as a CSV file. The demo turns it on for
  globex (a rule on the tenant); ``tenantry flags set csv-export --rules ...`` changes who has it.
* Plugin ``webhooks`` (:mod:`tenantry.contrib.webhooks`): signed callbacks of new projects and
  tasks, a "Webhooks" page, and its JSON routes under ``/_plugins/webhooks/``. The demo switches
  it on for the enterprise plan (initech); ``tenantry plugins enable webhooks --tenant acme``
  adds a tenant.
"""

from __future__ import annotations

from typing import Any

from tenantry import FlagExists, Tenantry
from tenantry.contrib.webhooks import WebhooksPlugin
from tenantry.errors import FlagNotFound

__all__ = ["CSV_EXPORT", "WEBHOOKS", "ensure_features", "plugins"]

CSV_EXPORT = "csv-export"
WEBHOOKS = "webhooks"


def plugins(*, allow_private: bool = False) -> list[Any]:
    """The plugins the tracker runs (``allow_private``: deliver webhooks to local addresses,
    for tests and local experiments)."""
    return [WebhooksPlugin(allow_private=allow_private)]


def ensure_features(tn: Tenantry) -> dict[str, Any]:
    """The demo's differences, set once: csv-export on for globex, webhooks on for the
    enterprise plan. What an operator changed since is kept; returns what was set."""
    done: dict[str, Any] = {"flag_created": False, "plugin_enabled": False}
    try:
        tn.flags.get(CSV_EXPORT)
    except FlagNotFound:
        rule = {"when": [{"attribute": "tenant", "op": "in", "value": ["globex"]}], "variant": "on"}
        try:
            tn.flags.create(
                {
                    "key": CSV_EXPORT,
                    "description": "Projects offer their tasks as a CSV file",
                    "rules": [rule],
                },
            )
            done["flag_created"] = True
        except FlagExists:
            pass
    if not any(s.scope == "plan" and s.target == "enterprise" for s in tn.plugins.settings(WEBHOOKS)):
        tn.plugins.enable(WEBHOOKS, plan="enterprise")
        done["plugin_enabled"] = True
    return done
