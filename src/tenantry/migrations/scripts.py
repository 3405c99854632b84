"""The migration sources: the app's Alembic script directory and the plugins' revision
directories, loaded once as one Alembic ``ScriptDirectory``; its heads, the steps between
revisions.

The app keeps its revisions in ``<directory>/versions`` (``TENANTRY_MIGRATIONS``); a plugin
with tables may ship a directory of revisions of its own (``AppTables.migrations``), one
branch labelled with the plugin's section. They are Alembic ``version_locations`` of one
script directory, so a placement's version table holds one row per branch, and its revision
(as the catalog records it, and as :attr:`Scripts.head` is) is the sorted heads joined with
``,``: with the app's directory alone, exactly its single head.

Loading imports every revision file, so it is cached per process and per tuple of locations,
and loaded again only when a file under one of them changes (name, size or time).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError, RevisionMap
from alembic.util import CommandError

from tenantry.errors import ConfigurationError

__all__ = ["Scripts", "join_revisions", "load_scripts", "plugin_chain", "split_revisions"]

_lock = threading.Lock()
_Key = tuple[str | None, tuple[str, ...]]
_cache: dict[_Key, tuple[tuple[tuple[str, int, int], ...], Scripts]] = {}


def split_revisions(revision: str | None) -> tuple[str, ...]:
    """``"a,b"`` -> ``("a", "b")``; ``None`` or ``""`` -> ``()``."""
    return tuple(part.strip() for part in (revision or "").split(",") if part.strip())


def join_revisions(heads: Iterable[str]) -> str | None:
    """The revision string of a set of heads: sorted, joined with ``,``; ``None`` for none."""
    return ",".join(sorted(heads)) or None


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _load(script: ScriptDirectory) -> list[Script]:
    # the revision files, each imported once; Alembic's own map is then built from this list
    # (its loader is private, but the map would otherwise warn, then fail with a KeyError, on a
    # revision that names one no location has: checked here first, with a message)
    return list(script._load_revisions())


def _use(script: ScriptDirectory, loaded: list[Script]) -> None:
    script.revision_map = RevisionMap(lambda: iter(loaded))


class Scripts:
    """The revisions of the app's script directory (optional) and of the plugins' directories.

    ``head`` is the composite head (sorted heads joined with ``,``); ``heads`` the tuple.
    The app's own revisions must have a single head (unmerged app branches are refused).
    """

    def __init__(self, directory: str | None, plugin_locations: Sequence[str] = ()) -> None:
        if directory is None and not plugin_locations:
            raise ConfigurationError("no migrations: neither an app script directory nor a plugin's migrations")
        self.directory = directory
        """The app's script directory (revisions in ``<directory>/versions``); ``None``: none."""
        self.plugin_locations = tuple(plugin_locations)
        """The plugins' revision directories."""
        app_versions = str(Path(directory, "versions")) if directory is not None else None
        self.locations: tuple[str, ...] = (*([app_versions] if app_versions else []), *self.plugin_locations)
        label = directory if directory is not None else ", ".join(self.plugin_locations)
        try:
            self.script = ScriptDirectory(directory or self.plugin_locations[0], version_locations=list(self.locations))
            loaded = _load(self.script)
        except Exception as err:  # a revision file that does not import
            raise ConfigurationError(f"migrations directory {label!r}: {_first_line(err)}") from err
        self._check(loaded, app_versions)
        _use(self.script, loaded)
        try:
            heads = self.script.get_heads()
        except Exception as err:  # a cycle, a bad branch label
            raise ConfigurationError(f"migrations directory {label!r}: {_first_line(err)}") from err
        self.heads: tuple[str, ...] = tuple(sorted(heads))
        self.head: str | None = join_revisions(heads)
        """The composite head: what a placement at the head records."""

    def _check(self, loaded: list[Script], app_versions: str | None) -> None:
        where: dict[str, str] = {}
        for found in loaded:
            location = str(Path(found.path).parent)
            if found.revision in where:
                raise ConfigurationError(
                    f"revision {found.revision!r} is in both {where[found.revision]!r} and {location!r}"
                )
            where[found.revision] = location
        for found in loaded:
            for other in (*_as_tuple(found.down_revision), *_as_tuple(found.dependencies)):
                if other not in where and not any(other in _as_tuple(s.branch_labels) for s in loaded):
                    raise ConfigurationError(
                        f"revision {found.revision!r} ({found.path}) depends on {other!r}, which no migrations"
                        " directory has"
                    )
        if app_versions is None:
            return
        app_dir = str(Path(app_versions).resolve())
        app = {s.revision: s for s in loaded if str(Path(where[s.revision]).resolve()) == app_dir}
        parents = {down for s in app.values() for down in _as_tuple(s.down_revision)}
        heads = sorted(set(app) - parents)
        if len(heads) > 1:
            raise ConfigurationError(
                f"the migrations in {self.directory!r} have {len(heads)} heads ({', '.join(heads)});"
                " merge them with `alembic merge`"
            )

    def known(self, revision: str) -> bool:
        """Whether every revision of ``revision`` (``"a"`` or ``"a,b"``) is one of these."""
        parts = split_revisions(revision)
        if not parts:
            return False
        for part in parts:
            try:
                if self.script.get_revision(part) is None:
                    return False
            except (CommandError, RevisionError):
                return False
        return True

    def unknown(self, revision: str | None) -> list[str]:
        """The revisions of ``revision`` that none of the locations has."""
        return [part for part in split_revisions(revision) if not self.known(part)]

    def steps(self, current: str | None, target: str | None = None) -> list[str]:
        """The revisions an upgrade from ``current`` (``None``: base; ``"a,b"``: several
        branches) to ``target`` (default: every head) applies, in the order Alembic applies
        them; empty when there is nothing to do or no path."""
        heads = split_revisions(target) if target is not None else self.heads
        now = split_revisions(current)
        if not heads or set(now) == set(heads):
            return []
        try:
            revisions = list(self.script.iterate_revisions(heads, now, implicit_base=True))
        except (CommandError, RevisionError):
            return []
        return [r.revision for r in reversed(revisions)]


