"""The catalog's API tokens: name, scopes, lifetime and the digest of the secret (the secret
itself is kept nowhere)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from tenantry.errors import CatalogNotInitialised, Conflict, NotFound

__all__ = ["ApiToken", "get_token", "insert_token", "list_tokens", "set_revoked", "token_by_prefix", "touch_token"]

_COLUMNS = "id, name, prefix, scopes, created_by, created_at, expires_at, last_used_at, revoked_at"
_NO_TABLE = "the catalog has no token table; run `tenantry init`"


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


def insert_token(
    conn: psycopg.Connection[Any],
    *,
    name: str,
    prefix: str,
    digest: bytes,
    scopes: list[str],
    created_by: str,
    expires_in: timedelta | None,
) -> ApiToken | None:
    """Record a token; ``None`` when its prefix is taken (pick another). A taken name raises
    :class:`~tenantry.errors.Conflict`. Run it in a savepoint: either leaves it failed."""
    try:
        row = conn.execute(
            f"""
            INSERT INTO tenantry.api_tokens (name, prefix, hash, scopes, created_by, expires_at)
            VALUES (%s, %s, %s, %s, %s, now() + %s::interval)
            RETURNING {_COLUMNS}
            """,
            (name, prefix, digest, scopes, created_by, expires_in),
        ).fetchone()
    except psycopg.errors.UniqueViolation as err:
        if err.diag.constraint_name == "api_tokens_name_key":
            raise Conflict(f"a token named {name!r} exists already (names are never reused)") from err
        return None
    except psycopg.errors.UndefinedTable as err:
        raise CatalogNotInitialised(_NO_TABLE) from err
    assert row is not None
    return _token(row)


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


def set_revoked(conn: psycopg.Connection[Any], token_id: uuid.UUID) -> ApiToken:
    row = conn.execute(
        f"UPDATE tenantry.api_tokens SET revoked_at = now() WHERE id = %s RETURNING {_COLUMNS}", (token_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no API token {token_id}")
    return _token(row)


def token_by_prefix(
    conn: psycopg.Connection[Any], prefix: str, *, touch_every: timedelta
) -> tuple[ApiToken, bytes, bool, bool] | None:
    """The token with ``prefix``, with its secret's digest, whether it has expired, and
    whether its ``last_used_at`` is older than ``touch_every`` (``None``: no such token)."""
    try:
        row = conn.execute(
            f"""
            SELECT {_COLUMNS}, hash, expires_at IS NOT NULL AND expires_at <= now(),
                   last_used_at IS NULL OR last_used_at < now() - %s::interval
              FROM tenantry.api_tokens WHERE prefix = %s
            """,
            (touch_every, prefix),
        ).fetchone()
    except psycopg.errors.UndefinedTable as err:
        raise CatalogNotInitialised(_NO_TABLE) from err
    if row is None:
        return None
    return _token(row), bytes(row[9]), bool(row[10]), bool(row[11])


def touch_token(conn: psycopg.Connection[Any], token_id: uuid.UUID) -> None:
    conn.execute("UPDATE tenantry.api_tokens SET last_used_at = now() WHERE id = %s", (token_id,))
