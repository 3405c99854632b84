"""The edge's caches never keep what a change made stale: a lookup that read the catalog before
a change committed, and finished after its notice arrived, is not cached."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tenantry import TenantNotActive, Tenantry, Verdict
from tenantry.db.catalog import domains as domains_service
from tenantry.db.catalog import tenants as catalog_tenants
from tests.model_app import Base


def _wait(check: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def edge(scratch) -> Any:
    other = Tenantry(scratch.settings(tenant_cache_ttl=3600.0), metadata=Base.metadata)
    yield other
    other.close()


def test_a_tenant_lookup_racing_a_suspension_is_not_cached(
    tn: Tenantry, edge: Tenantry, make_tenant, monkeypatch
) -> None:
    t = make_tenant("race")
    edge.plane.listen()
    assert edge.plane._listener is not None and edge.plane._listener.listening.wait(5)
    real = catalog_tenants.get_tenant
    raced: list[bool] = []

    def read_then_change(conn: Any, key: Any, **kwargs: Any) -> Any:
        before = real(conn, key, **kwargs)  # read while still active
        if not raced:  # once: the suspension below reads the tenant through here too
            raced.append(True)
            generation = edge.directory._tenants.generation
            tn.tenants.suspend(t.slug)  # commits; its notice reaches `edge` before the lookup finishes
            _wait(lambda: edge.directory._tenants.generation != generation)
        return before

    monkeypatch.setattr(catalog_tenants, "get_tenant", read_then_change)
    tenant, _ = edge.directory.load(t.slug)
    monkeypatch.setattr(catalog_tenants, "get_tenant", real)
    assert tenant.status.value == "active"  # what was read
    assert edge.directory.cached(t.slug) is None  # but not kept
    with pytest.raises(TenantNotActive):
        with edge.tenant(t.slug):
            pass


def test_a_host_lookup_racing_a_verification_is_not_cached(
    tn: Tenantry, edge: Tenantry, make_tenant, monkeypatch
) -> None:
    t = make_tenant("race")
    host = f"race-{time.monotonic_ns() % 10**9}.customer.test"
    tn.domains.add(host, t.slug)
    edge.plane.listen()
    assert edge.plane._listener is not None and edge.plane._listener.listening.wait(5)
    real = domains_service.lookup_host
    raced: list[bool] = []

    class Proven:
        method = "http"

        def check(self, hostname: str, token: str) -> Verdict:
            return Verdict(True, "test")

    def read_then_change(conn: Any, hostname: str) -> Any:
        before = real(conn, hostname)
        if not raced:
            raced.append(True)
            generation = edge.directory._hosts.generation
            tn.domains.verify(host, checker=Proven())
            _wait(lambda: edge.directory._hosts.generation != generation)
        return before

    monkeypatch.setattr(domains_service, "lookup_host", read_then_change)
    route = edge.directory.load_host(host)
    monkeypatch.setattr(domains_service, "lookup_host", real)
    assert not route.verified  # what was read
    assert edge.directory.cached_host(host) is None  # but not kept
    assert edge.directory.load_host(host).verified
