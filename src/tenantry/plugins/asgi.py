"""``PluginRoutes``: the plugins' ASGI apps under ``/_plugins/<name>/``, per tenant.

Mount it behind whatever binds the tenant (:class:`tenantry.TenantMiddleware`)::

    mount_plugins(app, tn, authorize=signed_in)     # app.mount("/_plugins", PluginRoutes(...))

A request reaches plugin ``<name>``'s app only when a tenant is bound, the plugin is
registered with ``tn`` and switched on for that tenant; otherwise the answer is a 404 problem
document, the same as for a plugin that does not exist, so a tenant cannot learn which
plugins other tenants use. ``authorize(scope)`` (sync or async) decides who may use the
plugins' routes at all (the app's sign-in, typically): ``False`` is a 403. Pass
``authorize=None`` to leave that to each plugin — a decision to make, not a default.

What a plugin's app raises is contained: logged and recorded (``tenantry plugins errors``),
and answered with a 500 problem document if no response had started. Only a response cut off
halfway is left to the server to abort (re-raised); nothing reaches other requests.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from tenantry import context
from tenantry._asgi import ASGIApp, Message, Receive, Scope, Send
from tenantry.problems import Problem, internal_error, problem, send_problem

if TYPE_CHECKING:
    from tenantry.plugins.registry import Plugins

__all__ = ["Authorize", "PluginHost", "PluginRoutes", "mount_plugins"]


class PluginHost(Protocol):
    """What runs the plugins whose routes are served: a :class:`tenantry.Tenantry` (``tn``)."""

    @property
    def plugins(self) -> Plugins: ...


Authorize = Callable[[Scope], "bool | Awaitable[bool]"]
"""Decides from the ASGI scope (the tenant is bound) whether the request may use plugin routes."""

PREFIX = "/_plugins"


class PluginRoutes:
    """Serve each registered plugin's ASGI app at ``<prefix>/<name>/`` for the bound tenant.

    Without ``app`` it is an ASGI app to mount at ``prefix``; with ``app`` it is middleware
    that answers under ``prefix`` and passes everything else on.
    """

    def __init__(
        self, tn: PluginHost, app: ASGIApp | None = None, *, authorize: Authorize | None, prefix: str = PREFIX
    ) -> None:
        self.tn = tn
        self.app = app
        self.authorize = authorize
        self.prefix = "/" + prefix.strip("/")
        self._apps: dict[str, ASGIApp] = {}

    def _plugin_app(self, name: str) -> ASGIApp | None:
        found = self._apps.get(name)
        if found is None:
            plugin = self.tn.plugins.routes().get(name)
            if plugin is None:
                return None
            found = self._apps[name] = plugin.asgi_app(self.tn)
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = _route_path(scope)
        if self.app is not None:
            if scope["type"] not in ("http", "websocket") or not (
                path == self.prefix or path.startswith(self.prefix + "/")
            ):
                await self.app(scope, receive, send)
                return
            path = path[len(self.prefix) :]
            mount = _root(scope) + self.prefix
        else:
            if scope["type"] not in ("http", "websocket"):
                return
            mount = _root(scope)
        name, _, _rest = path.lstrip("/").partition("/")
        bound = context.current()
        target = self._plugin_app(name) if bound is not None else None
        if target is None or not await self.tn.plugins.ais_enabled(name):
            await _refuse(scope, send, problem(404, "no such resource"))
            return
        if self.authorize is not None:
            verdict = self.authorize(scope)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            if verdict is not True:
                await _refuse(scope, send, problem(403, "sign in to use this"))
                return
        child = dict(scope)
        child["root_path"] = f"{mount}/{name}"
        await self._run(name, target, child, receive, send)

    async def _run(self, name: str, target: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        started = finished = False

        async def watched(message: Message) -> None:
            nonlocal started, finished
            kind = message.get("type")
            if kind in ("http.response.start", "websocket.accept", "websocket.close"):
                started = True
            if kind == "websocket.close" or (kind == "http.response.body" and not message.get("more_body", False)):
                finished = True
            await send(message)

        try:
            await target(scope, receive, watched)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            bound = context.current()
            await asyncio.to_thread(
                self.tn.plugins.report_error, name, "asgi", err, None if bound is None else bound.id
            )
            if not started:
                await _refuse(scope, send, internal_error("the plugin failed; it has been reported"))
            elif not finished:
                raise  # half a response: the server must abort it rather than pass it off as whole


def mount_plugins(app: Any, tn: PluginHost, *, authorize: Authorize | None, prefix: str = PREFIX) -> PluginRoutes:
    """Mount :class:`PluginRoutes` on a Starlette or FastAPI ``app`` at ``prefix``."""
    routes = PluginRoutes(tn, authorize=authorize, prefix=prefix)
    app.mount(routes.prefix, routes)
    return routes


def _root(scope: Scope) -> str:
    return str(scope.get("root_path", "")).rstrip("/")


def _route_path(scope: Scope) -> str:
    """The path below the mount point (Starlette keeps the full path and sets ``root_path``)."""
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :] or "/"
    return path


async def _refuse(scope: Scope, send: Send, p: Problem) -> None:
    await send_problem(scope, send, p, html_page=True)
