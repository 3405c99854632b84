"""``UsageService`` (``tn.usage``): what each tenant uses, measured, kept and read.

* **Storage.** :meth:`~UsageService.measure_storage` measures every tenant (see
  :mod:`tenantry.services.storage`) and marks who is over the plan's ``storage_mb``: their
  writes are refused (:class:`~tenantry.errors.StorageQuotaExceeded`), their reads go on.
* **Metering.** This process counts each tenant's requests (by status class), request time,
  bound transactions and their time in :attr:`~UsageService.meter` (no I/O), and
  :meth:`~UsageService.flush` writes the counts to the catalog's usage table in one statement.
  :meth:`~UsageService.start` runs a flusher thread (every ``usage_flush_seconds``; the edge
  starts it), :meth:`~UsageService.close` flushes what is left.
* **Reading.** :meth:`~UsageService.usage` per tenant, :meth:`~UsageService.top`, and
  :meth:`~UsageService.hot`: tenants over a share of their cell's load, each with a suggested
  move.
* **Upkeep.** :meth:`~UsageService.maintain` makes the daily partitions ahead and drops the
  ones older than ``usage_retention_days``.

::

    tn.usage.measure_storage()            # one pass over every cell
    tn.usage.flush()                      # what this process counted, now
    tn.usage.top(5, since=timedelta(hours=1))
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tenantry.core.metering import Meter
from tenantry.db.catalog import tenants as catalog_tenants
from tenantry.db.catalog import usage as usage_catalog
from tenantry.db.sizes import Method
from tenantry.errors import InvalidInput
from tenantry.services.hot import hot_tenants
from tenantry.services.plane import ControlPlane
from tenantry.services.storage import StorageReport, measure_storage

__all__ = ["UsageService"]

_log = logging.getLogger("tenantry.usage")
#: days of partitions made ahead of today
_AHEAD = 7


class UsageService:
    """Storage and usage per tenant (see the module docs); ``tn.usage``."""

    def __init__(self, plane: ControlPlane, meter: Meter | None) -> None:
        self._plane = plane
        #: this process's counts since the last flush (``None``: metering is off)
        self.meter = meter
        self.process = f"{socket.gethostname()}:{os.getpid()}"
        self._last_flush = datetime.now(UTC)
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._maintained: date | None = None

    # -- storage ----------------------------------------------------------------------------
    def measure_storage(self, *, method: Method = "exact") -> StorageReport:
        """Measure every tenant's storage (``method`` for pooled tenants: ``"exact"``, their
        rows' bytes, or ``"estimate"``, rows x bytes per row: cheaper, off by the spread of row
        widths; see :mod:`tenantry.db.sizes`), keep it, and refuse the writes of tenants over
        their plan's ``storage_mb`` (and allow them again for those back under)."""
        return measure_storage(self._plane, method=method)

    def storage(self, tenant: str | uuid.UUID | None = None) -> list[dict[str, Any]]:
        """The last measurement of every tenant (or of ``tenant``), largest first: bytes,
        method, when, the quota (MB) and whether it is over it."""
        with self._plane.admin() as conn:
            tenant_id = None if tenant is None else catalog_tenants.get_tenant(conn, tenant).id
            return usage_catalog.read_storage(conn, tenant_id)

    # -- metering ---------------------------------------------------------------------------
    def flush(self) -> int:
        """Write what this process counted since the last flush to the catalog, in one
        statement (none when nothing was counted); returns the rows written (one per tenant).
        Counts a failed write drained are kept for the next flush."""
        if self.meter is None:
            return 0
        with self._flush_lock:
            counts = self.meter.drain()
            now = datetime.now(UTC)
            seconds = max((now - self._last_flush).total_seconds(), 0.001)
            if not counts:
                return 0
            try:
                with self._plane.catalog_reader() as conn:
                    written = usage_catalog.record_usage(
                        conn, process=self.process, at=now, seconds=seconds, rows=counts
                    )
            except Exception:
                self.meter.restore(counts)
                raise
            self._last_flush = now
            return written

    def start(self) -> None:
        """Run the flusher thread (once): a flush every ``usage_flush_seconds``, and the
        partitions' upkeep once a day where this process may (it has the admin URL)."""
        if self.meter is None:
            return
        with self._flush_lock:
            if self._thread is not None:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="tenantry-usage-flusher", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the flusher, if it runs, and flush what is left (a failure is logged, not
        raised). A process that never started it writes only when :meth:`flush` is called."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=5)
        if self.meter is not None and len(self.meter):
            try:
                self.flush()
            except Exception as err:  # closing must not fail for it
                _log.warning("usage counts not flushed at close: %s", str(err).strip().splitlines()[:1])

    def _run(self) -> None:
        interval = self._plane.settings.usage_flush_seconds
        while not self._stop.wait(interval):
            try:
                self.flush()
                if self._maintained != date.today() and not self._plane.settings.data_plane:
                    self.maintain()
            except Exception as err:  # keep counting; the next interval tries again
                _log.warning("usage flush failed, kept for the next one: %s", str(err).strip().splitlines()[:1])

    def maintain(self, *, retention_days: int | None = None) -> dict[str, Any]:
        """Make the usage table's daily partitions (yesterday to a week ahead) and drop those
        older than ``retention_days`` (default ``usage_retention_days``); control plane only."""
        days = self._plane.settings.usage_retention_days if retention_days is None else retention_days
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise InvalidInput(f"retention_days must be a whole number >= 1, not {days!r}")
        today = datetime.now(UTC).date()
        with self._plane.admin() as conn, conn.transaction():
            made = usage_catalog.make_partitions(conn, today - timedelta(days=1), _AHEAD + 2)
            dropped = usage_catalog.drop_partitions_before(conn, today - timedelta(days=days))
        self._maintained = date.today()
        return {"created": made, "dropped": [d.isoformat() for d in dropped], "retention_days": days}

    def partitions(self) -> list[date]:
        """The days the usage table has partitions for, oldest first."""
        with self._plane.admin() as conn:
            return usage_catalog.partitions(conn)

    # -- reading ----------------------------------------------------------------------------
    def usage(
        self, tenant: str | uuid.UUID | None = None, *, since: datetime | timedelta = timedelta(hours=1)
    ) -> list[dict[str, Any]]:
        """Usage since ``since`` (a time, or how long ago), summed per tenant (or for
        ``tenant`` only), busiest first; with each tenant's last measured storage."""
        with self._plane.admin() as conn:
            tenant_id = None if tenant is None else catalog_tenants.get_tenant(conn, tenant).id
            return usage_catalog.usage_by_tenant(conn, since=_since(since), tenant_id=tenant_id)

    def top(
        self, n: int = 10, *, since: datetime | timedelta = timedelta(hours=1), by: str = "requests"
    ) -> list[dict[str, Any]]:
        """The ``n`` tenants that used most of ``by`` (a usage column: ``requests``,
        ``db_ms``, ``request_ms``, ``transactions``, ...) since ``since``."""
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10_000:
            raise InvalidInput(f"top must be a whole number from 1 to 10000, not {n!r}")
        if by not in usage_catalog.USAGE_COLUMNS:
            raise InvalidInput(f"by must be one of {', '.join(usage_catalog.USAGE_COLUMNS)}, not {by!r}")
        with self._plane.admin() as conn:
            return usage_catalog.usage_by_tenant(conn, since=_since(since), top=n, order=by)

    def hot(
        self, share: float = 0.2, *, since: datetime | timedelta = timedelta(hours=1), by: str = "db_ms"
    ) -> list[dict[str, Any]]:
        """Tenants that took at least ``share`` (0-1) of their cell's ``by`` since ``since``,
        each with a suggested move (a plan of stronger isolation, or a quieter cell): text only,
        nothing is moved."""
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
            raise InvalidInput(f"share must be a number above 0 and at most 1, not {share!r}")
        if by not in usage_catalog.USAGE_COLUMNS:
            raise InvalidInput(f"by must be one of {', '.join(usage_catalog.USAGE_COLUMNS)}, not {by!r}")
        with self._plane.admin() as conn:
            rows = usage_catalog.usage_by_tenant(conn, since=_since(since), order=by)
            plans, cells = usage_catalog.plans_and_cells(conn)
        return hot_tenants(rows, plans, cells, share=float(share), by=by)


def _since(since: datetime | timedelta) -> datetime:
    if isinstance(since, timedelta):
        return datetime.now(UTC) - since
    if since.tzinfo is None:
        raise InvalidInput("since must carry a time zone (or be a timedelta)")
    return since
