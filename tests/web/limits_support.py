"""Helpers of the edge limits' tests: plans with the limits a test names, and a clock."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tenantry import Tenantry


def make_plan(tn: Tenantry, limits: dict[str, Any], *, prefix: str = "lim") -> str:
    """A pooled plan of its own with ``limits`` (plans CRUD is not in the API yet: SQL)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    with tn.admin() as conn:
        conn.execute(
            "INSERT INTO tenantry.plans (name, isolation, limits) VALUES (%s, 'pooled', %s)",
            (name, json.dumps(limits)),
        )
    return name


def set_plan_limits(tn: Tenantry, plan: str, limits: dict[str, Any]) -> None:
    with tn.admin() as conn:
        conn.execute("UPDATE tenantry.plans SET limits = %s WHERE name = %s", (json.dumps(limits), plan))


class Clock:
    """A monotonic clock a test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def header_items(value: str) -> dict[str, dict[str, str]]:
    """A RateLimit / RateLimit-Policy field as ``{policy: {param: value}}`` (enough of
    Structured Fields for what the edge sends)."""
    found: dict[str, dict[str, str]] = {}
    for member in value.split(","):
        name, *params = member.strip().split(";")
        found[name.strip('"')] = dict(p.split("=", 1) for p in params)
    return found
