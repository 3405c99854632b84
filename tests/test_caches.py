"""Every per-tenant cache of a process keeps at most ``Settings.tenant_cache_size`` entries, and
unknown tenants and hostnames cost one catalog read, not one per request, while a tenant or
domain made by another process is still found within a second.

Two ``Tenantry`` objects on one catalog stand for two processes: each has its own caches and
its own catalog listener.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tenantry import Tenant, TenantNotFound, Tenantry
from tenantry.core.caches import CatalogCache
from tenantry.db.catalog import domains as domains_service
from tenantry.db.catalog import tenants as catalog_tenants
from tests.model_app import Base
from tests.support import Scratch

LIMIT = 3


@pytest.fixture
def small(scratch: Scratch, tn: Tenantry) -> Iterator[Tenantry]:
    """Another process's view of the session catalog, with room for ``LIMIT`` tenants a cache."""
    other = Tenantry(scratch.settings(tenant_cache_size=LIMIT), metadata=Base.metadata, actor="pytest-small")
    yield other
    other.close()


def _caches(tn: Tenantry) -> dict[str, Any]:
    """Every cache a process keeps per tenant (or per hostname), by what it holds."""
    return {
        "tenant lookups": tn.directory._tenants,
        "unknown tenants": tn.directory._missing_tenants,
        "hostnames": tn.directory._hosts,
        "unknown hostnames": tn.directory._missing_hosts,
        "tenant limits (kept with the lookups)": tn.directory._own_of,
        "config and flag views": tn._live.views,
        "plugin settings and enablement": tn.plugins._cache.entries,
        "brands": tn.branding._cache.brands,
        "stylesheets": tn.branding._cache.styles,
    }


def test_every_per_tenant_cache_is_a_catalog_cache(small: Tenantry) -> None:
    """One set of rules (TTL, bound, listener down, generation guard) for all of them."""
    owners = (small.plane, small.directory, small._live, small.plugins._cache, small.branding._cache)
    found = {v.name: v for o in owners for v in vars(o).values() if isinstance(v, CatalogCache)}
    assert set(found) == {
        "cells",
        "tenant lookups",
        "unknown tenants",
        "hostnames",
        "unknown hostnames",
        "config views",
        "flags",
        "plugin enablement",
        "brands",
        "plan settings",  # per plan, not per tenant: at most 1,024 plans
        "storage over quota",  # one entry: the set of tenants over their storage quota
    }
    for name in ("tenant lookups", "hostnames", "config views", "plugin enablement", "brands", "cells"):
        assert (found[name].ttl, found[name].size) == (small.settings.tenant_cache_ttl, LIMIT), name


def _host(tenant: Tenant) -> str:
    return f"{tenant.slug}.cache-bound.example"


def test_every_per_tenant_cache_keeps_at_most_tenant_cache_size(
    tn: Tenantry, small: Tenantry, make_tenant: Callable[..., Tenant]
) -> None:
    tenants = [make_tenant("cb") for _ in range(2 * LIMIT)]
    for tenant in tenants:
        tn.domains.add(_host(tenant), tenant.slug)  # pending: the edge keeps its token
    for _round in range(2):  # the second round reloads what the first dropped
        for tenant in tenants:
            with small.tenant(tenant.slug):
                assert small.flags.enabled("no-such-flag") is False
                assert small.plugins.enabled_for(tenant.slug) == []
                brand = small.branding.current()
                assert brand.tenant_id == tenant.id
                assert small.branding.stylesheet(brand).css
            route = small.directory.cached_host(_host(tenant)) or small.directory.load_host(_host(tenant))
            assert route.token is not None and route.tenant_id is None
            with pytest.raises(TenantNotFound):
                small.tenant(f"ghost-{uuid.uuid4().hex[:8]}").__enter__()
            assert small.directory.load_host(f"ghost-{uuid.uuid4().hex[:8]}.example") == domains_service.UNKNOWN_HOST
            for name, cache in _caches(small).items():
                assert len(cache) <= LIMIT, f"the {name} cache holds {len(cache)} entries, more than {LIMIT}"
    for name, cache in _caches(small).items():
        assert len(cache) == LIMIT, f"the walk never filled the {name} cache"
    # what is kept answers for its own tenant: the latest ones
    latest = {t.id for t in tenants[-LIMIT:]}
    assert set(small.branding._cache.brands) == latest and set(small._live.views) == latest


