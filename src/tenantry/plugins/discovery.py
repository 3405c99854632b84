"""Finding plugins: installed packages' ``tenantry.plugins`` entry points, and import specs.

A package makes a plugin installable by naming it in its metadata::

    [project.entry-points."tenantry.plugins"]
    audit-export = "acme_audit:AuditExport"     # a Plugin class (built with no arguments) or object

Installed plugins are *discovered*: ``tenantry plugins list`` shows them and they can be
enabled for plans and tenants. A Tenantry *runs* only the plugins it is given
(``Tenantry(plugins=[...])``, or by name in ``TENANTRY_PLUGINS``): a plugin adds tables to
every placement and code to every request, so installing a package alone changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Any

from tenantry._imports import resolve
from tenantry.errors import ConfigurationError, PluginNotFound

__all__ = ["ENTRY_POINT_GROUP", "Discovered", "discover", "instantiate", "load_spec"]

ENTRY_POINT_GROUP = "tenantry.plugins"


@dataclass(frozen=True, slots=True)
class Discovered:
    """An installed plugin, as its entry point names it (nothing imported yet)."""

    name: str
    value: str
    """``module:attr``"""
    distribution: str | None
    version: str | None
    entry_point: metadata.EntryPoint

    @property
    def source(self) -> str:
        where = self.distribution or "?"
        return f"entry point of {where}" + (f" {self.version}" if self.version else "")

    def load(self) -> Any:
        """The plugin object (a class is built with no arguments); :class:`ConfigurationError`
        saying why when it does not import."""
        try:
            found = self.entry_point.load()
        except Exception as err:  # any import-time failure of a third-party package
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ConfigurationError(f"plugin {self.name!r} ({self.value}) does not load: {first}") from err
        return instantiate(found, f"plugin {self.name!r} ({self.value})")


def discover() -> dict[str, Discovered]:
    """Every installed plugin by entry point name (the first of a name wins, as Python's
    import order would)."""
    found: dict[str, Discovered] = {}
    for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if point.name in found:
            continue
        dist = point.dist
        found[point.name] = Discovered(
            point.name,
            point.value,
            None if dist is None else dist.metadata["Name"],
            None if dist is None else dist.version,
            point,
        )
    return found


def instantiate(found: Any, what: str) -> Any:
    """A plugin object from what an entry point or spec names: a class is built with no
    arguments, anything else is used as it is."""
    if isinstance(found, type):
        try:
            return found()
        except Exception as err:
            raise ConfigurationError(f"{what} cannot be built without arguments: {err}") from err
    return found


def load_spec(spec: str) -> Any:
    """The plugin named by ``spec``: an installed plugin's name, or ``module:attr``."""
    if ":" in spec:
        return instantiate(resolve(spec, what="plugin", example="Plugin"), f"plugin {spec!r}")
    installed = discover()
    if spec not in installed:
        known = ", ".join(sorted(installed)) or "none"
        raise PluginNotFound(f"no installed plugin {spec!r} (installed: {known})")
    return installed[spec].load()
