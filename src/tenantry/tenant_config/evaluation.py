"""Feature flags as plain data: definitions, their validation, and evaluation.

Pure: no driver, no I/O. A flag serves one of its variants (a boolean flag's are ``on`` =
``true`` and ``off`` = ``false``)::

    killed, or before enable_at, or from disable_at on   ->  the off variant
    the first rule whose conditions all hold              ->  its variant, or its rollout's pick
    a rollout                                              ->  the pick for this tenant (and user)
    otherwise                                              ->  the default variant

A rollout splits tenants by percentage. The pick is stable: the first 8 bytes of
``sha256("<flag key>:<tenant id>[:<user>]")`` modulo 10,000 give a bucket, the same in every
process and every version, and the variants take consecutive ranges of buckets: ``on`` first,
then the others in the order of their names (not as listed: the catalog's JSON does not keep
the order of keys). A boolean flag is on for buckets below its percentage times 100, so
raising the percentage keeps every tenant it had.

A rule's conditions read the tenant's attributes (``tenant`` (slug), ``tenant_id``, ``plan``,
``region``, ``cell``, ``tier``, ``status``, ``created_at``), any config value
(``config.limits.max_projects``), ``user``, and attributes the caller passes.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import pydantic
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from tenantry.errors import ConfigInvalid, InvalidInput
from tenantry.tenant_config.schema import format_errors

__all__ = [
    "BUCKETS",
    "RESERVED_ATTRIBUTES",
    "Condition",
    "Evaluation",
    "Flag",
    "FlagSpec",
    "Rule",
    "bucket",
    "check_key",
    "compile_flag",
    "evaluate",
    "parse_spec",
]

BUCKETS = 10_000
FLAG_KEY = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}")
_VARIANT = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ATTRIBUTE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_-]{0,63}){0,16}")
BOOLEAN_VARIANTS: dict[str, Any] = {"on": True, "off": False}
RESERVED_ATTRIBUTES = frozenset(
    {"tenant", "tenant_id", "plan", "region", "cell", "tier", "status", "created_at", "config", "user"}
)
"""Attributes tenantry fills in; a caller's attributes of these names are ignored."""

Op = Literal[
    "eq",
    "ne",
    "in",
    "not_in",
    "lt",
    "lte",
    "gt",
    "gte",
    "before",
    "after",
    "contains",
    "starts_with",
    "ends_with",
]
Reason = Literal["DISABLED", "TARGETING_MATCH", "SPLIT", "DEFAULT"]
_Scalar = str | int | float | bool


def check_key(key: str) -> str:
    if not isinstance(key, str) or not FLAG_KEY.fullmatch(key):
        raise InvalidInput(
            f"flag key {str(key)[:100]!r} must be 1-100 characters: a-z, 0-9, '_', '-', '.',"
            " starting with a letter or digit"
        )
    return key


# -- definitions ----------------------------------------------------------------------------


class Condition(BaseModel):
    """``{"attribute": "plan", "op": "in", "value": ["business", "enterprise"]}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attribute: str
    op: Op
    value: Any

    @field_validator("attribute")
    @classmethod
    def _attribute(cls, value: str) -> str:
        if not _ATTRIBUTE.fullmatch(value):
            raise ValueError("must be a name like 'plan' or a path like 'config.limits.max_projects'")
        return value

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        op, value = self.op, self.value
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not all(_is_scalar(v) for v in value) or len(value) > 10_000:
                raise ValueError(f"'{op}' takes a list of at most 10000 strings, numbers or booleans")
        elif op in ("eq", "ne"):
            if not _is_scalar(value):
                raise ValueError(f"'{op}' takes a string, number or boolean")
        elif op in ("lt", "lte", "gt", "gte"):
            if not _is_number(value) or not math.isfinite(value):
                raise ValueError(f"'{op}' takes a number")
        elif op in ("before", "after"):
            if not isinstance(value, str) or _parse_time(value) is None:
                raise ValueError(f"'{op}' takes an ISO 8601 date or time, like '2025-01-31T00:00:00Z'")
        elif not isinstance(value, str):
            raise ValueError(f"'{op}' takes a string")
        return self


class Rule(BaseModel):
    """Conditions that must all hold, and what to serve then: a variant or a rollout."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    when: list[Condition] = Field(default_factory=list, max_length=50)
    variant: str | None = None
    rollout: dict[str, float] | None = None

    @model_validator(mode="after")
    def _serves_one(self) -> Rule:
        if (self.variant is None) == (self.rollout is None):
            raise ValueError("a rule serves either a 'variant' or a 'rollout'")
        return self


