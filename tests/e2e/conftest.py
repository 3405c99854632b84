"""The fixtures of ``tests/e2e`` (they and the helpers the tests share live in
:mod:`tests.e2e.support`, a plain module: conftest files are not imported)."""

from tests.e2e.support import demo, demo_scratch  # noqa: F401 - fixtures
