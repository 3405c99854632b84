"""Secret config fields: which ones a schema marks, sealed at rest, redacted when read.

A field of a config schema typed :class:`pydantic.SecretStr` (``Optional`` too, inside
nested models and lists of models too) is secret::

    class PaymentsConfig(BaseModel):
        api_key: SecretStr | None = None

Its value is stored sealed: AES-256-GCM under a key of the :class:`Keyring` (from
``TENANTRY_SECRET_KEYS``), as ``tenantry:sealed:v1:<key id>:<base64 of nonce and
ciphertext>``, the layer and the dotted path bound in as associated data (a sealed value
copied to another path or layer does not open). Every read the control plane offers shows
:data:`REDACTED` in its place: config get, history, diffs, audit rows. The code that needs
the value reads it from ``tn.config.current()`` with ``.get_secret_value()``.

Key rotation: put a new key first in ``TENANTRY_SECRET_KEYS`` (``new,old``). New values are
sealed with the first key; every key listed opens what it sealed. ``tenantry config
reseal`` (:meth:`tn.config.reseal <tenantry.tenant_config.TenantConfig.reseal>`) then seals the current layers with the first
key. The history is append-only and keeps the key each version was sealed with: drop an old
key once no version sealed with it needs rolling back to.

Pure: no I/O (the cipher is computation).
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel, SecretStr

from tenantry.errors import ConfigurationError, InvalidInput

__all__ = [
    "REDACTED",
    "SEALED_PREFIX",
    "Keyring",
    "parse_keys",
    "is_sealed",
    "is_sealed_anywhere",
    "keep_redacted",
    "new_key",
    "redact",
    "redact_overrides",
    "seal",
    "seal_overrides",
    "secret_paths",
    "unseal",
    "unseal_overrides",
]

#: what every read shows instead of a secret value (pydantic's own mask)
REDACTED = "**********"
SEALED_PREFIX = "tenantry:sealed:v1:"
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_NONCE_BYTES = 12

Path = tuple[str, ...]
"""A dotted path split up; ``"[]"`` stands for any item of a list."""


def new_key(key_id: str | None = None) -> str:
    """A fresh keyring entry, ``<id>:<base64 of 32 random bytes>``, for ``TENANTRY_SECRET_KEYS``."""
    kid = key_id or "k" + os.urandom(3).hex()
    if not _KEY_ID.fullmatch(kid):
        raise ConfigurationError(f"a key id is 1-32 letters, digits, '_' or '-', not {kid!r}")
    return f"{kid}:{base64.b64encode(os.urandom(32)).decode()}"


class Keyring:
    """The keys that seal secret values: the first seals, all of them open.

    >>> ring = Keyring.parse(new_key("k1"))
    >>> ring.open(ring.seal("hunter2", "tenant:x:api_key"), "tenant:x:api_key")
    'hunter2'
    """

    def __init__(self, keys: Iterable[tuple[str, bytes]]) -> None:
        self._keys = dict(keys)
        if not self._keys:
            raise ConfigurationError("a keyring needs at least one key")
        for kid, key in self._keys.items():
            if not _KEY_ID.fullmatch(kid) or len(key) != 32:
                raise ConfigurationError(f"secret key {kid!r} must have an id of letters and digits and 32 bytes")
        self.current = next(iter(self._keys))

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """``id:base64key,id:base64key`` (the format of ``TENANTRY_SECRET_KEYS``)."""
        return cls(parse_keys(text, "TENANTRY_SECRET_KEYS", example="new_key()"))

    @property
    def ids(self) -> list[str]:
        return list(self._keys)

    def seal(self, plain: str, context: str) -> str:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self._keys[self.current]).encrypt(nonce, plain.encode(), context.encode())
        return f"{SEALED_PREFIX}{self.current}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, token: str, context: str) -> str:
        """The plain value of ``token``; :class:`ConfigurationError` when no key here opens it."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        kid, _, encoded = token.removeprefix(SEALED_PREFIX).partition(":")
        key = self._keys.get(kid)
        if key is None:
            raise ConfigurationError(
                f"a secret config value is sealed with key {kid!r}, which TENANTRY_SECRET_KEYS does not hold"
            )
        try:
            raw = base64.b64decode(encoded, validate=True)
            return AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode()).decode()
        except (binascii.Error, ValueError, InvalidTag):
            raise ConfigurationError(
                f"a secret config value at {context} does not open (altered, or moved from elsewhere)"
            ) from None

    def sealed_with_current(self, token: str) -> bool:
        return token.startswith(f"{SEALED_PREFIX}{self.current}:")

    def derive(self, purpose: str) -> list[bytes]:
        """Keys for another use of the same secret (an app signing its session cookies, say):
        one 32-byte key per key of the ring, current first, each derived with HKDF-SHA256
        with ``purpose`` as its info. Every process holding the same keys derives the same
        keys, so its cookies survive a restart and verify on every instance; a key derived
        for one purpose tells nothing of the sealing key or of another purpose's key.
        Rotating the ring rotates them too: sign with the first, accept all.

        >>> ring = Keyring.parse(new_key("k1"))
        >>> ring.derive("app.sessions") == ring.derive("app.sessions") != ring.derive("other")
        True
        """
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        if not purpose:
            raise ConfigurationError("a derived key needs a purpose")
        info = f"tenantry:derive:v1:{purpose}".encode()
        return [
            HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key) for key in self._keys.values()
        ]


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