class FlagSpec(BaseModel):
    """A flag's definition, as stored and as the CLI and the admin API take it.

    A boolean flag's variants are fixed (``on``/``off``), its default and off variant are
    ``off``, and a rollout may be written as the percentage that gets ``on`` (``25``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    kind: Literal["boolean", "multivariate"] = "boolean"
    description: str = Field(default="", max_length=500)
    variants: dict[str, Any] = Field(default_factory=dict)
    default: str | None = None
    """Variant served when no rule matches and there is no rollout."""
    off: str | None = None
    """Variant served while killed or outside the schedule (multivariate: the default's)."""
    rules: list[Rule] = Field(default_factory=list, max_length=200)
    rollout: dict[str, float] | None = None
    killed: bool = False
    enable_at: AwareDatetime | None = None
    disable_at: AwareDatetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("kind", "boolean") != "boolean":
            return data
        data = dict(data)
        data.setdefault("variants", dict(BOOLEAN_VARIANTS))
        if data.get("default") is None:
            data["default"] = "off"
        if data.get("off") is None:
            data["off"] = "off"
        if _is_number(data.get("rollout")):
            data["rollout"] = _boolean_split(data["rollout"])
        if isinstance(data.get("rules"), list):
            data["rules"] = [
                {**r, "rollout": _boolean_split(r["rollout"])}
                if isinstance(r, dict) and _is_number(r.get("rollout"))
                else r
                for r in data["rules"]
            ]
        return data

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not FLAG_KEY.fullmatch(value):
            raise ValueError("must be 1-100 characters: a-z, 0-9, '_', '-', '.', starting with a letter or digit")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FlagSpec:
        if self.kind == "boolean":
            if self.variants != BOOLEAN_VARIANTS or any(type(v) is not bool for v in self.variants.values()):
                raise ValueError("a boolean flag's variants are fixed: on (true) and off (false)")
            if self.off != "off":
                raise ValueError("a boolean flag is off (false) while killed or out of schedule")
        else:
            if not self.variants or len(self.variants) > 100:
                raise ValueError("a multivariate flag needs 1 to 100 variants")
            if self.default is None:
                raise ValueError("a multivariate flag needs a default variant")
        for name in self.variants:
            if not _VARIANT.fullmatch(name):
                raise ValueError(f"variant name {name[:70]!r} must be 1-64 letters, digits, '_' or '-'")
        self._known("default", self.default)
        self._known("off", self.off if self.off is not None else self.default)
        for i, rule in enumerate(self.rules):
            self._known(f"rules[{i}].variant", rule.variant)
            self._split(f"rules[{i}].rollout", rule.rollout)
        self._split("rollout", self.rollout)
        if self.enable_at is not None and self.disable_at is not None and self.enable_at >= self.disable_at:
            raise ValueError("enable_at must come before disable_at")
        return self

    def _known(self, where: str, variant: str | None) -> None:
        if variant is not None and variant not in self.variants:
            raise ValueError(f"{where} names {variant[:70]!r}, which is not a variant ({', '.join(self.variants)})")

    def _split(self, where: str, split: Mapping[str, float] | None) -> None:
        if split is None:
            return
        if not split:
            raise ValueError(f"{where} must give at least one variant a share")
        for name, share in split.items():
            self._known(where, name)
            if not (0 <= share <= 100) or abs(share * 100 - round(share * 100)) > 1e-6:
                raise ValueError(f"{where}: the share of {name!r} must be a percentage (0-100, at most 2 decimals)")
        if abs(sum(split.values()) - 100) > 1e-6:
            raise ValueError(f"{where}: the shares must add up to 100, not {sum(split.values()):g}")

    @property
    def off_variant(self) -> str:
        off = self.off if self.off is not None else self.default
        assert off is not None
        return off

    @property
    def default_variant(self) -> str:
        assert self.default is not None
        return self.default

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["off"] = self.off_variant
        return data


def _boolean_split(share: float) -> dict[str, float]:
    return {"on": share, "off": 100 - share}


def parse_spec(data: Mapping[str, Any]) -> FlagSpec:
    """Validate a definition; :class:`ConfigInvalid` names every bad path."""
    try:
        return FlagSpec.model_validate(dict(data))
    except pydantic.ValidationError as err:
        problems = format_errors(err)
        key = data.get("key")
        raise ConfigInvalid(f"flag {str(key)[:100]!r} is invalid: {'; '.join(problems)}", problems) from None


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, bool)) or _is_number(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        found = value
    elif isinstance(value, str):
        try:
            found = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


# -- evaluation -----------------------------------------------------------------------------


def bucket(flag_key: str, tenant_id: str, user: str | None = None) -> int:
    """The rollout bucket (0-9999) of a tenant, or of one user of a tenant, for one flag."""
    seed = f"{flag_key}:{tenant_id}" if user is None else f"{flag_key}:{tenant_id}:{user}"
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") % BUCKETS


_Split = tuple[tuple[int, str], ...]
_Match = Callable[[Mapping[str, Any]], bool]
_MISSING: Any = object()


def _compile_split(split: Mapping[str, float] | None) -> _Split | None:
    if split is None:
        return None
    edges = []
    total = 0.0
    for name, share in sorted(split.items(), key=lambda item: (item[0] != "on", item[0])):
        total += share
        edges.append((round(total * 100), name))
    return tuple(edges)


def _pick(split: _Split, point: int) -> str:
    for edge, name in split:
        if point < edge:
            return name
    return split[-1][1]


def _lookup(attributes: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value = attributes.get(path[0], _MISSING)
    for part in path[1:]:
        if not isinstance(value, Mapping):
            return _MISSING
        value = value.get(part, _MISSING)
    return value


def _tag(value: Any) -> tuple[str, Any] | None:
    if isinstance(value, bool):
        return ("b", value)
    if _is_number(value):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    return None


def _compile_condition(condition: Condition) -> _Match:
    path = tuple(condition.attribute.split("."))
    op, target = condition.op, condition.value

    if op in ("in", "not_in", "eq", "ne"):
        wanted = frozenset(_tag(v) for v in (target if op in ("in", "not_in") else [target]))
        negate = op in ("not_in", "ne")

        def member(attributes: Mapping[str, Any]) -> bool:
            tag = _tag(_lookup(attributes, path))
            return tag is not None and ((tag in wanted) is not negate)

        return member
    if op in ("lt", "lte", "gt", "gte"):
        compare: Callable[[float, float], bool] = {
            "lt": float.__lt__,
            "lte": float.__le__,
            "gt": float.__gt__,
            "gte": float.__ge__,
        }[op]

        def number(attributes: Mapping[str, Any]) -> bool:
            value = _lookup(attributes, path)
            return _is_number(value) and compare(float(value), float(target))

        return number
    if op in ("before", "after"):
        moment = _parse_time(target)
        assert moment is not None

        def timed(attributes: Mapping[str, Any]) -> bool:
            value = _parse_time(_lookup(attributes, path))
            if value is None:
                return False
            return value < moment if op == "before" else value > moment

        return timed
    method = {"contains": str.__contains__, "starts_with": str.startswith, "ends_with": str.endswith}[op]

    def text(attributes: Mapping[str, Any]) -> bool:
        value = _lookup(attributes, path)
        return isinstance(value, str) and bool(method(value, target))

    return text


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What a flag served one tenant (and user), and why."""

    key: str
    value: Any
    variant: str
    reason: Reason
    rule: int | None = None
    """Index of the rule that matched, if one did."""

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "variant": self.variant, "reason": self.reason, "rule": self.rule}


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    matches: tuple[_Match, ...]
    served: Evaluation | None
    """The evaluation it serves (a fixed variant), or ``None`` for a rollout."""
    split: _Split | None
    picks: dict[str, Evaluation]


@dataclass(frozen=True, slots=True)
class Flag:
    """A validated flag, compiled for evaluation (every possible :class:`Evaluation` is made
    once, here: they are immutable)."""

    spec: FlagSpec
    rules: tuple[_CompiledRule, ...]
    split: _Split | None
    enable_at: float | None
    disable_at: float | None
    killed: bool
    off: Evaluation
    default: Evaluation
    picks: dict[str, Evaluation]

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def kind(self) -> str:
        return self.spec.kind


def compile_flag(spec: FlagSpec) -> Flag:
    def served(variant: str, reason: Reason, rule: int | None = None) -> Evaluation:
        return Evaluation(spec.key, spec.variants[variant], variant, reason, rule)

    rules = tuple(
        _CompiledRule(
            matches=tuple(_compile_condition(c) for c in r.when),
            served=None if r.variant is None else served(r.variant, "TARGETING_MATCH", i),
            split=_compile_split(r.rollout),
            picks={name: served(name, "TARGETING_MATCH", i) for name in r.rollout or {}},
        )
        for i, r in enumerate(spec.rules)
    )
    return Flag(
        spec=spec,
        rules=rules,
        split=_compile_split(spec.rollout),
        enable_at=None if spec.enable_at is None else spec.enable_at.timestamp(),
        disable_at=None if spec.disable_at is None else spec.disable_at.timestamp(),
        killed=spec.killed,
        off=served(spec.off_variant, "DISABLED"),
        default=served(spec.default_variant, "DEFAULT"),
        picks={name: served(name, "SPLIT") for name in spec.rollout or {}},
    )


def evaluate(
    flag: Flag, tenant_id: str, attributes: Mapping[str, Any], now: float, user: str | None = None
) -> tuple[Evaluation, float | None]:
    """The flag's evaluation for a tenant with ``attributes`` at ``now`` (epoch seconds),
    and the moment (epoch seconds) until which it holds by the clock (``None``: for good)."""
    if flag.killed:
        return flag.off, None
    if flag.enable_at is not None and now < flag.enable_at:
        return flag.off, flag.enable_at
    if flag.disable_at is not None and now >= flag.disable_at:
        return flag.off, None
    until = flag.disable_at
    for rule in flag.rules:
        for match in rule.matches:
            if not match(attributes):
                break
        else:
            if rule.served is not None:
                return rule.served, until
            assert rule.split is not None
            return rule.picks[_pick(rule.split, bucket(flag.spec.key, tenant_id, user))], until
    if flag.split is not None:
        return flag.picks[_pick(flag.split, bucket(flag.spec.key, tenant_id, user))], until
    return flag.default, until
