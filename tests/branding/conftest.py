"""The fixtures of ``tests/branding`` (they and the helpers the tests share live in
:mod:`tests.branding.support`, a plain module: conftest files are not imported)."""

from tests.branding.support import runner  # noqa: F401 - fixtures
