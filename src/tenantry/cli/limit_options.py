"""The limit options of ``tenantry plans create|update`` and ``tenantry tenants limits set``.

Light: no database, no pydantic at import (``--help`` stays fast). Each option takes a value,
or ``none`` to lift that limit; the values are checked by the service
(:func:`tenantry.core.limit_schema.check_limits`), whose messages name the field.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from tenantry.errors import InvalidInput

__all__ = [
    "OPTION_KEYS",
    "Burst",
    "BackupEvery",
    "Concurrency",
    "DbConnections",
    "IdleTimeout",
    "Keep",
    "Rps",
    "StatementTimeout",
    "StorageMb",
    "WorkMem",
    "collect",
    "limit_key",
    "limit_rows",
]

_NONE = "'none' lifts it."
Rps = Annotated[str | None, typer.Option("--rps", metavar="NUMBER", help=f"Requests per second (sustained). {_NONE}")]
Burst = Annotated[
    str | None, typer.Option("--burst", metavar="N", help=f"Requests at once (default: one second's worth). {_NONE}")
]
Concurrency = Annotated[
    str | None, typer.Option("--concurrency", metavar="N", help=f"Requests in flight at once. {_NONE}")
]
DbConnections = Annotated[
    str | None, typer.Option("--db-connections", metavar="N", help=f"Database connections held at once. {_NONE}")
]
StatementTimeout = Annotated[
    str | None,
    typer.Option("--statement-timeout-ms", metavar="MS", help=f"Longest statement, in milliseconds. {_NONE}"),
]
IdleTimeout = Annotated[
    str | None,
    typer.Option(
        "--idle-timeout-ms", metavar="MS", help=f"Longest idle time inside a transaction, in milliseconds. {_NONE}"
    ),
]
WorkMem = Annotated[
    str | None, typer.Option("--work-mem", metavar="SIZE", help=f"work_mem: kilobytes, or a size such as 8MB. {_NONE}")
]
StorageMb = Annotated[
    str | None, typer.Option("--storage-mb", metavar="MB", help=f"Storage quota in megabytes. {_NONE}")
]
BackupEvery = Annotated[
    str | None, typer.Option("--backup-every", metavar="DURATION", help=f"Back up every (a duration: 6h, 1d). {_NONE}")
]
Keep = Annotated[str | None, typer.Option("--keep", metavar="N", help=f"Backups kept. {_NONE}")]

#: each limit key by its option's name (without the dashes), and by itself
OPTION_KEYS: dict[str, str] = {
    "rps": "requests_per_second",
    "burst": "burst",
    "concurrency": "concurrency",
    "db-connections": "db_connections",
    "statement-timeout-ms": "statement_timeout_ms",
    "idle-timeout-ms": "idle_in_transaction_timeout_ms",
    "work-mem": "work_mem",
    "storage-mb": "storage_mb",
    "backup-every": "backup_every",
    "keep": "keep",
}
_FLOATS = {"requests_per_second"}
_TEXTS = {"backup_every"}


def limit_key(name: str) -> str:
    """The limit key a user's name stands for: ``rps``, ``--rps`` and ``requests_per_second``
    are one."""
    bare = name.strip().lstrip("-")
    if bare in OPTION_KEYS:
        return OPTION_KEYS[bare]
    if bare in OPTION_KEYS.values():
        return bare
    raise InvalidInput(f"limits: unknown key {name[:60]!r} (keys: {', '.join(sorted(OPTION_KEYS.values()))})")


def _value(key: str, text: str) -> Any:
    if text.strip().lower() in ("none", "null"):
        return None
    if key in _TEXTS:
        return text
    if key == "work_mem":
        return int(text) if text.strip().isdigit() else text
    try:
        return int(text)
    except ValueError:
        if key in _FLOATS:
            try:
                return float(text)
            except ValueError:
                pass
    kind = "a number" if key in _FLOATS else "a whole number"
    raise InvalidInput(f"limits.{key} must be {kind} or 'none', not {text[:40]!r}")


def collect(**given: str | None) -> dict[str, Any]:
    """The limits named on the command line (``given`` by limit key; ``None``: not given)."""
    return {key: _value(key, text) for key, text in given.items() if text is not None}


def limit_rows(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, value) rows of a limits document for a table (``none``: no limit)."""
    return [(key, "none" if value is None else json.dumps(value)) for key, value in document.items()]
