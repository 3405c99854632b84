"""Flags through the OpenFeature standard API, served by TenantryProvider."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from tenantry import Tenantry, TenantryProvider
from tenantry.tenant_config.evaluation import bucket


@pytest.fixture
def client(ctn: Tenantry) -> Iterator[object]:
    api.set_provider(TenantryProvider(ctn))
    yield api.get_client()
    api.clear_providers()


def _key() -> str:
    return f"of-{uuid.uuid4().hex[:8]}"


def test_boolean_and_multivariate_through_the_client(ctn: Tenantry, client, plan_tenant) -> None:
    t, other = plan_tenant(), plan_tenant()
    on = _key()
    ctn.flags.create(
        {"key": on, "rules": [{"when": [{"attribute": "tenant", "op": "eq", "value": t.slug}], "variant": "on"}]}
    )
    theme = _key()
    ctn.flags.create(
        {
            "key": theme,
            "kind": "multivariate",
            "variants": {"light": "light", "dark": "dark", "n": 3, "cfg": {"a": [1]}},
            "default": "light",
            "rules": [{"when": [{"attribute": "user", "op": "eq", "value": "u1"}], "variant": "dark"}],
        },
    )
    with ctn.tenant(t.slug):
        details = client.get_boolean_details(on, False)
        assert (details.value, details.variant, details.reason) == (True, "on", Reason.TARGETING_MATCH)
        assert details.flag_metadata == {"rule": 0}
        assert client.get_string_value(theme, "x") == "light"
        assert client.get_string_value(theme, "x", EvaluationContext(targeting_key="u1")) == "dark"
    with ctn.tenant(other.slug):
        assert client.get_boolean_value(on, True) is False


def test_errors_fall_back_to_the_callers_default(ctn: Tenantry, client, plan_tenant) -> None:
    t = plan_tenant()
    key = _key()
    ctn.flags.create({"key": key, "rollout": 100})
    with ctn.tenant(t.slug):
        missing = client.get_boolean_details("of-no-such-flag", True)
        assert (missing.value, missing.error_code) == (True, ErrorCode.FLAG_NOT_FOUND)
        mismatch = client.get_string_details(key, "dflt")
        assert (mismatch.value, mismatch.error_code) == ("dflt", ErrorCode.TYPE_MISMATCH)
        assert client.get_integer_details(key, 7).error_code == ErrorCode.TYPE_MISMATCH  # true is no integer
    unbound = client.get_boolean_details(key, False)
    assert (unbound.value, unbound.error_code) == (False, ErrorCode.INVALID_CONTEXT)


def test_tenant_attribute_when_none_is_bound_and_never_against_the_binding(ctn: Tenantry, client, plan_tenant) -> None:
    a, b = plan_tenant(), plan_tenant()
    key = _key()
    ctn.flags.create(
        {"key": key, "rules": [{"when": [{"attribute": "tenant", "op": "eq", "value": b.slug}], "variant": "on"}]}
    )
    assert client.get_boolean_value(key, False, EvaluationContext(attributes={"tenant": b.slug})) is True
    assert client.get_boolean_value(key, True, EvaluationContext(attributes={"tenant": str(a.id)})) is False
    with ctn.tenant(a.slug):
        spoof = client.get_boolean_details(key, False, EvaluationContext(attributes={"tenant": b.slug}))
        assert (spoof.value, spoof.error_code) == (False, ErrorCode.INVALID_CONTEXT)
        same = client.get_boolean_details(key, True, EvaluationContext(attributes={"tenant": a.slug}))
        assert (same.value, same.error_code) == (False, None)


def test_numbers_objects_and_per_user_rollout(ctn: Tenantry, client, plan_tenant) -> None:
    t = plan_tenant()
    key = _key()
    ctn.flags.create(
        {
            "key": key,
            "kind": "multivariate",
            "variants": {"small": 5, "big": 50},
            "default": "small",
            "rollout": {"small": 50, "big": 50},
        },
    )
    obj = _key()
    ctn.flags.create({"key": obj, "kind": "multivariate", "variants": {"v": {"a": [1, 2]}}, "default": "v"})
    with ctn.tenant(t.slug):
        for user in ("u1", "u2", "u3", "u4"):
            expected = 50 if bucket(key, str(t.id), user) < 5000 else 5  # "big" sorts first
            context = EvaluationContext(targeting_key=user)
            assert client.get_integer_value(key, 0, context) == expected
            assert client.get_float_value(key, 0.0, context) == float(expected)
            assert client.get_integer_details(key, 0, context).reason == Reason.SPLIT
        assert client.get_object_value(obj, {}) == {"a": [1, 2]}
