"""The config schema: the app's pydantic model and the sections plugins add, and validation.

Pure: no driver, no I/O. A merged document is validated by the composed schema, and the error
of a bad document names the path: ``limits.max_projects: Input should be a valid integer``.
Unknown keys are refused too (a typo would otherwise be ignored).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from tenantry.errors import ConfigInvalid, ConfigurationError
from tenantry.tenant_config.layers import SEGMENT, active_overrides, merge, moments, set_path

__all__ = ["ConfigSections", "check_tenant", "format_errors", "unknown_keys", "validate"]


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


def check_tenant(
    schema: type[Any],
    slug: str,
    plan_doc: dict[str, Any],
    document: dict[str, Any],
    overrides: dict[str, Any],
    now: datetime,
    via_plan: str | None = None,
) -> None:
    """Validate a tenant's merged config (plan layer, its own, its overrides) now and at each
    later moment one of its overrides expires. ``via_plan``: the write is the plan's, and the
    error says so, naming the tenant."""
    for moment in moments(overrides, now):
        merged = merge(plan_doc, document)
        for path, value in active_overrides(overrides, moment)[0]:
            merged = set_path(merged, path, value)
        when = "" if moment == now else f" once overrides expire at {moment.isoformat()}"
        try:
            validate(schema, merged, what=f"tenant {slug}'s config{when}")
        except ConfigInvalid as err:
            if via_plan is None:
                raise
            raise ConfigInvalid(
                f"this change to plan {via_plan} would make {err.message}",
                [f"tenant {slug}: {p}" for p in err.problems],
            ) from None


class ConfigSections:
    """The configuration schema: the app's model and the sections plugins add.

    ``tn.config.sections.add("billing", BillingConfig)`` makes ``tn.config.current().billing``
    a ``BillingConfig`` (defaults and all) and validates ``billing.*`` on every write. The
    composed schema subclasses the app's model, so ``tn.config.current()`` is an instance of
    it; it is frozen, so a caller cannot change the cached object for everyone else.
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
        if not SEGMENT.fullmatch(name) or not name.isidentifier():
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
                    "no config schema: pass Tenantry(config=AppConfig), call tn.config.configure(AppConfig),"
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
