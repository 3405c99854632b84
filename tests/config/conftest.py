"""The fixtures of ``tests/config`` (they and the helpers the tests share live in
:mod:`tests.config.support`, a plain module: conftest files are not imported)."""

from tests.config.support import config_db, ctn, make_plan, plan_tenant  # noqa: F401 - fixtures
