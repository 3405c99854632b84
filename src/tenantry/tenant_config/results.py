"""What ``tn.config`` answers: a layer's value, a write's outcome, a version, a diff.

Each is a frozen dataclass with ``to_dict()`` (what the CLI's ``--json`` and the admin API show).
Secret values in them are redacted already.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tenantry.db.catalog.scopes import Scope
from tenantry.tenant_config.layers import Change

__all__ = ["ConfigChange", "ConfigDiff", "ConfigValue", "ConfigVersion"]


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    """One version of a layer, as the history keeps it."""

    scope: Scope
    version: int
    document: dict[str, Any]
    overrides: dict[str, Any]
    actor: str | None
    message: str
    created_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.scope.to_dict(),
            "version": self.version,
            "document": self.document,
            "overrides": self.overrides,
            "actor": self.actor,
            "message": self.message,
            "created_at": None if self.created_at is None else self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """The outcome of a write: the version now current and what changed (nothing: a no-op)."""

    scope: Scope
    version: int
    changes: list[Change]

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.scope.to_dict(),
            "version": self.version,
            "changed": self.changed,
            "changes": [c.to_dict() for c in self.changes],
        }


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    """What changed in a layer from one version to another."""

    scope: Scope
    from_version: int
    to_version: int
    changes: list[Change]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.scope.to_dict(),
            "from_version": self.from_version,
            "to_version": self.to_version,
            "changes": [c.to_dict() for c in self.changes],
        }


@dataclass(frozen=True, slots=True)
class ConfigValue:
    """What a plan or tenant resolves to: the effective config (defaults included), the
    layer's own values and live overrides, and which layer gave the value asked for."""

    scope: Scope
    version: int
    effective: dict[str, Any]
    document: dict[str, Any]
    overrides: dict[str, Any]
    key: str | None = None
    value: Any = None
    source: str | None = None
    """``override``, ``tenant``, ``plan`` or ``default`` (only with ``key``)."""

    def to_dict(self) -> dict[str, Any]:
        data = {
            **self.scope.to_dict(),
            "version": self.version,
            "document": self.document,
            "overrides": self.overrides,
            "effective": self.effective,
        }
        if self.key is not None:
            data.update(key=self.key, value=self.value, source=self.source)
        return data
