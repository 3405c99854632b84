"""Archives in an object store (S3 and S3-compatible stores such as MinIO and R2, Google Cloud
Storage, Azure), through obstore.

``TENANTRY_BACKUP_URL=s3://bucket/prefix``. Credentials and endpoints come from the store's
usual environment variables, which obstore reads: for S3, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, and for an S3-compatible store ``AWS_ENDPOINT_URL``
(with ``AWS_ALLOW_HTTP=true`` for a plain-HTTP endpoint). See ``docs/backups.md``.

Objects are written once, streamed (multipart uploads): a table file never sits in memory
whole. A store has no rename, so an archive is complete once its manifest, written last,
is there; a new attempt at the same location first removes what an earlier one left.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from tenantry.errors import BackupInvalid, BackupNotFound, ConfigurationError
from tenantry.services.backups.archive import (
    MANIFEST,
    Manifest,
    check_location,
    check_name,
    manifest_bytes,
    parse_manifest,
)

__all__ = ["ObjectStorage"]


class _Writer:
    """A writable file object over obstore's streaming writer."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._inner.write(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._inner.close()


class _Reader:
    """A readable file object over obstore's streaming reader."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def read(self, size: int = -1) -> bytes:
        return bytes(self._inner.read() if size is None or size < 0 else self._inner.read(size))

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


class ObjectStorage:
    """Archives under ``<url>/<tenant slug>/<backup id>/`` in an object store."""

    def __init__(self, url: str) -> None:
        try:
            import obstore
            from obstore.store import from_url
        except ImportError as err:
            raise ConfigurationError(
                f"TENANTRY_BACKUP_URL {url!r} names an object store: install obstore (pip install 'tenantry[s3]')"
            ) from err
        self._url = url.rstrip("/")
        self._obstore = obstore
        try:
            self._store = from_url(self._url)
        except Exception as err:  # noqa: BLE001 - obstore's configuration errors, said in one line
            raise ConfigurationError(f"TENANTRY_BACKUP_URL {url!r}: {str(err).splitlines()[0]}") from None

    def url(self) -> str:
        return self._url

    def location(self, slug: str, backup_id: str) -> str:
        return f"{slug}/{backup_id}"

    def _key(self, location: str, name: str) -> str:
        check_location(location)
        return f"{location}/{check_name(name)}"

    def _keys(self, location: str) -> list[str]:
        check_location(location)
        return [o["path"] for batch in self._obstore.list(self._store, prefix=f"{location}/") for o in batch]

    def begin(self, location: str) -> None:
        self.delete(location)

    def writer(self, location: str, name: str) -> BinaryIO:
        return _Writer(self._obstore.open_writer(self._store, self._key(location, name)))  # type: ignore[return-value]

    def write_manifest(self, location: str, manifest: Manifest) -> None:
        self._obstore.put(self._store, self._key(location, MANIFEST), manifest_bytes(manifest))

    def commit(self, location: str) -> None:
        """Nothing to do: the manifest, written last, made the archive whole."""

    def exists(self, location: str) -> bool:
        return self.size(location, MANIFEST) >= 0

    def reader(self, location: str, name: str) -> BinaryIO:
        try:
            return _Reader(self._obstore.open_reader(self._store, self._key(location, name)))  # type: ignore[return-value]
        except FileNotFoundError:
            raise BackupInvalid(f"the archive at {location} lacks {name} (a missing table or a broken copy)") from None

    def size(self, location: str, name: str) -> int:
        try:
            return int(self._obstore.head(self._store, self._key(location, name))["size"])
        except FileNotFoundError:
            return -1

    def read_manifest(self, location: str) -> dict[str, Any]:
        try:
            data = self._obstore.get(self._store, self._key(location, MANIFEST)).bytes()
        except FileNotFoundError:
            raise BackupNotFound(f"no archive at {self._url}/{location}") from None
        return parse_manifest(bytes(data), location)

    def delete(self, location: str) -> None:
        keys = self._keys(location)
        if keys:
            self._obstore.delete(self._store, keys)
