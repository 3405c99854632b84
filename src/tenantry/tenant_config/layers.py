"""A tenant's config layers as plain data: paths, merging, temporary overrides, diffs.

Pure: no driver, no I/O. A tenant's config resolves in layers, each a JSON object merged over
the one before::

    app defaults (the schema's)  ->  plan  ->  tenant  ->  temporary overrides (until they expire)

Objects merge key by key; any other value replaces what is below it. The merged document is
then validated by the config schema (:mod:`tenantry.tenant_config.schema`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from tenantry.errors import ConfigInvalid, InvalidInput

__all__ = [
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "SEGMENT",
    "Change",
    "Document",
    "Overrides",
    "active_overrides",
    "check_json",
    "diff",
    "get_path",
    "merge",
    "moments",
    "parse_path",
    "parse_value",
    "prune",
    "resolve",
    "set_path",
    "unset_path",
    "utcnow",
]

Document = dict[str, Any]
"""A JSON object: one layer's values."""

Overrides = dict[str, dict[str, Any]]
"""Temporary overrides of a layer: ``{"a.b": {"value": ..., "expires_at": "<ISO 8601>"}}``."""

SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
"""One segment of a dotted config path (and a config section's name)."""
MAX_DEPTH = 16
MAX_DOCUMENT_BYTES = 256 * 1024


# -- paths ----------------------------------------------------------------------------------


def parse_path(key: str) -> tuple[str, ...]:
    """``"limits.max_projects"`` -> ``("limits", "max_projects")``; refuses anything else."""
    parts = tuple(key.split(".")) if isinstance(key, str) else ()
    if not parts or len(parts) > MAX_DEPTH or not all(SEGMENT.fullmatch(p) for p in parts):
        raise InvalidInput(
            f"config key {str(key)[:80]!r} must be dot-separated names (letters, digits, '_', '-';"
            f" at most {MAX_DEPTH} levels), like 'limits.max_projects'"
        )
    return parts


def get_path(document: Mapping[str, Any], path: Iterable[str]) -> Any:
    """The value at ``path``; raises :class:`KeyError` when there is none."""
    node: Any = document
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(part)
        node = node[part]
    return node


def set_path(document: Document, path: tuple[str, ...], value: Any) -> Document:
    """A copy of ``document`` with ``value`` at ``path`` (objects on the way are created)."""
    result: Document = _copy(document)
    node = result
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            shown = ".".join(path[: depth + 1])
            raise ConfigInvalid(
                f"{shown} is not an object, so {'.'.join(path)} cannot be set",
                [f"{shown}: is a {type(child).__name__}, not an object"],
            )
        node = child
    node[path[-1]] = _copy(value)
    return result


def unset_path(document: Document, path: tuple[str, ...]) -> tuple[Document, bool]:
    """A copy of ``document`` without ``path`` (parents left empty are removed too), and
    whether it was there."""
    result: Document = _copy(document)
    trail: list[tuple[dict[str, Any], str]] = []
    node: dict[str, Any] = result
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            return result, False
        trail.append((node, part))
        node = child
    if path[-1] not in node:
        return result, False
    del node[path[-1]]
    for parent, part in reversed(trail):
        if parent[part]:
            break
        del parent[part]
    return result, True


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> Document:
    """``over`` merged onto ``base``: objects key by key, anything else replaces."""
    result: Document = dict(base)
    for key, value in over.items():
        below = result.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            result[key] = merge(below, value)
        else:
            result[key] = _copy(value)
    return result


def parse_value(text: str) -> Any:
    """A value typed on a command line: JSON when it parses (``50``, ``true``, ``{"a": 1}``),
    else the text itself as a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def check_json(document: Any, what: str) -> None:
    """Refuse values that are not plain JSON, or documents too large to keep."""
    try:
        size = len(json.dumps(document, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise InvalidInput(f"{what} is not plain JSON: {err}") from err
    if size > MAX_DOCUMENT_BYTES:
        raise InvalidInput(f"{what} is {size} bytes of JSON; at most {MAX_DOCUMENT_BYTES} are kept")


# -- overrides and time ---------------------------------------------------------------------


def _expiry(entry: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["expires_at"])


def active_overrides(overrides: Overrides, now: datetime) -> tuple[list[tuple[tuple[str, ...], Any]], datetime | None]:
    """The overrides in force at ``now`` (shallow paths first, so deeper ones win), and when
    the next of them expires."""
    live = []
    nxt: datetime | None = None
    for key, entry in overrides.items():
        expires = _expiry(entry)
        if expires > now:
            live.append((tuple(key.split(".")), entry["value"]))
            nxt = expires if nxt is None or expires < nxt else nxt
    live.sort(key=lambda item: (len(item[0]), item[0]))
    return live, nxt


def prune(overrides: Overrides, now: datetime) -> Overrides:
    """Overrides that have not expired at ``now``."""
    return {k: v for k, v in overrides.items() if _expiry(v) > now}


def resolve(
    plan: Mapping[str, Any], tenant: Mapping[str, Any], overrides: Overrides, now: datetime
) -> tuple[Document, datetime | None]:
    """The merged layers (defaults excluded) in force at ``now``, and until when they hold."""
    document = merge(plan, tenant)
    live, until = active_overrides(overrides, now)
    for path, value in live:
        try:
            document = set_path(document, path, value)
        except ConfigInvalid:
            pass  # an override below a scalar: validation refused it when it was written
    return document, until


def moments(overrides: Overrides, now: datetime) -> list[datetime]:
    """``now`` and each later moment an override expires: the documents a layer will go
    through, each of which must validate."""
    times = sorted({e for e in (_expiry(v) for v in overrides.values()) if e > now})
    return [now, *times]


def utcnow() -> datetime:
    return datetime.now(UTC)


# -- diffs ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two versions of a layer."""

    path: str
    layer: Literal["value", "override"]
    before: Any
    after: Any

    @property
    def kind(self) -> str:
        if self.before is _ABSENT_MARK:
            return "added"
        if self.after is _ABSENT_MARK:
            return "removed"
        return "changed"

    def shown(self, show: Callable[[Any], Any]) -> Change:
        """This change with ``show`` applied to the values it has (redaction, say)."""
        return Change(
            self.path,
            self.layer,
            self.before if self.before is _ABSENT_MARK else show(self.before),
            self.after if self.after is _ABSENT_MARK else show(self.after),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "layer": self.layer, "change": self.kind}
        if self.before is not _ABSENT_MARK:
            data["before"] = self.before
        if self.after is not _ABSENT_MARK:
            data["after"] = self.after
        return data


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT_MARK: Any = _Absent()


def _leaves(document: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in document.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            found.update(_leaves(value, path + "."))
        else:
            found[path] = value
    return found


def diff(before: tuple[Document, Overrides], after: tuple[Document, Overrides]) -> list[Change]:
    """What changed from one version of a layer (document, overrides) to another."""
    changes = []
    for layer, old, new in (
        ("value", _leaves(before[0]), _leaves(after[0])),
        ("override", before[1], after[1]),
    ):
        for path in sorted(old.keys() | new.keys()):
            a, b = old.get(path, _ABSENT_MARK), new.get(path, _ABSENT_MARK)
            if a != b or type(a) is not type(b):
                changes.append(Change(path, layer, a, b))  # type: ignore[arg-type]
    return changes
