"""Scratch catalogs for tests and benchmarks: a fresh database and a pair of roles of its own
on a PostgreSQL server, dropped at the end with every database its tenants got.

An app's own test suite can run each test module (or each test) on a catalog of its own, on
any tier, without touching another's::

    import pytest
    from tenantry import Tenantry
    from tenantry.testing import ScratchCatalog

    @pytest.fixture(scope="module")
    def tn():
        with ScratchCatalog("host=127.0.0.1 user=postgres dbname=postgres") as scratch:
            with Tenantry(scratch.settings(), metadata=Base.metadata) as tn:
                tn.schema.init()
                yield tn

The server URL must be a superuser's (it creates and drops databases and roles). Names carry
a random tag: ``<prefix>_<tag>`` for the database, ``<role_prefix>_owner_<tag>``,
``<role_prefix>_app_<tag>`` and ``<role_prefix>_reader_<tag>`` for the roles ``tn.schema.init()``
creates.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tenantry.core.secrets import new_key
from tenantry.settings import Settings

__all__ = ["SERVERS_VARIABLE", "SYSTEM_URL", "TIER_PLANS", "ScratchCatalog", "reachable", "servers"]

#: the system server's superuser URL (``TENANTRY_TEST_SYSTEM_URL`` overrides it)
SYSTEM_URL = os.environ.get("TENANTRY_TEST_SYSTEM_URL", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
#: the plan of each isolation tier, as ``tn.schema.init()`` seeds them
TIER_PLANS = {"pooled": "free", "schema": "business", "database": "enterprise"}
#: the environment variable that names the servers to test on (see :func:`servers`)
SERVERS_VARIABLE = "TENANTRY_TEST_BACKENDS"


def servers(config: Any) -> list[str]:
    """The servers a pytest run tests on: its ``--tenantry-servers`` option, else the
    ``TENANTRY_TEST_BACKENDS`` environment variable, else the ``tenantry_servers`` ini option,
    else ``embedded``."""
    text = (
        config.getoption("--tenantry-servers")
        or os.environ.get(SERVERS_VARIABLE)
        or str(config.getini("tenantry_servers"))
    )
    named = [part.strip() for part in text.split(",") if part.strip()]
    return named or ["embedded"]


def reachable(url: str) -> str:
    """``url``, once a connection to it works; under pytest, the test fails with a clear
    message otherwise."""
    import pytest

    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as err:
        pytest.fail(
            f"the PostgreSQL server at {url!r} is not reachable ({str(err).strip()}); start it, or name"
            f" other servers with --tenantry-servers or {SERVERS_VARIABLE} (e.g. {SERVERS_VARIABLE}=embedded)"
        )
    return url


class ScratchCatalog:
    """A database and a pair of roles of their own on a server; :meth:`create` makes the
    database, :meth:`drop` removes it, the databases its tenants and spares got, the extra
    databases asked for, and the roles. A context manager does both."""

    def __init__(self, server_url: str, *, prefix: str = "tenantry_scratch", role_prefix: str = "ts") -> None:
        self.server_url = server_url
        self.tag = secrets.token_hex(4)
        self.dbname = f"{prefix}_{self.tag}"
        self.owner = f"{role_prefix}_owner_{self.tag}"
        self.runtime = f"{role_prefix}_app_{self.tag}"
        self.reader = f"{role_prefix}_reader_{self.tag}"
        self.url = make_conninfo(server_url, dbname=self.dbname)
        #: the key that seals secret config values (every Tenantry on this catalog shares it)
        self.secret_keys = new_key("scratch")
        #: more databases of the catalog's own (:meth:`database`), dropped with the rest
        self.extra: list[str] = []

    @property
    def owner_role(self) -> str:
        return self.owner

    @property
    def runtime_role(self) -> str:
        return self.runtime

    def settings(self, **changes: object) -> Settings:
        """Settings pointing at the scratch database and its roles, with ``changes``."""
        values: dict[str, object] = {
            "database_url": self.url,
            "owner_role": self.owner,
            "runtime_role": self.runtime,
            "reader_role": self.reader,
            "secret_keys": self.secret_keys,
            **changes,
        }
        return Settings(**values)

    def _admin(self, statements: Iterable[sql.Composed]) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def create(self) -> ScratchCatalog:
        """Create the database (empty: ``tn.schema.init()`` builds the catalog in it)."""
        self._admin([sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.dbname))])
        return self

    def database(self, suffix: str) -> str:
        """Create another database of this catalog's own; its connection string."""
        name = f"{self.dbname}_{suffix}"
        self.extra.append(name)
        self._admin([sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))])
        return make_conninfo(self.server_url, dbname=name)

    def tenant_databases(self) -> list[str]:
        """Databases that database-tier tenants and spares of the catalog got (any status)."""
        found: list[str] = []
        for table in ("placements", "spares"):
            try:
                with psycopg.connect(self.url) as conn:
                    rows = conn.execute(
                        sql.SQL("SELECT DISTINCT database_name FROM {} WHERE database_name IS NOT NULL").format(
                            sql.Identifier("tenantry", table)
                        )
                    ).fetchall()
            except psycopg.Error:  # no catalog (or no such table) yet, or no database
                continue
            found += [r[0] for r in rows]
        return found

    def drop(self) -> None:
        """Drop everything the catalog made (databases first, then the roles); idempotent."""
        names = [*self.tenant_databases(), *self.extra, self.dbname]
        self._admin(
            [
                *(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)) for name in names),
                *(
                    sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role))
                    for role in (self.runtime, self.reader, self.owner)
                ),
            ]
        )

    def __enter__(self) -> ScratchCatalog:
        return self.create()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.drop()