def plugin_chain(name: str, section: str, location: str | os.PathLike[str]) -> tuple[str, tuple[str, ...]]:
    """Check a plugin's migrations directory: it exists, its revisions load, they depend only
    on one another, form one chain with one head, and the base carries the branch label
    ``section``. Returns the resolved directory and its revision ids;
    :class:`ConfigurationError` naming the problem otherwise."""
    prefix = f"plugin {name!r}: migrations directory {str(location)!r}"
    path = Path(location).expanduser()
    if not path.is_dir():
        raise ConfigurationError(f"{prefix} does not exist")
    resolved = str(path.resolve())
    try:
        script = ScriptDirectory(resolved, version_locations=[resolved])
        loaded = _load(script)
    except Exception as err:
        raise ConfigurationError(f"{prefix}: the revisions do not load: {_first_line(err)}") from err
    if not loaded:
        raise ConfigurationError(f"{prefix} has no revisions")
    ids = {s.revision for s in loaded}
    if len(ids) < len(loaded):
        raise ConfigurationError(f"{prefix} has a revision id twice")
    problems: list[str] = []
    for found in loaded:
        for other in (*_as_tuple(found.down_revision), *_as_tuple(found.dependencies)):
            if other not in ids:
                problems.append(
                    f"revision {found.revision!r} depends on {other!r}, which is not in the directory"
                    " (a plugin's revisions depend only on one another)"
                )
        labels = set(_as_tuple(found.branch_labels)) - {section}
        if labels:
            problems.append(
                f"revision {found.revision!r} has branch label(s) {sorted(labels)}; only {section!r} is allowed"
            )
    bases = sorted(s.revision for s in loaded if not _as_tuple(s.down_revision))
    if len(bases) != 1:
        problems.append(f"{len(bases)} base revisions ({', '.join(bases)}); a plugin's revisions are one chain")
    else:
        base = next(s for s in loaded if s.revision == bases[0])
        if section not in _as_tuple(base.branch_labels):
            problems.append(f"the base revision {base.revision!r} must have branch_labels = ({section!r},)")
    if problems:
        raise ConfigurationError(f"{prefix}: " + "; ".join(problems))
    _use(script, loaded)
    try:
        heads = sorted(script.get_heads())
    except Exception as err:  # a cycle
        raise ConfigurationError(f"{prefix}: {_first_line(err)}") from err
    if len(heads) != 1:
        raise ConfigurationError(
            f"{prefix} has {len(heads)} heads ({', '.join(heads)}); merge them with `alembic merge`"
        )
    return resolved, tuple(sorted(ids))


def _signature(locations: Iterable[Path]) -> tuple[tuple[str, int, int], ...]:
    found = []
    for directory in locations:
        for path in sorted(directory.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            stat = path.stat()
            found.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(found)


def load_scripts(directory: str | None, plugin_locations: Sequence[str] = ()) -> Scripts:
    """The revisions of the app's script directory ``directory`` (``None``: the app has none)
    and of the plugins' ``plugin_locations``, cached until one of their files changes."""
    places: list[Path] = []
    key_dir: str | None = None
    if directory is not None:
        path = Path(directory).expanduser()
        if not path.is_dir():
            raise ConfigurationError(f"migrations directory {directory!r} does not exist")
        key_dir = str(path.resolve())
        places.append(path)
    plugins: list[str] = []
    for location in plugin_locations:
        path = Path(location).expanduser()
        if not path.is_dir():
            raise ConfigurationError(f"a plugin's migrations directory {location!r} does not exist")
        resolved = str(path.resolve())
        if resolved not in plugins:
            plugins.append(resolved)
            places.append(path)
    key: _Key = (key_dir, tuple(plugins))
    signature = _signature(places)
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == signature:
            return hit[1]
    scripts = Scripts(key_dir, tuple(plugins))
    with _lock:
        _cache[key] = (signature, scripts)
    return scripts
