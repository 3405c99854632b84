from pathlib import Path

import pytest

from tenantry import ConfigurationError, Settings, Tenantry


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
    assert s.database_url is not None and s.database_url.get_secret_value() == "postgresql://x@h/db"
    assert s.data_dir == Path("~/pgdata").expanduser()
    assert s.pool_max_size == 7
    assert s.runtime_role == "app_rt"


def test_spare_schemas_default_off() -> None:
    assert Settings().spare_schemas == 0
    assert Settings.from_env({"TENANTRY_SPARE_SCHEMAS": "25"}).spare_schemas == 25


def test_overrides_win_and_none_is_ignored() -> None:
    s = Settings.from_env({"TENANTRY_DATABASE_URL": "a"}, database_url="b", data_dir=None)
    assert s.database_url is not None and s.database_url.get_secret_value() == "b" and s.data_dir is None


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


# -- issue 11: secrets in settings, the embedded server only by choice --------------------------


def test_repr_and_str_never_show_connection_passwords_or_keys() -> None:
    s = Settings(
        database_url="postgresql://admin:hunter2@db.internal/app",
        runtime_url="postgresql://app:s3cr3t-rt@db.internal/app",
        secret_keys="k1:" + "A" * 43 + "=",
    )
    for shown in (repr(s), str(s), f"{s}", repr(s.model_dump())):
        assert "hunter2" not in shown and "s3cr3t-rt" not in shown and "AAAA" not in shown
    assert s.database_url is not None and "hunter2" in s.database_url.get_secret_value()


def test_settings_read_a_dotenv_file_and_a_secrets_directory(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "tenantry_database_url").write_text("postgresql://from-secret-file/db\n")
    (secrets / "tenantry_runtime_url").write_text("postgresql://rt-from-secret-file/db")
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "TENANTRY_RUNTIME_URL=postgresql://rt-from-dotenv/db\nTENANTRY_POOL_MAX_SIZE=3\nOTHER_APP_VAR=x\n"
    )
    s = Settings.from_env(
        {"TENANTRY_SECRETS_DIR": str(secrets), "TENANTRY_ENV_FILE": str(dotenv), "TENANTRY_POOL_MAX_SIZE": "5"}
    )
    assert s.database_url is not None and s.database_url.get_secret_value() == "postgresql://from-secret-file/db"
    # the environment beats the .env file, which beats the secrets directory
    assert s.runtime_url is not None and s.runtime_url.get_secret_value() == "postgresql://rt-from-dotenv/db"
    assert s.pool_max_size == 5
    with pytest.raises(ConfigurationError, match="secrets directory"):
        Settings.from_env({"TENANTRY_SECRETS_DIR": str(tmp_path / "absent")})


def test_a_library_process_without_a_database_url_fails_at_start_up() -> None:
    # today's main quietly started an embedded server on an empty local database
    with pytest.raises(ConfigurationError) as caught:
        Tenantry(Settings.from_env({}))
    message = str(caught.value)
    assert "\n" not in message and "TENANTRY_DATABASE_URL" in message and "TENANTRY_EMBEDDED=1" in message
    # the explicit opt-in, by setting or by environment, constructs (connecting to nothing yet)
    Tenantry(Settings(embedded=True)).close()
    assert Settings.from_env({"TENANTRY_EMBEDDED": "1"}).embedded
    Tenantry(Settings(database_url="postgresql://nobody@127.0.0.1:1/none")).close()


def test_the_cli_opts_into_the_embedded_server() -> None:
    from tenantry.cli.state import State

    assert State().settings().embedded


def test_the_embedded_server_gets_a_sealing_key_file_of_its_own(tmp_path: Path) -> None:
    settings = Settings(embedded=True, data_dir=tmp_path / "pg")
    with Tenantry(settings) as first:
        ring = first.secret_keyring()
    key_file = tmp_path / "pg.secret-keys"
    assert ring is not None and key_file.stat().st_mode & 0o777 == 0o600
    with Tenantry(settings) as second:  # the next process reads the same key
        again = second.secret_keyring()
        assert again is not None and again.ids == ring.ids == ["local"]
    # an external database gets no key file: its keys are the deployment's to set
    assert Tenantry(Settings(database_url="postgresql://x@127.0.0.1:1/none")).secret_keyring() is None


def test_runtime_and_reader_urls_without_an_admin_url_make_a_data_plane() -> None:
    plane = Settings.from_env(
        {
            "TENANTRY_RUNTIME_URL": "postgresql://app:pw@db/app",
            "TENANTRY_READER_URL": "postgresql://reader:pw@db/app",
            "TENANTRY_CELL_RUNTIME_URLS": '{"eu-1": "postgresql://app:pw@eu/app"}',
        }
    )
    assert plane.data_plane and plane.cell_runtime_urls["eu-1"].get_secret_value() == "postgresql://app:pw@eu/app"
    assert "pw" not in repr(plane)
    # the control: with the admin URL too, the process is a control plane that reads as the reader
    assert not plane.with_changes(database_url="postgresql://admin@db/app").data_plane
    with pytest.raises(ConfigurationError, match="TENANTRY_RUNTIME_URL too"):
        Settings(reader_url="postgresql://reader@db/app")
    with pytest.raises(ConfigurationError, match="JSON object"):
        Settings.from_env({"TENANTRY_CELL_RUNTIME_URLS": "eu-1=postgresql://x"})
    with pytest.raises(ConfigurationError, match="must differ"):
        Settings(runtime_role="same", reader_role="same")
