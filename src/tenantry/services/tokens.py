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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg

from tenantry.core.scopes import validate_scopes
from tenantry.db.catalog import audit, require_catalog
from tenantry.errors import AuthenticationFailed, CatalogNotInitialised, Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

__all__ = [
    "TokenService",
    "ApiToken",
    "TOKEN_PREFIX",
    "authenticate",
    "create_token",
    "get_token",
    "list_tokens",
    "revoke_token",
]

TOKEN_PREFIX = "tnt_"
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_ALPHABET = string.ascii_lowercase + string.digits
_PREFIX_LENGTH = 12
_SHAPE = re.compile(rf"{TOKEN_PREFIX}([a-z0-9]{{{_PREFIX_LENGTH}}})_([A-Za-z0-9_-]{{43}})")
#: last_used_at is written at most this often per token, not on every request
_TOUCH_EVERY = timedelta(seconds=60)
_COLUMNS = "id, name, prefix, scopes, created_by, created_at, expires_at, last_used_at, revoked_at"


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token as the catalog records it (its secret is not kept anywhere)."""

    id: uuid.UUID
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def actor(self) -> str:
        """How the audit log names what this token did."""
        return f"token:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        def at(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": str(self.id),
            "name": self.name,
            "prefix": self.prefix,
            "scopes": list(self.scopes),
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "expires_at": at(self.expires_at),
            "last_used_at": at(self.last_used_at),
            "revoked_at": at(self.revoked_at),
        }


def _token(row: tuple[Any, ...]) -> ApiToken:
    return ApiToken(row[0], row[1], row[2], tuple(row[3]), *row[4:9])


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
                row = conn.execute(
                    f"""
                    INSERT INTO tenantry.api_tokens (name, prefix, hash, scopes, created_by, expires_at)
                    VALUES (%s, %s, %s, %s, %s, now() + %s::interval)
                    RETURNING {_COLUMNS}
                    """,
                    (name, prefix, _digest(secret), chosen, actor, expires_in),
                ).fetchone()
                assert row is not None
                token = _token(row)
                audit.record(
                    conn, actor=actor, action="token.create", target_type="token", target=name, after=token.to_dict()
                )
            return token, secret
        except psycopg.errors.UniqueViolation as err:
            if err.diag.constraint_name == "api_tokens_name_key":
                raise Conflict(f"a token named {name!r} exists already (names are never reused)") from err
        except psycopg.errors.UndefinedTable as err:
            raise CatalogNotInitialised("the catalog has no token table; run `tenantry init`") from err
    raise Conflict("could not pick an unused token prefix; try again")  # pragma: no cover - 36**12 prefixes


def _where(key: str | uuid.UUID) -> tuple[str, Any]:
    if isinstance(key, uuid.UUID):
        return "id = %s", key
    try:
        return "id = %s", uuid.UUID(key)
    except ValueError:
        return "name = %s", key


def get_token(conn: psycopg.Connection[Any], key: str | uuid.UUID, *, for_update: bool = False) -> ApiToken:
    """The token with this name or id."""
    where, value = _where(key)
    lock = " FOR UPDATE" if for_update else ""
    row = conn.execute(f"SELECT {_COLUMNS} FROM tenantry.api_tokens WHERE {where}{lock}", (value,)).fetchone()
    if row is None:
        raise NotFound(f"no API token {str(key)[:70]!r}")
    return _token(row)


def list_tokens(conn: psycopg.Connection[Any], *, include_revoked: bool = False) -> list[ApiToken]:
    """Tokens by name; revoked ones only when asked."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM tenantry.api_tokens WHERE %s OR revoked_at IS NULL ORDER BY name",
        (include_revoked,),
    ).fetchall()
    return [_token(r) for r in rows]


def revoke_token(conn: psycopg.Connection[Any], key: str | uuid.UUID, *, actor: str) -> ApiToken:
    """Revoke a token at once; revoking it again changes nothing."""
    with conn.transaction():
        before = get_token(conn, key, for_update=True)
        if before.revoked_at is not None:
            return before
        row = conn.execute(
            f"UPDATE tenantry.api_tokens SET revoked_at = now() WHERE id = %s RETURNING {_COLUMNS}",
            (before.id,),
        ).fetchone()
        assert row is not None
        after = _token(row)
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
    try:
        row = conn.execute(
            f"""
            SELECT {_COLUMNS}, hash, expires_at IS NOT NULL AND expires_at <= now(),
                   last_used_at IS NULL OR last_used_at < now() - %s::interval
              FROM tenantry.api_tokens WHERE prefix = %s
            """,
            (_TOUCH_EVERY, match.group(1)),
        ).fetchone()
    except psycopg.errors.UndefinedTable as err:
        raise CatalogNotInitialised("the catalog has no token table; run `tenantry init`") from err
    # compare a digest even for an unknown prefix, so both fail in about the same time
    stored = bytes(row[9]) if row is not None else b"\0" * 32
    if not hmac.compare_digest(_digest(presented), stored) or row is None:
        raise AuthenticationFailed(_INVALID)
    token = _token(row)
    if token.revoked_at is not None:
        raise AuthenticationFailed(f"API token {token.name!r} was revoked at {token.revoked_at.isoformat()}")
    if row[10]:
        assert token.expires_at is not None
        raise AuthenticationFailed(f"API token {token.name!r} expired at {token.expires_at.isoformat()}")
    if row[11]:
        conn.execute("UPDATE tenantry.api_tokens SET last_used_at = now() WHERE id = %s", (token.id,))
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
