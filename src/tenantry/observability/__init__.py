"""Logs, metrics and traces that name the tenant.

* :class:`TenantLogFilter` (:mod:`.logs`): every log record gets ``tenant_id`` and
  ``tenant_slug`` from the tenant context (``-`` when none is bound).
* :class:`TenantryMetrics` (:mod:`.metrics`): a Prometheus collector (the ``metrics``
  extra: ``pip install 'tenantry[metrics]'``), fed by the edge and scraped at the admin API's
  ``/metrics``.
* :mod:`.tracing`: with ``opentelemetry-api`` installed, the edge puts ``tenant.id`` and
  ``tenant.slug`` on the current span and the tenant in the Baggage.

Importing this package imports neither prometheus-client nor OpenTelemetry.
"""

from __future__ import annotations

from tenantry.observability.logs import TenantLogFilter, install_log_filter
from tenantry.observability.metrics import TenantryMetrics

__all__ = ["TenantLogFilter", "TenantryMetrics", "install_log_filter"]
