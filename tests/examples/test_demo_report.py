"""What `tenantry demo` tells to do for each tenant: sign in as a seeded member, or, for a tenant
with nobody in it yet (``--no-seed``), create its first account on its site."""

from __future__ import annotations

from tenantry.cli import demo
from tests.examples.support import Tracker


def test_the_report_names_a_member_only_where_one_exists(tracker: Tracker, capsys) -> None:  # type: ignore[no-untyped-def]
    seeded = demo._ensure_tenant(tracker.tn, demo.DemoTenant("acme", "Acme", "free", "wile@acme.example"), seed=None)
    empty = demo._ensure_tenant(
        tracker.tn, demo.DemoTenant("emptyco", "Empty Co", "business", "nobody@emptyco.example"), seed=None
    )
    assert seeded["login"] == "wile@acme.example" and not seeded["created"]
    assert empty["login"] is None and empty["created"]
    report = {
        "tenants": [t | {"url": f"http://{t['slug']}.localhost:8000/", "features": {}} for t in (seeded, empty)],
        "admin_api": None,
        "admin_api_unavailable": "test",
        "database": "embedded",
        "cli": {"exports": [], "try": []},
        "new_tenant": {"slug": "initrode", "url": "http://initrode.localhost:8000/"},
    }
    demo._print_report(report)
    out = " ".join(capsys.readouterr().out.split())  # (as Rich wrapped it)
    assert "sign in as wile@acme.example" in out
    assert "emptyco.localhost:8000/ no members yet: create the first account there" in out
    assert "sign in as nobody" not in out and "sign in as None" not in out
