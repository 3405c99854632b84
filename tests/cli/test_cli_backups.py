"""``tenantry backups``: create, list, show, verify, restore --as, delete --yes; one-line
errors with their exit codes."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from tenantry import Tenantry
from tests.services.backup_support import rows, seed


@pytest.fixture
def bcli(cli, monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.setenv("TENANTRY_BACKUP_URL", tmp_path.as_uri())
    monkeypatch.setenv("TENANTRY_APP", "tests.model_app:Base")
    return cli


def test_the_backups_commands(bcli, tn: Tenantry) -> None:
    tenant = tn.tenants.create(f"cb-{uuid.uuid4().hex[:8]}")
    seed(tn, tenant, projects=2)
    code, out, err = bcli("backups", "create", tenant.slug, "--json")
    assert code == 0, err
    made = json.loads(out)
    assert made["status"] == "complete" and made["rows"] == 6
    code, out, _ = bcli("backups", "list", tenant.slug, "--json")
    assert [b["id"] for b in json.loads(out)] == [made["id"]]
    code, out, _ = bcli("backups", "show", made["id"], "--json")
    assert json.loads(out)["manifest"]["tables"][0]["name"] == "projects"
    code, out, _ = bcli("backups", "verify", made["id"], "--json")
    assert code == 0 and json.loads(out)["tables"] == {"projects": 2, "tasks": 2, "comments": 2}
    clone = f"cc-{uuid.uuid4().hex[:8]}"
    code, out, err = bcli("backups", "restore", tenant.slug, "--from", made["id"], "--as", clone, "--json")
    assert code == 0, err
    assert json.loads(out)["rows"]["tasks"] == 2 and rows(tn, clone) == rows(tn, tenant.slug)
    code, out, err = bcli("backups", "delete", made["id"])
    assert code == 2 and "--yes" in err and len(err.strip().splitlines()) == 1
    code, out, _ = bcli("backups", "delete", made["id"], "--yes", "--json")
    assert code == 0 and json.loads(out)["deleted"] is True


@pytest.mark.parametrize(
    ("args", "exit_code", "says"),
    [
        (("backups", "show", "nope"), 2, "not a backup id"),
        (("backups", "show", str(uuid.UUID(int=1))), 6, "no backup"),
        (("backups", "verify", str(uuid.UUID(int=1))), 6, "no backup"),
        (("backups", "restore", "x", "--from", str(uuid.UUID(int=1))), 6, "no backup"),
        (("backups", "restore", "x"), 2, "--from"),
        (("backups", "create", "no-such-tenant"), 6, "no-such-tenant"),
        (("backups", "import", f"gone/{uuid.UUID(int=1)}"), 6, "no archive"),
        (("backups", "import", "../../etc"), 2, ""),
    ],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(bcli, args, exit_code: int, says: str) -> None:
    code, _out, err = bcli(*args)
    assert code == exit_code, err
    assert says in err and len(err.strip().splitlines()) == 1


def test_export_and_delete_with_its_backups(bcli, tn: Tenantry, tmp_path) -> None:
    tenant = tn.tenants.create(f"ex-{uuid.uuid4().hex[:8]}", plan="business")
    seed(tn, tenant, projects=2)
    code, out, err = bcli("tenants", "export", tenant.slug, "--format", "jsonl", "--to", str(tmp_path / "j"), "--json")
    assert code == 0, err
    assert json.loads(out)["files"] == {"projects.jsonl": 2, "tasks.jsonl": 2, "comments.jsonl": 2}
    lines = [json.loads(line) for line in (tmp_path / "j" / "tasks.jsonl").read_text().splitlines()]
    assert {row["title"] for row in lines} == {"", "t\t1"} and all("tenant_id" not in row for row in lines)
    code, out, err = bcli("tenants", "export", tenant.slug, "--format", "csv", "--to", str(tmp_path / "c"))
    assert code == 0, err
    header, *rows_ = (tmp_path / "c" / "projects.csv").read_text().splitlines()
    assert header == "id,name,created_at" and len(rows_) == 2
    code, _, err = bcli("tenants", "export", tenant.slug, "--format", "xml")
    assert code == 2 and "--format" in err
    assert tn.audit.list(target_type="tenant", target=tenant.slug)[0].action == "tenant.export"
    bcli("backups", "create", tenant.slug)
    bcli("backups", "create", tenant.slug)
    code, out, err = bcli("tenants", "delete", tenant.slug, "--yes", "--purge-backups", "--json")
    assert code == 0, err
    assert len(json.loads(out)["backups_purged"]) == 2
    assert tn.backups.list(tenant.id) == []


def test_an_archive_the_catalog_forgot_is_imported(bcli, tn: Tenantry) -> None:
    tenant = tn.tenants.create(f"ci-{uuid.uuid4().hex[:8]}")
    seed(tn, tenant, projects=1)
    code, out, err = bcli("backups", "create", tenant.slug, "--json")
    assert code == 0, err
    made = json.loads(out)
    with psycopg.connect(tn.admin_url, autocommit=True) as conn:
        conn.execute("DELETE FROM tenantry.backups WHERE id = %s", (made["id"],))
    code, out, err = bcli("backups", "import", made["location"], "--json")
    assert code == 0, err
    assert {k: json.loads(out)[k] for k in ("id", "rows", "status")} == {k: made[k] for k in ("id", "rows", "status")}
    code, out, err = bcli("backups", "import", made["location"])
    assert code == 0 and made["id"] in out, err
