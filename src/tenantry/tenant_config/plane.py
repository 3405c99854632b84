"""What config and flags need of the control plane: :class:`ControlPlane`, a narrow protocol.

:class:`~tenantry.Tenantry` satisfies it; the services here never see more of it than this, so
they import nothing from :mod:`tenantry.app`. The per-process cache's plumbing (whether the
catalog listener is connected, starting it, the tenant-lookup cache) is handed to
:class:`~tenantry.tenant_config.live.Live` as plain callables instead.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import psycopg

    from tenantry.core.secrets import Keyring
    from tenantry.settings import Settings

__all__ = ["ControlPlane"]


class ControlPlane(Protocol):
    """The catalog's connections, who changes are audited as, the settings and the keys."""

    @property
    def settings(self) -> Settings:
        """The platform's settings (the cache's TTL and size bound come from them)."""
        ...

    @property
    def actor(self) -> str:
        """Who a change is audited as, now."""
        ...

    def admin(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        """An autocommit admin connection to the catalog (control-plane reads and writes)."""
        ...

    def catalog_reader(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        """An autocommit connection for the request path's reads of the routing views."""
        ...

    def secret_keyring(self) -> Keyring | None:
        """The keys that seal secret config values, if any."""
        ...
