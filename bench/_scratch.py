"""What the benchmarks share: a scratch database with roles of its own, the server to run on,
and the small statistics every report prints.

A benchmark makes everything it touches under a random tag and drops it at the end, even when
it fails: the scratch database, the databases its database-tier tenants got (read from
``tenantry.placements``), any extra databases it asked for, and its owner and runtime roles.
Import it from a script in ``bench/`` (``python bench/<name>.py`` puts ``bench/`` on the path).
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import shutil
import statistics
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import sqlalchemy as sa
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tenantry import EmbeddedServer, Settings

__all__ = [
    "SYSTEM_URL",
    "Scratch",
    "add_server_arguments",
    "environment",
    "load_average",
    "load_averages",
    "median_ms",
    "percentile",
    "run_took",
    "scratch_database",
    "server",
    "verdict",
]

SYSTEM_URL = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@dataclass(slots=True)
class Scratch:
    """A database and a pair of roles of the benchmark's own on a server."""

    server_url: str
    tag: str = field(default_factory=lambda: secrets.token_hex(4))
    extra: list[str] = field(default_factory=list)
    """More databases of the run's own (``database()``), dropped with the rest."""

    @property
    def dbname(self) -> str:
        return f"tenantry_bench_{self.tag}"

    @property
    def url(self) -> str:
        return make_conninfo(self.server_url, dbname=self.dbname)

    @property
    def owner_role(self) -> str:
        return f"tb_owner_{self.tag}"

    @property
    def runtime_role(self) -> str:
        return f"tb_app_{self.tag}"

    def settings(self, **changes: object) -> Settings:
        """Settings pointing at the scratch database and its roles, with ``changes``."""
        return Settings(
            database_url=self.url,
            owner_role=self.owner_role,
            runtime_role=self.runtime_role,
            **changes,  # type: ignore[arg-type]
        )

    def _admin(self, *statements: sql.Composed) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def create(self) -> None:
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.dbname)))

    def database(self, suffix: str) -> str:
        """Create another database of the run's own; returns its connection string."""
        name = f"{self.dbname}_{suffix}"
        self.extra.append(name)
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return make_conninfo(self.server_url, dbname=name)

    def tenant_databases(self) -> list[str]:
        """Databases that database-tier tenants (and spares) of the scratch catalog got (any status)."""
        found: list[str] = []
        for table in ("placements", "spares"):
            try:
                with psycopg.connect(self.url) as conn:
                    rows = conn.execute(
                        sql.SQL("SELECT DISTINCT database_name FROM {} WHERE database_name IS NOT NULL").format(
                            sql.Identifier("tenantry", table)
                        )
                    ).fetchall()
            except psycopg.Error:  # no catalog (or no spares table) yet
                continue
            found += [r[0] for r in rows]
        return found

    def drop(self) -> None:
        databases = [*self.tenant_databases(), *self.extra, self.dbname]
        self._admin(
            *(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)) for name in databases),
            *(
                sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role))
                for role in (self.runtime_role, self.owner_role)
            ),
        )


@contextmanager
def server(kind: str, url: str) -> Iterator[str]:
    """The superuser URL of the server to use; an embedded one lives only for the run."""
    if kind == "system":
        yield url
        return
    root = Path(tempfile.mkdtemp(prefix="tenantry-bench-"))
    root.chmod(0o755)  # the server runs as another user when we are root
    embedded = EmbeddedServer(root / "pg")
    try:
        yield embedded.ensure_running()
    finally:
        embedded.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def scratch_database(server_url: str) -> Iterator[Scratch]:
    scratch = Scratch(server_url)
    scratch.create()
    try:
        yield scratch
    finally:
        scratch.drop()


def percentile(values: Sequence[int], share: float) -> float:
    """Nearest-rank percentile of nanosecond timings, in milliseconds."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))
    return ordered[rank] / 1e6


def median_ms(values: Sequence[int]) -> float:
    """The median of nanosecond timings, in milliseconds."""
    return statistics.median(values) / 1e6


def load_average() -> str:
    """The 1-minute load average: other work on the machine moves these figures."""
    return f"{os.getloadavg()[0]:.2f}"


def load_averages() -> str:
    """The 1-, 5- and 15-minute load averages, as ``os.getloadavg()`` gives them."""
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def verdict(value: float, goal: float) -> str:
    return "met" if value <= goal else "NOT MET"


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """``--server embedded|system`` and ``--url`` (the system server's superuser URL)."""
    parser.add_argument("--server", choices=("embedded", "system"), default="embedded")
    parser.add_argument("--url", default=SYSTEM_URL, help="superuser URL of the system server")


def environment(started: datetime) -> str:
    """When and on what a run happens, for its first line."""
    return (
        f"{started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, Python {platform.python_version()},"
        f" psycopg {psycopg.__version__}, SQLAlchemy {sa.__version__}"
    )


def run_took(started: datetime) -> str:
    seconds = (datetime.now(timezone.utc) - started).total_seconds()
    return f"(run took {seconds:.0f} s; load average at the end {load_averages()})"
