"""The pure side of configuration: paths, merging, overrides in time, validation, diffs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel, ConfigDict

from tenantry import ConfigInvalid, ConfigSections, ConfigurationError, InvalidInput
from tenantry.core.durations import parse_duration
from tenantry.tenant_config import layers as core
from tenantry.tenant_config.schema import validate
from tests.config.app_config import AppConfig, BillingSection

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _at(minutes: int) -> str:
    return (NOW + timedelta(minutes=minutes)).isoformat()


@pytest.mark.parametrize("key", ["", ".", "a..b", "a.", "1a", "a b", "a;drop", "x" * 65, ".".join(["a"] * 17), "a.$b"])
def test_bad_paths_are_refused(key: str) -> None:
    with pytest.raises(InvalidInput, match="config key"):
        core.parse_path(key)


def test_set_and_unset_paths_copy() -> None:
    doc = {"limits": {"max_projects": 1}, "welcome": "x"}
    changed = core.set_path(doc, ("limits", "max_users"), 3)
    assert changed == {"limits": {"max_projects": 1, "max_users": 3}, "welcome": "x"}
    assert doc == {"limits": {"max_projects": 1}, "welcome": "x"}  # untouched
    gone, found = core.unset_path(changed, ("limits", "max_projects"))
    assert found and gone == {"limits": {"max_users": 3}, "welcome": "x"}
    emptied, _ = core.unset_path({"a": {"b": {"c": 1}}, "d": 1}, ("a", "b", "c"))
    assert emptied == {"d": 1}
    same, found = core.unset_path(doc, ("nope", "x"))
    assert not found and same == doc
    with pytest.raises(ConfigInvalid, match="welcome is not an object"):
        core.set_path(doc, ("welcome", "x"), 1)


def test_merge_objects_key_by_key_and_replace_the_rest() -> None:
    plan = {"limits": {"max_projects": 5, "max_users": 2}, "tags": ["a"]}
    tenant = {"limits": {"max_projects": 50}, "tags": ["b"]}
    assert core.merge(plan, tenant) == {"limits": {"max_projects": 50, "max_users": 2}, "tags": ["b"]}


def test_overrides_apply_until_they_expire() -> None:
    overrides = {
        "limits.max_projects": {"value": 99, "expires_at": _at(10)},
        "limits": {"value": {"max_users": 7}, "expires_at": _at(5)},
        "welcome": {"value": "gone", "expires_at": _at(-1)},
    }
    doc, until = core.resolve({"welcome": "plan"}, {"limits": {"max_projects": 1}}, overrides, NOW)
    # the shallower override applies first, the deeper one on top of it
    assert doc == {"welcome": "plan", "limits": {"max_users": 7, "max_projects": 99}}
    assert until == NOW + timedelta(minutes=5)
    doc, until = core.resolve({}, {"limits": {"max_projects": 1}}, overrides, NOW + timedelta(minutes=6))
    assert doc == {"limits": {"max_projects": 99}} and until == NOW + timedelta(minutes=10)
    doc, until = core.resolve({}, {"limits": {"max_projects": 1}}, overrides, NOW + timedelta(minutes=10))
    assert doc == {"limits": {"max_projects": 1}} and until is None
    assert core.moments(overrides, NOW) == [NOW, NOW + timedelta(minutes=5), NOW + timedelta(minutes=10)]


def test_durations() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("1d12h") == timedelta(hours=36)
    assert parse_duration("2h") == timedelta(hours=2)
    for bad in ("", "2", "h", "-2h", "2x", "0s", "2h;", "1.5h"):
        with pytest.raises(InvalidInput):
            parse_duration(bad)


def test_values_from_the_command_line() -> None:
    assert core.parse_value("50") == 50
    assert core.parse_value("true") is True
    assert core.parse_value('{"a": [1]}') == {"a": [1]}
    assert core.parse_value("dark") == "dark"
    assert core.parse_value('"50"') == "50"


def test_validation_names_every_bad_path() -> None:
    with pytest.raises(ConfigInvalid) as caught:
        validate(AppConfig, {"limits": {"max_projects": "many", "max_users": 0, "typo": 1}, "nope": 2, "tags": [1]})
    problems = caught.value.problems
    assert "limits.max_projects: Input should be a valid integer, unable to parse string as an integer" in problems
    assert any(p.startswith("limits.max_users: Input should be greater than or equal to 1") for p in problems)
    assert "limits.typo: Extra inputs are not permitted" in problems
    assert "nope: Extra inputs are not permitted" in problems
    assert "tags[0]: Input should be a valid string" in problems
    assert "limits.max_projects" in str(caught.value)


def test_models_that_allow_extra_keys_keep_them() -> None:
    class Open(BaseModel):
        model_config = ConfigDict(extra="allow")
        a: int = 1

    assert validate(Open, {"a": 2, "b": 3}).model_dump() == {"a": 2, "b": 3}


def test_sections_compose_a_frozen_subclass_of_the_app_model() -> None:
    sections = ConfigSections(AppConfig)
    sections.add("billing", BillingSection)
    sections.add("billing", BillingSection)  # the same again: a no-op
    schema = sections.schema()
    value = schema.model_validate({"billing": {"seats": 3}})
    assert isinstance(value, AppConfig)
    assert value.billing == BillingSection(seats=3)  # type: ignore[attr-defined]
    assert value.limits.max_projects == 10
    with pytest.raises(Exception, match="frozen"):
        value.welcome = "changed"  # type: ignore[misc]
    with pytest.raises(ConfigInvalid, match="billing.currency"):
        validate(schema, {"billing": {"currency": "GBP"}})
    with pytest.raises(ConfigurationError, match="clashes"):
        sections.add("limits", BillingSection)
    with pytest.raises(ConfigurationError, match="another model"):
        sections.add("billing", AppConfig)
    with pytest.raises(ConfigurationError, match="identifier"):
        sections.add("bad-name", BillingSection)


def test_no_schema_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no config schema"):
        ConfigSections().schema()


def test_a_section_without_defaults_is_required() -> None:
    class Needs(BaseModel):
        token: str

    sections = ConfigSections(AppConfig)
    sections.add("needs", Needs)
    with pytest.raises(ConfigInvalid, match="needs: Field required"):
        validate(sections.schema(), {})


def test_diff_lists_values_and_overrides() -> None:
    before = ({"limits": {"max_projects": 1}, "welcome": "a"}, {})
    after = (
        {"limits": {"max_projects": 2}, "tags": ["x"]},
        {"welcome": {"value": "b", "expires_at": _at(5)}},
    )
    changes = {(c.path, c.layer): c.to_dict() for c in core.diff(before, after)}
    assert changes[("limits.max_projects", "value")] == {
        "path": "limits.max_projects",
        "layer": "value",
        "change": "changed",
        "before": 1,
        "after": 2,
    }
    assert changes[("welcome", "value")]["change"] == "removed"
    assert changes[("tags", "value")]["change"] == "added"
    assert changes[("welcome", "override")]["after"]["value"] == "b"
    assert core.diff(before, before) == []
    # 1 and true differ, though Python says 1 == True
    assert core.diff(({"a": 1}, {}), ({"a": True}, {}))


def test_documents_must_be_plain_json() -> None:
    with pytest.raises(InvalidInput, match="not plain JSON"):
        core.check_json({"a": float("nan")}, "x")
    with pytest.raises(InvalidInput, match="not plain JSON"):
        core.check_json({"a": object()}, "x")
    with pytest.raises(InvalidInput, match="bytes"):
        core.check_json({"a": "x" * 300_000}, "x")
