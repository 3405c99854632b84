"""Settings: one frozen dataclass, read from the environment only when asked.

Nothing here runs at import time; ``Settings.from_env()`` reads the variables it names, and
every field has a visible default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from tenantry.errors import ConfigurationError

__all__ = ["Settings"]

_ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """How tenantry reaches PostgreSQL and names what it creates there."""

    database_url: str | None = None
    """Admin connection (a superuser, or a role with CREATEROLE that may SET ROLE to the owner).
    ``None`` starts or reuses the embedded PostgreSQL server. ``TENANTRY_DATABASE_URL``."""

    runtime_url: str | None = None
    """Connection for tenant traffic, as the runtime role. ``None`` derives it from
    ``database_url`` with the runtime role's name and the password ``tenantry init`` stored.
    ``TENANTRY_RUNTIME_URL``."""

    data_dir: Path | None = None
    """Where the embedded server keeps its data. ``None``: a per-user data directory.
    ``TENANTRY_DATA_DIR``."""

    app: str | None = None
    """The app's tenant tables, as ``module:Base`` or ``module:metadata`` (import spec), for
    the CLI and for provisioning schema- and database-tier tenants. ``TENANTRY_APP``."""

    config: str | None = None
    """The app's config schema, a pydantic model, as ``module:Model``. ``None``: the
    ``TENANTRY_CONFIG`` attribute of the ``app`` module, if it has one. ``TENANTRY_CONFIG``."""

    migrations: str | None = None
    """The app's Alembic script directory, applied to every placement by ``tenantry migrate``.
    ``None``: tables are created from the metadata and not versioned. ``TENANTRY_MIGRATIONS``."""

    plugins: tuple[str, ...] = ()
    """Plugins every :class:`~tenantry.Tenantry` built from these settings loads: names of
    installed plugins (their ``tenantry.plugins`` entry points), ``module:attr`` import specs,
    or ``*`` for every installed one. Give the app and the CLI the same list, as with ``app``:
    plugins add config sections and tables. ``TENANTRY_PLUGINS`` (comma-separated)."""

    owner_role: str = "tenantry_owner"
    """Role that owns the catalog and the app's tables and runs DDL. ``TENANTRY_OWNER_ROLE``."""

    runtime_role: str = "tenantry_app"
    """Role the app connects as: LOGIN, no superuser, no BYPASSRLS, owns nothing.
    ``TENANTRY_RUNTIME_ROLE``."""

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
    """How many ready spare schemas ``tn.fill_spares()`` (``tenantry spares fill``) keeps on the
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

    def __post_init__(self) -> None:
        for label, value in (
            ("owner role", self.owner_role),
            ("runtime role", self.runtime_role),
            ("pooled schema", self.pooled_schema),
        ):
            if not _ROLE.fullmatch(value):
                raise ConfigurationError(
                    f"{label} {value!r} must be a lowercase SQL identifier (a-z, 0-9, _)"
                )
        if self.owner_role == self.runtime_role:
            raise ConfigurationError("owner role and runtime role must differ")
        if self.pooled_schema in {"tenantry", "public", "pg_catalog", "information_schema"}:
            raise ConfigurationError(f"pooled schema {self.pooled_schema!r} is reserved")
        if not 0 <= self.pool_min_size <= self.pool_max_size or self.pool_max_size < 1:
            raise ConfigurationError("pool sizes must satisfy 0 <= min <= max and max >= 1")
        if self.max_pools < 1 or self.tenant_pool_max_size < 1 or self.schema_recycle_after < 1:
            raise ConfigurationError("max_pools, tenant_pool_max_size and schema_recycle_after must be >= 1")
        if self.tenant_cache_size < 1:
            raise ConfigurationError("tenant_cache_size must be >= 1")
        if isinstance(self.plugins, str) or not all(isinstance(p, str) and p.strip() for p in self.plugins):
            raise ConfigurationError("plugins must be a sequence of names or module:attr specs")
        if self.spare_schemas < 0:
            raise ConfigurationError("spare_schemas must be >= 0")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``TENANTRY_*`` variables; keyword overrides win.

        >>> Settings.from_env({"TENANTRY_POOL_MAX_SIZE": "4"}).pool_max_size
        4
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        text = {
            "database_url": "TENANTRY_DATABASE_URL",
            "app": "TENANTRY_APP",
            "config": "TENANTRY_CONFIG",
            "migrations": "TENANTRY_MIGRATIONS",
            "runtime_url": "TENANTRY_RUNTIME_URL",
            "owner_role": "TENANTRY_OWNER_ROLE",
            "runtime_role": "TENANTRY_RUNTIME_ROLE",
            "pooled_schema": "TENANTRY_POOLED_SCHEMA",
            "base_domain": "TENANTRY_BASE_DOMAIN",
        }
        for name, var in text.items():
            if env.get(var):
                values[name] = env[var]
        if env.get("TENANTRY_PLUGINS"):
            values["plugins"] = tuple(p.strip() for p in env["TENANTRY_PLUGINS"].split(",") if p.strip())
        if env.get("TENANTRY_HOOK_RUNNER"):
            flag = env["TENANTRY_HOOK_RUNNER"].strip().lower()
            if flag not in ("1", "true", "on", "yes", "0", "false", "off", "no"):
                raise ConfigurationError(f"TENANTRY_HOOK_RUNNER={env['TENANTRY_HOOK_RUNNER']!r} is not 1/0, true/false or on/off")
            values["hook_runner"] = flag in ("1", "true", "on", "yes")
        if env.get("TENANTRY_DATA_DIR"):
            values["data_dir"] = Path(env["TENANTRY_DATA_DIR"]).expanduser()
        numbers: dict[str, tuple[str, type]] = {
            "pool_min_size": ("TENANTRY_POOL_MIN_SIZE", int),
            "pool_max_size": ("TENANTRY_POOL_MAX_SIZE", int),
            "max_pools": ("TENANTRY_MAX_POOLS", int),
            "tenant_pool_max_size": ("TENANTRY_TENANT_POOL_MAX_SIZE", int),
            "schema_recycle_after": ("TENANTRY_SCHEMA_RECYCLE_AFTER", int),
            "spare_schemas": ("TENANTRY_SPARE_SCHEMAS", int),
            "tenant_cache_size": ("TENANTRY_TENANT_CACHE_SIZE", int),
            "connect_timeout": ("TENANTRY_CONNECT_TIMEOUT", float),
            "tenant_cache_ttl": ("TENANTRY_TENANT_CACHE_TTL", float),
        }
        for name, (var, kind) in numbers.items():
            if env.get(var):
                try:
                    values[name] = kind(env[var])
                except ValueError:
                    raise ConfigurationError(f"{var}={env[var]!r} is not a number") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def with_changes(self, **changes: object) -> Settings:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]