class _Counted:
    """Counts calls of a catalog read, as every process would make them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
        self.calls = 0
        real = getattr(module, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)


def _found_within(deadline: float, attempt: Callable[[], bool]) -> float:
    """Seconds until ``attempt()`` held, polling every 10 ms; fails after ``deadline`` seconds."""
    started = time.monotonic()
    while not attempt():
        assert time.monotonic() - started < deadline, f"not found within {deadline} s"
        time.sleep(0.01)
    return time.monotonic() - started


def _listening(tn: Tenantry) -> None:
    """Start ``tn``'s catalog listener and wait for it: caches are trusted only while it is up."""
    tn.plane.listen()
    assert tn.plane._listener is not None and tn.plane._listener.listening.wait(10)


def _binds(tn: Tenantry, slug: str) -> bool:
    try:
        with tn.tenant(slug):
            return True
    except TenantNotFound:
        return False


def test_an_unknown_slug_costs_one_catalog_read_until_another_process_creates_it(
    tn: Tenantry, small: Tenantry, monkeypatch: pytest.MonkeyPatch
) -> None:
    _listening(small)
    reads = _Counted(monkeypatch, catalog_tenants, "get_tenant")
    slug = f"late-{uuid.uuid4().hex[:8]}"
    for _request in range(20):
        assert not _binds(small, slug)
    assert reads.calls == 1
    tn.tenants.create(slug)  # "another process"
    took = _found_within(1.5, lambda: _binds(small, slug))
    assert took < 1.5


def test_a_tenant_made_from_a_spare_is_found_too(tn: Tenantry, small: Tenantry) -> None:
    _listening(small)
    slug = f"spare-{uuid.uuid4().hex[:8]}"
    assert not _binds(small, slug) and not _binds(small, slug)
    tn.spares.fill(1, tier="schema")
    created = tn.tenants.create(slug, plan="business")
    assert tn.spares.list(tier="schema") == [] and created.slug == slug  # it took the spare
    _found_within(1.5, lambda: _binds(small, slug))


def test_an_unknown_hostname_costs_one_catalog_read_until_another_process_adds_it(
    tn: Tenantry, small: Tenantry, make_tenant: Callable[..., Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    _listening(small)
    reads = _Counted(monkeypatch, domains_service, "lookup_host")
    tenant = make_tenant("hosted")
    host = _host(tenant)

    def route() -> domains_service.HostRoute:
        return small.directory.cached_host(host) or small.directory.load_host(host)

    for _request in range(20):
        assert route() == domains_service.UNKNOWN_HOST
    assert reads.calls == 1
    tn.domains.add(host, tenant.slug)
    _found_within(1.5, lambda: route().token is not None)


def test_junk_hostnames_do_not_push_known_ones_out(
    tn: Tenantry, small: Tenantry, make_tenant: Callable[..., Tenant]
) -> None:
    _listening(small)
    tenant = make_tenant("kept")
    tn.domains.add(_host(tenant), tenant.slug)
    # cached once the domain's own notice has come and gone (it drops what was read before)
    _found_within(
        1.5,
        lambda: small.directory.cached_host(_host(tenant)) is not None or not small.directory.load_host(_host(tenant)),
    )
    for _junk in range(10 * LIMIT):  # random Host headers
        small.directory.load_host(f"junk-{uuid.uuid4().hex[:8]}.example")
    assert small.directory.cached_host(_host(tenant)) is not None  # still answered without a query
