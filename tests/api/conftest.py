"""The fixtures of ``tests/api`` (they and the helpers the tests share live in
:mod:`tests.api.support`, a plain module: conftest files are not imported)."""

from tests.api.support import (  # noqa: F401 - fixtures
    admin_app,
    admin_secret,
    api,
    capi,
    config_app,
    config_catalog,
    ctn,
    make_ctoken,
    make_plan,
    make_token,
    plan_tenant,
    portal,
)
