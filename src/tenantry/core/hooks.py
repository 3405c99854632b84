"""The words of the plugins' lifecycle hooks (pure): the events a plugin can hook, the states
of a queued call, and how often a runner looks at the queue. Here, below the services and the
plugin runner that use them, so that the CLI can name them in its help without importing
either."""

from __future__ import annotations

from typing import Literal

__all__ = ["LIFECYCLE_EVENTS", "POLL_SECONDS", "STATUSES", "Status"]

#: the tenant lifecycle events a plugin can hook, as ``on_tenant_<event>``
LIFECYCLE_EVENTS = ("created", "suspended", "resumed", "archived", "deleted", "moved")
#: the states of a queued call
STATUSES = ("pending", "running", "done", "failed", "skipped")
Status = Literal["pending", "running", "done", "failed", "skipped"]
#: seconds between a runner's own looks at the queue (NOTIFY wakes it sooner)
POLL_SECONDS = 5.0
