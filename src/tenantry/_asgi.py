"""The ASGI 3.0 types, written once for every pure-ASGI part of tenantry (the web edge, plugin
and brand routes, problem responses, the admin API's middleware).

Plain aliases of mappings and callables, as Starlette's ``starlette.types`` has them, so that
an app or server written for Starlette, FastAPI, Litestar or none of them fits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