def is_sealed_anywhere(value: object) -> bool:
    """Whether a sealed value is left anywhere in ``value`` (a document, list or scalar)."""
    if isinstance(value, Mapping):
        return any(is_sealed_anywhere(v) for v in value.values())
    if isinstance(value, list):
        return any(is_sealed_anywhere(v) for v in value)
    return is_sealed(value)


# -- which fields are secret ----------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def secret_paths(model: type[BaseModel]) -> frozenset[Path]:
    """The paths of the secret fields of ``model``: ``{("webhooks", "secret"), ...}``."""
    found: set[Path] = set()
    _collect(model, (), found, set())
    return frozenset(found)


def _collect(model: type[BaseModel], prefix: Path, found: set[Path], seen: set[type[BaseModel]]) -> None:
    if model in seen:
        return
    seen = seen | {model}
    for name, info in model.model_fields.items():
        key = info.alias or name
        for kind, inner in _kinds(info.annotation):
            if kind == "secret":
                found.add((*prefix, key))
            elif kind == "model":
                _collect(inner, (*prefix, key), found, seen)
            elif kind == "list":
                _collect(inner, (*prefix, key, "[]"), found, seen)


def _kinds(annotation: Any) -> list[tuple[str, Any]]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _kinds(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [k for a in typing.get_args(annotation) for k in _kinds(a)]
    if origin in (list, tuple, set, frozenset):
        return [
            ("list", m) for kind, m in (k for a in typing.get_args(annotation) for k in _kinds(a)) if kind == "model"
        ]
    if annotation is SecretStr:
        return [("secret", None)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [("model", annotation)]
    return []


# -- walking documents ------------------------------------------------------------------------


def _walk(value: Any, path: Path, at_secret: Callable[[Path], bool], leaf: Callable[[Any, Path], Any]) -> Any:
    if isinstance(value, Mapping):
        return {k: _walk(v, (*path, k), at_secret, leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, (*path, "[]"), at_secret, leaf) for v in value]
    return leaf(value, path) if at_secret(path) else value


def _context(scope: str, path: Path) -> str:
    return f"{scope}:{'.'.join(path)}"


def seal(
    document: Mapping[str, Any], paths: frozenset[Path], keyring: Keyring | None, scope: str, prefix: Path = ()
) -> dict[str, Any]:
    """``document`` with the plain strings at secret ``paths`` sealed (``scope``: the layer,
    ``plan:<name>`` or ``tenant:<id>``); :class:`ConfigurationError` without a keyring."""

    def close(value: Any, path: Path) -> Any:
        if not isinstance(value, str) or is_sealed(value):
            return value
        if keyring is None:
            raise ConfigurationError(
                f"{'.'.join(path)} is a secret field, and no key to seal it with is configured: set TENANTRY_SECRET_KEYS"
                " (python -c 'from tenantry.core.secrets import new_key; print(new_key())')"
            )
        return keyring.seal(value, _context(scope, path))

    result: dict[str, Any] = _walk(document, prefix, paths.__contains__, close)
    return result


def unseal(
    document: Mapping[str, Any], keyring: Keyring | None, scope: str, prefix: Path = (), *, strict: bool = True
) -> dict[str, Any]:
    """``document`` with every sealed value opened. ``strict=False`` leaves the ones that do
    not open as they are (for diffs, which show them redacted anyway)."""

    def open_(value: Any, path: Path) -> Any:
        if keyring is None:
            if strict:
                raise ConfigurationError(
                    "secret config values are stored, and no key is configured: set TENANTRY_SECRET_KEYS"
                )
            return value
        try:
            return keyring.open(value, _context(scope, path))
        except ConfigurationError:
            if strict:
                raise
            return value

    result: dict[str, Any] = _walk(document, prefix, lambda _p: True, lambda v, p: open_(v, p) if is_sealed(v) else v)
    return result


def redact(document: Mapping[str, Any], paths: frozenset[Path], prefix: Path = ()) -> dict[str, Any]:
    """``document`` with the values at secret ``paths`` (and anything sealed) shown as
    :data:`REDACTED`."""
    result: dict[str, Any] = _walk(
        document,
        prefix,
        lambda _p: True,
        lambda v, p: REDACTED if v is not None and (p in paths or is_sealed(v)) else v,
    )
    return result


def _per_override(overrides: Mapping[str, Any], apply: Callable[[Any, Path], Any]) -> dict[str, Any]:
    result = {}
    for key, entry in overrides.items():
        result[key] = {**entry, "value": apply(entry.get("value"), tuple(key.split(".")))}
    return result


def seal_overrides(
    overrides: Mapping[str, Any], paths: frozenset[Path], keyring: Keyring | None, scope: str
) -> dict[str, Any]:
    return _per_override(overrides, lambda v, p: _at(v, p, lambda d, q: seal(d, paths, keyring, scope, q)))


def unseal_overrides(
    overrides: Mapping[str, Any], keyring: Keyring | None, scope: str, *, strict: bool = True
) -> dict[str, Any]:
    return _per_override(overrides, lambda v, p: _at(v, p, lambda d, q: unseal(d, keyring, scope, q, strict=strict)))


def redact_overrides(overrides: Mapping[str, Any], paths: frozenset[Path]) -> dict[str, Any]:
    return _per_override(overrides, lambda v, p: _at(v, p, lambda d, q: redact(d, paths, q)))


def _at(value: Any, path: Path, apply: Callable[[Mapping[str, Any], Path], dict[str, Any]]) -> Any:
    """Apply a document function to a value that sits at ``path``."""
    return apply({path[-1]: value}, path[:-1])[path[-1]]


def keep_redacted(new: Mapping[str, Any], current: Mapping[str, Any], paths: frozenset[Path]) -> dict[str, Any]:
    """``new`` with :data:`REDACTED` at a secret path replaced by the current value there, so
    that a document read back (redacted) and written again keeps its secrets."""

    def keep(value: Any, path: Path) -> Any:
        if value != REDACTED or "[]" in path:
            return value
        node: Any = current
        for part in path:
            if not isinstance(node, Mapping) or part not in node:
                raise InvalidInput(f"{'.'.join(path)} is {REDACTED}, a redacted value, and there is no value to keep")
            node = node[part]
        return node

    result: dict[str, Any] = _walk(new, (), paths.__contains__, keep)
    return result


def parse_keys(text: str, setting: str, *, example: str = "new_key()") -> list[tuple[str, bytes]]:
    """The keys of a setting written ``id:base64key[,id:base64key...]`` (32-byte keys, ids of
    letters and digits), in order; :class:`ConfigurationError` naming ``setting`` (and how to
    make a key: ``example``) for anything else."""
    keys = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        kid, sep, encoded = entry.partition(":")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not sep or len(key) != 32 or not _KEY_ID.fullmatch(kid):
            raise ConfigurationError(
                f"{setting} holds comma-separated <id>:<base64 of 32 bytes> entries;"
                f" make one with: python -c 'from tenantry.core.secrets import new_key; print({example})'"
            )
        keys.append((kid, key))
    return keys
