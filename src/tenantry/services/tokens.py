"""Admin API tokens: created with scopes, shown once, stored hashed, checked per request.

A token reads ``tnt_<prefix>_<secret>``: twelve random characters that find its row, then 256
random bits. The catalog keeps the prefix and the SHA-256 of the whole token, never the token;
the digest is compared in constant time. Creating and revoking a token are audited; each
request a token authenticates is audited as ``token:<name>`` by the admin API. Token names
are never reused, so that name stays one token's in the audit log for good.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import re
import secrets
import string
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psycopg

from tenantry.core.scopes import validate_scopes
from tenantry.db.catalog import audit, require_catalog
from tenantry.db.catalog.tokens import (
    ApiToken,
    get_token,
    insert_token,
    list_tokens,
    set_revoked,
    token_by_prefix,
    touch_token,
)
from tenantry.errors import AuthenticationFailed, Conflict, InvalidInput

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = [
    "TOKEN_PREFIX",
    "TokenService",
    "authenticate",
    "create_token",
    "revoke_token",
]

TOKEN_PREFIX = "tnt_"
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_ALPHABET = string.ascii_lowercase + string.digits
_PREFIX_LENGTH = 12
_SHAPE = re.compile(rf"{TOKEN_PREFIX}([a-z0-9]{{{_PREFIX_LENGTH}}})_([A-Za-z0-9_-]{{43}})")
#: last_used_at is written at most this often per token, not on every request
_TOUCH_EVERY = timedelta(seconds=60)


class _PrefixTaken(Exception):
    """The random prefix is in use: roll the savepoint back and pick another."""


def _digest(presented: str) -> bytes:
    return hashlib.sha256(presented.encode()).digest()


def create_token(
    conn: psycopg.Connection[Any],
    name: str,
    scopes: list[str] | tuple[str, ...],
    *,
    expires_in: timedelta | None,
    actor: str,
) -> tuple[ApiToken, str]:
    """Record a new token; returns it and its secret, which exists nowhere else afterwards."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(
            f"token name {str(name)[:70]!r} must be 1 to 63 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
        )
    chosen = validate_scopes(scopes)
    if expires_in is not None and expires_in <= timedelta(0):
        raise InvalidInput("a token's lifetime must be positive")
    for _attempt in range(3):
        prefix = "".join(secrets.choice(_ALPHABET) for _ in range(_PREFIX_LENGTH))
        secret = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        try:
            with conn.transaction():
                token = insert_token(
                    conn,
                    name=name,
                    prefix=prefix,
                    digest=_digest(secret),
                    scopes=chosen,
                    created_by=actor,
                    expires_in=expires_in,
                )
                if token is None:
                    raise _PrefixTaken
                audit.record(
                    conn, actor=actor, action="token.create", target_type="token", target=name, after=token.to_dict()
                )
            return token, secret
        except _PrefixTaken:
            continue
    raise Conflict("could not pick an unused token prefix; try again")  # pragma: no cover - 36**12 prefixes


def revoke_token(conn: psycopg.Connection[Any], key: str | uuid.UUID, *, actor: str) -> ApiToken:
    """Revoke a token at once; revoking it again changes nothing."""
    with conn.transaction():
        before = get_token(conn, key, for_update=True)
        if before.revoked_at is not None:
            return before
        after = set_revoked(conn, before.id)
        audit.record(
            conn,
            actor=actor,
            action="token.revoke",
            target_type="token",
            target=before.name,
            before=before.to_dict(),
            after=after.to_dict(),
        )
    return after


_INVALID = "invalid API token"


def authenticate(conn: psycopg.Connection[Any], presented: str) -> ApiToken:
    """The live token ``presented`` is; raises :class:`AuthenticationFailed` when it is
    malformed, unknown, expired or revoked (telling which only to whoever holds the secret)."""
    match = _SHAPE.fullmatch(presented)
    if match is None:
        raise AuthenticationFailed(_INVALID)
    found = token_by_prefix(conn, match.group(1), touch_every=_TOUCH_EVERY)
    # compare a digest even for an unknown prefix, so both fail in about the same time
    stored = found[1] if found is not None else b"\0" * 32
    if not hmac.compare_digest(_digest(presented), stored) or found is None:
        raise AuthenticationFailed(_INVALID)
    token, _hash, expired, due = found
    if token.revoked_at is not None:
        raise AuthenticationFailed(f"API token {token.name!r} was revoked at {token.revoked_at.isoformat()}")
    if expired:
        assert token.expires_at is not None
        raise AuthenticationFailed(f"API token {token.name!r} expired at {token.expires_at.isoformat()}")
    if due:
        touch_token(conn, token.id)
    return token


class TokenService:
    """``tn.tokens``: the admin API's tokens."""

    def __init__(self, plane: ControlPlane) -> None:
        self._plane = plane

    def create(
        self, name: str, scopes: builtins.list[str] | tuple[str, ...], *, expires_in: timedelta | None = None
    ) -> tuple[ApiToken, str]:
        """Create a token with ``scopes``; returns its record and its secret, which is shown
        this once (the catalog keeps only its SHA-256)."""
        with self._plane.admin() as conn:
            require_catalog(conn)
            return create_token(conn, name, scopes, expires_in=expires_in, actor=self._plane.actor)

    def list(self, *, include_revoked: bool = False) -> builtins.list[ApiToken]:
        """The tokens, by name (never their secrets)."""
        with self._plane.admin() as conn:
            require_catalog(conn)
            return list_tokens(conn, include_revoked=include_revoked)

    def revoke(self, key: str | uuid.UUID) -> ApiToken:
        """Revoke a token (by name or id) at once; revoking it again is a no-op."""
        with self._plane.admin() as conn:
            return revoke_token(conn, key, actor=self._plane.actor)

    def authenticate(self, presented: str) -> ApiToken:
        """The live token ``presented`` is; raises :class:`~tenantry.errors.AuthenticationFailed` otherwise."""
        with self._plane.admin() as conn:
            return authenticate(conn, presented)
