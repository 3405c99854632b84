"""``tenantry tokens`` and ``tenantry api``: the secret printed once, one-line errors."""

from __future__ import annotations

import json
import uuid

import pytest

from tenantry import Tenantry


def test_create_list_revoke(cli, tn: Tenantry) -> None:
    name = f"ci-{uuid.uuid4().hex[:8]}"
    code, out, err = cli(
        "tokens", "create", name, "--scope", "tenants:write", "--scope", "audit:read", "--expires", "30d", "--json"
    )
    assert code == 0, err
    created = json.loads(out)
    assert created["name"] == name and created["scopes"] == ["audit:read", "tenants:write"]
    assert created["expires_at"] is not None and created["token"].startswith("tnt_")
    assert tn.tokens.authenticate(created["token"]).name == name
    code, out, _ = cli("tokens", "list", "--json")
    listed = next(t for t in json.loads(out) if t["name"] == name)
    assert "token" not in listed and created["token"] not in out
    code, out, _ = cli("tokens", "list")
    assert code == 0 and name[:6] in out and created["token"] not in out
    code, out, _ = cli("tokens", "revoke", name, "--json")
    assert code == 0 and json.loads(out)["revoked_at"] is not None
    code, out, _ = cli("tokens", "list", "--json")
    assert name not in {t["name"] for t in json.loads(out)}
    code, out, _ = cli("tokens", "list", "--all", "--json")
    assert name in {t["name"] for t in json.loads(out)}
    entries = tn.audit.list(target_type="token", target=name)
    assert [e.action for e in entries] == ["token.revoke", "token.create"]
    assert {e.actor for e in entries} == {entries[0].actor} and entries[0].actor.startswith("cli:")
    assert all(created["token"] not in json.dumps(e.to_dict()) for e in entries)


def test_create_prints_the_secret_once_for_people(cli) -> None:
    name = f"human-{uuid.uuid4().hex[:8]}"
    code, out, _ = cli("tokens", "create", name, "-s", "admin")
    assert code == 0 and "only this once" in out
    secret = next(line for line in out.splitlines() if line.startswith("tnt_"))
    assert len(secret) == 60


@pytest.mark.parametrize(
    ("args", "exit_code", "fragment"),
    [
        (("tokens", "create", "x-bad-scope", "--scope", "tenants:delete"), 2, "unknown scope"),
        (("tokens", "create", "Bad Name", "--scope", "admin"), 2, "token name"),
        (("tokens", "create", "x-exp", "--scope", "admin", "--expires", "soon"), 2, "duration"),
        (("tokens", "create", "x-exp", "--scope", "admin", "--expires", "0d"), 2, "duration"),
        (("tokens", "revoke", "no-such-token"), 6, "no API token"),
    ],
)
def test_errors_are_one_line(cli, args: tuple[str, ...], exit_code: int, fragment: str) -> None:
    code, _, err = cli(*args)
    assert code == exit_code and fragment in err and err.count("\n") == 1


def test_create_needs_a_scope(cli) -> None:
    code, _, err = cli("tokens", "create", "no-scope")
    assert code == 2 and "--scope" in err


def test_api_serve_is_a_command(cli) -> None:
    code, out, _ = cli("api", "serve", "--help")
    assert code == 0 and "--port" in out and "--host" in out
