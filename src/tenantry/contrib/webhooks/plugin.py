"""``WebhooksPlugin``: the plugin object, tying the webhooks pieces to tenantry's capabilities."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from tenantry.contrib.webhooks.config import WebhooksConfig
from tenantry.contrib.webhooks.models import Base
from tenantry.contrib.webhooks.outbox import queue
from tenantry.contrib.webhooks.routes import WebhookRoutes
from tenantry.errors import InvalidInput
from tenantry.plugins.base import AppTables, ASGIApp, AsgiRoutes, ConfigSection, FlagProvider, LifecycleHooks
from tenantry.services.egress import Egress, Resolver

if TYPE_CHECKING:
    from tenantry.app import Tenantry
    from tenantry.core.model import Tenant
    from tenantry.services.moves import MoveReport

__all__ = ["WebhooksPlugin"]


class WebhooksPlugin(LifecycleHooks, ConfigSection, AppTables, AsgiRoutes, FlagProvider):
    """Signed HTTP callbacks of a tenant's events, to the endpoint in its config.

    * config section ``webhooks`` (:class:`WebhooksConfig`): url, secret, events;
    * table ``webhooks_deliveries``: the outbox, in every placement, isolated like any app table;
    * lifecycle hooks queue ``tenant.created|suspended|resumed|archived|moved``;
    * routes at ``/_plugins/webhooks/``: the tenant's recent deliveries (JSON);
    * flag ``webhooks.deliver`` (on): switch it off for a tenant to hold its deliveries.

    The app queues its own events with :func:`~tenantry.contrib.webhooks.queue` and runs
    :func:`~tenantry.contrib.webhooks.deliver_pending` (or a :class:`WebhookWorker`).
    ``allow_private`` lets deliveries go to loopback and private addresses (tests, local
    demos); leave it off in production. ``resolver`` replaces the guard's DNS lookup (see
    :class:`~tenantry.services.egress.Egress`).
    """

    name = "webhooks"
    description = "Signed HTTP callbacks of app and lifecycle events, queued in each tenant's own tables"
    config_model = WebhooksConfig
    metadata = Base.metadata

    def __init__(
        self,
        *,
        max_attempts: int = 8,
        backoff_base: float = 10.0,
        backoff_cap: float = 3600.0,
        timeout: float = 10.0,
        lease: float = 60.0,
        allow_private: bool = False,
        resolver: Resolver | None = None,
    ) -> None:
        if max_attempts < 1 or backoff_base < 0 or backoff_cap < backoff_base or timeout <= 0 or lease <= timeout:
            raise InvalidInput(
                "webhooks: need max_attempts >= 1, 0 <= backoff_base <= backoff_cap, 0 < timeout < lease"
            )
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.timeout = timeout
        self.lease = lease
        self.allow_private = allow_private
        #: the SSRF guard every delivery goes through
        self.egress = Egress(timeout=timeout, allow_private=allow_private, resolver=resolver)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...)."""
        return float(min(self.backoff_cap, self.backoff_base * 2 ** max(0, attempt - 1)))

    # -- capabilities -----------------------------------------------------------------------
    def asgi_app(self, tn: Tenantry) -> ASGIApp:
        return WebhookRoutes(tn)

    def flag_definitions(self) -> Sequence[Mapping[str, Any]]:
        return [
            {
                "key": "webhooks.deliver",
                "default": "on",
                "description": "Send queued webhooks; switch off (for some tenants, by rule) to hold them",
            }
        ]

    def _lifecycle(self, tn: Tenantry, tenant: Tenant, event: str, data: Mapping[str, Any] | None = None) -> None:
        with tn.tenant(tenant.id, allow_inactive=True), Session(tn.engine()) as session, session.begin():
            queue(tn, session, event, {"tenant": tenant.to_dict(), **(data or {})})

    def on_tenant_created(self, tn: Tenantry, tenant: Tenant) -> None:
        self._lifecycle(tn, tenant, "tenant.created")

    def on_tenant_suspended(self, tn: Tenantry, tenant: Tenant) -> None:
        self._lifecycle(tn, tenant, "tenant.suspended")

    def on_tenant_resumed(self, tn: Tenantry, tenant: Tenant) -> None:
        self._lifecycle(tn, tenant, "tenant.resumed")

    def on_tenant_archived(self, tn: Tenantry, tenant: Tenant) -> None:
        self._lifecycle(tn, tenant, "tenant.archived")

    def on_tenant_moved(self, tn: Tenantry, tenant: Tenant, report: MoveReport) -> None:
        self._lifecycle(tn, tenant, "tenant.moved", {"from": report.source, "to": report.target})
