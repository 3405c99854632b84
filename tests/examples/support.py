"""Fixtures for the example tracker: its own scratch database, three tenants on three tiers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from examples.tracker.app import create_app
from examples.tracker.models import Base
from examples.tracker.seed import seed
from tenantry import Tenantry
from tests.support import Scratch

#: slug -> plan: one tenant per isolation tier
TENANTS = {"acme": "free", "globex": "business", "initech": "enterprise"}
#: slug -> the e-mail of a seeded member who may sign in
LOGIN = {"acme": "wile@acme.example", "globex": "hank@globex.example", "initech": "bill@initech.example"}


@dataclass
class Tracker:
    tn: Tenantry
    app: FastAPI
    runner: asyncio.Runner

    def client(self, slug: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=f"http://{slug}.localhost")

    @asynccontextmanager
    async def signed_in(self, slug: str, email: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
        """A client signed in to ``slug``'s site."""
        async with self.client(slug) as client:
            response = await client.post("/login", data={"email": email or LOGIN[slug]})
            assert response.status_code == 303, response.text
            yield client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def lift_edge_limits(tn: Tenantry) -> None:
    """The tests send requests faster than a free tenant may (edge limits have tests of their
    own in tests/web), so the plans' rate and concurrency limits are lifted."""
    with tn.admin() as conn:
        conn.execute("UPDATE tenantry.plans SET limits = limits - 'requests_per_second' - 'burst' - 'concurrency'")


@pytest.fixture(scope="module")
def tracker(server_url: str) -> Iterator[Tracker]:
    """The tracker app on a database of its own, with acme (pooled), globex (schema) and
    initech (database) seeded; every request of the module runs in one event loop."""
    db = Scratch(server_url)
    tn = Tenantry(db.settings(), metadata=Base.metadata, actor="pytest")
    runner = asyncio.Runner()
    try:
        tn.schema.init()
        lift_edge_limits(tn)
        for slug, plan in TENANTS.items():
            tn.tenants.create(slug, name=f"{slug.title()} Corporation", plan=plan)
            seed(tn, slug)
        yield Tracker(tn=tn, app=create_app(tn), runner=runner)
    finally:
        try:
            runner.run(tn.aclose())
        finally:
            runner.close()
            db.drop()
