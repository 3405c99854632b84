"""``tenantry plugins``: list, enable, disable, reset, errors, deploy; JSON for scripts, one
line and an exit code for bad input, and nothing saved by a refused command."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import psycopg
import pytest

from tenantry import Tenant, Tenantry
from tenantry.cli.main import main
from tests.support import Scratch


@pytest.fixture
def cli(plugins_db: Scratch, ptn: Tenantry, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    for name in ("TENANTRY_PLUGINS", "TENANTRY_APP", "TENANTRY_CONFIG", "TENANTRY_MIGRATIONS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TENANTRY_DATABASE_URL", plugins_db.url)
    monkeypatch.setenv("TENANTRY_OWNER_ROLE", plugins_db.owner)
    monkeypatch.setenv("TENANTRY_RUNTIME_ROLE", plugins_db.runtime)
    monkeypatch.setenv("TENANTRY_READER_ROLE", plugins_db.reader)
    monkeypatch.setenv("TENANTRY_SECRET_KEYS", plugins_db.secret_keys)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def _settings(db: Scratch) -> list[tuple[object, ...]]:
    with psycopg.connect(db.url) as conn:
        return conn.execute(
            "SELECT plugin, plan, tenant_id, enabled FROM tenantry.plugin_enablement ORDER BY 1, 2, 3"
        ).fetchall()


def test_enable_disable_reset(cli, ptenant: Callable[..., Tenant], ptn: Tenantry) -> None:  # type: ignore[no-untyped-def]
    tenant = ptenant()
    code, out, err = cli("plugins", "enable", "webhooks", "--tenant", tenant.slug, "--json")
    assert code == 0, err
    assert json.loads(out) | {} == {
        "plugin": "webhooks",
        "scope": "tenant",
        "target": tenant.slug,
        "plan": "free",
        "tenant_id": str(tenant.id),
        "before": None,
        "after": True,
        "changed": True,
    }
    code, out, _ = cli("plugins", "enable", "webhooks", "--tenant", tenant.slug)
    assert code == 0 and out.strip() == f"webhooks for tenant {tenant.slug}: already on; nothing changed"
    code, out, _ = cli("plugins", "disable", "webhooks", "--tenant", tenant.slug)
    assert code == 0 and out.strip() == f"webhooks for tenant {tenant.slug}: on -> off"
    with ptn.tenant(tenant.slug):
        assert not ptn.plugins.is_enabled("webhooks")
    code, out, _ = cli("plugins", "reset", "webhooks", "--tenant", tenant.slug, "--json")
    assert code == 0 and json.loads(out)["after"] is None
    code, out, _ = cli("plugins", "list", "--tenant", tenant.slug, "--json")
    webhooks = next(p for p in json.loads(out) if p["name"] == "webhooks")
    assert webhooks["tenant"] == {"tenant": tenant.slug, "plugin": "webhooks", "enabled": False, "source": "default"}
    assert webhooks["source"].startswith("entry point of tenantry") and not webhooks["registered"]
    assert webhooks["capabilities"] == ["lifecycle", "config", "tables", "routes", "flags"]


def test_list_shows_where_plugins_are_on(cli, ptenant: Callable[..., Tenant], ptn: Tenantry) -> None:  # type: ignore[no-untyped-def]
    tenant = ptenant(plan="business")
    ptn.plugins.enable(
        "notes", tenant=tenant.slug
    )  # registered in the app only: the CLI knows its name from the catalog
    code, out, err = cli("plugins", "list")
    assert code == 0, err
    assert "webhooks" in out and "notes" in out and "+tenant" in out
    code, out, _ = cli("plugins", "list", "--json")
    notes = next(p for p in json.loads(out) if p["name"] == "notes")
    assert notes["source"] == "unknown (not installed here)"
    assert any(s["target"] == tenant.slug and s["enabled"] for s in notes["enabled_for"])


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("plugins", "enable", "nope", "--tenant", "{slug}"), 6, "no plugin 'nope' is registered or installed"),
        (("plugins", "enable", "Bad!", "--tenant", "{slug}"), 2, "plugin name 'Bad!' must be"),
        (("plugins", "enable", "webhooks"), 2, "name exactly one layer: a tenant or a plan"),
        (("plugins", "enable", "webhooks", "--tenant", "{slug}", "--plan", "free"), 2, "exactly one"),
        (("plugins", "enable", "webhooks", "--tenant", "ghost-tenant"), 6, "ghost-tenant"),
        (("plugins", "disable", "webhooks", "--plan", "platinum"), 6, "platinum"),
        (("plugins", "list", "--tenant", "ghost-tenant"), 6, "ghost-tenant"),
        (("plugins", "errors", "--tenant", "ghost-tenant"), 6, "ghost-tenant"),
    ],
)
def test_bad_input_is_one_line_and_saves_nothing(  # type: ignore[no-untyped-def]
    cli, ptenant: Callable[..., Tenant], plugins_db: Scratch, args: tuple[str, ...], code: int, message: str
) -> None:
    tenant = ptenant()
    before = _settings(plugins_db)
    got, out, err = cli(*(a.format(slug=tenant.slug) for a in args))
    assert got == code and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert _settings(plugins_db) == before


def test_errors_and_deploy(cli, ptenant: Callable[..., Tenant], ptn: Tenantry, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    tenant = ptenant()
    ptn.plugins.enable("exploder", tenant=tenant.slug)
    ptn.suspend(tenant.slug)
    code, out, _ = cli("plugins", "errors", "--tenant", tenant.slug, "--json")
    assert code == 0
    assert [(e["plugin"], e["hook"], e["count"]) for e in json.loads(out)] == [("exploder", "on_tenant_suspended", 1)]
    code, out, _ = cli("plugins", "errors", "--tenant", tenant.slug)
    assert "boom on" in out
    code, out, _ = cli("plugins", "deploy")
    assert code == 0 and "no registered plugin has tables" in out
    monkeypatch.setenv("TENANTRY_PLUGINS", "webhooks,tests.plugins.sample_plugins:Notes")
    code, out, err = cli("plugins", "deploy", "--json")
    assert code == 0, err
    done = json.loads(out)
    assert done[0]["placement"] == "pooled" and all(d["created"] == [] for d in done)  # every placement has them


def test_a_cli_change_reaches_the_apps_hooks_and_runs_them_itself_with_the_plugins(  # type: ignore[no-untyped-def]
    cli, ptenant: Callable[..., Tenant], ptn: Tenantry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change made by a CLI that runs no plugins is queued and delivered by the app's hook
    runner; a CLI given TENANTRY_PLUGINS runs the hooks itself, before it exits."""
    from sqlalchemy.orm import Session

    from tenantry.contrib.webhooks import Delivery

    tenant = ptenant()
    ptn.plugins.enable("webhooks", tenant=tenant.slug)
    ptn.config.set(
        "webhooks",
        {"url": "https://hooks.example/x", "secret": "whsec_Y2xpLXRlc3Qtd2ViaG9vay1zZWNyZXQtMzItYnl0ZXM="},
        tenant=tenant.slug,
    )

    def events() -> list[str]:
        with ptn.tenant(tenant.slug, allow_inactive=True), Session(ptn.engine()) as session:
            return [d.event for d in session.query(Delivery).order_by(Delivery.id)]

    events()  # the app is serving: its catalog listener and hook runner are up
    assert ptn.plugins._runner is not None and ptn.plugins._runner.alive
    assert cli("tenants", "suspend", tenant.slug)[0] == 0  # this CLI runs no plugins
    deadline = time.monotonic() + 5
    while events() != ["tenant.suspended"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert events() == ["tenant.suspended"]  # the app ran the hook
    [call] = ptn.plugins.hooks(plugin="webhooks", tenant=tenant.slug)
    assert (call.event, call.status, call.claimed_by) == ("suspended", "done", ptn.plugins._delivery.worker)
    monkeypatch.setenv("TENANTRY_PLUGINS", "webhooks")
    assert cli("tenants", "resume", tenant.slug)[0] == 0
    assert events() == ["tenant.suspended", "tenant.resumed"]  # at once: the CLI ran it
    newest = ptn.plugins.hooks(plugin="webhooks", tenant=tenant.slug)[0]
    assert (newest.event, newest.status) == ("resumed", "done")
    assert newest.claimed_by != ptn.plugins._delivery.worker


def test_hooks_cli_lists_runs_retries_and_purges_queued_calls(  # type: ignore[no-untyped-def]
    cli, ptenant: Callable[..., Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.plugins.sample_plugins import QUEUED

    spec = "tests.plugins.sample_plugins:QUEUED"
    QUEUED.calls.clear()  # one object for both backends' runs
    tenant = ptenant()
    code, _out, err = cli("plugins", "hooks", "run")
    assert code != 0 and "TENANTRY_PLUGINS" in err and "Traceback" not in err  # no plugin runs here
    monkeypatch.setenv("TENANTRY_PLUGINS", spec)
    code, out, err = cli("plugins", "hooks", "run")  # a worker subscribes its plugins
    assert code == 0 and "no call was due" in out, err
    assert cli("plugins", "enable", "cliq", "--tenant", tenant.slug)[0] == 0
    monkeypatch.delenv("TENANTRY_PLUGINS")
    assert cli("tenants", "suspend", tenant.slug)[0] == 0  # made without the plugin: queued
    code, out, _ = cli("plugins", "hooks", "list", "--plugin", "cliq", "--json")
    listed = json.loads(out)
    [call] = listed["calls"]
    assert (call["event"], call["tenant"], call["status"]) == ("suspended", tenant.slug, "pending")
    assert listed["counts"]["cliq"] == {"pending": 1} and QUEUED.calls == []

    monkeypatch.setenv("TENANTRY_PLUGINS", spec)
    QUEUED.fail_for = {tenant.slug}
    code, out, _ = cli("plugins", "hooks", "run", "--json")
    assert code == 0 and json.loads(out) == {"done": 0, "retrying": 0, "failed": 1, "skipped": 0}
    code, out, _ = cli("plugins", "hooks", "list", "--status", "failed", "--plugin", "cliq")
    assert code == 0 and "cliq: 1 failed" in out
    code, out, _ = cli("plugins", "hooks", "list", "--status", "failed", "--plugin", "cliq", "--json")
    [failed] = json.loads(out)["calls"]
    assert failed["id"] == call["id"] and "cannot reach its endpoint" in failed["last_error"]
    QUEUED.fail_for = set()
    code, out, _ = cli("plugins", "hooks", "retry", str(call["id"]))
    assert code == 0 and "1 failed call(s) queued again" in out
    code, out, _ = cli("plugins", "hooks", "run")
    assert code == 0 and "1 done" in out and QUEUED.calls == [tenant.slug]

    code, _out, err = cli("plugins", "hooks", "retry")
    assert code != 0 and "say which failed calls" in err
    code, _out, err = cli("plugins", "hooks", "list", "--status", "bogus")
    assert code != 0 and "unknown status" in err and "Traceback" not in err
    code, _out, err = cli("plugins", "hooks", "purge", "--older-than", "soon")
    assert code != 0 and "duration" in err
    time.sleep(1.1)
    code, out, _ = cli("plugins", "hooks", "purge", "--older-than", "1s", "--json")
    assert code == 0 and json.loads(out)["deleted"] >= 1
    code, out, _ = cli("plugins", "hooks", "list", "--plugin", "cliq", "--json")
    assert json.loads(out)["calls"] == []

    monkeypatch.delenv("TENANTRY_PLUGINS")  # the plugin is removed from the app
    code, out, _ = cli("plugins", "hooks", "unsubscribe", "cliq", "--json")
    assert code == 0 and json.loads(out) == {"plugin": "cliq", "events": 1, "skipped": 0}
    code, out, _ = cli("plugins", "hooks", "unsubscribe", "cliq")
    assert code == 0 and "nothing changed" in out
    code, _out, err = cli("plugins", "hooks", "unsubscribe", "Bad_Name")
    assert code != 0 and "plugin name" in err and "Traceback" not in err
