"""Feature flags in the catalog: create, update, kill and delete them, each change validated,
audited and announced (``NOTIFY``) in one transaction. The CLI and the admin API call these.

Definitions are validated by :class:`tenantry.core.flags.FlagSpec` before anything is
written; a bad one raises :class:`ConfigInvalid` naming the path (``rules[0].when[0].op: ...``)
and saves nothing. Creating a flag that exists with the same definition, killing a killed
flag, and deleting a missing one are no-ops.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from tenantry.core import flags as core
from tenantry.errors import ConfigInvalid, FlagExists, FlagNotFound, InvalidInput
from tenantry.services import audit
from tenantry.services.events import notify_flag

if TYPE_CHECKING:
    from tenantry.app import Tenantry

__all__ = [
    "FlagRecord",
    "create_flag",
    "delete_flag",
    "evaluate_flag",
    "get_flag",
    "kill_flag",
    "list_flags",
    "load_flags",
    "unkill_flag",
    "update_flag",
]

_COLUMNS = (
    "key, kind, description, variants, default_variant, off_variant, rules, rollout, killed,"
    " enable_at, disable_at, created_at, updated_at, updated_by"
)


@dataclass(frozen=True, slots=True)
class FlagRecord:
    """A flag as the catalog holds it."""

    spec: core.FlagSpec
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


def _record(row: tuple[Any, ...]) -> FlagRecord:
    spec = core.parse_spec(
        {
            "key": row[0],
            "kind": row[1],
            "description": row[2],
            "variants": row[3],
            "default": row[4],
            "off": row[5],
            "rules": row[6],
            "rollout": row[7],
            "killed": row[8],
            "enable_at": row[9],
            "disable_at": row[10],
        }
    )
    return FlagRecord(spec, row[11], row[12], row[13])


def load_flags(conn: psycopg.Connection[Any]) -> list[FlagRecord]:
    """Every flag, in one query (the per-process cache loads them so), from the routing view."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM tenantry_routing.flags ORDER BY key").fetchall()
    return [_record(r) for r in rows]


def _get(conn: psycopg.Connection[Any], key: str, *, lock: bool = False) -> FlagRecord | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM tenantry.flags WHERE key = %s{' FOR UPDATE' if lock else ''}", (key,)
    ).fetchone()
    return None if row is None else _record(row)


def list_flags(tn: Tenantry, *, after: str | None = None, limit: int | None = None) -> list[FlagRecord]:
    """Flags by key; ``after`` the previous page's last key, at most ``limit`` of them."""
    with tn.admin() as conn:
        if after is None and limit is None:
            return load_flags(conn)
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM tenantry.flags WHERE %(after)s::text IS NULL OR key > %(after)s"
            " ORDER BY key LIMIT %(limit)s",
            {"after": after, "limit": limit},
        ).fetchall()
    return [_record(r) for r in rows]


def get_flag(tn: Tenantry, key: str) -> FlagRecord:
    core.check_key(key)
    with tn.admin() as conn:
        found = _get(conn, key)
    if found is None:
        raise FlagNotFound(f"no flag {key!r}")
    return found


def _values(spec: core.FlagSpec) -> dict[str, Any]:
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


def create_flag(tn: Tenantry, definition: Mapping[str, Any]) -> FlagRecord:
    """Create a flag from a definition (see :class:`FlagSpec`); booleans start off."""
    if not isinstance(definition, Mapping):
        raise InvalidInput("a flag definition is a JSON object")
    spec = core.parse_spec(definition)
    values = _values(spec)
    with tn.admin() as conn, conn.transaction():
        existing = _get(conn, spec.key, lock=True)
        if existing is not None:
            if existing.spec == spec:
                return existing
            raise FlagExists(f"flag {spec.key!r} exists already with another definition; change it with `flags set`")
        columns = ", ".join(values)
        placeholders = ", ".join(f"%({name})s" for name in values)
        try:
            conn.execute(
                f"INSERT INTO tenantry.flags ({columns}, updated_by) VALUES ({placeholders}, %(actor)s)",
                {**values, "actor": tn.actor},
            )
        except psycopg.errors.UniqueViolation as err:
            raise FlagExists(f"flag {spec.key!r} was created concurrently") from err
        created = _get(conn, spec.key)
        assert created is not None
        audit.record(
            conn, actor=tn.actor, action="flag.create", target_type="flag", target=spec.key, after=created.to_dict()
        )
        notify_flag(conn, spec.key)
    tn._forget_flags()
    return created


def update_flag(tn: Tenantry, key: str, changes: Mapping[str, Any], *, action: str = "flag.update") -> FlagRecord:
    """Change some fields of a flag (``{"rollout": 25}``, ``{"enable_at": None}``, ...); the
    whole new definition is validated before anything is written."""
    core.check_key(key)
    if not isinstance(changes, Mapping):
        raise InvalidInput("flag changes are a JSON object")
    if "key" in changes and changes["key"] != key:
        raise InvalidInput("a flag's key cannot change; create a new flag instead")
    with tn.admin() as conn, conn.transaction():
        before = _get(conn, key, lock=True)
        if before is None:
            raise FlagNotFound(f"no flag {key!r}")
        current = before.spec.to_dict()
        if changes.get("kind", before.spec.kind) != before.spec.kind:
            # the other kind's variants, default and off variant must be given anew
            for name in ("variants", "default", "off", "rules", "rollout"):
                current.pop(name, None)
        try:
            spec = core.parse_spec({**current, **changes})
        except ConfigInvalid as err:
            raise ConfigInvalid(
                f"this change to flag {key!r} is invalid: {'; '.join(err.problems)}", err.problems
            ) from None
        if spec == before.spec:
            return before
        values = _values(spec)
        assignments = ", ".join(f"{name} = %({name})s" for name in values if name != "key")
        conn.execute(
            f"UPDATE tenantry.flags SET {assignments}, updated_at = now(), updated_by = %(actor)s WHERE key = %(key)s",
            {**values, "actor": tn.actor},
        )
        after = _get(conn, key)
        assert after is not None
        audit.record(
            conn,
            actor=tn.actor,
            action=action,
            target_type="flag",
            target=key,
            before=before.to_dict(),
            after=after.to_dict(),
        )
        notify_flag(conn, key)
    tn._forget_flags()
    return after


def kill_flag(tn: Tenantry, key: str) -> FlagRecord:
    """Kill switch: the flag serves its off variant everywhere until unkilled."""
    return update_flag(tn, key, {"killed": True}, action="flag.kill")


def unkill_flag(tn: Tenantry, key: str) -> FlagRecord:
    return update_flag(tn, key, {"killed": False}, action="flag.unkill")


def delete_flag(tn: Tenantry, key: str) -> bool:
    """Delete a flag; ``False`` when there was none. Evaluations then find no flag."""
    core.check_key(key)
    with tn.admin() as conn, conn.transaction():
        before = _get(conn, key, lock=True)
        if before is None:
            return False
        conn.execute("DELETE FROM tenantry.flags WHERE key = %s", (key,))
        audit.record(
            conn, actor=tn.actor, action="flag.delete", target_type="flag", target=key, before=before.to_dict()
        )
        notify_flag(conn, key)
    tn._forget_flags()
    return True


def evaluate_flag(
    tn: Tenantry,
    key: str,
    *,
    tenant: str | uuid.UUID,
    user: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> core.Evaluation:
    """What the flag serves ``tenant`` (and ``user``) now, as a running app would see it."""
    core.check_key(key)
    return tn.flags.evaluate(key, tenant=tenant, user=user, attributes=attributes)
