"""Finding the app's tenant tables from an import spec such as ``myapp.models:Base``, and its
config schema (``TENANTRY_CONFIG=myapp.config:AppConfig``, or ``TENANTRY_CONFIG = AppConfig``
in the module ``TENANTRY_APP`` names)."""

from __future__ import annotations

import sqlalchemy as sa
from pydantic import BaseModel

from tenantry._imports import import_module, resolve
from tenantry.errors import ConfigurationError

__all__ = ["find_config_model", "load_config_model", "load_metadata"]


def load_metadata(spec: str) -> sa.MetaData:
    """The SQLAlchemy ``MetaData`` named by ``module:attr`` (a declarative base or a MetaData)."""
    target = resolve(spec, what="app", example="Base")
    metadata = getattr(target, "metadata", target)
    if not isinstance(metadata, sa.MetaData):
        raise ConfigurationError(f"{spec!r} is neither a SQLAlchemy MetaData nor a declarative base")
    return metadata


def load_config_model(spec: str) -> type[BaseModel]:
    """The pydantic model named by ``module:Model``: the app's config schema."""
    target = resolve(spec, what="config", example="AppConfig")
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
    found = getattr(import_module(module, what="app"), "TENANTRY_CONFIG", None)
    if found is None:
        return None
    if isinstance(found, str):
        return load_config_model(found)
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        raise ConfigurationError(f"{module}.TENANTRY_CONFIG must be a pydantic model class or 'module:Model'")
    return found
