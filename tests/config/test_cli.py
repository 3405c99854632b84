"""``tenantry config`` and ``tenantry flags``: JSON output, one-line errors with exit codes,
and a change made by the CLI reaching a running process within a second."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tenantry import Tenantry
from tenantry.cli.main import main
from tests.config.app_config import AppConfig
from tests.config.support import eventually

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(config_db, ctn, monkeypatch, capsys):
    monkeypatch.setenv("TENANTRY_DATABASE_URL", config_db.url)
    monkeypatch.setenv("TENANTRY_OWNER_ROLE", config_db.owner)
    monkeypatch.setenv("TENANTRY_RUNTIME_ROLE", config_db.runtime)
    monkeypatch.setenv("TENANTRY_READER_ROLE", config_db.reader)
    monkeypatch.setenv("TENANTRY_CONFIG", "tests.config.app_config:AppConfig")

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_config_commands(cli, plan_tenant) -> None:
    t = plan_tenant()
    code, out, err = cli("config", "set", "limits.max_projects", "40", "--tenant", t.slug, "-m", "bigger", "--json")
    assert code == 0, err
    assert json.loads(out)["version"] == 1 and json.loads(out)["changed"] is True
    code, out, _ = cli("config", "set", "welcome", "hi there", "--tenant", t.slug)
    assert code == 0 and "version 2" in out
    code, out, _ = cli("config", "set", "branding.theme", "dark", "--tenant", t.slug, "--expires", "2h", "--json")
    assert code == 0 and json.loads(out)["changes"][0]["layer"] == "override"
    code, out, _ = cli("config", "get", "limits.max_projects", "--tenant", t.slug, "--json")
    assert json.loads(out) | {} == {**json.loads(out), "value": 40, "source": "tenant"}
    code, out, _ = cli("config", "get", "--tenant", t.slug, "--json")
    data = json.loads(out)
    assert data["effective"]["branding"]["theme"] == "dark" and data["effective"]["limits"]["max_users"] == 5
    code, out, _ = cli("config", "get", "--tenant", t.slug, "--layer", "--json")
    assert json.loads(out)["document"] == {"limits": {"max_projects": 40}, "welcome": "hi there"}
    code, out, _ = cli("config", "get", "welcome", "--tenant", t.slug)
    assert code == 0 and out.startswith('"hi there"')
    code, out, _ = cli("config", "history", "--tenant", t.slug, "--json")
    assert [v["version"] for v in json.loads(out)] == [3, 2, 1] and json.loads(out)[-1]["message"] == "bigger"
    code, out, _ = cli("config", "history", "--tenant", t.slug)
    assert code == 0 and "bigger" in out
    code, out, _ = cli("config", "diff", "1", "2", "--tenant", t.slug, "--json")
    assert [c["path"] for c in json.loads(out)["changes"]] == ["welcome"]
    code, out, _ = cli("config", "diff", "1", "2", "--tenant", t.slug)
    assert "added  welcome" in out
    code, out, _ = cli("config", "rollback", "1", "--tenant", t.slug, "--json")
    assert code == 0 and json.loads(out)["version"] == 4
    code, out, _ = cli("config", "unset", "limits.max_projects", "--tenant", t.slug, "--json")
    assert code == 0 and json.loads(out)["changed"]
    code, out, _ = cli("config", "unset", "limits.max_projects", "--tenant", t.slug)
    assert code == 0 and "no change" in out
    code, out, _ = cli("config", "set", "welcome", "plan says hi", "--plan", t.plan, "--json")
    assert code == 0 and json.loads(out)["scope"] == "plan"


@pytest.mark.parametrize(
    ("args", "exit_code", "fragment"),
    [
        (
            ("config", "set", "limits.max_projects", '"many"', "--tenant", "{slug}"),
            2,
            "limits.max_projects: Input should be a valid integer",
        ),
        (("config", "set", "limits.nope", "1", "--tenant", "{slug}"), 2, "limits.nope: Extra inputs are not permitted"),
        (("config", "set", "a..b", "1", "--tenant", "{slug}"), 2, "config key"),
        (("config", "set", "welcome", "x", "--tenant", "{slug}", "--expires", "soon"), 2, "--expires"),
        (("config", "set", "welcome", "x", "--plan", "free", "--expires", "1h"), 2, "belong to a tenant"),
        (("config", "set", "welcome", "x"), 2, "exactly one"),
        (("config", "get", "--tenant", "no-such-tenant"), 6, "no tenant"),
        (("config", "get", "--plan", "gold"), 6, "no plan named"),
        (("config", "rollback", "99", "--tenant", "{slug}"), 6, "no version 99"),
        (("flags", "create", "Bad Key"), 2, "key: must be"),
        (("flags", "create", "{flag}", "--rollout", "150"), 2, "percentage"),
        (("flags", "create", "{flag}", "--rules", "[{]"), 2, "not valid JSON"),
        (
            (
                "flags",
                "create",
                "{flag}",
                "--rules",
                '[{"when": [{"attribute": "plan", "op": "??", "value": 1}], "variant": "on"}]',
            ),
            2,
            "rules[0].when[0].op",
        ),
        (("flags", "show", "no-such-flag"), 6, "no flag"),
        (("flags", "kill", "no-such-flag"), 6, "no flag"),
        (("flags", "eval", "no-such-flag", "--tenant", "{slug}"), 6, "no flag"),
        (("flags", "delete", "{flag}"), 2, "--yes"),
    ],
)
def test_errors_are_one_line_with_exit_codes(cli, plan_tenant, args, exit_code, fragment) -> None:
    t = plan_tenant()
    flag = f"cli-{uuid.uuid4().hex[:8]}"
    filled = [a.replace("{slug}", t.slug).replace("{flag}", flag) for a in args]
    for extra in ([], ["--json"]):
        code, out, err = cli(*filled, *extra)
        assert code == exit_code, (code, err)
        assert err.count("\n") == 1 and fragment in err, err
        assert "Traceback" not in err
        if extra:  # under --json, the error is one JSON object
            assert json.loads(err)["exit"] == exit_code and fragment in json.loads(err)["error"]
        else:
            assert err.startswith("error:")


def test_flags_commands(cli, plan_tenant) -> None:
    t = plan_tenant()
    key = f"cli-{uuid.uuid4().hex[:8]}"
    code, out, err = cli("flags", "create", key, "--description", "new editor", "--json")
    assert code == 0, err
    assert json.loads(out)["kind"] == "boolean" and json.loads(out)["rollout"] is None
    code, out, _ = cli("flags", "create", key, "--description", "new editor")
    assert code == 0  # the same again: a no-op
    code, out, err = cli("flags", "create", key, "--rollout", "5")
    assert code == 7 and "exists already" in err
    code, out, _ = cli("flags", "set", key, "--rollout", "100", "--json")
    assert json.loads(out)["rollout"] == {"on": 100.0, "off": 0.0}
    code, out, _ = cli("flags", "eval", key, "--tenant", t.slug, "--json")
    assert (json.loads(out)["value"], json.loads(out)["reason"]) == (True, "SPLIT")
    code, out, _ = cli("flags", "eval", key, "--tenant", t.slug, "--user", "u1")
    assert code == 0 and out.startswith(f"{key} = true")
    code, out, _ = cli("flags", "kill", key)
    assert code == 0 and "KILLED" in out
    code, out, _ = cli("flags", "eval", key, "--tenant", t.slug, "--json")
    assert (json.loads(out)["value"], json.loads(out)["reason"]) == (False, "DISABLED")
    code, out, _ = cli("flags", "unkill", key, "--json")
    assert json.loads(out)["killed"] is False
    rules = json.dumps([{"when": [{"attribute": "tenant", "op": "eq", "value": t.slug}], "variant": "off"}])
    code, out, _ = cli("flags", "set", key, "--rules", rules, "--enable-at", "2020-01-01T00:00:00Z", "--json")
    assert code == 0 and json.loads(out)["rules"][0]["variant"] == "off"
    code, out, _ = cli("flags", "eval", key, "--tenant", t.slug)
    assert "targeting match (rule 0)" in out
    code, out, _ = cli("flags", "set", key, "--enable-at", "none", "--rules", "[]", "--json")
    assert json.loads(out)["enable_at"] is None and json.loads(out)["rules"] == []
    multi = f"cli-{uuid.uuid4().hex[:8]}"
    code, out, err = cli(
        "flags",
        "create",
        multi,
        "--kind",
        "multivariate",
        "--variants",
        '{"a": "A", "b": "B"}',
        "--default",
        "a",
        "--rollout",
        "a=20,b=80",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["rollout"] == {"a": 20.0, "b": 80.0}
    code, out, _ = cli("flags", "list", "--json")
    assert {key, multi} <= {f["key"] for f in json.loads(out)}
    code, out, _ = cli("flags", "list")
    assert code == 0 and multi in out
    code, out, _ = cli("flags", "show", multi)
    assert code == 0 and '"default": "a"' in out
    code, out, _ = cli("flags", "delete", multi, "--yes", "--json")
    assert json.loads(out) == {"key": multi, "deleted": True}
    code, out, _ = cli("flags", "delete", multi, "--yes")
    assert code == 0 and "nothing to do" in out
    code, out, _ = cli("audit", "list", "--json")
    assert code == 0


def test_a_cli_change_reaches_a_running_process_within_a_second(config_db, ctn: Tenantry, plan_tenant) -> None:
    """The issue's acceptance test: the CLI in its own process, the app in this one."""
    running = Tenantry(config_db.settings(tenant_cache_ttl=3600.0), config=AppConfig)
    env = {
        **os.environ,
        "TENANTRY_DATABASE_URL": config_db.url,
        "TENANTRY_OWNER_ROLE": config_db.owner,
        "TENANTRY_RUNTIME_ROLE": config_db.runtime,
        "TENANTRY_READER_ROLE": config_db.reader,
        "TENANTRY_CONFIG": "tests.config.app_config:AppConfig",
    }

    def tenantry_cli(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "tenantry.cli.main", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr

    try:
        t = plan_tenant()
        key = f"cli-{uuid.uuid4().hex[:8]}"
        tenantry_cli("flags", "create", key)
        with running.tenant(t.slug):
            assert not running.flags.enabled(key)
            assert running.config.current(AppConfig).limits.max_projects == 10
        assert running._listener is not None and running._listener.listening.wait(5)
        time.sleep(0.6)  # let the entries loaded before the listener connected lapse
        with running.tenant(t.slug):
            running.flags.enabled(key)
            running.config.current()

        def flag_on() -> None:
            with running.tenant(t.slug):
                assert running.flags.enabled(key)

        def config_seen() -> None:
            with running.tenant(t.slug):
                assert running.config.current(AppConfig).limits.max_projects == 123

        tenantry_cli("flags", "set", key, "--rollout", "100")
        assert eventually(flag_on) < 1.0
        tenantry_cli("config", "set", "limits.max_projects", "123", "--tenant", t.slug)
        assert eventually(config_seen) < 1.0
    finally:
        running.close()
