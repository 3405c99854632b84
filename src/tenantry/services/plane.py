"""``ControlPlane``: what a control-plane service may use of the process it runs in.

Every service object (``tn.tenants``, ``tn.cells``, ``tn.spares``, ...), every catalog cache
and the plugin registry take this narrow protocol, never :class:`tenantry.Tenantry`: the root
object sits a layer above them and wires them together. The one implementation is
:class:`tenantry.services.connections.Plane` (``tn.plane``).

A service does its own after-effects through it, so that no path can skip them: a change to a
tenant is :meth:`~ControlPlane.publish`\\ ed to this process's caches at once (other processes
hear the catalog's ``NOTIFY``), and :meth:`~ControlPlane.after_change` delivers the plugin
hooks the change queued.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import psycopg
    import sqlalchemy as sa

    from tenantry.core.events import EventKind
    from tenantry.core.secrets import Keyring
    from tenantry.db.binding import Binder
    from tenantry.db.catalog.cells import Cell
    from tenantry.db.catalog.hooks import Origin
    from tenantry.db.routing import Router
    from tenantry.settings import Settings

__all__ = ["ControlPlane", "EventHandler", "Extensions", "ResetHandler"]

#: called with each catalog event this process hears or makes (see :mod:`tenantry.db.catalog.events`)
EventHandler = Callable[["EventKind", str], None]
#: called when every cached catalog fact must go (the listener reconnected: notices may be lost)
ResetHandler = Callable[[], None]


class Extensions(Protocol):
    """What the control plane needs of the plugins that run in this process (the registry,
    ``tn.plugins``, implements it)."""

    def origin(self) -> Origin:
        """Who this process is to the hook queue (the calls a change here reserves)."""
        ...

    def deliver_now(self, tenant_id: uuid.UUID) -> None:
        """Run the hook calls a change to the tenant queued for the plugins of this process."""
        ...

    def managed_metadata(self, app: sa.MetaData) -> sa.MetaData:
        """The app's tables and the registered plugins'."""
        ...

    def migrations(self) -> dict[str, str]:
        """The registered plugins that ship migrations: their revision directories, by name."""
        ...

    def versioned_tables(self) -> set[str]:
        """The tables of registered plugins that ship migrations of their own."""
        ...

    def after_init(self) -> None:
        """After ``tn.schema.init()``: install the plugins' flags, subscribe their hooks."""
        ...

    def autostart(self) -> None:
        """With the catalog listener: start the hook runner, if this process runs one."""
        ...


class ControlPlane(Protocol):
    """The catalog, its connections and its events, as the services see them."""

    @property
    def settings(self) -> Settings: ...

    @property
    def metadata(self) -> sa.MetaData | None:
        """The app's metadata as given (``None``: not given; see :meth:`app_metadata`)."""
        ...

    @property
    def actor(self) -> str:
        """Who changes are audited as (in this thread or task)."""
        ...

    @property
    def admin_url(self) -> str: ...

    @property
    def runtime_url(self) -> str: ...

    def admin(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        """An autocommit admin connection to the catalog."""
        ...

    def catalog_reader(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        """An autocommit connection for the request path's reads of the routing views."""
        ...

    def acting_as(self, actor: str) -> AbstractContextManager[str]:
        """Audit the changes of a ``with`` block (this thread or task only) as ``actor``."""
        ...

    def secret_keyring(self) -> Keyring | None: ...

    def cell(self, name: str) -> Cell:
        """The cell, from this process's cache."""
        ...

    def cell_admin_url(self, name: str) -> str: ...

    def app_metadata(self, metadata: sa.MetaData | None = None) -> sa.MetaData:
        """The tables tenantry manages: the app's (``metadata``, else the configured) and the
        registered plugins'."""
        ...

    def binder(self) -> Binder: ...

    @property
    def router(self) -> Router: ...

    @property
    def extensions(self) -> Extensions: ...

    def listen(self) -> None:
        """Start the catalog listener (once)."""
        ...

    def trusted(self) -> bool:
        """Whether the catalog listener is connected now (caches may serve)."""
        ...

    def subscribe(self, on_event: EventHandler, on_reset: ResetHandler) -> None:
        """Hear every catalog event, and every reset, of this process."""
        ...

    def publish(self, kind: EventKind, key: str) -> None:
        """Tell this process's caches of a change now (others hear the catalog's NOTIFY)."""
        ...

    def after_change(self, tenant_id: uuid.UUID) -> None:
        """A tenant changed: deliver the plugin hooks the change queued (failures are logged;
        the queue keeps the call)."""
        ...

    def origin(self) -> Origin: ...

    def forget_route(self, key: tuple[str, str | None]) -> None:
        """Close the pools of a placement that is gone."""
        ...
