"""``tenantry migrate``, ``migrate status`` and ``migrate stamp`` through the CLI, with --json."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tenantry.cli import main as cli_main
from tests.migrations.support import FIXTURE, HEAD, OLD, World

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``tenantry`` in-process against the world's catalog, with the fixture migrations."""
    monkeypatch.setenv("TENANTRY_DATABASE_URL", world.scratch.url)
    monkeypatch.setenv("TENANTRY_OWNER_ROLE", world.scratch.owner)
    monkeypatch.setenv("TENANTRY_RUNTIME_ROLE", world.scratch.runtime)
    monkeypatch.setenv("TENANTRY_READER_ROLE", world.scratch.reader)
    monkeypatch.setenv("TENANTRY_MIGRATIONS", FIXTURE)

    def run(*args: str) -> tuple[int, str, str]:
        code = cli_main.main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_migrate_json_failure_exit_code_and_rerun(cli: Run, world: World) -> None:
    code, out, err = cli("migrate", "--dry-run", "--json")
    assert code == 0, err
    planned = json.loads(out)
    assert planned["dry_run"] and planned["counts"]["planned"] == 5
    assert {(p["from"], p["to"]) for p in planned["placements"]} == {(OLD, HEAD)}
    code, out, _ = cli("migrate", "status", "--json")
    assert code == 0 and json.loads(out)["revisions"] == {OLD: 5} and len(json.loads(out)["behind"]) == 5

    broken = world.by_tier("database")[0]
    world.execute(broken, "CREATE TABLE tenant_data.labels (tenant_id uuid, id int, PRIMARY KEY (tenant_id, id))")
    code, out, err = cli("migrate", "--jobs", "3", "--json")
    assert code == 10
    report = json.loads(out)
    assert report["counts"]["migrated"] == 4 and report["counts"]["failed"] == 1
    failed = [p for p in report["placements"] if p["result"] == "failed"]
    assert failed[0]["slug"] == broken.slug and failed[0]["from"] == failed[0]["to"] == OLD
    assert err.count("\n") == 1 and broken.slug in err and "rerun" in err

    world.execute(broken, "DROP TABLE tenant_data.labels")
    code, out, err = cli("migrate", "--jobs", "1", "--json")
    assert code == 0, err
    assert [p["slug"] for p in json.loads(out)["placements"]] == [broken.slug]
    code, out, _ = cli("migrate")
    assert code == 0 and "from the catalog" in out and "nothing to do" in out
    code, out, _ = cli("migrate", "status")
    assert code == 0 and "every placement is at the head" in out and HEAD in out


def test_cli_errors_are_one_line(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = cli("migrate", "--tenant", "nobody")
    assert code == 6 and "nobody" in err and err.count("\n") == 1
    code, _, err = cli("migrate", "--jobs", "0")
    assert code == 2
    monkeypatch.delenv("TENANTRY_MIGRATIONS")
    code, _, err = cli("migrate")
    assert code == 2 and "TENANTRY_MIGRATIONS" in err


def test_stamp_command(cli: Run, world: World) -> None:
    tenant = world.by_tier("schema")[0]
    code, out, err = cli("migrate", "stamp", HEAD, "--tenant", tenant.slug, "--json")
    assert code == 0, err
    assert [(p["slug"], p["result"], p["to"]) for p in json.loads(out)["placements"]] == [
        (tenant.slug, "stamped", HEAD)
    ]
    assert world.version(tenant) == HEAD and world.catalog_revisions()[tenant.slug] == HEAD
    code, _, err = cli("migrate", "stamp", "no-such-revision")
    assert code == 2 and "no revision" in err
