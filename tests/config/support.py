"""Fixtures of the config and flags tests: a catalog of their own (they add plans and flags,
which other tests must not see), a Tenantry with the app's config schema on it, and plans of
a test's own (so plan-level writes touch no other test)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from tenantry import Tenant, Tenantry
from tests.config.app_config import AppConfig
from tests.model_app import Base
from tests.support import Scratch


@pytest.fixture(scope="session")
def config_db(server_url: str) -> Iterator[Scratch]:
    """The config tests' own database and roles."""
    db = Scratch(server_url)
    yield db
    db.drop()


@pytest.fixture(scope="session")
def ctn(config_db: Scratch) -> Iterator[Tenantry]:
    """A Tenantry that knows the app's config schema, on the config tests' catalog."""
    tenantry = Tenantry(config_db.settings(), metadata=Base.metadata, actor="pytest-config", config=AppConfig)
    tenantry.schema.init()
    yield tenantry
    tenantry.close()


@pytest.fixture
def make_plan(config_db: Scratch) -> Callable[[], str]:
    """A pooled plan of the test's own."""

    def make() -> str:
        name = f"p-{uuid.uuid4().hex[:10]}"
        with psycopg.connect(config_db.url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO tenantry.plans (name, isolation, description) VALUES (%s, 'pooled', 'test plan')",
                (name,),
            )
        return name

    return make


@pytest.fixture
def plan_tenant(ctn: Tenantry, make_plan) -> Callable[..., Tenant]:
    """A tenant on a fresh plan of its own (or on ``plan``)."""

    def make(plan: str | None = None, prefix: str = "c") -> Tenant:
        return ctn.tenants.create(f"{prefix}-{uuid.uuid4().hex[:10]}", plan=plan or make_plan())

    return make


def eventually(check: Callable[[], None], *, within: float = 1.0, step: float = 0.01) -> float:
    """Seconds until ``check()`` stops raising AssertionError; fails after ``within``."""
    start = time.monotonic()
    while True:
        try:
            check()
            return time.monotonic() - start
        except AssertionError:
            if time.monotonic() - start > within:
                raise
            time.sleep(step)


def versions_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM tenantry.config_versions").fetchone()
    assert row is not None
    return int(row[0])
