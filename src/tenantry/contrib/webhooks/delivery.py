"""Sending queued deliveries: signed POSTs with timeouts, retries with backoff, no redirects.

:func:`deliver_pending` visits every tenant the plugin is switched on for (and whose flag
``webhooks.deliver`` is on), claims its due deliveries in a short transaction (a lease:
``FOR UPDATE SKIP LOCKED`` and a later ``next_attempt_at``, so concurrent workers never send
one twice and a worker that dies mid-send only delays it), posts each outside any
transaction, and records the outcome. A 2xx is delivered; anything else is retried after
``backoff_base * 2**(attempt-1)`` seconds (at most ``backoff_cap``) until ``max_attempts``,
then failed. A tenant whose delivery run raises is reported and skipped; the others go on.

Endpoints are the tenants' own choice, so every delivery goes through the one SSRF guard
(:class:`tenantry.services.egress.Egress`): the host is resolved once, with a time limit, a
host with an address that is not public (loopback, private networks, link-local such as
cloud metadata services, and their IPv6 disguises) is refused, and the connection goes to the
checked address itself (``Host`` and TLS server name set), so a DNS answer that changes after
the check cannot redirect it. Redirects are never followed.

A delivery is signed with the endpoint's secret and, during a rotation, with each previous
secret still in force: several ``v1,`` signatures in one header.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tenantry.contrib.webhooks.config import WebhooksConfig
from tenantry.contrib.webhooks.models import Delivery
from tenantry.contrib.webhooks.signing import signature_headers
from tenantry.errors import ConfigurationError, UnsafeAddress

if TYPE_CHECKING:
    import httpx

    from tenantry.app import Tenantry
    from tenantry.contrib.webhooks.plugin import WebhooksPlugin

__all__ = ["DeliveryReport", "WebhookWorker", "deliver_pending"]

NAME = "webhooks"
_log = logging.getLogger("tenantry.contrib.webhooks")


@dataclass(slots=True)
class DeliveryReport:
    """What one :func:`deliver_pending` run did."""

    tenants: int = 0
    attempted: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    paused: list[str] = field(default_factory=list)
    """Tenants whose ``webhooks.deliver`` flag is off."""
    errors: list[str] = field(default_factory=list)
    """Tenants whose run raised (reported as plugin errors)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenants": self.tenants,
            "attempted": self.attempted,
            "delivered": self.delivered,
            "retrying": self.retrying,
            "failed": self.failed,
            "paused": self.paused,
            "errors": self.errors,
        }


def _plugin(tn: Tenantry) -> WebhooksPlugin:
    from tenantry.contrib.webhooks.plugin import WebhooksPlugin

    plugin = tn.plugins.get(NAME)
    if not isinstance(plugin, WebhooksPlugin):
        raise ConfigurationError("the webhooks plugin is not registered with this Tenantry")
    return plugin


def deliver_pending(tn: Tenantry, *, limit: int = 50, client: httpx.Client | None = None) -> DeliveryReport:
    """Send what is due for every tenant the plugin is switched on for (at most ``limit`` per
    tenant); never raises for one tenant's failure."""
    import httpx

    plugin = _plugin(tn)
    report = DeliveryReport()
    own = client is None
    http = client or httpx.Client(timeout=httpx.Timeout(plugin.timeout), follow_redirects=False)
    try:
        for tenant_id, slug in tn.plugins.tenants(NAME):
            report.tenants += 1
            try:
                with tn.tenant(tenant_id, allow_inactive=True):
                    if tn.flags.value("webhooks.deliver", default=True) is not True:
                        report.paused.append(slug)
                        continue
                    _deliver_tenant(tn, plugin, http, limit, report)
            except Exception as err:  # one tenant's failure is reported, the others go on
                report.errors.append(slug)
                tn.plugins.report_error(NAME, "deliver", err, tenant_id)
    finally:
        if own:
            http.close()
    return report


def _deliver_tenant(
    tn: Tenantry, plugin: WebhooksPlugin, http: httpx.Client, limit: int, report: DeliveryReport
) -> None:
    config: WebhooksConfig = plugin.config(tn)
    claimed = _claim(tn, limit, plugin.lease)
    for row in claimed:
        report.attempted += 1
        outcome = _send(http, plugin, config, row)
        state = _finish(tn, plugin, row, outcome)
        if state == "delivered":
            report.delivered += 1
        elif state == "failed":
            report.failed += 1
        else:
            report.retrying += 1


def _claim(tn: Tenantry, limit: int, lease: float) -> list[sa.Row[Any]]:
    due = (
        sa.select(Delivery.id)
        .where(Delivery.status == "pending", Delivery.next_attempt_at <= sa.func.now())
        .order_by(Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claim = (
        sa.update(Delivery)
        .where(Delivery.id.in_(due.scalar_subquery()))
        .values(attempts=Delivery.attempts + 1, next_attempt_at=sa.func.now() + timedelta(seconds=lease))
        .returning(Delivery.id, Delivery.event_id, Delivery.payload, Delivery.attempts)
    )
    with Session(tn.engine()) as session, session.begin():
        return sorted(session.execute(claim).all(), key=lambda r: r.id)


@dataclass(frozen=True, slots=True)
class _Outcome:
    ok: bool
    url: str | None
    status: int | None = None
    error: str | None = None
    final: bool = False
    """No point retrying (refused target, no endpoint)."""


def _send(http: httpx.Client, plugin: WebhooksPlugin, config: WebhooksConfig, row: sa.Row[Any]) -> _Outcome:
    import httpx

    secrets = config.signing_secrets(datetime.now(UTC))
    if config.url is None or not secrets:
        return _Outcome(False, None, error="no endpoint configured", final=True)
    url = str(config.url)
    body = json.dumps(row.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "content-type": "application/json",
        "user-agent": "tenantry-webhooks/1",
        **signature_headers(secrets, str(row.event_id), body),
    }
    try:
        response = plugin.egress.send(http, "POST", url, content=body, headers=headers)
    except UnsafeAddress as err:
        return _Outcome(False, url, error=str(err), final=True)
    except httpx.HTTPError as err:
        return _Outcome(False, url, error=f"{type(err).__name__}: {err}"[:500])
    if 200 <= response.status_code < 300:
        return _Outcome(True, url, response.status_code)
    return _Outcome(False, url, response.status_code, f"HTTP {response.status_code}")


def _finish(tn: Tenantry, plugin: WebhooksPlugin, row: sa.Row[Any], outcome: _Outcome) -> str:
    values: dict[str, Any] = {"url": outcome.url, "response_status": outcome.status, "last_error": outcome.error}
    if outcome.ok:
        state = "delivered"
        values.update(status=state, delivered_at=sa.func.now())
    elif outcome.final or row.attempts >= plugin.max_attempts:
        state = "failed"
        values.update(status=state)
    else:
        state = "pending"
        values.update(next_attempt_at=sa.func.now() + timedelta(seconds=plugin.backoff(row.attempts)))
    with Session(tn.engine()) as session, session.begin():
        session.execute(sa.update(Delivery).where(Delivery.id == row.id).values(**values))
    return state


class WebhookWorker:
    """A daemon thread running :func:`deliver_pending` every ``interval`` seconds (start it
    with the app, stop it before closing the Tenantry)."""

    def __init__(self, tn: Tenantry, *, interval: float = 2.0) -> None:
        self._tn = tn
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tenantry-webhooks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                deliver_pending(self._tn)
            except Exception:  # the catalog is unreachable, say: try again next round
                _log.exception("webhook delivery run failed")
