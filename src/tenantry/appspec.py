"""Finding the app's tenant tables from an import spec such as ``myapp.models:Base``, and its
config schema (``TENANTRY_CONFIG=myapp.config:AppConfig``, or ``TENANTRY_CONFIG = AppConfig``
in the module ``TENANTRY_APP`` names)."""

from __future__ import annotations

import importlib
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from tenantry.errors import ConfigurationError

__all__ = ["find_config_model", "load_config_model", "load_metadata"]


def _load(spec: str, example: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(f"app spec {spec!r} must look like 'package.module:{example}'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigurationError(f"cannot import {module_name!r}: {err}") from err
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ConfigurationError(f"{module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    return target


def load_metadata(spec: str) -> sa.MetaData:
    """The SQLAlchemy ``MetaData`` named by ``module:attr`` (a declarative base or a MetaData)."""
    target = _load(spec, "Base")
    metadata = getattr(target, "metadata", target)
    if not isinstance(metadata, sa.MetaData):
        raise ConfigurationError(f"{spec!r} is neither a SQLAlchemy MetaData nor a declarative base")
    return metadata


def load_config_model(spec: str) -> type[BaseModel]:
    """The pydantic model named by ``module:Model``: the app's config schema."""
    target = _load(spec, "AppConfig")
    if not (isinstance(target, type) and issubclass(target, BaseModel)):
        raise ConfigurationError(f"{spec!r} is not a pydantic model class")
    return target


def find_config_model(config: str | None, app: str | None) -> type[BaseModel] | None:
    """The config schema named by ``config`` (``TENANTRY_CONFIG``), else the
    ``TENANTRY_CONFIG`` attribute of the module ``app`` (``TENANTRY_APP``) names, else ``None``."""
    if config:
        return load_config_model(config)
    if not app:
        return None
    module = app.partition(":")[0]
    try:
        found = getattr(importlib.import_module(module), "TENANTRY_CONFIG", None)
    except ImportError as err:
        raise ConfigurationError(f"cannot import {module!r}: {err}") from err
    if found is None:
        return None
    if isinstance(found, str):
        return load_config_model(found)
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        raise ConfigurationError(f"{module}.TENANTRY_CONFIG must be a pydantic model class or 'module:Model'")
    return found
