from pathlib import Path

import pytest

from tenantry import ConfigurationError, Settings


def test_defaults_read_nothing() -> None:
    s = Settings()
    assert s.database_url is None and s.owner_role == "tenantry_owner" and s.runtime_role == "tenantry_app"


def test_from_env_reads_only_given_mapping() -> None:
    s = Settings.from_env(
        {
            "TENANTRY_DATABASE_URL": "postgresql://x@h/db",
            "TENANTRY_DATA_DIR": "~/pgdata",
            "TENANTRY_POOL_MAX_SIZE": "7",
            "TENANTRY_RUNTIME_ROLE": "app_rt",
        }
    )
    assert s.database_url == "postgresql://x@h/db"
    assert s.data_dir == Path("~/pgdata").expanduser()
    assert s.pool_max_size == 7
    assert s.runtime_role == "app_rt"


def test_spare_schemas_default_off() -> None:
    assert Settings().spare_schemas == 0
    assert Settings.from_env({"TENANTRY_SPARE_SCHEMAS": "25"}).spare_schemas == 25


def test_overrides_win_and_none_is_ignored() -> None:
    s = Settings.from_env({"TENANTRY_DATABASE_URL": "a"}, database_url="b", data_dir=None)
    assert s.database_url == "b" and s.data_dir is None


@pytest.mark.parametrize(
    "env",
    [
        {"TENANTRY_POOL_MAX_SIZE": "many"},
        {"TENANTRY_RUNTIME_ROLE": 'x"; drop role postgres'},
        {"TENANTRY_POOLED_SCHEMA": "public"},
        {"TENANTRY_OWNER_ROLE": "same", "TENANTRY_RUNTIME_ROLE": "same"},
        {"TENANTRY_POOL_MIN_SIZE": "5", "TENANTRY_POOL_MAX_SIZE": "2"},
        {"TENANTRY_SPARE_SCHEMAS": "-1"},
        {"TENANTRY_SPARE_SCHEMAS": "some"},
    ],
)
def test_bad_settings_raise(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        Settings.from_env(env)


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().owner_role = "x"  # type: ignore[misc]


def test_base_domain_from_env() -> None:
    assert Settings.from_env({"TENANTRY_BASE_DOMAIN": "example.com"}).base_domain == "example.com"
    assert Settings.from_env({}).base_domain is None
