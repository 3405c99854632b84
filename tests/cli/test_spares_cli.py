"""``tenantry spares``: fill, list and drop, --json output, one-line errors with exit codes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import pytest

from tenantry import Tenantry
from tenantry.services import spares

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def app_cli(cli: Cli, tn: Tenantry, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:  # noqa: F811
    """The CLI with the model app configured, and no spares before or after."""
    monkeypatch.setenv("TENANTRY_APP", "tests.model_app:Base")
    tn.spares.drop()
    yield cli
    tn.spares.drop()


def test_fill_list_claim_drop_json(app_cli: Cli) -> None:
    code, out, err = app_cli("spares", "fill", "--count", "2", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert {k: report[k] for k in ("tier", "cell", "target", "built", "resumed", "dropped", "ready")} == {
        "tier": "schema",
        "cell": "primary",
        "target": 2,
        "built": 2,
        "resumed": 0,
        "dropped": 0,
        "ready": 2,
    }
    code, out, _ = app_cli("spares", "list", "--json")
    listed = json.loads(out)
    assert code == 0 and [(s["tier"], s["status"], s["current"]) for s in listed] == [("schema", "ready", True)] * 2
    assert all(s["schema"] == f"tenant_{uuid.UUID(s['id']).hex}" and s["database"] is None for s in listed)
    code, out, _ = app_cli("tenants", "create", f"cli-{uuid.uuid4().hex[:8]}", "--plan", "business", "--json")
    assert code == 0 and json.loads(out)["id"] == listed[0]["id"]  # the oldest spare
    code, out, _ = app_cli("spares", "fill", "--count", "2", "--json")
    assert code == 0 and (json.loads(out)["built"], json.loads(out)["ready"]) == (1, 2)
    code, out, _ = app_cli("spares", "drop", "--stale", "--json")
    assert code == 0 and (json.loads(out)["dropped"], json.loads(out)["ready"]) == (0, 2)
    code, out, _ = app_cli("spares", "drop", "--json")
    assert code == 0 and json.loads(out)["dropped"] == 2
    code, out, _ = app_cli("spares", "list", "--json")
    assert code == 0 and json.loads(out) == []


def test_database_tier_spares(app_cli: Cli) -> None:
    code, out, err = app_cli("spares", "fill", "--tier", "database", "--cell", "primary", "--count", "1", "--json")
    assert code == 0, err
    code, out, _ = app_cli("spares", "list", "--tier", "database", "--json")
    [spare] = json.loads(out)
    assert spare["database"] == f"tenant_{uuid.UUID(spare['id']).hex}" and spare["cell"] == "primary"
    code, out, _ = app_cli("tenants", "create", f"cli-{uuid.uuid4().hex[:8]}", "--plan", "enterprise", "--json")
    assert code == 0 and json.loads(out)["id"] == spare["id"]


def test_text_output(app_cli: Cli) -> None:
    code, out, _ = app_cli("spares", "list")
    assert code == 0 and "no spares" in out
    code, out, _ = app_cli("spares", "fill", "-n", "1")
    assert code == 0 and out.startswith("1 schema spare(s) ready on cell primary: built 1")
    code, out, _ = app_cli("spares", "list")
    assert code == 0 and "ready" in out and "yes" in out and "1 spare(s), 1 ready to be claimed" in out
    code, out, _ = app_cli("spares", "drop")
    assert code == 0 and out.startswith("dropped 1 spare(s)")


def test_fill_uses_the_setting(app_cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENANTRY_SPARE_SCHEMAS", "1")
    code, out, _ = app_cli("spares", "fill", "--json")
    assert code == 0 and json.loads(out)["ready"] == 1


@pytest.mark.parametrize(
    ("args", "exit_code", "fragment"),
    [
        (("spares", "fill", "--tier", "pooled", "--count", "1"), 2, "need no spares"),
        (("spares", "fill", "--tier", "database"), 2, "say how many"),
        (("spares", "fill", "--tier", "x'; drop table tenantry.spares; --", "--count", "1"), 2, "no tier named"),
        (("spares", "fill", "--count", "1", "--cell", "other"), 2, "primary cell"),
        (("spares", "fill", "--count", str(spares.MAX_SPARES + 1)), 2, "between 0 and"),
        (("spares", "fill", "--tier", "database", "--cell", "nowhere", "--count", "1"), 6, "no cell named"),
        (("spares", "list", "--tier", "gold"), 2, "no tier named"),
        (("spares", "drop", "--tier", "pooled"), 2, "need no spares"),
    ],
)
def test_bad_input_is_one_line(
    app_cli: Cli, tn: Tenantry, args: tuple[str, ...], exit_code: int, fragment: str
) -> None:
    code, out, err = app_cli(*args)
    assert code == exit_code, err
    assert fragment in err and err.startswith("error:") and err.count("\n") == 1
    assert "Traceback" not in out + err
    assert tn.spares.list() == []


def test_negative_count_is_a_usage_error(app_cli: Cli) -> None:
    code, _, err = app_cli("spares", "fill", "--count", "-1")
    assert code == 2 and "Traceback" not in err


def test_a_running_fill_is_a_conflict(app_cli: Cli, tn: Tenantry) -> None:
    with tn.admin() as conn:
        conn.execute("SELECT pg_advisory_lock(%s, 0)", (spares._LOCK_CLASS,))
        try:
            code, _, err = app_cli("spares", "fill", "--count", "1")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, 0)", (spares._LOCK_CLASS,))
    assert code == 7 and "running" in err and err.count("\n") == 1


def test_fill_without_the_app_is_a_configuration_error(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.delenv("TENANTRY_APP", raising=False)
    code, _, err = cli("spares", "fill", "--count", "1")
    assert code == 2 and "no app metadata" in err and err.count("\n") == 1
