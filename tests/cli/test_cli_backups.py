"""``tenantry backups``: create, list, show, verify, restore --as, delete --yes; one-line
errors with their exit codes."""

from __future__ import annotations

import json
import uuid

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
    ],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(bcli, args, exit_code: int, says: str) -> None:
    code, _out, err = bcli(*args)
    assert code == exit_code, err
    assert says in err and len(err.strip().splitlines()) == 1
