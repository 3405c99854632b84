"""Serving ASGI apps from the CLI: several uvicorn servers in one event loop, one signal
handler for all of them, sockets bound up front.

Imported only by commands that serve (it needs the ``web`` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import uvicorn

from tenantry.errors import ConfigurationError

__all__ = ["LOG_CONFIG", "listen", "serve", "server"]

LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s"},
        "access": {
            "()": "uvicorn.logging.AccessFormatter",
            "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
        },
    },
    # everything on stderr: stdout carries only what the command prints (--json stays parseable)
    "handlers": {
        "default": {"formatter": "default", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
    },
    "loggers": {
        "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}


def listen(host: str, port: int, option: str) -> socket.socket:
    """Bind ``host:port`` now, so a port in use fails before any other work, with one clear
    line naming the ``option`` to change."""
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"{option} {port} is not a port number")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as err:
        raise ConfigurationError(
            f"cannot listen on {host}:{port} ({err.strerror or err}); choose another {option}"
        ) from err


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to :func:`serve` (one handler for every server)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def server(app: Any, sock: socket.socket) -> uvicorn.Server:
    """A uvicorn server for ``app`` on the bound ``sock``, logs on stderr. The app's
    lifespan runs: what it starts beside the server (the tracker's webhook sender, the admin
    API's job runner) runs, and stops before :func:`serve`'s ``on_stop``."""
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app, host=host, port=port, lifespan="on", log_config=LOG_CONFIG, timeout_graceful_shutdown=5
    )
    return _Server(config)


async def serve(
    servers: list[tuple[uvicorn.Server, socket.socket]],
    *,
    on_ready: Callable[[], None] | None = None,
    on_stop: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run the servers until SIGINT or SIGTERM (a second one forces the exit) or until one of
    them ends; then await ``on_stop`` in this loop (to close its asyncio pools).

    ``on_ready`` runs once the signals are handled here (the sockets listen already), so a
    signal sent as soon as it has printed the URLs stops the servers cleanly."""
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for each, _sock in servers:
            if each.should_exit:
                each.force_exit = True
            each.should_exit = True

    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop)
    if on_ready is not None:
        on_ready()

    async def run(each: uvicorn.Server, sock: socket.socket) -> None:
        try:
            await each.serve(sockets=[sock])
        finally:
            for other, _sock in servers:  # one server ending ends them all
                other.should_exit = True

    try:
        await asyncio.gather(*(run(each, sock) for each, sock in servers))
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        if on_stop is not None:
            await on_stop()
