"""Encryption at rest of backup archives: AES-256-GCM in chunks, so it streams.

A file is a header then chunks. The header is ``b"TNBKENC1"``, one byte giving the length
of the key id, the key id (ASCII), and a random 7-byte nonce prefix. Each chunk is a 4-byte
big-endian length, then that many bytes of AES-GCM ciphertext (with its 16-byte tag) of at
most :data:`CHUNK` bytes of plain data. Chunk ``i`` is sealed with the nonce
``prefix(7) || i (4 bytes, big-endian) || last (1 byte: 1 for the final chunk, else 0)``
and the associated data ``header || context`` (the context names the archive and the file,
so a chunk, or a whole file, moved to another file or archive does not open). The final
chunk (possibly empty) carries ``last = 1``: a file cut short after a whole chunk does not
open either (the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár).

Keys come from ``TENANTRY_BACKUP_KEY``: comma-separated ``<id>:<base64 of 32 bytes>``
entries (the format of ``TENANTRY_SECRET_KEYS``); the first encrypts new archives, every one
listed opens the archives it sealed. Pure: no I/O but the file objects given.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from typing import BinaryIO

from tenantry.core.secrets import parse_keys
from tenantry.errors import BackupInvalid, ConfigurationError

__all__ = ["CHUNK", "MAGIC", "BackupKeys", "DecryptingReader", "EncryptingWriter"]

MAGIC = b"TNBKENC1"
#: plain bytes per chunk: a chunk is sealed (and opened) whole, so memory stays at about this
CHUNK = 256 * 1024
_TAG = 16
_PREFIX = 7


class BackupKeys:
    """The keys of ``TENANTRY_BACKUP_KEY``: the first encrypts, every one decrypts."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ConfigurationError("TENANTRY_BACKUP_KEY holds no key")
        self._keys = dict(keys)
        self.current = keys[0][0]

    @classmethod
    def parse(cls, text: str) -> BackupKeys:
        """``id:base64key[,id:base64key...]``."""
        return cls(parse_keys(text, "TENANTRY_BACKUP_KEY", example='new_key("b1")'))

    def key(self, kid: str) -> bytes:
        """The key ``kid``; :class:`BackupInvalid` when it is not configured."""
        found = self._keys.get(kid)
        if found is None:
            raise BackupInvalid(
                f"the archive is encrypted with key {kid!r}, which TENANTRY_BACKUP_KEY does not hold (wrong key)"
            )
        return found

    def check_value(self, kid: str, backup_id: str) -> str:
        """What the manifest keeps to tell a wrong key at once (an HMAC, not the key)."""
        return hmac.new(self.key(kid), f"tenantry-backup-key-check:{backup_id}".encode(), hashlib.sha256).hexdigest()[
            :32
        ]

    def mac(self, kid: str, data: bytes) -> str:
        """An HMAC-SHA256 of ``data`` (the manifest's own, so it cannot be edited unseen)."""
        return hmac.new(self.key(kid), b"tenantry-backup-manifest:" + data, hashlib.sha256).hexdigest()


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">I", counter) + (b"\x01" if last else b"\x00")


class EncryptingWriter:
    """A writable file object that seals what it is given, chunk by chunk, into ``sink``;
    :meth:`close` seals the final chunk and closes ``sink``."""

    def __init__(self, sink: BinaryIO, key: bytes, kid: str, context: str) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._sink, self._aead = sink, AESGCM(key)
        self._prefix = os.urandom(_PREFIX)
        header = MAGIC + bytes([len(kid)]) + kid.encode() + self._prefix
        self._aad = header + context.encode()
        self._buffer = bytearray()
        self._counter = 0
        self.closed = False
        sink.write(header)

    def _seal(self, plain: bytes, last: bool) -> None:
        if self._counter >= 2**32 - 1:
            raise BackupInvalid("a backup file grew past the chunk counter's limit")
        sealed = self._aead.encrypt(_nonce(self._prefix, self._counter, last), plain, self._aad)
        self._sink.write(struct.pack(">I", len(sealed)) + sealed)
        self._counter += 1

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._buffer += data
        while len(self._buffer) > CHUNK:  # keep one chunk back: the final one must carry `last`
            self._seal(bytes(self._buffer[:CHUNK]), last=False)
            del self._buffer[:CHUNK]
        return len(data)

    def flush(self) -> None:
        self._sink.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._seal(bytes(self._buffer), last=True)
        self._buffer.clear()
        self._sink.close()


class DecryptingReader:
    """A readable file object that opens what :class:`EncryptingWriter` sealed, chunk by
    chunk; :class:`BackupInvalid` for a wrong key, a changed byte or a file cut short."""

    def __init__(self, source: BinaryIO, keys: BackupKeys | None, context: str, what: str) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._source, self._what = source, what
        head = source.read(len(MAGIC) + 1)
        if len(head) < len(MAGIC) + 1 or head[: len(MAGIC)] != MAGIC:
            raise BackupInvalid(f"{what} is not an encrypted backup file (corrupted or truncated)")
        kid = source.read(head[-1])
        self._prefix = source.read(_PREFIX)
        if len(self._prefix) != _PREFIX:
            raise BackupInvalid(f"{what} is truncated")
        if keys is None:
            raise BackupInvalid("the archive is encrypted: set TENANTRY_BACKUP_KEY to the key that made it")
        self._aead = AESGCM(keys.key(kid.decode("ascii", "replace")))
        self._aad = head + kid + self._prefix + context.encode()
        self._counter = 0
        self._pending = self._frame()
        self._plain = b""
        self._pos = 0
        self._done = False

    def _frame(self) -> bytes | None:
        size = self._source.read(4)
        if not size:
            return None
        if len(size) < 4:
            raise BackupInvalid(f"{self._what} is truncated")
        (n,) = struct.unpack(">I", size)
        if n < _TAG or n > CHUNK + _TAG:
            raise BackupInvalid(f"{self._what} is corrupted (a chunk of {n} bytes)")
        frame = self._source.read(n)
        if len(frame) != n:
            raise BackupInvalid(f"{self._what} is truncated")
        return frame

    def _next(self) -> None:
        from cryptography.exceptions import InvalidTag

        frame = self._pending
        if frame is None:
            raise BackupInvalid(f"{self._what} is truncated (its final chunk is missing)")
        self._pending = self._frame()
        last = self._pending is None
        try:
            self._plain = self._aead.decrypt(_nonce(self._prefix, self._counter, last), frame, self._aad)
            self._pos = 0
        except InvalidTag:
            raise BackupInvalid(
                f"{self._what} does not open: corrupted or truncated, or sealed with another key of the same id"
            ) from None
        self._counter += 1
        self._done = last

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        while size < 0 or len(out) < size:
            left = len(self._plain) - self._pos
            if not left:
                if self._done:
                    break
                self._next()
                continue
            take = left if size < 0 else min(size - len(out), left)
            out += self._plain[self._pos : self._pos + take]
            self._pos += take
        return bytes(out)

    def close(self) -> None:
        self._source.close()
