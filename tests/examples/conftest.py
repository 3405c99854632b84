"""The fixtures of ``tests/examples`` (they and the helpers the tests share live in
:mod:`tests.examples.support`, a plain module: conftest files are not imported)."""

from tests.examples.support import tracker  # noqa: F401 - fixtures
