"""Per-tenant config and feature flags: ``tn.config`` and ``tn.flags``.

"Tenant config" is what each tenant is configured with (layered values, typed by the app's
schema, and flags); the platform's own configuration is :class:`~tenantry.Settings`.

* :mod:`~tenantry.tenant_config.layers` — a layer's documents: paths, merging, overrides, diffs (pure)
* :mod:`~tenantry.tenant_config.schema` — :class:`ConfigSections`, the schema, and validation (pure)
* :mod:`~tenantry.tenant_config.evaluation` — flag definitions (:class:`FlagSpec`) and evaluation (pure)
* :mod:`~tenantry.tenant_config.records` — flags as the catalog holds them (the SQL of
  config layers and flags: :mod:`tenantry.db.catalog.config`, :mod:`tenantry.db.catalog.flags`)
* :mod:`~tenantry.tenant_config.live` — the per-process cache both services read through
* :mod:`~tenantry.tenant_config.config` — ``tn.config``: get, set, unset, history, rollback, current
* :mod:`~tenantry.tenant_config.results` — what ``tn.config`` answers (:class:`ConfigValue`, ...)
* :mod:`~tenantry.tenant_config.flags` — ``tn.flags``: create, update, kill, delete, enabled, evaluate
* :mod:`~tenantry.tenant_config.openfeature` — :class:`TenantryProvider` (needs ``tenantry[openfeature]``;
  not imported here)
* :mod:`~tenantry.tenant_config.plane` — :class:`ControlPlane`, what the services need of ``Tenantry``
"""

from tenantry.db.catalog.scopes import Scope
from tenantry.tenant_config.config import TenantConfig
from tenantry.tenant_config.evaluation import Evaluation, FlagSpec
from tenantry.tenant_config.flags import FlagRecord, Flags
from tenantry.tenant_config.live import Live
from tenantry.tenant_config.plane import ControlPlane
from tenantry.tenant_config.results import ConfigChange, ConfigDiff, ConfigValue, ConfigVersion
from tenantry.tenant_config.schema import ConfigSections

__all__ = [
    "ConfigChange",
    "ConfigDiff",
    "ConfigSections",
    "ConfigValue",
    "ConfigVersion",
    "ControlPlane",
    "Evaluation",
    "FlagRecord",
    "FlagSpec",
    "Flags",
    "Live",
    "Scope",
    "TenantConfig",
]
