"""``tenantry plans create|update|delete|show`` and ``tenantry tenants limits show|set|unset``:
--json, every change audited, a plan with tenants not deleted, and bad values refused with
exit 2 and a one-line message naming the field, nothing saved."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tenantry import PlanNotFound, Tenantry
from tests.support import Scratch, run_cli


def _name() -> str:
    return f"cli-{uuid.uuid4().hex[:8]}"


def test_plans_create_update_show_delete(cli: Any, tn: Tenantry) -> None:
    name = _name()
    code, out, err = cli(
        "plans", "create", name, "--isolation", "schema", "--description", "Team",
        "--rps", "20", "--burst", "40", "--statement-timeout-ms", "3000", "--work-mem", "8MB",
        "--backup-every", "6h", "--keep", "4", "--json",
    )  # fmt: skip
    assert code == 0, err
    made = json.loads(out)
    assert made["isolation"] == "schema" and made["description"] == "Team"
    assert made["limits"] == {
        "requests_per_second": 20,
        "burst": 40,
        "statement_timeout_ms": 3000,
        "work_mem": "8MB",
        "backup_every": "6h",
        "keep": 4,
    }
    code, out, _ = cli("plans", "update", name, "--rps", "2.5", "--burst", "none", "--json")
    assert code == 0 and json.loads(out)["limits"]["requests_per_second"] == 2.5
    assert "burst" not in json.loads(out)["limits"]
    code, out, _ = cli("plans", "show", name)
    assert code == 0 and "limits.requests_per_second" in out and "2.5" in out and "schema" in out
    code, out, err = cli("plans", "delete", name)  # no --yes, no terminal
    assert code == 2 and "--yes" in err and tn.plans.get(name).name == name
    code, out, _ = cli("plans", "delete", name, "--yes", "--json")
    assert code == 0 and json.loads(out)["deleted"] is True
    with pytest.raises(PlanNotFound):
        tn.plans.get(name)
    actions = [e.action for e in tn.audit.list(target_type="plan", target=name)]
    assert actions == ["plan.delete", "plan.update", "plan.create"]
    assert all(e.actor.startswith("cli:") for e in tn.audit.list(target_type="plan", target=name))


def test_a_plan_with_tenants_is_not_deleted(cli: Any, tn: Tenantry, make_tenant: Any) -> None:
    name = _name()
    tn.plans.create(name)
    make_tenant("clip", plan=name)
    code, out, err = cli("plans", "delete", name, "--yes")
    assert code == 7 and len(err.strip().splitlines()) == 1
    assert "still has 1 tenant(s)" in err and "tenantry tenants move" in err
    assert tn.plans.get(name).name == name


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--rps", "fast"], "limits.requests_per_second"),
        (["--rps", "-3"], "limits.requests_per_second"),
        (["--burst", "1.5"], "limits.burst"),
        (["--concurrency", "0"], "limits.concurrency"),
        (["--db-connections", "x"], "limits.db_connections"),
        (["--statement-timeout-ms", "99999999999"], "limits.statement_timeout_ms"),
        (["--idle-timeout-ms", "1s"], "limits.idle_in_transaction_timeout_ms"),
        (["--work-mem", "8 potatoes"], "limits.work_mem"),
        (["--storage-mb", "-1"], "limits.storage_mb"),
        (["--backup-every", "often"], "limits.backup_every"),
        (["--keep", "0"], "limits.keep"),
        (["--isolation", "shared"], "isolation"),
    ],
)
def test_bad_values_exit_2_naming_the_field(
    cli: Any, tn: Tenantry, make_tenant: Any, args: list[str], field: str
) -> None:
    name = _name()
    code, _, err = cli("plans", "create", name, *args)
    assert (code, len(err.strip().splitlines())) == (2, 1) and field in err, err
    with pytest.raises(PlanNotFound):
        tn.plans.get(name)
    before = tn.plans.get("free")
    code, _, err = cli("plans", "update", "free", *args)
    assert code == 2 and field in err and tn.plans.get("free") == before
    if args[0] != "--isolation":
        t = make_tenant("clib")
        code, _, err = cli("tenants", "limits", "set", t.slug, *args)
        assert code == 2 and field in err and tn.tenants.limits(t.slug).overrides == {}


def test_bad_plan_names_exit_2(cli: Any) -> None:
    for bad in ("Pro", "pro plan", "x" * 64, "a;drop"):
        code, _, err = cli("plans", "create", bad)
        assert code == 2 and len(err.strip().splitlines()) == 1, err


def test_tenant_limits_set_show_unset(cli: Any, tn: Tenantry, make_tenant: Any) -> None:
    plan = _name()
    tn.plans.create(plan, limits={"requests_per_second": 10, "concurrency": 5})
    t = make_tenant("clil", plan=plan)
    code, out, err = cli("tenants", "limits", "set", t.slug, "--rps", "50", "--concurrency", "none", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["overrides"] == {"requests_per_second": 50, "concurrency": None}
    assert shown["effective"] == {"requests_per_second": 50, "concurrency": None}
    assert shown["sources"] == {"requests_per_second": "tenant", "concurrency": "tenant"}
    code, out, _ = cli("tenants", "limits", "show", t.slug)
    assert code == 0 and "tenant" in out and "50" in out
    code, out, _ = cli("tenants", "limits", "unset", t.slug, "rps", "--json")
    assert code == 0 and json.loads(out)["effective"] == {"requests_per_second": 10, "concurrency": None}
    code, out, err = cli("tenants", "limits", "unset", t.slug)
    assert code == 2 and "--all" in err
    code, out, err = cli("tenants", "limits", "unset", t.slug, "speed")
    assert code == 2 and "'speed'" in err
    code, out, _ = cli("tenants", "limits", "unset", t.slug, "--all", "--json")
    assert code == 0 and json.loads(out)["overrides"] == {}
    code, out, err = cli("tenants", "limits", "set", t.slug)
    assert code == 2 and "--rps" in err
    actions = [e.action for e in tn.audit.list(target_type="tenant", target=t.slug)]
    assert actions[:3] == ["tenant.limits.unset", "tenant.limits.unset", "tenant.limits.set"]


def test_a_bad_value_in_a_process_of_its_own(scratch: Scratch) -> None:
    """The exit code and the one line, as a shell sees them."""
    done = run_cli(scratch, "plans", "create", _name(), "--rps", "0", "--json")
    assert done.returncode == 2
    assert json.loads(done.stdout or done.stderr)["error"].startswith("limits.requests_per_second")
