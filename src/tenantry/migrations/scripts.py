"""The app's Alembic script directory: loading it once, its head, the steps between revisions.

Loading a script directory imports every revision file, so it is cached per process and per
directory, and loaded again only when a file under it changes (name, size or time).
"""

from __future__ import annotations

import threading
from pathlib import Path

from alembic.script import ScriptDirectory
from alembic.util import CommandError

from tenantry.errors import ConfigurationError

__all__ = ["Scripts", "load_scripts"]

_lock = threading.Lock()
_cache: dict[str, tuple[tuple[tuple[str, int, int], ...], Scripts]] = {}


class Scripts:
    """An Alembic script directory with a single head."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        try:
            self.script = ScriptDirectory(directory)
            heads = self.script.get_heads()
        except Exception as err:  # a revision file that does not import, a broken chain
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ConfigurationError(f"migrations directory {directory!r}: {first}") from err
        if len(heads) > 1:
            raise ConfigurationError(
                f"the migrations in {directory!r} have {len(heads)} heads ({', '.join(sorted(heads))});"
                " merge them with `alembic merge`"
            )
        self.head: str | None = heads[0] if heads else None

    def known(self, revision: str) -> bool:
        """Whether ``revision`` is a revision of this directory."""
        try:
            return self.script.get_revision(revision) is not None
        except CommandError:
            return False

    def steps(self, current: str | None, target: str | None = None) -> list[str]:
        """The revisions an upgrade from ``current`` (``None``: base) to ``target`` (default:
        head) applies, oldest first; empty when there is nothing to do or no path."""
        target = target or self.head
        if target is None or current == target:
            return []
        try:
            revisions = list(self.script.iterate_revisions(target, current, implicit_base=True))
        except CommandError:
            return []
        return [r.revision for r in reversed(revisions)]


def _signature(directory: Path) -> tuple[tuple[str, int, int], ...]:
    found = []
    for path in sorted(directory.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        stat = path.stat()
        found.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(found)


def load_scripts(directory: str) -> Scripts:
    """The script directory at ``directory`` (cached until one of its files changes)."""
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise ConfigurationError(f"migrations directory {directory!r} does not exist")
    key = str(path.resolve())
    signature = _signature(path)
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == signature:
            return hit[1]
    scripts = Scripts(key)
    with _lock:
        _cache[key] = (signature, scripts)
    return scripts
