"""``/webhooks``: the tenant's webhook endpoint and its latest deliveries, for tenants that run
the ``webhooks`` plugin (:mod:`tenantry.contrib.webhooks`; its own routes are under
``/_plugins/webhooks/``). The projects and tasks pages queue the events."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException

from examples.tracker.pages.common import PageDep
from tenantry.contrib.webhooks import Delivery

__all__ = ["router"]

router = APIRouter()


@router.get("/webhooks", response_class=HTMLResponse)
async def webhooks(page: PageDep) -> HTMLResponse:
    if not page.org.webhooks:  # the plugin is off for this tenant
        raise HTTPException(404, "no such page")
    tn = page.tn
    config = await asyncio.to_thread(lambda: tn.config.current().webhooks)  # type: ignore[attr-defined]
    deliveries = (await page.db.scalars(sa.select(Delivery).order_by(Delivery.id.desc()).limit(20))).all()
    return page.render("webhooks.html", config=config, deliveries=deliveries)
