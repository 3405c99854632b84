"""The fixtures of ``tests/api`` (they and the helpers the tests share live in
:mod:`tests.api.support`, a plain module: conftest files are not imported)."""

from tests.api.support import portal, admin_app, make_token, admin_secret, api, config_catalog, ctn, config_app, capi, make_ctoken, make_plan, plan_tenant  # noqa: F401 - fixtures

