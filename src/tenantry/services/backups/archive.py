"""The backup archive: a directory holding a manifest and one compressed file per table.

Layout (``<location>`` is ``<storage root>/<tenant slug>/<backup id>``)::

    <location>/manifest.json           written last: an archive without it is incomplete
    <location>/catalog.json.zst[.enc]  the tenant's catalog state (profile, config, brand, ...)
    <location>/tables/NNN.copy.zst[.enc]  one per table, in the manifest's order

Each table file is PostgreSQL's text ``COPY`` format of the tenant's rows (without the
``tenant_id`` column: a restore always writes the restoring tenant's id), compressed as one
zstd frame (with zstd's content checksum), then, when a key is configured, sealed in chunks
(:mod:`.crypto`). The manifest (JSON, see :class:`Manifest`) lists every table with its
columns, types and key, its row count and order-independent checksum (the mover's:
:func:`tenantry.db.tenant_copy.checksum` over every column but ``tenant_id``), and the
size and SHA-256 of its file as stored.

A directory rather than one file: each table streams into a file of its own while the
next is read, a storage with no append (S3) takes one object per file under one prefix,
and a rerun or a verify reads one table without reading the others. The manifest is written
last, so an interrupted backup never looks complete. Memory stays flat: data flows through
fixed-size buffers (the COPY's blocks, zstd's window, one encryption chunk).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from tenantry.errors import BackupInvalid, BackupNotFound, ConfigurationError
from tenantry.services.backups.crypto import BackupKeys, DecryptingReader, EncryptingWriter

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "FileStorage",
    "Manifest",
    "Storage",
    "TableEntry",
    "open_stream",
    "storage_for",
    "write_stream",
]

FORMAT = "tenantry-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: URL schemes of object stores (through obstore)
OBJECT_SCHEMES = ("s3", "s3a", "gs", "az", "abfs", "abfss")
#: zstd level: 3 (zstd's default) compresses a tenant's COPY text 4-8x at several hundred MB/s
LEVEL = 3
#: the size of the blocks read from storage and handed on
BLOCK = 128 * 1024


@dataclass(slots=True)
class TableEntry:
    """One table of an archive, as the manifest lists it."""

    name: str
    columns: list[str]
    types: list[str]
    key: list[str]
    rows: int
    checksum: str
    file: str
    bytes: int = 0
    sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": self.columns,
            "types": self.types,
            "key": self.key,
            "rows": self.rows,
            "checksum": self.checksum,
            "file": self.file,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableEntry:
        return cls(
            name=str(data["name"]),
            columns=[str(c) for c in data["columns"]],
            types=[str(t) for t in data.get("types", [])],
            key=[str(k) for k in data.get("key", [])],
            rows=int(data["rows"]),
            checksum=str(data["checksum"]),
            file=str(data["file"]),
            bytes=int(data.get("bytes", 0)),
            sha256=str(data.get("sha256", "")),
        )


@dataclass(slots=True)
class Manifest:
    """What an archive holds (``manifest.json``); see ``docs/backups.md`` for each field."""

    backup_id: str
    created_at: str
    tenantry_version: str
    tenant: dict[str, Any]
    app: dict[str, Any]
    server_version: int
    tables: list[TableEntry] = field(default_factory=list)
    catalog: dict[str, Any] = field(default_factory=dict)
    encryption: dict[str, Any] | None = None
    mac: str | None = None

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def size(self) -> int:
        return sum(t.bytes for t in self.tables) + int(self.catalog.get("bytes", 0))

    def body(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "backup_id": self.backup_id,
            "created_at": self.created_at,
            "tenantry_version": self.tenantry_version,
            "tenant": self.tenant,
            "app": self.app,
            "server_version": self.server_version,
            "compression": "zstd",
            "encryption": self.encryption,
            "tables": [t.to_dict() for t in self.tables],
            "catalog": self.catalog,
            "sizes": {"rows": self.rows, "bytes": self.size},
        }

    def signed_bytes(self) -> bytes:
        """The bytes the manifest's MAC covers: its body as canonical JSON."""
        return json.dumps(self.body(), sort_keys=True, separators=(",", ":")).encode()

    def to_dict(self) -> dict[str, Any]:
        return self.body() | {"mac": self.mac}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        if data.get("format") != FORMAT:
            raise BackupInvalid("not a tenantry backup: its manifest names another format")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise BackupInvalid(
                f"the archive has format version {data.get('format_version')}; this tenantry reads up to"
                f" {FORMAT_VERSION}: upgrade tenantry"
            )
        try:
            return cls(
                backup_id=str(data["backup_id"]),
                created_at=str(data["created_at"]),
                tenantry_version=str(data["tenantry_version"]),
                tenant=dict(data["tenant"]),
                app=dict(data["app"]),
                server_version=int(data["server_version"]),
                tables=[TableEntry.from_dict(t) for t in data["tables"]],
                catalog=dict(data.get("catalog") or {}),
                encryption=data.get("encryption"),
                mac=data.get("mac"),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise BackupInvalid(f"the archive's manifest is malformed ({type(err).__name__}: {err})") from None


class Storage(Protocol):
    """Where archives live: :class:`FileStorage` (``file://``) or
    :class:`~tenantry.services.backups.objects.ObjectStorage` (``s3://`` and the other object
    stores). A location is ``<tenant slug>/<backup id>``; names are relative to it."""

    def url(self) -> str: ...
    def location(self, slug: str, backup_id: str) -> str: ...
    def begin(self, location: str) -> None: ...
    def writer(self, location: str, name: str) -> BinaryIO: ...
    def write_manifest(self, location: str, manifest: Manifest) -> None: ...
    def commit(self, location: str) -> None: ...
    def exists(self, location: str) -> bool: ...
    def reader(self, location: str, name: str) -> BinaryIO: ...
    def size(self, location: str, name: str) -> int: ...
    def read_manifest(self, location: str) -> dict[str, Any]: ...
    def delete(self, location: str) -> None: ...


def check_location(location: str) -> list[str]:
    """``location``'s two parts; :class:`BackupInvalid` for anything else (``..``, ``/``, a
    control character)."""
    parts = location.split("/")
    if len(parts) != 2 or any(p in ("", ".", "..") or "\\" in p or not p.isprintable() for p in parts):
        raise BackupInvalid(f"{location!r} is not a backup location")
    return parts


_FILE_NAME = re.compile(r"(tables/)?[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


def check_name(name: str) -> str:
    """A file name inside an archive (``tables/000.copy.zst``, ``manifest.json``); a manifest
    naming anything else (``../``, an absolute path) is refused."""
    if not _FILE_NAME.fullmatch(name) or ".." in name:
        raise BackupInvalid(f"the archive names a file {name!r} outside it (a tampered manifest?)")
    return name


def parse_manifest(text: bytes | str, location: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        raise BackupInvalid(f"the manifest at {location} is not JSON (corrupted or truncated)") from None
    if not isinstance(data, dict):
        raise BackupInvalid(f"the manifest at {location} is not a JSON object")
    return data


def manifest_bytes(manifest: Manifest) -> bytes:
    return json.dumps(manifest.to_dict(), indent=2, sort_keys=True).encode()


class FileStorage:
    """Archives in a local directory (``file://`` URLs). A backup is written under a
    ``.partial`` name and renamed into place once whole: readers never see half of one."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def url(self) -> str:
        return self.root.as_uri()

    def location(self, slug: str, backup_id: str) -> str:
        return f"{slug}/{backup_id}"

    def _path(self, location: str, name: str = "", *, partial: bool = False) -> Path:
        parts = check_location(location)
        base = self.root / parts[0] / (parts[1] + (".partial" if partial else ""))
        return base / check_name(name) if name else base

    def begin(self, location: str) -> None:
        """Start writing ``location`` afresh (what an interrupted attempt left is dropped)."""
        shutil.rmtree(self._path(location, partial=True), ignore_errors=True)
        self._path(location, "tables", partial=True).mkdir(parents=True)

    def writer(self, location: str, name: str) -> BinaryIO:
        return self._path(location, name, partial=True).open("wb")

    def commit(self, location: str) -> None:
        """Make the written archive visible (one rename)."""
        final = self._path(location)
        if final.exists():
            shutil.rmtree(final)
        self._path(location, partial=True).rename(final)

    def exists(self, location: str) -> bool:
        return (self._path(location) / MANIFEST).is_file()

    def reader(self, location: str, name: str) -> BinaryIO:
        path = self._path(location, name)
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise BackupInvalid(f"the archive at {location} lacks {name} (a missing table or a broken copy)") from None

    def size(self, location: str, name: str) -> int:
        try:
            return self._path(location, name).stat().st_size
        except FileNotFoundError:
            return -1

    def delete(self, location: str) -> None:
        shutil.rmtree(self._path(location), ignore_errors=True)
        shutil.rmtree(self._path(location, partial=True), ignore_errors=True)

    def read_manifest(self, location: str) -> dict[str, Any]:
        try:
            text = (self._path(location) / MANIFEST).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BackupNotFound(f"no archive at {self.url()}/{location}") from None
        return parse_manifest(text, location)

    def write_manifest(self, location: str, manifest: Manifest) -> None:
        path = self._path(location, MANIFEST, partial=True)
        path.write_bytes(manifest_bytes(manifest))


def storage_for(url: str) -> Storage:
    """The storage of ``TENANTRY_BACKUP_URL``: ``file:///path``, or an object store
    (``s3://bucket/prefix``, ``gs://…``, ``az://…``: :mod:`.objects`)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in OBJECT_SCHEMES:
        from tenantry.services.backups.objects import ObjectStorage

        return ObjectStorage(url)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        raise ConfigurationError(
            f"TENANTRY_BACKUP_URL {url!r}: give file:///absolute/path or an object store URL"
            f" ({', '.join(f'{s}://' for s in OBJECT_SCHEMES)})"
        )
    path = Path(urllib.parse.unquote(parsed.path))
    if not path.is_absolute():
        raise ConfigurationError(f"TENANTRY_BACKUP_URL {url!r} must name an absolute path")
    return FileStorage(path)


class _Counting:
    """Counts and hashes the bytes on their way to storage."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self.size = 0
        self.digest = hashlib.sha256()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._sink.write(data)
        self.size += len(data)
        self.digest.update(data)
        return len(data)

    def flush(self) -> None:
        self._sink.flush()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._sink.close()


class StreamWriter:
    """Where one file's plain bytes go: zstd, then (with a key) encryption, then storage.
    :meth:`close` returns ``(bytes stored, sha256 of them)``."""

    def __init__(self, sink: BinaryIO, keys: BackupKeys | None, context: str) -> None:
        import zstandard

        self._counted = _Counting(sink)
        target: Any = self._counted
        if keys is not None:
            target = EncryptingWriter(self._counted, keys.key(keys.current), keys.current, context)  # type: ignore[arg-type]
        self._zstd: Any = zstandard.ZstdCompressor(level=LEVEL, write_checksum=True).stream_writer(target, closefd=True)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._zstd.write(data)

    def close(self) -> tuple[int, str]:
        self._zstd.close()
        self._counted.close()
        return self._counted.size, self._counted.digest.hexdigest()


def write_stream(storage: Storage, location: str, name: str, keys: BackupKeys | None, context: str) -> StreamWriter:
    return StreamWriter(storage.writer(location, name), keys, context)


class _Hashing:
    """Hashes and counts the bytes read from storage (checked against the manifest at the end)."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self.size = 0
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self.size += len(data)
        self.digest.update(data)
        return data

    def close(self) -> None:
        self._source.close()


def open_stream(
    storage: Storage,
    location: str,
    name: str,
    keys: BackupKeys | None,
    *,
    encrypted: bool,
    context: str,
    what: str,
    expect: tuple[int, str] | None = None,
) -> Iterator[bytes]:
    """The plain bytes of one file, block by block. Raises :class:`BackupInvalid` for a file
    that is corrupted, truncated, sealed with another key, or (``expect``: its stored size and
    SHA-256 from the manifest) not the file the manifest names."""
    import zstandard

    hashing = _Hashing(storage.reader(location, name))
    source: Any = DecryptingReader(hashing, keys, context, what) if encrypted else hashing  # type: ignore[arg-type]
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(source, read_size=BLOCK, read_across_frames=False)
        while True:
            try:
                block = reader.read(BLOCK)
            except zstandard.ZstdError as err:
                raise BackupInvalid(f"{what} is corrupted ({err})") from None
            if not block:
                break
            yield block
        rest = source.read()  # (for a sealed file: opens the chunks left, the final one too)
        if rest:
            raise BackupInvalid(f"{what} has {len(rest)} bytes after its end (corrupted)")
        if expect is not None and (hashing.size, hashing.digest.hexdigest()) != expect:
            raise BackupInvalid(f"{what} does not match the manifest's size and SHA-256 (corrupted or replaced)")
    finally:
        hashing.close()
