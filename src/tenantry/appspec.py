"""Finding the app's tenant tables from an import spec such as ``myapp.models:Base``."""

from __future__ import annotations

import importlib
from typing import Any

import sqlalchemy as sa

from tenantry.errors import ConfigurationError

__all__ = ["load_metadata"]


def load_metadata(spec: str) -> sa.MetaData:
    """The SQLAlchemy ``MetaData`` named by ``module:attr`` (a declarative base or a MetaData)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(f"app spec {spec!r} must look like 'package.module:Base'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigurationError(f"cannot import {module_name!r}: {err}") from err
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ConfigurationError(f"{module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    metadata = getattr(target, "metadata", target)
    if not isinstance(metadata, sa.MetaData):
        raise ConfigurationError(f"{spec!r} is neither a SQLAlchemy MetaData nor a declarative base")
    return metadata
