"""Layered configuration as plain data: paths, merging, overrides, validation, diffs.

Pure: no driver, no I/O. A tenant's configuration resolves in layers, each a JSON object
merged over the one before::

    app defaults (the schema's)  ->  plan  ->  tenant  ->  temporary overrides (until they expire)

Objects merge key by key; any other value replaces what is below it. The result is validated
by the app's schema, a pydantic model (plus the sections plugins add), and the error of a bad
document names the path: ``limits.max_projects: Input should be a valid integer``.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from tenantry.errors import ConfigInvalid, ConfigurationError, InvalidInput

__all__ = [
    "Change",
    "ConfigSections",
    "Document",
    "Overrides",
    "active_overrides",
    "check_json",
    "diff",
    "format_errors",
    "get_path",
    "merge",
    "moments",
    "parse_duration",
    "parse_path",
    "parse_value",
    "prune",
    "resolve",
    "set_path",
    "unknown_keys",
    "unset_path",
    "utcnow",
    "validate",
]

Document = dict[str, Any]
"""A JSON object: one layer's values."""

Overrides = dict[str, dict[str, Any]]
"""Temporary overrides of a layer: ``{"a.b": {"value": ..., "expires_at": "<ISO 8601>"}}``."""

_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
MAX_DEPTH = 16
MAX_DOCUMENT_BYTES = 256 * 1024
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# -- paths ----------------------------------------------------------------------------------


def parse_path(key: str) -> tuple[str, ...]:
    """``"limits.max_projects"`` -> ``("limits", "max_projects")``; refuses anything else."""
    parts = tuple(key.split(".")) if isinstance(key, str) else ()
    if not parts or len(parts) > MAX_DEPTH or not all(_SEGMENT.fullmatch(p) for p in parts):
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


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"15m"``, ``"2h"``, ``"1d12h"``, ``"1w"`` -> a positive timedelta."""
    compact = text.strip().lower().replace(" ", "")
    pieces = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in pieces) != compact:
        raise InvalidInput(f"duration {text[:40]!r} must look like 90s, 15m, 2h, 1d12h or 1w")
    seconds = sum(int(n) * _UNITS[u] for n, u in pieces)
    if seconds <= 0:
        raise InvalidInput(f"duration {text!r} must be longer than zero")
    return timedelta(seconds=seconds)


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


# -- the schema -----------------------------------------------------------------------------


def format_errors(err: pydantic.ValidationError, prefix: tuple[str | int, ...] = ()) -> list[str]:
    """One ``path: message`` line per problem, paths dotted (``items[0].name``)."""
    lines = []
    for problem in err.errors(include_url=False):
        path = ""
        for part in (*prefix, *problem["loc"]):
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path += ("." if path else "") + str(part)
        message = str(problem["msg"]).removeprefix("Value error, ")
        lines.append(f"{path or '(document)'}: {message}")
    return list(dict.fromkeys(lines))


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (through ``Optional`` and ``Annotated``), if one."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_of(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        models = [m for m in (_model_of(a) for a in typing.get_args(annotation)) if m is not None]
        return models[0] if len(models) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def unknown_keys(model: type[BaseModel], document: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Keys of ``document`` the schema does not know (a typo would otherwise be ignored)."""
    if model.model_config.get("extra") == "allow":
        return []
    known: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        known[name] = info.annotation
        if info.alias:
            known[info.alias] = info.annotation
    found = []
    for key, value in document.items():
        path = f"{prefix}{key}"
        if key not in known:
            found.append(f"{path}: Extra inputs are not permitted")
            continue
        inner = _model_of(known[key])
        if inner is not None and isinstance(value, Mapping):
            found.extend(unknown_keys(inner, value, path + "."))
    return found


def validate(schema: type[BaseModel], document: Mapping[str, Any], *, what: str = "config") -> BaseModel:
    """The document as an instance of ``schema``; raises :class:`ConfigInvalid` naming every
    bad path (unknown keys included)."""
    problems = unknown_keys(schema, document)
    try:
        value = schema.model_validate(document)
    except pydantic.ValidationError as err:
        problems += format_errors(err)
    else:
        if not problems:
            return value
    problems = list(dict.fromkeys(problems))
    raise ConfigInvalid(f"{what} is invalid: {'; '.join(problems)}", problems)


