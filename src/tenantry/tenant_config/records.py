"""Feature flags as the catalog holds them (:class:`FlagRecord`): the rows of
:mod:`tenantry.db.catalog.flags`, their definitions validated."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tenantry.db.catalog import flags as catalog_flags
from tenantry.tenant_config import evaluation

__all__ = ["FlagRecord", "delete_flag", "insert_flag", "list_flags", "load_flags", "read_flag", "update_flag"]


@dataclass(frozen=True, slots=True)
class FlagRecord:
    """A flag as the catalog holds it."""

    spec: evaluation.FlagSpec
    created_at: datetime
    updated_at: datetime
    updated_by: str

    @property
    def key(self) -> str:
        return self.spec.key

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.spec.to_dict(),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
        }


def _record(row: dict[str, Any]) -> FlagRecord:
    spec = evaluation.parse_spec(
        {
            "key": row["key"],
            "kind": row["kind"],
            "description": row["description"],
            "variants": row["variants"],
            "default": row["default_variant"],
            "off": row["off_variant"],
            "rules": row["rules"],
            "rollout": row["rollout"],
            "killed": row["killed"],
            "enable_at": row["enable_at"],
            "disable_at": row["disable_at"],
        }
    )
    return FlagRecord(spec, row["created_at"], row["updated_at"], row["updated_by"])


def _values(spec: evaluation.FlagSpec) -> dict[str, Any]:
    data = spec.to_dict()
    return {
        "key": spec.key,
        "kind": spec.kind,
        "description": spec.description,
        "variants": Jsonb(spec.variants),
        "default_variant": spec.default_variant,
        "off_variant": spec.off_variant,
        "rules": Jsonb(data["rules"]),
        "rollout": None if spec.rollout is None else Jsonb(spec.rollout),
        "killed": spec.killed,
        "enable_at": spec.enable_at,
        "disable_at": spec.disable_at,
    }


def load_flags(conn: psycopg.Connection[Any]) -> list[FlagRecord]:
    """Every flag, from the routing view (what a data-plane process reads)."""
    return [_record(r) for r in catalog_flags.load_flags(conn)]


def list_flags(conn: psycopg.Connection[Any], *, after: str | None, limit: int | None) -> list[FlagRecord]:
    return [_record(r) for r in catalog_flags.list_flags(conn, after=after, limit=limit)]


def read_flag(conn: psycopg.Connection[Any], key: str, *, lock: bool = False) -> FlagRecord | None:
    row = catalog_flags.read_flag(conn, key, lock=lock)
    return None if row is None else _record(row)


def insert_flag(conn: psycopg.Connection[Any], spec: evaluation.FlagSpec, *, actor: str) -> FlagRecord:
    """Store a new flag (:class:`psycopg.errors.UniqueViolation` if its key is taken)."""
    return _record(catalog_flags.insert_flag(conn, _values(spec), actor=actor))


def update_flag(conn: psycopg.Connection[Any], spec: evaluation.FlagSpec, *, actor: str) -> FlagRecord:
    return _record(catalog_flags.update_flag(conn, _values(spec), actor=actor))


delete_flag = catalog_flags.delete_flag
