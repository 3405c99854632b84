"""The fixtures of ``tests/migrations`` (they and the helpers the tests share live in
:mod:`tests.migrations.support`, a plain module: conftest files are not imported)."""

from tests.migrations.support import mtn, scripts_copy, world  # noqa: F401 - fixtures