class ConfigSections:
    """The configuration schema: the app's model and the sections plugins add.

    ``tn.config_sections.add("billing", BillingConfig)`` makes ``tn.config().billing`` a
    ``BillingConfig`` (defaults and all) and validates ``billing.*`` on every write. The
    composed schema subclasses the app's model, so ``tn.config()`` is an instance of it; it
    is frozen, so a caller cannot change the cached object for everyone else.
    """

    def __init__(
        self, app: type[BaseModel] | None = None, *, loader: typing.Callable[[], type[BaseModel] | None] | None = None
    ) -> None:
        self._app = app
        self._loader = loader
        """Finds the app's model when none was given (the settings' import spec), once."""
        self._sections: dict[str, type[BaseModel]] = {}
        self._schema: type[BaseModel] | None = None
        self._listeners: list[typing.Callable[[], None]] = []

    @property
    def app(self) -> type[BaseModel] | None:
        """The app's own model (``None`` until configured)."""
        self._load()
        return self._app

    def _load(self) -> None:
        loader = self._loader
        if loader is None:
            return
        found = loader()  # a bad import spec raises here, and again on the next call
        self._loader = None
        if found is not None and self._app is None:
            self.configure(found)

    def configure(self, model: type[BaseModel]) -> None:
        """Set the app's model."""
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigurationError(f"the config schema must be a pydantic model class, not {model!r}")
        for name in self._sections:
            _check_clash(model, name)
        self._app = model
        self._loader = None
        self._changed()

    def add(self, name: str, model: type[BaseModel]) -> None:
        """Add a section ``name`` holding ``model`` (adding the same again is a no-op)."""
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigurationError(f"config section {name!r} must be a pydantic model class")
        if not _SEGMENT.fullmatch(name) or not name.isidentifier():
            raise ConfigurationError(f"config section name {name!r} must be a Python identifier")
        if self._sections.get(name) is model:
            return
        if name in self._sections:
            raise ConfigurationError(f"config section {name!r} is added already, by another model")
        if self.app is not None:
            _check_clash(self.app, name)
        self._sections[name] = model
        self._changed()

    def names(self) -> list[str]:
        return sorted(self._sections)

    def on_change(self, callback: typing.Callable[[], None]) -> None:
        self._listeners.append(callback)

    def _changed(self) -> None:
        self._schema = None
        for callback in self._listeners:
            callback()

    @property
    def configured(self) -> bool:
        if self._loader is not None:
            self._load()
        return self._app is not None or bool(self._sections)

    def schema(self) -> type[BaseModel]:
        """The composed, frozen model; :class:`ConfigurationError` when there is none."""
        schema = self._schema
        if schema is None:
            if not self.configured:
                raise ConfigurationError(
                    "no config schema: pass Tenantry(config=AppConfig), call tn.configure(AppConfig),"
                    " or name it with TENANTRY_CONFIG=module:Model (or TENANTRY_CONFIG in the app module);"
                    " a plugin's section comes with the plugin: name it in TENANTRY_PLUGINS, or switch"
                    " it on for a plan or a tenant"
                )
            schema = self._schema = _compose(self._app, self._sections)
        return schema


def _check_clash(model: type[BaseModel], name: str) -> None:
    if name in model.model_fields:
        raise ConfigurationError(f"config section {name!r} clashes with a field of {model.__name__}")


def _compose(app: type[BaseModel] | None, sections: Mapping[str, type[BaseModel]]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for name, model in sections.items():
        try:
            model()
        except pydantic.ValidationError:
            fields[name] = (model, ...)  # no defaults for everything: each tenant must set it
        else:
            fields[name] = (model, Field(default_factory=model))
    base: type[BaseModel] = app if app is not None else BaseModel
    composed = pydantic.create_model(f"{(app or BaseModel).__name__}Resolved", __base__=base, **fields)
    frozen: type[BaseModel] = type(
        composed.__name__, (composed,), {"model_config": ConfigDict(frozen=True), "__module__": base.__module__}
    )
    return frozen


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

    def shown(self, show: typing.Callable[[Any], Any]) -> Change:
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
