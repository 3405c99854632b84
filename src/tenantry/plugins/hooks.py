"""Delivering the queued lifecycle hooks (:mod:`tenantry.db.catalog.hooks`) to the
plugins one process runs.

Two paths, one queue:

* **Right after a change**, the process that made it delivers the calls queued for the
  plugins it runs (:meth:`HookDelivery.deliver`): the rows were reserved for it, so
  ``tn.tenants.suspend("acme")`` returns after the hooks ran, as a plain call would have.
* **Everything else** (changes made by the CLI, the admin API or another app process; retries
  that fell due; calls of a process that died) is delivered by a :class:`HookRunner` thread,
  woken within milliseconds by the catalog's ``NOTIFY hook:<plugin>`` and every few seconds
  by itself. ``tenantry plugins hooks run --follow`` is the same loop as a process of its own.

Each call is contained: what a hook raises is logged and counted (``tenantry plugins
errors``), and the row is retried after :attr:`LifecycleHooks.hook_backoff` seconds, doubled
each time, until :attr:`LifecycleHooks.hook_retries` retries are spent. A plugin switched off
for the tenant by the time its call is due is not called (``skipped``).
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

from tenantry import context
from tenantry.core.hooks import POLL_SECONDS
from tenantry.core.model import Tenant
from tenantry.db.catalog import hooks as queue
from tenantry.db.catalog.plugins import resolve_for_tenant
from tenantry.plugins.base import LIFECYCLE_EVENTS, LifecycleHooks, hook_names

if TYPE_CHECKING:
    from tenantry.plugins.registry import Plugins
    from tenantry.services.plane import ControlPlane

__all__ = ["HookDelivery", "HookManager", "HookRunner", "RunReport", "follow"]

_log = logging.getLogger("tenantry.plugins")

#: seconds a deliverer holds a claimed call before another may take it
LEASE_SECONDS = 300.0
#: most seconds between two retries of a call
MAX_BACKOFF = 3600.0
#: how often the runner removes calls finished more than a week ago
PURGE_EVERY = 3600.0
KEEP_FINISHED = 7 * 24 * 3600.0


_IMPLICIT: pluggy.HookimplOpts = {
    "wrapper": False,
    "hookwrapper": False,
    "optionalhook": False,
    "tryfirst": False,
    "trylast": False,
    "specname": None,
}


class HookManager(pluggy.PluginManager):
    """pluggy's manager, taking a :class:`LifecycleHooks` method that overrides the base's as
    a hook implementation without a decorator (as pytest takes ``pytest_*`` functions)."""

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name in hook_names() and isinstance(plugin, LifecycleHooks):
            if getattr(type(plugin), name, None) is not getattr(LifecycleHooks, name):
                return dict(_IMPLICIT)  # type: ignore[return-value]
        return opts


class RunReport:
    """What one pass over the queue did."""

    def __init__(self) -> None:
        self.done = 0
        self.failed = 0
        self.retrying = 0
        self.skipped = 0

    @property
    def total(self) -> int:
        return self.done + self.failed + self.retrying + self.skipped

    def to_dict(self) -> dict[str, int]:
        return {"done": self.done, "retrying": self.retrying, "failed": self.failed, "skipped": self.skipped}


class HookDelivery:
    """Delivers one Tenantry's queued calls to its registered :class:`LifecycleHooks`."""

    def __init__(self, plugins: Plugins, manager: pluggy.PluginManager) -> None:
        self._plugins = plugins
        self._manager = manager
        #: this process's id in the queue (``claimed_by``, ``reserved_for``)
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._subscribed: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    @property
    def _tn(self) -> ControlPlane:
        return self._plugins._plane

    # -- what this process handles ----------------------------------------------------------
    def handlers(self) -> dict[str, tuple[str, ...]]:
        """The registered plugins with lifecycle hooks, and the events each implements."""
        found: dict[str, list[str]] = {}
        for event in LIFECYCLE_EVENTS:
            for impl in getattr(self._manager.hook, f"on_tenant_{event}").get_hookimpls():
                found.setdefault(impl.plugin_name, []).append(event)
        return {name: tuple(events) for name, events in sorted(found.items())}

    def origin(self) -> queue.Origin:
        """What a change made here tells the queue: reserve the calls of these plugins for us."""
        return queue.Origin(self.worker, frozenset(self.handlers()))

    def subscribe(self) -> None:
        """Record in the catalog which events this process's plugins handle (once per
        process, again when the registered plugins change)."""
        wanted = self.handlers()
        with self._lock:
            if wanted == self._subscribed:
                return
        with self._tn.admin() as conn:
            for name, events in wanted.items():
                queue.subscribe(conn, name, events)
        with self._lock:
            self._subscribed = wanted

    # -- delivering -------------------------------------------------------------------------
    def deliver(self, tenant_id: uuid.UUID | None = None, *, limit: int | None = None, own: bool = True) -> RunReport:
        """Deliver every due call of this process's plugins (of one tenant, if given) until
        none is left, each in the pluggy order of its event; ``limit`` caps the calls. With
        ``own``, the calls reserved for this process (its own changes') are due at once; the
        runner thread leaves them to the caller that made the change."""
        report = RunReport()
        names = list(self.handlers())
        if not names:
            return report
        self.subscribe()
        order = {name: i for i, name in enumerate(self._call_order())}
        while limit is None or report.total < limit:
            with self._tn.admin() as conn:
                batch = queue.claim(
                    conn,
                    names,
                    worker=self.worker,
                    reserved=self.worker if own else None,
                    lease=LEASE_SECONDS,
                    tenant_id=tenant_id,
                    limit=50 if limit is None else min(50, limit - report.total),
                )
            if not batch:
                break
            # one change's calls (one tenant, one moment) in pluggy's order (tryfirst first)
            batch.sort(key=lambda c: (str(c.tenant_id), order.get(c.plugin, len(order)), c.id))
            for call in batch:
                self._run_one(call, report)
        return report

    def _call_order(self) -> list[str]:
        seen: list[str] = []
        for event in LIFECYCLE_EVENTS:
            impls = getattr(self._manager.hook, f"on_tenant_{event}").get_hookimpls()
            for impl in reversed(impls):  # pluggy calls the last registered (and tryfirst) first
                if impl.plugin_name not in seen:
                    seen.append(impl.plugin_name)
        return seen

    def _impl(self, plugin: str, event: str) -> pluggy.HookImpl | None:
        impls: list[pluggy.HookImpl] = getattr(self._manager.hook, f"on_tenant_{event}").get_hookimpls()
        return next((impl for impl in impls if impl.plugin_name == plugin), None)

    def _run_one(self, call: queue.Claimed, report: RunReport) -> None:
        tn = self._tn
        hook = f"on_tenant_{call.event}"
        plugin = self._plugins.get(call.plugin)
        impl = self._impl(call.plugin, call.event)
        if impl is None or not isinstance(plugin, LifecycleHooks):  # unregistered meanwhile
            with tn.admin() as conn:
                queue.retry_later(conn, call.id, self.worker, "not registered in the process that took it", 0.0)
            return
        with tn.admin() as conn:
            resolved = resolve_for_tenant(conn, call.tenant_id)
        on = resolved is not None and (r := resolved[1].get(call.plugin)) is not None and r.enabled
        if not on:  # switched off since: a plugin off for a tenant never runs for it
            with tn.admin() as conn:
                queue.finish(conn, call.id, self.worker, "skipped")
            report.skipped += 1
            return
        values: dict[str, Any] = {"tn": self._plugins.app, "tenant": Tenant.from_dict(call.tenant)}
        if call.event == "moved":
            from tenantry.services.moves import MoveReport  # (moves imports much)

            values["report"] = MoveReport.from_dict(call.extra)
        args = [values[arg] for arg in impl.argnames]

        def run_hook() -> None:
            # unbound, whatever the caller had bound (an admin action inside a request of
            # another tenant), and in a context of its own, so that nothing the hook binds
            # and leaves bound reaches the next call
            with context.bind(None):
                impl.function(*args)

        try:
            contextvars.copy_context().run(run_hook)
        except Exception as err:
            self._plugins.report_error(call.plugin, hook, err, call.tenant_id)
            text = self._plugins.error_text(err)
            with tn.admin() as conn:
                if call.attempts > max(0, plugin.hook_retries):
                    queue.finish(conn, call.id, self.worker, "failed", text)
                    report.failed += 1
                else:
                    delay = min(MAX_BACKOFF, max(0.0, plugin.hook_backoff) * 2 ** (call.attempts - 1))
                    queue.retry_later(conn, call.id, self.worker, text, delay)
                    report.retrying += 1
            return
        with tn.admin() as conn:
            queue.finish(conn, call.id, self.worker, "done")
        report.done += 1


