"""The webhooks plugin's routes, under ``/_plugins/webhooks/`` for the bound tenant (JSON):

=============================  ==================================================================
``GET /``                      the endpoint (no secret), the events subscribed, counts by status
``GET /deliveries``            recent deliveries, newest first (``?limit=1..200``, ``?status=``)
=============================  ==================================================================

Every query runs under the tenant's binding, so row-level security decides what is seen:
another tenant's deliveries cannot be named, let alone shown.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry._asgi import Receive, Scope, Send
from tenantry.contrib.webhooks.config import WebhooksConfig
from tenantry.contrib.webhooks.models import STATUSES, Delivery
from tenantry.problems import invalid_request, problem, send_problem

if TYPE_CHECKING:
    from tenantry.app import Tenantry

__all__ = ["WebhookRoutes"]


class WebhookRoutes:
    """The ASGI app :meth:`WebhooksPlugin.asgi_app` returns."""

    def __init__(self, tn: Tenantry) -> None:
        self.tn = tn

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = _below(scope)
        if scope["method"] not in ("GET", "HEAD"):
            await send_problem(scope, send, problem(405, "these routes are read-only", headers={"Allow": "GET, HEAD"}))
            return
        if path in ("/", ""):
            await _json(send, await self._overview())
        elif path == "/deliveries":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            limit_text = (query.get("limit") or ["20"])[0]
            status = (query.get("status") or [None])[0]
            if not limit_text.isdigit() or not 1 <= int(limit_text) <= 200:
                said = "limit must be a whole number from 1 to 200"
                await send_problem(scope, send, invalid_request([_field("limit", said)], detail=said))
                return
            if status is not None and status not in STATUSES:
                said = f"status must be one of {', '.join(STATUSES)}"
                await send_problem(scope, send, invalid_request([_field("status", said)], detail=said))
                return
            await _json(send, {"deliveries": await self._recent(int(limit_text), status)})
        else:
            await send_problem(scope, send, problem(404, "no such resource"))

    async def _overview(self) -> dict[str, Any]:
        config: WebhooksConfig = await asyncio.to_thread(lambda: getattr(self.tn.config.current(), "webhooks"))  # noqa: B009 - a plugin section, unknown to the type
        async with AsyncSession(self.tn.async_engine()) as session:
            rows = (await session.execute(sa.select(Delivery.status, sa.func.count()).group_by(Delivery.status))).all()
        counts = {status: int(count) for status, count in rows}
        return {
            "plugin": "webhooks",
            "endpoint": None if config.url is None else str(config.url),
            "events": config.events,
            "counts": {status: counts.get(status, 0) for status in STATUSES},
        }

    async def _recent(self, limit: int, status: str | None) -> list[dict[str, Any]]:
        query = sa.select(Delivery).order_by(Delivery.id.desc()).limit(limit)
        if status is not None:
            query = query.where(Delivery.status == status)
        async with AsyncSession(self.tn.async_engine()) as session:
            return [row.summary() for row in (await session.scalars(query)).all()]


def _below(scope: Scope) -> str:
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


async def _json(send: Send, value: Any) -> None:
    body = json.dumps(value, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"private, no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _field(name: str, said: str) -> dict[str, Any]:
    """A query parameter that does not validate, as the admin API names one."""
    return {"loc": ["query", name], "msg": said, "type": "value_error"}
