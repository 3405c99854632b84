"""A :class:`logging.Filter` that puts the bound tenant on every log record.

::

    import logging
    from tenantry.observability import install_log_filter

    logging.basicConfig(format="%(asctime)s %(levelname)s [%(tenant_slug)s] %(name)s: %(message)s")
    install_log_filter()  # on the root logger's handlers: every record, whoever logs it

A record made while a tenant is bound (a request the edge serves, ``with tn.tenant(...)``)
carries ``tenant_id`` and ``tenant_slug``; one made with none bound carries ``-`` for both,
so a format string that names them never fails. Values set already (``extra={"tenant_slug":
...}``) are kept. The structlog recipe is in ``docs/limits-and-observability.md``.
"""

from __future__ import annotations

import logging

from tenantry import context

__all__ = ["NO_TENANT", "TenantLogFilter", "install_log_filter"]

#: what a record made with no tenant bound carries
NO_TENANT = "-"


class TenantLogFilter(logging.Filter):
    """Adds ``tenant_id`` and ``tenant_slug`` (the bound tenant's, or ``-``) to each record;
    filters nothing out."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "tenant_slug"):
            bound = context.current()
            if bound is None:
                record.tenant_id = record.tenant_slug = NO_TENANT
            else:
                record.tenant_id = str(bound.id)
                record.tenant_slug = bound.slug
        return True


def install_log_filter(logger: logging.Logger | None = None) -> TenantLogFilter:
    """Add one :class:`TenantLogFilter` to every handler of ``logger`` (default: the root
    logger), so records of every logger that reach them are marked. Call it after the
    handlers are set up (``logging.basicConfig``, ``dictConfig``); calling it again adds no
    second filter."""
    target = logger if logger is not None else logging.getLogger()
    found = next(
        (f for h in target.handlers for f in h.filters if isinstance(f, TenantLogFilter)),
        None,
    )
    installed = found if found is not None else TenantLogFilter()
    for handler in target.handlers:
        if installed not in handler.filters:
            handler.addFilter(installed)
    return installed
