"""A tenantry plugin in one screen: hooks, a config section, a table of its own, routes.

Run it inside the venv with ``python examples/plugin_quickstart.py`` (the embedded PostgreSQL
starts when no ``TENANTRY_DATABASE_URL`` is set; rerunning reuses it).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from starlette.applications import Starlette

from tenantry import (
    Settings,
    SubdomainResolver,
    TenantExists,
    TenantMiddleware,
    Tenantry,
    TenantScoped,
    current_tenant,
)
from tenantry.plugins import AppTables, AsgiRoutes, ConfigSection, LifecycleHooks, mount_plugins


class AppBase(DeclarativeBase):  # the app's own tables
    pass


class Project(TenantScoped, AppBase):
    __tablename__ = "plugdemo_projects"
    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    name: Mapped[str]


class ActivityBase(DeclarativeBase):  # the plugin's tables: named <plugin>_..., tenant-scoped
    pass


class Event(TenantScoped, ActivityBase):
    __tablename__ = "activity_events"
    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    kind: Mapped[str]


class ActivityConfig(BaseModel):  # tn.config.current().activity, validated on every write
    label: str = Field(default="Activity", max_length=40)


class Activity(LifecycleHooks, ConfigSection, AppTables, AsgiRoutes):
    """Keeps a log of the tenant's lifecycle in the tenant's own placement."""

    name = "activity"
    description = "a log of lifecycle events, per tenant"
    config_model = ActivityConfig
    metadata = ActivityBase.metadata

    def _log(self, tn: Tenantry, tenant: Any, kind: str) -> None:
        with tn.tenant(tenant.id, allow_inactive=True), Session(tn.engine()) as session, session.begin():
            session.add(Event(kind=kind))

    def on_tenant_suspended(self, tn: Tenantry, tenant: Any) -> None:
        self._log(tn, tenant, "suspended")

    def on_tenant_resumed(self, tn: Tenantry, tenant: Any) -> None:
        self._log(tn, tenant, "resumed")

    def asgi_app(self, tn: Tenantry) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            def read() -> dict[str, Any]:
                with Session(tn.engine()) as session:
                    kinds = list(session.scalars(sa.select(Event.kind).order_by(Event.id)))
                return {"tenant": current_tenant().slug, "label": self.config(tn).label, "events": kinds}

            body = json.dumps(await asyncio.to_thread(read)).encode()
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": body})

        return app


def main() -> None:
    tn = Tenantry(
        Settings.from_env(embedded=True), metadata=AppBase.metadata, plugins=[Activity()], actor="plugin-quickstart"
    )
    tn.init()  # the app's tables and the plugin's, RLS on each
    for slug in ("plug-acme", "plug-globex"):
        try:
            tn.create_tenant(slug)
        except TenantExists:
            pass
    tn.plugins.enable("activity", tenant="plug-acme")  # off by default; on for acme only
    for slug in ("plug-acme", "plug-globex"):
        tn.suspend(slug)
        tn.resume(slug)  # the hooks run for acme, never for globex

    app = Starlette()
    mount_plugins(app, tn, authorize=None)  # plugins' routes at /_plugins/<name>/ (authorize: your sign-in check)
    site = TenantMiddleware(app, tn, [SubdomainResolver("example")])  # binds each request's tenant

    async def visit(slug: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=site)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{slug}.example") as client:
            return await client.get("/_plugins/activity/")

    for slug in ("plug-acme", "plug-globex"):
        response = asyncio.run(visit(slug))
        print(slug, response.status_code, response.json() if response.status_code == 200 else response.json()["detail"])
    print("enabled for plug-acme:", tn.plugins.enabled_for("plug-acme"))
    tn.close()


if __name__ == "__main__":
    main()
