"""The pure flag evaluator: definitions, rules, rollouts, kill switch, schedule, stability."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest

from tenantry import ConfigInvalid, InvalidInput
from tenantry.tenant_config import evaluation as core

TENANT = "7d7c9a52-8d0b-4a4e-9d5e-0f7b3c1e2a11"
ATTRS = {
    "tenant": "acme",
    "tenant_id": TENANT,
    "plan": "business",
    "region": "eu",
    "config": {"limits": {"max_projects": 30}},
    "created_at": datetime(2024, 6, 1, tzinfo=UTC),
}


def _flag(**definition):
    return core.compile_flag(core.parse_spec({"key": "f", **definition}))


def _eval(flag, attrs=ATTRS, now=0.0, user=None, tenant=TENANT):
    return core.evaluate(flag, tenant, attrs, now, user)


def test_boolean_flags_start_off() -> None:
    spec = core.parse_spec({"key": "new-ui"})
    assert (spec.variants, spec.default, spec.off, spec.rollout) == ({"on": True, "off": False}, "off", "off", None)
    result, until = _eval(core.compile_flag(spec))
    assert (result.value, result.variant, result.reason, until) == (False, "off", "DEFAULT", None)


@pytest.mark.parametrize(
    ("definition", "fragment"),
    [
        ({"key": "Bad Key"}, "key: must be"),
        ({"key": "f", "kind": "tristate"}, "kind: Input should be 'boolean' or 'multivariate'"),
        ({"key": "f", "variants": {"yes": True}}, "variants are fixed"),
        ({"key": "f", "off": "on"}, "off (false) while killed"),
        ({"key": "f", "kind": "multivariate", "variants": {"a": 1}}, "needs a default variant"),
        ({"key": "f", "kind": "multivariate", "variants": {}, "default": "a"}, "1 to 100 variants"),
        ({"key": "f", "kind": "multivariate", "variants": {"a": 1}, "default": "b"}, "default names 'b'"),
        ({"key": "f", "kind": "multivariate", "variants": {"a b": 1}, "default": "a b"}, "variant name"),
        ({"key": "f", "rollout": 120}, "percentage"),
        ({"key": "f", "rollout": {"on": 30, "off": 60}}, "add up to 100"),
        ({"key": "f", "rollout": {"on": 33.333, "off": 66.667}}, "at most 2 decimals"),
        ({"key": "f", "rollout": {"maybe": 100}}, "'maybe', which is not a variant"),
        ({"key": "f", "rules": [{"when": [], "variant": "on", "rollout": 5}]}, "rules[0]: a rule serves either"),
        ({"key": "f", "rules": [{"when": [], "variant": "nope"}]}, "rules[0].variant names 'nope'"),
        (
            {"key": "f", "rules": [{"when": [{"attribute": "plan", "op": "like", "value": "x"}], "variant": "on"}]},
            "rules[0].when[0].op",
        ),
        (
            {"key": "f", "rules": [{"when": [{"attribute": "plan", "op": "in", "value": "x"}], "variant": "on"}]},
            "rules[0].when[0]: 'in' takes a list",
        ),
        (
            {"key": "f", "rules": [{"when": [{"attribute": "a;b", "op": "eq", "value": "x"}], "variant": "on"}]},
            "rules[0].when[0].attribute",
        ),
        (
            {"key": "f", "rules": [{"when": [{"attribute": "n", "op": "gt", "value": "3"}], "variant": "on"}]},
            "'gt' takes a number",
        ),
        (
            {
                "key": "f",
                "rules": [{"when": [{"attribute": "created_at", "op": "before", "value": "soon"}], "variant": "on"}],
            },
            "ISO 8601",
        ),
        ({"key": "f", "rules": [{"variant": "on", "extra": 1}]}, "rules[0].extra: Extra inputs are not permitted"),
        (
            {"key": "f", "enable_at": "2030-01-02T00:00:00Z", "disable_at": "2030-01-01T00:00:00Z"},
            "enable_at must come before",
        ),
        ({"key": "f", "enable_at": "2030-01-02T00:00:00"}, "enable_at: Input should have timezone info"),
        ({"key": "f", "surprise": 1}, "surprise: Extra inputs are not permitted"),
    ],
)
def test_bad_definitions_name_the_path(definition, fragment) -> None:
    with pytest.raises(ConfigInvalid) as caught:
        core.parse_spec(definition)
    assert any(fragment in p for p in caught.value.problems), caught.value.problems


def test_flag_keys() -> None:
    assert core.check_key("checkout.v2_new-ui") == "checkout.v2_new-ui"
    for bad in ("", "Upper", "-x", "a" * 101, "a b", "a'; drop", "ü"):
        with pytest.raises(InvalidInput):
            core.check_key(bad)


def test_rules_in_order_first_match_wins() -> None:
    flag = _flag(
        kind="multivariate",
        variants={"red": "#f00", "green": "#0f0", "blue": "#00f"},
        default="blue",
        rules=[
            {"when": [{"attribute": "plan", "op": "in", "value": ["enterprise"]}], "variant": "red"},
            {
                "when": [
                    {"attribute": "region", "op": "eq", "value": "eu"},
                    {"attribute": "config.limits.max_projects", "op": "gte", "value": 20},
                ],
                "variant": "green",
            },
            {"when": [], "variant": "red"},
        ],
    )
    result, _ = _eval(flag)
    assert (result.value, result.variant, result.reason, result.rule) == ("#0f0", "green", "TARGETING_MATCH", 1)
    result, _ = _eval(flag, {**ATTRS, "config": {"limits": {"max_projects": 3}}})
    assert (result.variant, result.rule) == ("red", 2)
    result, _ = _eval(flag, {**ATTRS, "plan": "enterprise"})
    assert result.rule == 0


@pytest.mark.parametrize(
    ("condition", "matches"),
    [
        ({"attribute": "tenant", "op": "in", "value": ["acme", "globex"]}, True),
        ({"attribute": "tenant", "op": "not_in", "value": ["acme"]}, False),
        ({"attribute": "plan", "op": "ne", "value": "free"}, True),
        ({"attribute": "config.limits.max_projects", "op": "lt", "value": 30}, False),
        ({"attribute": "config.limits.max_projects", "op": "lte", "value": 30}, True),
        ({"attribute": "config.limits.max_projects", "op": "eq", "value": 30}, True),
        ({"attribute": "config.limits.max_projects", "op": "eq", "value": "30"}, False),
        ({"attribute": "config.limits.missing", "op": "ne", "value": 1}, False),
        ({"attribute": "nothing", "op": "not_in", "value": ["x"]}, False),
        ({"attribute": "created_at", "op": "after", "value": "2024-01-01T00:00:00Z"}, True),
        ({"attribute": "created_at", "op": "before", "value": "2024-01-01"}, False),
        ({"attribute": "tenant", "op": "starts_with", "value": "ac"}, True),
        ({"attribute": "tenant", "op": "ends_with", "value": "me"}, True),
        ({"attribute": "tenant", "op": "contains", "value": "zz"}, False),
        ({"attribute": "config.limits", "op": "contains", "value": "max"}, False),
        ({"attribute": "flag", "op": "eq", "value": 1}, False),  # True == 1 in Python, not here
    ],
)
def test_condition_operators(condition, matches: bool) -> None:
    flag = _flag(rules=[{"when": [condition], "variant": "on"}])
    attrs = {**ATTRS, "flag": True}
    assert _eval(flag, attrs)[0].value is matches


def test_kill_switch_and_schedule() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    end = datetime(2030, 2, 1, tzinfo=UTC).timestamp()
    flag = _flag(rollout=100, enable_at="2030-01-01T00:00:00Z", disable_at="2030-02-01T00:00:00+00:00")
    result, until = _eval(flag, now=start - 1)
    assert (result.value, result.reason, until) == (False, "DISABLED", start)
    result, until = _eval(flag, now=start)
    assert (result.value, result.reason, until) == (True, "SPLIT", end)
    result, until = _eval(flag, now=end)
    assert (result.value, result.reason, until) == (False, "DISABLED", None)
    killed = _flag(rollout=100, killed=True, rules=[{"when": [], "variant": "on"}])
    assert _eval(killed)[0].reason == "DISABLED" and _eval(killed)[0].value is False
    multi = _flag(
        kind="multivariate", variants={"a": 1, "b": 2, "c": 3}, default="a", off="c", rollout={"b": 100}, killed=True
    )
    assert _eval(multi)[0].variant == "c"
    multi = _flag(kind="multivariate", variants={"a": 1, "b": 2}, default="a", rollout={"b": 100}, killed=True)
    assert _eval(multi)[0].variant == "a"  # off defaults to the default variant


def test_rollout_distribution_over_ten_thousand_tenants() -> None:
    flag = _flag(
        kind="multivariate", variants={"a": 1, "b": 2, "c": 3}, default="a", rollout={"a": 10, "b": 25.5, "c": 64.5}
    )
    counts = {"a": 0, "b": 0, "c": 0}
    for n in range(10_000):
        counts[_eval(flag, tenant=str(uuid.UUID(int=n * 7919 + 13)))[0].variant] += 1
    assert 850 <= counts["a"] <= 1150
    assert 2350 <= counts["b"] <= 2750
    assert 6250 <= counts["c"] <= 6650


def test_raising_a_share_keeps_every_tenant_it_had() -> None:
    tenants = [str(uuid.UUID(int=n)) for n in range(2000)]
    at_10 = {t for t in tenants if _eval(_flag(rollout=10), tenant=t)[0].value}
    at_30 = {t for t in tenants if _eval(_flag(rollout=30), tenant=t)[0].value}
    assert at_10 < at_30


def test_per_user_rollout_splits_users_of_one_tenant() -> None:
    flag = _flag(rollout=50)
    per_user = {_eval(flag, user=f"user-{n}")[0].value for n in range(50)}
    assert per_user == {True, False}
    assert _eval(flag, user="u1")[0] == _eval(flag, user="u1")[0]


def test_buckets_are_the_same_in_another_process() -> None:
    samples = [("f", TENANT, None), ("checkout.v2", str(uuid.UUID(int=5)), None), ("f", TENANT, "user-9")]
    here = [core.bucket(*s) for s in samples]
    code = (
        "import json, sys; from tenantry.tenant_config.evaluation import bucket;"
        f" print(json.dumps([bucket(*s) for s in {samples!r}]))"
    )
    # a different hash seed would change hash(); the buckets must not change (the same
    # tenantry is imported: PYTHONPATH is kept, when set)
    env = {"PYTHONHASHSEED": "12345", **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == str(here).replace("'", '"')
    # pinned values: a change of the hashing would move every tenant's rollout
    assert here == [
        core.bucket("f", TENANT),
        core.bucket("checkout.v2", str(uuid.UUID(int=5))),
        core.bucket("f", TENANT, "user-9"),
    ]
    assert core.bucket("f", "t") == int.from_bytes(__import__("hashlib").sha256(b"f:t").digest()[:8], "big") % 10_000


def test_reserved_attributes() -> None:
    assert {"tenant", "plan", "region", "config", "user"} <= core.RESERVED_ATTRIBUTES


def test_the_split_does_not_depend_on_the_order_of_keys() -> None:
    # the catalog stores JSON objects with their keys reordered
    one = _flag(
        kind="multivariate", variants={"small": 5, "big": 50}, default="small", rollout={"small": 30, "big": 70}
    )
    two = _flag(
        kind="multivariate", variants={"big": 50, "small": 5}, default="small", rollout={"big": 70, "small": 30}
    )
    for n in range(500):
        tenant = str(uuid.UUID(int=n))
        assert _eval(one, tenant=tenant)[0] == _eval(two, tenant=tenant)[0]