class HookRunner:
    """The delivery loop: a pass over the queue, then a wait of ``poll`` seconds or until
    :meth:`wake` (the catalog listener calls it on ``NOTIFY hook:<plugin>``). Run in a daemon
    thread of its own (:meth:`start`) or in the calling thread (:meth:`run`)."""

    def __init__(
        self, delivery: HookDelivery, *, poll: float = POLL_SECONDS, on_pass: Callable[[RunReport], None] | None = None
    ) -> None:
        self._delivery = delivery
        self._poll = poll
        self._on_pass = on_pass
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._purged = 0.0
        self._thread = threading.Thread(target=self.run, name="tenantry-plugin-hooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def run(self) -> None:
        """Deliver until :meth:`stop`; calls reserved for this process's own changes are left
        to the caller that made them (until their reservation ends)."""
        while not self._stop.is_set():
            self._wake.clear()
            try:
                report = self._delivery.deliver(own=False)
                self._purge()
            except Exception as err:  # the catalog is away: try again at the next wake
                _log.warning("plugin hook delivery failed, retrying: %s", err)
            else:
                if self._on_pass is not None:
                    self._on_pass(report)
            self._wake.wait(self._poll)

    def _purge(self) -> None:
        now = time.monotonic()
        if now - self._purged < PURGE_EVERY:
            return
        self._purged = now
        with self._delivery._tn.admin() as conn:
            queue.purge(conn, older_than=KEEP_FINISHED)


def follow(delivery: HookDelivery, *, stop: threading.Event, poll: float, on_pass: Callable[[RunReport], None]) -> None:
    """Deliver in the calling thread until ``stop`` is set: :class:`HookRunner`'s loop, woken
    by a :class:`~tenantry.db.catalog.events.CatalogListener` of its own."""
    from tenantry.db.catalog.events import CatalogListener, EventKind

    names = set(delivery.handlers())
    runner = HookRunner(delivery, poll=poll, on_pass=on_pass)

    def on_event(kind: EventKind, key: str) -> None:
        if kind == EventKind.HOOK and key in names:
            runner.wake()

    def stop_when_told() -> None:
        stop.wait()
        runner.stop()

    listener = CatalogListener(delivery._tn.admin_url, on_event=on_event, on_reset=runner.wake)
    watcher = threading.Thread(target=stop_when_told, name="tenantry-hooks-stop", daemon=True)
    listener.start()
    watcher.start()
    try:
        runner.run()
    finally:
        listener.stop()
