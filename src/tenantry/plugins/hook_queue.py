"""``tn.plugins``' lifecycle hooks (the durable queue of their calls) and what plugins raised.

:class:`HookQueue` is the part of :class:`~tenantry.plugins.registry.Plugins` that delivers
the queued calls (now, for a change made here; or by the runner thread, for changes made
elsewhere), lists, retries and purges them. The queue itself is
:mod:`tenantry.db.catalog.hooks`; the delivery loop :mod:`tenantry.plugins.hooks`.
"""

from __future__ import annotations

import builtins
import logging
import threading
import traceback
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from tenantry.core.hooks import POLL_SECONDS
from tenantry.core.naming import check_plugin_name
from tenantry.db import catalog
from tenantry.db.catalog import hooks as plugin_hooks
from tenantry.db.catalog import plugins as service
from tenantry.errors import InvalidInput
from tenantry.plugins.hooks import HookDelivery, HookRunner, follow
from tenantry.plugins.hooks import RunReport as HookRunReport

if TYPE_CHECKING:
    from tenantry.plugins.base import Plugin
    from tenantry.services.plane import ControlPlane

__all__ = ["HookQueue", "HookRunReport"]

_log = logging.getLogger("tenantry.plugins")


class HookQueue:
    """The lifecycle-hook verbs of ``tn.plugins`` (a base of :class:`~tenantry.plugins.registry.Plugins`)."""

    _plane: ControlPlane
    _lock: threading.RLock
    _delivery: HookDelivery
    _runner: HookRunner | None
    _plugins: dict[str, Plugin]

    def _tenant_id(self, tenant: str | uuid.UUID | None) -> uuid.UUID:
        raise NotImplementedError  # (the registry's)

    def origin(self) -> plugin_hooks.Origin:
        """Who this process is to the hook queue: a change made here reserves the calls of
        the plugins registered here for it (see :mod:`tenantry.db.catalog.hooks`)."""
        return self._delivery.origin()

    def deliver(self, tenant: str | uuid.UUID | None = None, *, limit: int | None = None) -> HookRunReport:
        """Run the queued lifecycle hook calls that are due for the plugins registered here
        (of one tenant, if given), each contained; returns what was done. The process that
        changes a tenant calls this for it right after the change commits."""
        tenant_id = None if tenant is None else self._tenant_id(tenant)
        return self._delivery.deliver(tenant_id, limit=limit)

    def hook_handlers(self) -> dict[str, tuple[str, ...]]:
        """The plugins registered here that have lifecycle hooks, and the events each handles."""
        return self._delivery.handlers()

    def follow_hooks(
        self,
        stop: threading.Event,
        *,
        poll: float = POLL_SECONDS,
        on_pass: Callable[[HookRunReport], None] | None = None,
    ) -> None:
        """Deliver in this thread until ``stop`` is set: a pass over the queue, then a wait of
        ``poll`` seconds or until a call for one of these plugins is queued (``NOTIFY``).
        What ``tenantry plugins hooks run --follow`` runs."""
        follow(self._delivery, stop=stop, poll=poll, on_pass=on_pass or (lambda _report: None))

    def deliver_now(self, tenant_id: uuid.UUID) -> None:
        """Run the hook calls a change to the tenant queued for the plugins of this process
        (``tn.tenants`` does it after each change); a failure is logged, the call stays queued."""
        try:  # (no I/O when no plugin here has hooks)
            self._delivery.deliver(tenant_id)
        except Exception as err:  # the change stands; the runner or another process delivers later
            _log.warning("could not deliver the hooks of tenant %s now (queued): %s", tenant_id, err)

    def subscribe_hooks(self) -> None:
        """Record in the catalog which lifecycle events the plugins registered here handle, so
        that changes made anywhere (the CLI, the admin API) queue calls for them. Done by
        ``tn.schema.init()``, by the hook runner and by the first delivery."""
        self._delivery.subscribe()

    def start_hooks(self) -> bool:
        """Start this process's hook runner (a daemon thread) if plugins registered here have
        lifecycle hooks; ``True`` when it runs. Started by itself with the catalog listener
        (the process's first tenant lookup), unless ``Settings.hook_runner`` is off."""
        if not self._delivery.handlers():
            return False
        with self._lock:
            if self._runner is None or not self._runner.alive:
                self._delivery.subscribe()
                self._runner = HookRunner(self._delivery)
                self._runner.start()
        self._plane.listen()  # NOTIFY wakes the runner as soon as a call is queued
        return True

    def autostart(self) -> None:
        """Start the hook runner if ``Settings.hook_runner`` says this process runs one
        (with the catalog listener); a failure is logged."""
        if self._plane.settings.hook_runner and self._runner is None:
            try:
                self.start_hooks()
            except Exception as err:
                _log.warning("could not start the plugin hook runner: %s", err)

    def stop_hooks(self) -> None:
        """Stop this process's hook runner (calls in flight finish first)."""
        with self._lock:
            runner, self._runner = self._runner, None
        if runner is not None:
            runner.stop()

    def hooks(
        self,
        *,
        plugin: str | None = None,
        tenant: str | uuid.UUID | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> builtins.list[plugin_hooks.QueuedHook]:
        """Queued lifecycle hook calls (pending, running, done, failed, skipped), newest first."""
        tenant_id = None if tenant is None else self._tenant_id(tenant)
        with self._plane.admin() as conn:
            catalog.require_catalog(conn)
            return plugin_hooks.list_hooks(conn, plugin=plugin, tenant_id=tenant_id, status=status, limit=limit)

    def hook_summary(self) -> dict[str, dict[str, int]]:
        """How many queued calls each plugin has in each status."""
        with self._plane.admin() as conn:
            catalog.require_catalog(conn)
            return plugin_hooks.summary(conn)

    def retry_hooks(
        self,
        ids: Iterable[int] | None = None,
        *,
        plugin: str | None = None,
        tenant: str | uuid.UUID | None = None,
    ) -> builtins.list[int]:
        """Queue failed calls again (by id, or every failed call of a plugin or tenant), due
        now with fresh retries; audited. Returns the ids queued again."""
        tenant_id = None if tenant is None else self._tenant_id(tenant)
        with self._plane.admin() as conn:
            catalog.require_catalog(conn)
            return plugin_hooks.retry(
                conn,
                actor=self._plane.actor,
                ids=None if ids is None else builtins.list(ids),
                plugin=plugin,
                tenant_id=tenant_id,
            )

    def unsubscribe_hooks(self, name: str) -> tuple[int, int]:
        """Forget a plugin no app process runs any more: changes stop queueing calls for it
        and its pending calls are skipped; audited. Returns (events forgotten, calls skipped).
        Refused (:class:`InvalidInput`) for a plugin registered here."""
        check_plugin_name(name)
        if name in self._plugins:
            raise InvalidInput(f"plugin {name!r} runs in this process: it would subscribe again; unregister it first")
        with self._plane.admin() as conn:
            catalog.require_catalog(conn)
            return plugin_hooks.unsubscribe(conn, name, actor=self._plane.actor)

    def purge_hooks(self, *, older_than: float, include_failed: bool = False) -> int:
        """Delete calls finished more than ``older_than`` seconds ago; audited."""
        with self._plane.admin() as conn:
            catalog.require_catalog(conn)
            return plugin_hooks.purge(
                conn, older_than=older_than, include_failed=include_failed, actor=self._plane.actor
            )

    # -- what plugins raised ------------------------------------------------------------------
    def errors(
        self, *, plugin: str | None = None, tenant: str | uuid.UUID | None = None, limit: int = 100
    ) -> builtins.list[service.PluginFailure]:
        """What plugins raised, newest first, counted per (plugin, hook, tenant)."""
        tenant_id = None if tenant is None else self._tenant_id(tenant)
        with self._plane.admin() as conn:
            catalog.require_catalog(conn)
            return service.list_errors(conn, plugin=plugin, tenant_id=tenant_id, limit=limit)

    @staticmethod
    def error_text(error: BaseException) -> str:
        """``error`` as one line: its type and message."""
        lines = traceback.format_exception_only(type(error), error)
        return " ".join(" ".join(lines).split())

    def report_error(self, plugin: str, hook: str, error: BaseException, tenant_id: uuid.UUID | None = None) -> None:
        """Log and record that ``plugin`` raised ``error`` in ``hook``; never raises."""
        _log.error("plugin %r raised in %s (tenant %s)", plugin, hook, tenant_id, exc_info=error)
        text = self.error_text(error)
        try:
            with self._plane.admin() as conn, conn.transaction():
                service.record_error(conn, plugin, hook, tenant_id, text)
        except Exception:  # the catalog is unreachable: the log line is all we can do
            _log.exception("could not record the error of plugin %r", plugin)
