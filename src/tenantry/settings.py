"""Settings: one frozen pydantic-settings model, read from the environment only when asked.

Nothing here runs at import time, and ``Settings(...)`` reads nothing but its arguments;
``Settings.from_env()`` reads the ``TENANTRY_*`` variables, a ``.env`` file and a secrets
directory (one file per setting, as Docker and Kubernetes mount secrets). Connection strings
and keys are :class:`pydantic.SecretStr`: the repr shows ``**********``, and the code that
needs the value calls ``.get_secret_value()``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import pydantic
from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, DotEnvSettingsSource, NoDecode, SecretsSettingsSource, SettingsConfigDict

from tenantry.errors import ConfigurationError

__all__ = ["Settings"]

_ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_PREFIX = "TENANTRY_"


class Settings(BaseSettings):
    """How tenantry reaches PostgreSQL and names what it creates there.

    >>> "hunter2" in repr(Settings(database_url="postgresql://app:hunter2@db/app"))
    False
    """

    model_config = SettingsConfigDict(
        env_prefix=_PREFIX, frozen=True, extra="forbid", use_attribute_docstrings=True, validate_default=False
    )

    database_url: SecretStr | None = None
    """Admin connection (a superuser, or a role with CREATEROLE that may SET ROLE to the owner).
    ``None``: the embedded PostgreSQL server, when :attr:`embedded` allows it.
    ``TENANTRY_DATABASE_URL``. A secret: read it with ``.get_secret_value()``."""

    embedded: bool = False
    """Start (or reuse) the embedded PostgreSQL server when :attr:`database_url` is unset: for
    development, demos and tests. The CLI, ``tenantry demo`` and the examples turn it on; an app
    process must ask for it, so that one whose environment lost its database URL fails at
    start-up instead of serving an empty local database. ``TENANTRY_EMBEDDED`` (``1``/``0``)."""

    runtime_url: SecretStr | None = None
    """Connection for tenant traffic on the primary cell (the catalog's server), as the runtime
    role. ``None`` derives it from ``database_url`` with the runtime role's name and the
    password ``tenantry init`` stored. ``TENANTRY_RUNTIME_URL``."""

    reader_url: SecretStr | None = None
    """Connection for the catalog reads of request routing, as the reader role (SELECT on the
    routing views, nothing else). ``None``: those reads use the admin connection. Given with
    :attr:`runtime_url` and without :attr:`database_url`, the process is a *data plane*: it
    serves tenant traffic and refuses control-plane work with
    :class:`~tenantry.errors.ControlPlaneOnly`. ``tenantry credentials`` prints both URLs.
    ``TENANTRY_READER_URL``."""

    cell_runtime_urls: dict[str, SecretStr] = {}
    """Runtime connection strings of the cells other than ``primary``, by cell name, for a data
    plane (a process with the admin connection derives them from the catalog).
    ``TENANTRY_CELL_RUNTIME_URLS``, a JSON object: ``{"eu-1": "postgresql://..."}``."""

    secret_keys: SecretStr | None = None
    """Keys that encrypt the config fields a schema marks secret (:mod:`tenantry.core.secrets`):
    ``<id>:<base64 of 32 bytes>`` entries, comma-separated, the first encrypting new values and
    all of them decrypting. Rotate by putting a new key first, then run ``tenantry config reseal``; keep an old key
    while a version of the history sealed with it may be rolled back to. ``None``: with the embedded server, a key file kept
    in its data directory; otherwise secret fields cannot be written. ``TENANTRY_SECRET_KEYS``."""

    data_dir: Path | None = None
    """Where the embedded server keeps its data. ``None``: a per-user data directory.
    ``TENANTRY_DATA_DIR``."""

    backup_url: str | None = None
    """Where ``tn.backups`` keeps archives: ``file:///absolute/path``. ``None``: the
    ``backups`` folder of tenantry's per-user data directory. ``TENANTRY_BACKUP_URL``."""

    backup_key: SecretStr | None = None
    """Keys that encrypt backup archives at rest (AES-256-GCM): comma-separated
    ``<id>:<base64 of 32 bytes>`` entries, the first encrypting new archives, all of them
    opening old ones. ``None``: archives are not encrypted. ``TENANTRY_BACKUP_KEY``."""

    app: str | None = None
    """The app's tenant tables, as ``module:Base`` or ``module:metadata`` (import spec), for
    the CLI and for provisioning schema- and database-tier tenants. ``TENANTRY_APP``."""

    config: str | None = None
    """The app's config schema, a pydantic model, as ``module:Model``. ``None``: the
    ``TENANTRY_CONFIG`` attribute of the ``app`` module, if it has one. ``TENANTRY_CONFIG``."""

    migrations: str | None = None
    """The app's Alembic script directory, applied to every placement by ``tenantry migrate``.
    ``None``: tables are created from the metadata and not versioned. ``TENANTRY_MIGRATIONS``."""

    plugins: Annotated[tuple[str, ...], NoDecode] = ()
    """Plugins every :class:`~tenantry.Tenantry` built from these settings loads: names of
    installed plugins (their ``tenantry.plugins`` entry points), ``module:attr`` import specs,
    or ``*`` for every installed one. Give the app and the CLI the same list, as with ``app``:
    plugins add config sections and tables. ``TENANTRY_PLUGINS`` (comma-separated)."""

    owner_role: str = "tenantry_owner"
    """Role that owns the catalog and the app's tables and runs DDL. ``TENANTRY_OWNER_ROLE``."""

    runtime_role: str = "tenantry_app"
    """Role the app connects as: LOGIN, no superuser, no BYPASSRLS, owns nothing.
    ``TENANTRY_RUNTIME_ROLE``."""

    reader_role: str = "tenantry_reader"
    """Role a data plane reads the catalog's routing views as: LOGIN, SELECT on the schema
    ``tenantry_routing`` only. ``TENANTRY_READER_ROLE``."""

    pooled_schema: str = "tenant_data"
    """Schema that holds the pooled (shared, RLS-guarded) app tables. ``TENANTRY_POOLED_SCHEMA``."""

    pool_min_size: int = 1
    """Connections the runtime pool keeps open. ``TENANTRY_POOL_MIN_SIZE``."""

    pool_max_size: int = 10
    """Most connections the runtime pool opens. ``TENANTRY_POOL_MAX_SIZE``."""

    max_pools: int = 64
    """Most connection pools (one per server and database) a process keeps open; the least
    recently used is closed first. ``TENANTRY_MAX_POOLS``."""

    tenant_pool_max_size: int = 4
    """Most connections a process opens to one database-tier tenant's database.
    ``TENANTRY_TENANT_POOL_MAX_SIZE``."""

    database_connection_limit_factor: int = 4
    """A database-tier tenant's own database gets ``CONNECTION LIMIT`` = its plan's
    ``db_connections`` x this: the server's cap over every process and every kind of pool, a
    backstop above each process's own cap (each kind of pool a process uses, psycopg or
    SQLAlchemy, sync or async, keeps the connections it used open for a while). ``1`` makes
    the plan's figure the total over all processes, idle pooled connections included.
    ``TENANTRY_DATABASE_CONNECTION_LIMIT_FACTOR``."""

    schema_recycle_after: int = 200
    """A connection that has served this many distinct tenant schemas is closed when it is
    returned, so a backend's catalog cache cannot grow with the number of schemas.
    ``TENANTRY_SCHEMA_RECYCLE_AFTER``."""

    connect_timeout: float = 10.0
    """Seconds to wait for a connection. ``TENANTRY_CONNECT_TIMEOUT``."""

    tenant_cache_ttl: float = 300.0
    """Seconds a process may keep a slug -> tenant lookup. Changes reach every process within
    a second by LISTEN/NOTIFY, and the cache is trusted only while that listener is connected;
    the TTL is a backstop. ``TENANTRY_TENANT_CACHE_TTL``."""

    tenant_cache_size: int = 10_000
    """Most tenants (and custom hostnames) a process keeps in each of its per-tenant caches
    (lookups, config and flag views, plugin settings, brands and stylesheets; unknown slugs
    and hostnames in a smaller one, at most 1024, for 5 seconds); the ones loaded first are
    dropped first and loaded again when asked for. ``TENANTRY_TENANT_CACHE_SIZE``."""

    spare_schemas: int = 0
    """How many ready spare schemas ``tn.spares.fill()`` (``tenantry spares fill``) keeps on the
    primary cell when it is given no count: schemas built ahead of time, so that creating a
    schema-tier tenant claims one instead of running its DDL. 0: none. Nothing fills the pool
    by itself: run the fill after each deploy and from a periodic job (see
    :mod:`tenantry.services.spares`). ``TENANTRY_SPARE_SCHEMAS``."""

    hook_runner: bool = True
    """Whether a process whose plugins have lifecycle hooks delivers the calls queued by
    changes made elsewhere (the CLI, the admin API, other processes) in a thread of its own,
    started with the catalog listener. Off: only the process's own changes run its hooks at
    once; run ``tenantry plugins hooks run --follow`` for the rest. ``TENANTRY_HOOK_RUNNER``
    (``0``/``false``/``off`` to turn it off)."""

    base_domain: str | None = None
    """The app's own domain: tenants are served at ``<slug>.<base_domain>`` by the subdomain
    resolver, and custom domains may not be under it. ``TENANTRY_BASE_DOMAIN``."""

    limits_storage: SecretStr | None = None
    """Where the edge keeps its per-tenant rate-limit state. ``None``: in this process (each
    process enforces each tenant's rate on its own). ``redis://host:port/db`` (or
    ``rediss://``): in Redis, shared by every process, through the ``limits`` package
    (``pip install 'tenantry[limits]'``). A secret (it may hold a password).
    ``TENANTRY_LIMITS_STORAGE``."""

    limits_fail_open: bool = True
    """What the edge does while the limits' store (Redis) cannot be reached: serve the request
    unlimited (``True``, fail open) or refuse it with 503 and ``Retry-After`` (``False``,
    fail closed). Either way it logs the outage once and counts it in
    ``tenantry_limiter_errors_total``; never a 500. ``TENANTRY_LIMITS_FAIL_OPEN``."""

    limits_timeout: float = 0.05
    """Seconds the edge waits for the limits' store on one request before treating it as out
    of reach (it then leaves it alone for a second). ``TENANTRY_LIMITS_TIMEOUT``."""

    edge_max_in_flight: int = 0
    """Most requests one process serves at once, over all tenants: one more is refused with
    503 and ``Retry-After`` (the process protects itself; exempt paths count too). 0: no cap.
    ``TENANTRY_EDGE_MAX_IN_FLIGHT``."""

    usage_metering: bool = True
    """Count each tenant's requests, request time, transactions and database time in this
    process, and flush the counts to the catalog's usage table every
    ``usage_flush_seconds`` (``tn.usage``). ``TENANTRY_USAGE_METERING``."""

    usage_flush_seconds: float = 60.0
    """Seconds between two flushes of this process's usage counts (one INSERT each, whatever
    the number of requests). ``TENANTRY_USAGE_FLUSH_SECONDS``."""

    usage_retention_days: int = 31
    """Days of usage kept: older daily partitions are dropped by ``tn.usage.maintain()`` (the
    flusher calls it once a day). ``TENANTRY_USAGE_RETENTION_DAYS``."""

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except pydantic.ValidationError as err:
            raise ConfigurationError(f"settings are invalid: {_one_line(err)}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"settings are frozen: use settings.with_changes({name}=...)")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: Any, *_: Any, **__: Any
    ) -> tuple[Any, ...]:
        # ``Settings(...)`` takes its arguments only; reading the environment is from_env's job
        return (init_settings,)

    @field_validator("plugins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):  # (from_env splits the variable's text)
            raise ValueError("plugins must be a sequence of names or module:attr specs, not one string")
        if isinstance(value, list):
            return tuple(value)
        return value

    @field_validator("cell_runtime_urls", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        if isinstance(value, str):  # (from the environment, a .env file or a secrets file)
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError:
                raise ValueError('must be a JSON object of cell name to URL: {"eu-1": "postgresql://..."}') from None
        return value

    @field_validator(
        "database_url",
        "runtime_url",
        "reader_url",
        "secret_keys",
        "limits_storage",
        "backup_url",
        "backup_key",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        shown = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if shown == "" else value

    @field_validator("data_dir", mode="after")
    @classmethod
    def _home(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()

    @field_validator("hook_runner", "embedded", "limits_fail_open", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        if isinstance(value, str):
            flag = value.strip().lower()
            if flag not in ("1", "true", "on", "yes", "0", "false", "off", "no"):
                raise ValueError(f"{value!r} is not 1/0, true/false or on/off")
            return flag in ("1", "true", "on", "yes")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        for label, value in (
            ("owner role", self.owner_role),
            ("runtime role", self.runtime_role),
            ("reader role", self.reader_role),
            ("pooled schema", self.pooled_schema),
        ):
            if not _ROLE.fullmatch(value):
                raise ConfigurationError(f"{label} {value!r} must be a lowercase SQL identifier (a-z, 0-9, _)")
        if len({self.owner_role, self.runtime_role, self.reader_role}) < 3:
            raise ConfigurationError("owner role, runtime role and reader role must differ")
        if self.database_url is None and self.reader_url is not None and self.runtime_url is None:
            raise ConfigurationError(
                "TENANTRY_READER_URL without TENANTRY_DATABASE_URL makes a data-plane process:"
                " set TENANTRY_RUNTIME_URL too (`tenantry credentials` prints both)"
            )
        if self.pooled_schema in {"tenantry", "public", "pg_catalog", "information_schema"}:
            raise ConfigurationError(f"pooled schema {self.pooled_schema!r} is reserved")
        if not 0 <= self.pool_min_size <= self.pool_max_size or self.pool_max_size < 1:
            raise ConfigurationError("pool sizes must satisfy 0 <= min <= max and max >= 1")
        if self.max_pools < 1 or self.tenant_pool_max_size < 1 or self.schema_recycle_after < 1:
            raise ConfigurationError("max_pools, tenant_pool_max_size and schema_recycle_after must be >= 1")
        if self.database_connection_limit_factor < 1:
            raise ConfigurationError("database_connection_limit_factor must be >= 1")
        if self.tenant_cache_size < 1:
            raise ConfigurationError("tenant_cache_size must be >= 1")
        if isinstance(self.plugins, str) or not all(isinstance(p, str) and p.strip() for p in self.plugins):
            raise ConfigurationError("plugins must be a sequence of names or module:attr specs")
        if self.spare_schemas < 0:
            raise ConfigurationError("spare_schemas must be >= 0")
        if self.edge_max_in_flight < 0:
            raise ConfigurationError("edge_max_in_flight must be >= 0 (0: no cap)")
        if not 0 < self.usage_flush_seconds <= 86400:
            raise ConfigurationError("usage_flush_seconds must be more than 0 and at most 86400")
        if self.usage_retention_days < 1:
            raise ConfigurationError("usage_retention_days must be >= 1")
        if not 0 < self.limits_timeout <= 10:
            raise ConfigurationError("limits_timeout must be more than 0 and at most 10 seconds")
        storage = None if self.limits_storage is None else self.limits_storage.get_secret_value()
        if storage is not None and storage.split("://", 1)[0] not in ("redis", "rediss"):
            raise ConfigurationError("limits_storage must be a redis:// or rediss:// URL (or unset: in this process)")
        return self

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        env_file: str | Path | None = None,
        secrets_dir: str | Path | None = None,
        **overrides: object,
    ) -> Settings:
        """Build settings from ``TENANTRY_*`` variables; keyword overrides win.

        ``environ`` defaults to ``os.environ``, and then a ``.env`` file in the working
        directory is read too (``TENANTRY_ENV_FILE`` names another). Values in the environment
        win over the file's. ``secrets_dir`` (``TENANTRY_SECRETS_DIR``; ``/run/secrets`` for
        Docker) holds one file per setting, named like the variable (``tenantry_database_url``),
        below everything else.

        >>> Settings.from_env({"TENANTRY_POOL_MAX_SIZE": "4"}).pool_max_size
        4
        """
        env = os.environ if environ is None else environ
        dotenv = env_file or env.get(f"{_PREFIX}ENV_FILE") or (".env" if environ is None else None)
        secrets = secrets_dir or env.get(f"{_PREFIX}SECRETS_DIR")
        values: dict[str, object] = {}
        if secrets:
            if not Path(secrets).expanduser().is_dir():
                raise ConfigurationError(f"the secrets directory {str(secrets)!r} does not exist")
            values.update(_known(SecretsSettingsSource(cls, secrets_dir=secrets)()))
        if dotenv and Path(dotenv).expanduser().is_file():
            values.update(_known(DotEnvSettingsSource(cls, env_file=dotenv)()))
        for name in cls.model_fields:
            value = env.get(_PREFIX + name.upper())
            if value:
                values[name] = value
        if isinstance(values.get("plugins"), str):
            values["plugins"] = tuple(p.strip() for p in str(values["plugins"]).split(",") if p.strip())
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def data_plane(self) -> bool:
        """Whether these settings hold data-plane credentials only (runtime and reader URLs,
        no admin URL): such a process serves tenant traffic and refuses control-plane work.

        >>> Settings(runtime_url="postgresql://app@db/app", reader_url="postgresql://reader@db/app").data_plane
        True
        """
        return self.database_url is None and self.reader_url is not None

    def with_changes(self, **changes: object) -> Settings:
        """A copy with some fields changed (validated again)."""
        values: dict[str, object] = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self)(**{**values, **changes})


def _known(found: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in found.items() if k in Settings.model_fields and v not in (None, "")}


def _one_line(err: pydantic.ValidationError) -> str:
    problems = []
    for problem in err.errors(include_url=False, include_input=False):
        field = ".".join(str(p) for p in problem["loc"]) or "settings"
        variable = _PREFIX + field.upper() if field in Settings.model_fields else field
        problems.append(f"{field} ({variable}): {str(problem['msg']).removeprefix('Value error, ')}")
    return "; ".join(problems)
