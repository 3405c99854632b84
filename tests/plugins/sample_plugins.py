"""Plugins the plugin tests register: one per kind of behaviour under test."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tenantry import TenantScoped
from tenantry.plugins import AppTables, AsgiRoutes, ConfigSection, FlagProvider, LifecycleHooks, hookimpl


class Recorder(LifecycleHooks):
    """Records every hook call it receives: (event, tenant slug)."""

    name = "recorder"
    description = "records lifecycle events (tests)"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def on_tenant_created(self, tn: Any, tenant: Any) -> None:
        self.calls.append(("created", tenant.slug))

    def on_tenant_suspended(self, tn: Any, tenant: Any) -> None:
        self.calls.append(("suspended", tenant.slug))

    def on_tenant_resumed(self, tn: Any, tenant: Any) -> None:
        self.calls.append(("resumed", tenant.slug))

    def on_tenant_archived(self, tn: Any, tenant: Any) -> None:
        self.calls.append(("archived", tenant.slug))

    def on_tenant_deleted(self, tn: Any, tenant: Any) -> None:
        self.calls.append(("deleted", tenant.slug))

    def on_tenant_moved(self, report: Any, tenant: Any) -> None:  # a subset of the arguments, in any order
        self.calls.append(("moved", f"{tenant.slug}:{report.target['isolation']}"))


class Exploder(LifecycleHooks, AsgiRoutes):
    """Raises in every hook and route; tryfirst, so it runs before the recorder."""

    name = "exploder"
    hook_retries = 0  # a failed call is failed at once (the queue's retries are tested apart)

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl(tryfirst=True)
    def on_tenant_suspended(self, tenant: Any) -> None:
        self.calls += 1
        raise RuntimeError(f"boom on {tenant.slug}")

    def asgi_app(self, tn: Any) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["path"].endswith("/late"):  # answers, then raises
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"done"})
            if scope["path"].endswith("/half"):  # raises halfway through its answer
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"par", "more_body": True})
            raise ValueError("route boom")

        return app


class Queued(LifecycleHooks):
    """A plugin the CLI loads by spec (``tests.plugins.sample_plugins:QUEUED``): records the
    suspensions it is called for, and raises for the tenants in ``fail_for``."""

    name = "cliq"
    hook_retries = 0

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_for: set[str] = set()

    def on_tenant_suspended(self, tenant: Any) -> None:
        if tenant.slug in self.fail_for:
            raise RuntimeError(f"cliq cannot reach its endpoint for {tenant.slug}")
        self.calls.append(tenant.slug)


QUEUED = Queued()


class NotesBase(DeclarativeBase):
    pass


class Note(TenantScoped, NotesBase):
    __tablename__ = "notes_items"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    body: Mapped[str] = mapped_column(sa.Text)


class NotesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_notes: int = Field(default=10, ge=1, le=1000)
    title: str = "Notes"


class Notes(AppTables, ConfigSection, AsgiRoutes, FlagProvider):
    """A plugin with tables, a config section, routes and a flag."""

    name = "notes"
    config_model = NotesConfig
    metadata = NotesBase.metadata

    def asgi_app(self, tn: Any) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            from tenantry import current_tenant

            with tn.engine().connect() as conn:  # (sync in a test app: small and simple)
                bodies = [r[0] for r in conn.execute(sa.select(Note.body).order_by(Note.id))]
            body = json.dumps(
                {
                    "tenant": current_tenant().slug,
                    "path": scope["path"],
                    "root_path": scope["root_path"],
                    "notes": bodies,
                    "title": self.config(tn).title,
                }
            ).encode()
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": body})

        return app

    def flag_definitions(self) -> list[dict[str, Any]]:
        return [{"key": "notes.markdown", "description": "render notes as markdown"}]
