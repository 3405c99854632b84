"""Fixtures of the plugin tests: a catalog of their own whose Tenantry runs the sample plugins
and the webhooks plugin (their tables are deployed beside the model app's), a second Tenantry
on it as another process of the app would have, and tenants on each tier."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from tenantry import Tenant, Tenantry
from tenantry.contrib.webhooks import WebhooksPlugin
from tenantry.testing import TIER_PLANS
from tests.model_app import Base
from tests.plugins.sample_plugins import Exploder, Notes, Recorder
from tests.support import Scratch


@pytest.fixture(scope="session")
def plugins_db(server_url: str) -> Iterator[Scratch]:
    db = Scratch(server_url)
    yield db
    db.drop()


@pytest.fixture(scope="session")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="session")
def exploder() -> Exploder:
    return Exploder()


def make_plugins(recorder: Recorder, exploder: Exploder) -> list[object]:
    return [
        Notes(),
        recorder,
        exploder,
        WebhooksPlugin(allow_private=True, backoff_base=0.0, max_attempts=3, timeout=5.0),
    ]


@pytest.fixture(scope="session")
def ptn(plugins_db: Scratch, recorder: Recorder, exploder: Exploder) -> Iterator[Tenantry]:
    """A Tenantry running the sample plugins and webhooks, on the plugin tests' catalog."""
    tenantry = Tenantry(
        plugins_db.settings(),
        metadata=Base.metadata,
        actor="pytest-plugins",
        plugins=make_plugins(recorder, exploder),  # type: ignore[arg-type]
    )
    tenantry.schema.init()
    yield tenantry
    tenantry.close()


@pytest.fixture
def other(plugins_db: Scratch, ptn: Tenantry) -> Iterator[Tenantry]:
    """Another process of the same app: its own Tenantry, caches and listener."""
    tenantry = Tenantry(
        plugins_db.settings(),
        metadata=Base.metadata,
        actor="other-process",
        plugins=make_plugins(Recorder(), Exploder()),  # type: ignore[arg-type]
    )
    yield tenantry
    tenantry.close()


@pytest.fixture
def ptenant(ptn: Tenantry) -> Callable[..., Tenant]:
    """A tenant of the plugin tests' catalog (pooled unless ``plan`` says)."""

    def make(prefix: str = "p", **kwargs: object) -> Tenant:
        return ptn.tenants.create(f"{prefix}-{uuid.uuid4().hex[:10]}", **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def tier_tenant(ptenant: Callable[..., Tenant], tier: str) -> Callable[..., Tenant]:
    """A tenant on the tier under test (see tests/conftest.py's ``tier``)."""

    def make(prefix: str = "p", **kwargs: object) -> Tenant:
        return ptenant(prefix, plan=TIER_PLANS[tier], **kwargs)

    return make
