"""Tenant lifecycle through the service layer: create, status changes, delete, audit."""

from __future__ import annotations

import threading
import uuid

import pytest

from tenantry import (
    ConfigurationError,
    InvalidInput,
    InvalidSlug,
    InvalidTransition,
    PlanNotFound,
    Status,
    TenantExists,
    TenantNotFound,
    Tenantry,
)


def _slug(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_create_defaults_and_show(tn: Tenantry) -> None:
    slug = _slug()
    t = tn.tenants.create(slug, name="  Acme Inc  ")
    assert (t.slug, t.name, t.plan, t.status) == (slug, "Acme Inc", "free", Status.ACTIVE)
    assert tn.tenants.get(slug) == t == tn.tenants.get(t.id) == tn.tenants.get(str(t.id))
    assert t in tn.tenants.list()
    assert t in tn.tenants.list(status=Status.ACTIVE, plan="free")
    assert t not in tn.tenants.list(status=Status.SUSPENDED)


def test_seeded_plans(tn: Tenantry) -> None:
    plans = {p.name: p.isolation.value for p in tn.plans.list()}
    # (other tests add plans of their own to the session's catalog)
    assert {"free": "pooled", "business": "schema", "enterprise": "database"}.items() <= plans.items()
    assert tn.plans.get("free").limits["requests_per_second"] == 10
    with pytest.raises(PlanNotFound, match="no plan named 'gold'") as raised:
        tn.plans.get("gold")
    assert all(name in str(raised.value) for name in ("business", "enterprise", "free"))


def test_duplicate_slug_conflicts(tn: Tenantry) -> None:
    slug = _slug()
    tn.tenants.create(slug)
    with pytest.raises(TenantExists, match=slug):
        tn.tenants.create(slug)


def test_concurrent_creates_of_one_slug_one_wins(tn: Tenantry) -> None:
    slug = _slug("race")
    outcomes: list[object] = []
    barrier = threading.Barrier(4)

    def create() -> None:
        barrier.wait(timeout=10)
        try:
            outcomes.append(tn.tenants.create(slug))
        except TenantExists as err:
            outcomes.append(err)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(not isinstance(o, TenantExists) for o in outcomes) == 1
    assert len([t for t in tn.tenants.list() if t.slug == slug]) == 1


@pytest.mark.parametrize("slug", ['a"; drop table tenantry.tenants; --', "../etc", "public", "x" * 64, "аcme"])
def test_bad_slugs_create_nothing(tn: Tenantry, slug: str) -> None:
    before = len(tn.tenants.list(include_deleted=True))
    with pytest.raises(InvalidSlug):
        tn.tenants.create(slug)
    assert len(tn.tenants.list(include_deleted=True)) == before


def test_bad_names_and_plans(tn: Tenantry) -> None:
    with pytest.raises(InvalidInput):
        tn.tenants.create(_slug(), name="   ")
    with pytest.raises(InvalidInput):
        tn.tenants.create(_slug(), name="x" * 201)
    with pytest.raises(PlanNotFound):
        tn.tenants.create(_slug(), plan="nope")


def test_tier_needs_the_app_tables(scratch, tn: Tenantry) -> None:
    """Schema and database tiers build the app's tables: without metadata, a clear error and
    nothing written."""
    bare = Tenantry(scratch.settings())
    slug = _slug()
    try:
        with pytest.raises(ConfigurationError, match="TENANTRY_APP"):
            bare.tenants.create(slug, plan="business")
    finally:
        bare.close()
    with pytest.raises(TenantNotFound):
        tn.tenants.get(slug)


def test_lifecycle_and_audit(tn: Tenantry) -> None:
    slug = _slug()
    tn.tenants.create(slug)
    assert tn.tenants.suspend(slug).status is Status.SUSPENDED
    assert tn.tenants.suspend(slug).status is Status.SUSPENDED  # idempotent
    assert tn.tenants.resume(slug).status is Status.ACTIVE
    assert tn.tenants.archive(slug).status is Status.ARCHIVED
    with pytest.raises(InvalidTransition, match="archived"):
        tn.tenants.suspend(slug)
    actions = [e.action for e in tn.audit.list(target_type="tenant", target=slug)]
    assert actions == ["tenant.archived", "tenant.active", "tenant.suspended", "tenant.create"]
    entry = tn.audit.list(target_type="tenant", target=slug)[0]
    assert entry.actor == "pytest"
    assert entry.before["status"] == "active" and entry.after["status"] == "archived"


def test_delete_removes_every_row_and_only_that_tenant(tn: Tenantry, make_tenant) -> None:
    a, b = make_tenant(), make_tenant()
    for t in (a, b):
        with tn.tenant(t.slug), tn.connection() as conn:
            pid = conn.execute("INSERT INTO projects (name) VALUES ('p') RETURNING id").fetchone()[0]
            tid = conn.execute(
                "INSERT INTO tasks (project_id, title, points, priority, done)"
                " VALUES (%s, 't', 1, 'low', false) RETURNING id",
                (pid,),
            ).fetchone()[0]
            conn.execute("INSERT INTO comments (task_id, body) VALUES (%s, 'c')", (tid,))
    counts = tn.tenants.delete(a.slug)
    assert sum(counts.values()) == 3 and set(counts) == {
        f"{tn.settings.pooled_schema}.{t}" for t in ("projects", "tasks", "comments")
    }
    with tn.admin() as conn:
        for table in ("projects", "tasks", "comments"):
            rows = conn.execute(
                f"SELECT tenant_id, count(*) FROM {tn.settings.pooled_schema}.{table}"
                " WHERE tenant_id = ANY(%s) GROUP BY 1",
                ([a.id, b.id],),
            ).fetchall()
            assert rows == [(b.id, 1)]
    assert tn.tenants.get(a.id).status is Status.DELETED
    with pytest.raises(TenantNotFound):
        tn.tenants.get(a.slug)
    assert tn.tenants.delete(a.id) == {}  # rerun is a no-op
    # the slug is free again
    assert tn.tenants.create(a.slug).id != a.id
    assert tn.audit.list(target_type="tenant", target=a.slug)[1].after == {"rows_deleted": counts}


def test_list_by_slug_prefix_with_tombstones_in_byte_order(tn: Tenantry) -> None:
    tag = uuid.uuid4().hex[:8]
    slugs = [f"pfx{tag}-b", f"pfx{tag}-a", f"pfx{tag}0", f"pfx{tag}-c"]
    made = {s: tn.tenants.create(s) for s in slugs}
    tn.tenants.delete(f"pfx{tag}-c")
    again = tn.tenants.create(f"pfx{tag}-c")  # a live tenant beside the tombstone of its slug
    live = [t.slug for t in tn.tenants.list(prefix=f"pfx{tag}")]
    assert live == sorted(s for s in slugs) == [f"pfx{tag}-a", f"pfx{tag}-b", f"pfx{tag}-c", f"pfx{tag}0"]
    both = tn.tenants.list(prefix=f"pfx{tag}-", include_deleted=True)
    assert [t.slug for t in both] == [f"pfx{tag}-a", f"pfx{tag}-b", f"pfx{tag}-c", f"pfx{tag}-c"]
    assert {t.id for t in both[2:]} == {made[f"pfx{tag}-c"].id, again.id}
    assert [t.slug for t in tn.tenants.list(prefix=f"pfx{tag}-", include_deleted=True, offset=1, limit=2)] == [
        f"pfx{tag}-b",
        f"pfx{tag}-c",
    ]
    assert tn.tenants.list(prefix=f"pfx{tag}-", status=Status.DELETED) == []
    with pytest.raises(InvalidInput, match="cannot start a slug"):
        tn.tenants.list(prefix="50%")
