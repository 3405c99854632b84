"""What placements actually hold, against the tables this process would build.

A process knows the app's tables from the metadata it loaded (the app's and its registered
plugins'); a placement holds what was deployed and migrated into it, which another process
(with more plugins, or after ``tenantry migrate`` added a column the models lack) may have
put there. Whatever copies, builds or removes tenant rows reads the placement
(:func:`held`: its registry of app tables, ``tenantry.app_tables``, and the real columns from
the system catalogs) and refuses (:class:`TablesDiffer`) a difference it cannot carry, before
anything changes:

* a move copies every table and column the source holds, and the target must have them
  (:mod:`tenantry.services.moves`);
* a schema- or database-tier tenant, or a spare, is built from this process's metadata, so
  the shared (pooled) tables, which every process of the app deploys into, must hold no table
  this metadata lacks (:func:`require_known`): a CLI without the app's plugins would build
  tenants without the plugins' tables;
* ``tenantry check`` lists the placements that differ from the metadata (:func:`drift`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenantry.core.placement import Placement
from tenantry.db import tenant_copy
from tenantry.db.catalog.placements import live_placements
from tenantry.db.connect import admin_connection, database_url
from tenantry.db.tenant_copy import TableSpec, differences
from tenantry.errors import TablesDiffer

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = ["drift", "held", "pooled_held", "require_known"]

#: what to do about a difference, said with every refusal
ADVICE = (
    "load the app's tables and plugins as the app does (TENANTRY_APP, TENANTRY_PLUGINS), or add the"
    " missing columns to the models; `tenantry check` lists every placement that differs"
)


def held(tn: ControlPlane, place: Placement) -> list[TableSpec]:
    """The app tables ``place`` holds, with their real columns and keys, parents first."""
    url = database_url(tn.cell_admin_url(place.cell), place.database)
    with admin_connection(url, autocommit=True) as conn:
        return tenant_copy.placement_specs(conn, place.schema)


def pooled_held(tn: ControlPlane) -> list[TableSpec]:
    """The shared tables, as :func:`held` reads them."""
    with tn.admin() as conn:
        return tenant_copy.placement_specs(conn, tn.settings.pooled_schema)


def require_known(tn: ControlPlane, what: str) -> None:
    """Refuse (:class:`TablesDiffer`) to build ``what`` from this process's metadata when the
    shared tables hold a table it lacks: the app (with a plugin this process did not load)
    serves that table, and the new placement would not have it. A column the metadata lacks
    is not refused here (the app's models do not use it); ``tenantry check`` reports it."""
    known = {spec.name for spec in tenant_copy.specs(tn.app_metadata())}
    problems = [
        f"{spec.name}: no such table in this process's app tables" for spec in pooled_held(tn) if spec.name not in known
    ]
    if problems:
        raise TablesDiffer(
            f"cannot build {what}: the shared tables hold what this process's app tables lack ("
            + "; ".join(problems)
            + f"); nothing was changed; {ADVICE}",
            problems,
        )


def drift(tn: ControlPlane) -> dict[str, list[str]]:
    """Placements whose tables or columns differ from this process's metadata (the app's
    head), each with its differences both ways: ``{"pooled": [...], "<slug>": [...]}``."""
    head = tenant_copy.specs(tn.app_metadata())
    found: dict[str, list[str]] = {}

    def compare(label: str, holds: list[TableSpec]) -> None:
        problems = differences(holds, head, "in the app's tables") + differences(head, holds, "in the placement")
        if problems:
            found[label] = problems

    compare("pooled", pooled_held(tn))
    with tn.admin() as conn:
        live = live_placements(conn)
    for slug, place in live:
        compare(slug, held(tn, place))
    return found
