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
import shutil
import statistics
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import sqlalchemy as sa

from tenantry import EmbeddedServer
from tenantry.testing import ScratchCatalog

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


class Scratch(ScratchCatalog):
    """A database and a pair of roles of the benchmark's own on a server (``tenantry.testing``)."""

    def __init__(self, server_url: str) -> None:
        super().__init__(server_url, prefix="tenantry_bench", role_prefix="tb")


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
    seconds = (datetime.now(UTC) - started).total_seconds()
    return f"(run took {seconds:.0f} s; load average at the end {load_averages()})"
