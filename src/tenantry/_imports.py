"""Import specs: the ``package.module:attr`` strings that name an object of the app's own code
(``TENANTRY_APP``, ``TENANTRY_CONFIG``, ``TENANTRY_PLUGINS``), resolved one way everywhere.

Resolution is :func:`pkgutil.resolve_name`'s (the standard library's reading of such names,
as entry points use), with the working directory on the import path, as ``python -m`` has it:
the spec may name a module of the project the process runs in. A spec that does not resolve is
a :class:`~tenantry.errors.ConfigurationError` saying why, in one line.
"""

from __future__ import annotations

import os
import pkgutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from tenantry.errors import ConfigurationError

__all__ = ["import_module", "resolve", "working_directory_importable"]


def resolve(spec: str, *, what: str, example: str) -> Any:
    """The object ``spec`` names: ``package.module:attr``, where ``attr`` may be dotted.
    ``what`` names the spec in errors (``"app"``, ``"plugin"``) and ``example`` shows the
    ``attr`` part it expects (``"Base"``)."""
    module, colon, attr = spec.partition(":")
    if not colon or not module or not attr:
        raise ConfigurationError(f"{what} spec {spec!r} must look like 'package.module:{example}'")
    return _resolve(spec, what)


def import_module(name: str, *, what: str) -> ModuleType:
    """The module ``name`` (imported as :func:`resolve` imports it)."""
    found = _resolve(f"{name}:", what)
    assert isinstance(found, ModuleType)
    return found


def _resolve(spec: str, what: str) -> Any:
    module, _, attr = spec.partition(":")
    with working_directory_importable():
        try:
            return pkgutil.resolve_name(spec)
        except Exception as err:  # whatever the app's module raises as it is imported
            if isinstance(err, AttributeError) and module in sys.modules:
                raise ConfigurationError(f"{what} spec {spec!r}: {module!r} has no attribute {attr!r}") from err
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ConfigurationError(f"cannot import {what} module {module!r}: {first}") from err


@contextmanager
def working_directory_importable() -> Iterator[None]:
    """The working directory on ``sys.path`` meanwhile (unless it is there already), as
    ``python -m`` puts it there. Last, so that it shadows no installed package."""
    cwd = os.getcwd()
    if "" in sys.path or cwd in sys.path:
        yield
        return
    sys.path.append(cwd)
    try:
        yield
    finally:
        if cwd in sys.path:
            sys.path.remove(cwd)
