"""Catalog changes reach other processes' caches within a second (LISTEN/NOTIFY)."""

from __future__ import annotations

import time

from tenantry import TenantNotActive, TenantNotFound, Tenantry
from tests.model_app import Base


def _eventually(check, *, within: float = 1.0) -> float:
    """Seconds until ``check()`` stops raising, failing after ``within``."""
    start = time.monotonic()
    while True:
        try:
            check()
            return time.monotonic() - start
        except AssertionError:
            if time.monotonic() - start > within:
                raise
            time.sleep(0.02)


def test_suspension_in_one_process_reaches_another_within_a_second(scratch, tn: Tenantry, make_tenant) -> None:
    other = Tenantry(scratch.settings(tenant_cache_ttl=3600.0), metadata=Base.metadata)
    try:
        t = make_tenant()
        with other.tenant(t.slug):  # cached for an hour in `other`, and its listener started
            pass
        assert other.plane._listener is not None and other.plane._listener.listening.wait(5)
        with other.tenant(t.slug):  # still served from the cache
            pass
        tn.tenants.suspend(t.slug)

        def refused() -> None:
            try:
                with other.tenant(t.slug):
                    pass
            except TenantNotActive:
                return
            raise AssertionError("still served")

        _eventually(refused)
        tn.tenants.resume(t.slug)

        def served() -> None:
            try:
                with other.tenant(t.slug):
                    return
            except TenantNotActive as err:
                raise AssertionError(str(err)) from err

        _eventually(served)
    finally:
        other.close()


def test_listener_stops_with_close(scratch, make_tenant) -> None:
    other = Tenantry(scratch.settings(), metadata=Base.metadata)
    with other.tenant(make_tenant().slug):
        pass
    listener = other.plane._listener
    assert listener is not None
    other.close()
    assert not listener._thread.is_alive()
    assert other.plane._listener is None


def test_delete_reaches_other_process(scratch, tn: Tenantry, make_tenant) -> None:
    other = Tenantry(scratch.settings(tenant_cache_ttl=3600.0), metadata=Base.metadata)
    try:
        t = make_tenant()
        with other.tenant(t.id):
            pass
        assert other.plane._listener is not None and other.plane._listener.listening.wait(5)
        tn.tenants.delete(t.id)

        def gone() -> None:
            try:
                with other.tenant(t.id):
                    pass
            except TenantNotFound:
                return
            raise AssertionError("deleted tenant still served")

        _eventually(gone)
    finally:
        other.close()
