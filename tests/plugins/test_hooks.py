"""Lifecycle hooks: called after the change commits, only for tenants the plugin is switched
on for; a hook that raises is contained and recorded, and the others still run."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import psycopg
import pytest

from tenantry import Status, Tenant, TenantNotFound, Tenantry
from tenantry.services import lifecycle, provisioning
from tests.plugins.sample_plugins import Exploder, Recorder
from tests.support import Scratch


def _calls(recorder: Recorder, tenant: Tenant) -> list[str]:
    return [event for event, slug in recorder.calls if slug.split(":")[0] == tenant.slug]


def test_every_lifecycle_event_reaches_an_enabled_plugin(
    ptn: Tenantry, recorder: Recorder, ptenant: Callable[..., Tenant]
) -> None:
    tenant = ptenant()
    assert _calls(recorder, tenant) == []  # created while off: no call
    ptn.plugins.enable("recorder", tenant=tenant.slug)
    ptn.tenants.suspend(tenant.slug)
    ptn.tenants.suspend(tenant.slug)  # already suspended: a no-op, no second call
    ptn.tenants.resume(tenant.slug)
    ptn.tenants.archive(tenant.slug)
    ptn.tenants.resume(tenant.slug)
    ptn.tenants.move(tenant.slug, plan="business")
    ptn.tenants.delete(tenant.slug)
    ptn.tenants.delete(tenant.id)  # gone already: no second call
    assert _calls(recorder, tenant) == ["suspended", "resumed", "archived", "resumed", "moved", "deleted"]
    assert (("moved", f"{tenant.slug}:schema")) in recorder.calls  # the report reached the hook


def test_created_fires_when_the_plan_has_the_plugin(
    ptn: Tenantry, recorder: Recorder, ptenant: Callable[..., Tenant]
) -> None:
    ptn.plugins.enable("recorder", plan="enterprise")
    try:
        tenant = ptenant(plan="enterprise")
        assert _calls(recorder, tenant) == ["created"]
    finally:
        ptn.plugins.reset("recorder", plan="enterprise")


def test_a_disabled_plugin_never_runs_for_the_tenant(
    ptn: Tenantry, recorder: Recorder, exploder: Exploder, ptenant: Callable[..., Tenant]
) -> None:
    on, off = ptenant(), ptenant()
    ptn.plugins.enable("recorder", plan="free")
    try:
        ptn.plugins.disable("recorder", tenant=off.slug)  # the tenant's setting wins over its plan's
        before = exploder.calls
        for tenant in (on, off):
            ptn.tenants.suspend(tenant.slug)
            ptn.tenants.resume(tenant.slug)
        assert _calls(recorder, on) == ["suspended", "resumed"]
        assert _calls(recorder, off) == []
        assert exploder.calls == before  # switched on for nobody here
    finally:
        ptn.plugins.reset("recorder", plan="free")


def test_a_raising_hook_is_contained_and_reported(
    ptn: Tenantry, recorder: Recorder, exploder: Exploder, ptenant: Callable[..., Tenant], plugins_db: Scratch
) -> None:
    bad, fine = ptenant(), ptenant()
    for tenant in (bad, fine):
        ptn.plugins.enable("recorder", tenant=tenant.slug)
    ptn.plugins.enable("exploder", tenant=bad.slug)
    before = exploder.calls
    suspended = ptn.tenants.suspend(bad.slug)  # the exploder raises (first: tryfirst), the operation stands
    assert suspended.status.value == "suspended" and ptn.tenants.get(bad.slug).status.value == "suspended"
    assert exploder.calls == before + 1
    assert _calls(recorder, bad) == ["suspended"]  # the other plugin still ran, after the failure
    ptn.tenants.suspend(fine.slug)  # and other tenants are untouched by it
    assert _calls(recorder, fine) == ["suspended"] and exploder.calls == before + 1
    ptn.tenants.resume(bad.slug)
    ptn.tenants.suspend(bad.slug)  # a second failure counts, not a new row
    [failure] = ptn.plugins.errors(plugin="exploder", tenant=bad.slug)
    assert (failure.hook, failure.tenant, failure.count) == ("on_tenant_suspended", bad.slug, 2)
    assert failure.last_error == f"RuntimeError: boom on {bad.slug}"
    assert ptn.plugins.errors(plugin="exploder", tenant=fine.slug) == []


def test_a_failure_to_record_is_only_logged(
    ptn: Tenantry, ptenant: Callable[..., Tenant], caplog: pytest.LogCaptureFixture
) -> None:
    tenant = ptenant()

    def unreachable():  # type: ignore[no-untyped-def]
        raise psycopg.OperationalError("the catalog is down")

    real = ptn.plane.admin
    ptn.plane.admin = unreachable  # type: ignore[method-assign]
    try:
        ptn.plugins.report_error("exploder", "on_tenant_suspended", RuntimeError("x"), tenant.id)  # does not raise
    finally:
        del ptn.plane.admin
    assert "could not record the error of plugin 'exploder'" in caplog.text
    assert real is not None


def test_the_service_functions_do_their_own_after_effects(ptn: Tenantry, recorder: Recorder) -> None:
    """Calling ``provisioning.provision`` (or ``deprovision``, ``lifecycle.set_status``) directly,
    not through ``tn.tenants``, still makes this process forget what it cached of the tenant and
    delivers the hooks the change queued, before it returns."""
    slug = f"direct-{uuid.uuid4().hex[:8]}"
    ptn.plugins.enable("recorder", plan="enterprise")
    try:
        ptn.plane.listen()
        assert ptn.plane._listener is not None and ptn.plane._listener.listening.wait(10)
        with pytest.raises(TenantNotFound):
            ptn.directory.load(slug)  # remembered as missing: this process would refuse the slug
        with pytest.raises(TenantNotFound):
            ptn.directory.cached(slug)
        tenant = provisioning.provision(ptn.plane, slug, name=None, plan="enterprise")
        assert ptn.directory.cached(slug) is None  # forgotten at once, not a second later by NOTIFY
        assert ptn.tenants.lookup(slug).id == tenant.id
        assert _calls(recorder, tenant) == ["created"]  # delivered before provision returned
        lifecycle.set_status(ptn.plane, slug, Status.SUSPENDED)
        assert ptn.directory.cached(slug) is None
        assert _calls(recorder, tenant) == ["created", "suspended"]
        provisioning.deprovision(ptn.plane, slug)
        assert _calls(recorder, tenant) == ["created", "suspended", "deleted"]
    finally:
        ptn.plugins.reset("recorder", plan="enterprise")
