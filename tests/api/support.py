"""Fixtures of the admin API tests: the app over the session's Tenantry, a client that speaks
to it through httpx's ASGI transport, and tokens; for config and flags, an app over a catalog
of their own whose Tenantry knows the test app's config schema."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI

from tenantry import ApiToken, Tenant, Tenantry
from tenantry.api import create_admin_app
from tests.config.app_config import AppConfig
from tests.model_app import Base
from tests.support import Scratch


class Client:
    """A blocking client over ``httpx.AsyncClient(transport=ASGITransport(app))``: the app runs
    in an event loop of its own thread, as under a server, and tests stay plain functions."""

    def __init__(self, portal: BlockingPortal, app: FastAPI, token: str | None = None) -> None:
        self._portal = portal
        self.app = app
        self.token = token

    def request(self, method: str, url: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        secret = token if token is not None else self.token
        if secret is not None and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {secret}"

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                return await client.request(method, url, headers=headers, **kwargs)

        return self._portal.call(send)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def as_token(self, token: str | None) -> Client:
        return Client(self._portal, self.app, token)

    def wait_job(self, job_id: str, *, timeout: float = 120.0) -> dict[str, Any]:
        """Poll a job until it is done or failed."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.get(f"/v1/jobs/{job_id}")
            assert response.status_code == 200, response.text
            job: dict[str, Any] = response.json()
            if job["status"] != "running":
                return job
            assert time.monotonic() < deadline, f"job {job_id} still running: {job}"
            time.sleep(0.1)


@pytest.fixture(scope="session")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as portal:
        yield portal


@pytest.fixture(scope="session")
def admin_app(tn: Tenantry) -> Iterator[FastAPI]:
    app = create_admin_app(tn)
    yield app
    app.state.jobs.close()


MakeToken = Callable[..., tuple[ApiToken, str]]


@pytest.fixture
def make_token(tn: Tenantry) -> MakeToken:
    """Create a token with a unique name: ``make_token("tenants:read", expires_in=...)``."""

    def make(*scopes: str, prefix: str = "test", expires_in: timedelta | None = None) -> tuple[ApiToken, str]:
        return tn.tokens.create(f"{prefix}-{uuid.uuid4().hex[:10]}", list(scopes), expires_in=expires_in)

    return make


@pytest.fixture(scope="session")
def admin_secret(tn: Tenantry) -> str:
    _, secret = tn.tokens.create(f"admin-{uuid.uuid4().hex[:10]}", ["admin"])
    return secret


@pytest.fixture
def api(portal: BlockingPortal, admin_app: FastAPI, admin_secret: str) -> Client:
    """A client with an admin token (``api.as_token(...)`` for another one)."""
    return Client(portal, admin_app, admin_secret)


@pytest.fixture(scope="package")
def config_catalog(server_url: str) -> Iterator[tuple[Scratch, Tenantry]]:
    """A catalog of the config and flags tests' own (the plans and flags they add stay out of
    the other tests' catalog), with the test app's config schema; closed (its connections
    too) when the API tests end."""
    db = Scratch(server_url)
    tenantry = Tenantry(db.settings(), metadata=Base.metadata, actor="pytest-api-config", config=AppConfig)
    try:
        tenantry.schema.init()
        yield db, tenantry
    finally:
        tenantry.close()
        db.drop()


@pytest.fixture(scope="package")
def ctn(config_catalog: tuple[Scratch, Tenantry]) -> Tenantry:
    return config_catalog[1]


@pytest.fixture(scope="package")
def config_app(ctn: Tenantry) -> Iterator[tuple[FastAPI, str]]:
    app = create_admin_app(ctn)
    _, secret = ctn.tokens.create(f"admin-{uuid.uuid4().hex[:10]}", ["admin"])
    yield app, secret
    app.state.jobs.close()


@pytest.fixture
def capi(portal: BlockingPortal, config_app: tuple[FastAPI, str]) -> Client:
    """An admin client of the config catalog's app."""
    return Client(portal, config_app[0], config_app[1])


@pytest.fixture
def make_ctoken(ctn: Tenantry) -> MakeToken:
    """``make_token`` on the config catalog."""

    def make(*scopes: str, prefix: str = "test", expires_in: timedelta | None = None) -> tuple[ApiToken, str]:
        return ctn.tokens.create(f"{prefix}-{uuid.uuid4().hex[:10]}", list(scopes), expires_in=expires_in)

    return make


@pytest.fixture
def make_plan(config_catalog: tuple[Scratch, Tenantry]) -> Callable[[], str]:
    """A pooled plan of the test's own, on the config catalog."""

    def make() -> str:
        name = f"p-{uuid.uuid4().hex[:10]}"
        with psycopg.connect(config_catalog[0].url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO tenantry.plans (name, isolation, description) VALUES (%s, 'pooled', 'test plan')", (name,)
            )
        return name

    return make


@pytest.fixture
def plan_tenant(ctn: Tenantry, make_plan: Callable[[], str]) -> Callable[..., Tenant]:
    """A tenant of the config catalog, on a fresh plan of its own (or on ``plan``)."""

    def make(plan: str | None = None, prefix: str = "c") -> Tenant:
        return ctn.tenants.create(f"{prefix}-{uuid.uuid4().hex[:10]}", plan=plan or make_plan())

    return make
