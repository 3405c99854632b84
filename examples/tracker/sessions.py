"""Who is signed in: the tracker's session cookie.

A session is a signed cookie naming the tenant it was issued for, the member and a CSRF token
for the session's forms. It is host-only, HttpOnly and SameSite=Lax, and signed with a key of
the tenant's own (the app's key, salted with the tenant's id), so a cookie carried from one
tenant's site to another's signs in nobody there. The app's keys are derived from tenantry's
stored secret (``TENANTRY_SECRET_KEYS``, or the embedded server's key file): sessions outlive
a restart, and every instance of the app accepts the others' cookies.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from examples.tracker.models import Member
from examples.tracker.tenancy import request_tenant
from tenantry import Tenantry, current_tenant

__all__ = [
    "SESSION_COOKIE",
    "SESSION_MAX_AGE",
    "Session",
    "end_session",
    "read_session",
    "session_keys",
    "signed_in",
    "start_session",
]

SESSION_COOKIE = "tracker_session"
SESSION_MAX_AGE = 7 * 24 * 3600

_log = logging.getLogger("examples.tracker")


@dataclass(frozen=True, slots=True)
class Session:
    """A valid session of the tenant serving the request."""

    member_id: int
    csrf: str
    """The token every form of this session carries."""


def session_keys(tn: Tenantry, secret_key: str | None) -> list[str | bytes]:
    """The keys that sign session cookies, oldest first (itsdangerous signs with the last).

    ``secret_key`` if given; else keys derived from tenantry's stored secret, or, with none
    stored, a random key (sessions end with the process; a warning says so).
    """
    if secret_key is not None:
        return [secret_key]
    keyring = tn.secret_keyring()
    if keyring is None:
        _log.warning(
            "no stored secret (TENANTRY_SECRET_KEYS) to derive the session key from: sessions end when this"
            " process does, and other instances of the app do not accept its cookies"
        )
        return [secrets.token_bytes(32)]
    return list(reversed(keyring.derive("examples.tracker.sessions")))


def read_session(request: Request) -> Session | None:
    """The request's session, if its cookie is valid, unexpired and for the bound tenant."""
    cookie = request.cookies.get(SESSION_COOKIE)
    bound = current_tenant()
    if not cookie or bound is None:
        return None
    try:
        data = _signer(request).loads(cookie, max_age=SESSION_MAX_AGE)
    except BadSignature:
        return None
    if (
        not isinstance(data, dict)
        or data.get("tenant") != str(bound.id)
        or not isinstance(data.get("member"), int)
        or not isinstance(data.get("csrf"), str)
    ):
        return None
    return Session(member_id=data["member"], csrf=data["csrf"])


def signed_in(scope: Any) -> bool:
    """Whether the request carries a session of the bound tenant (guards the plugins' routes)."""
    return read_session(Request(scope)) is not None


def start_session(request: Request, response: Response, member: Member) -> None:
    """Sign ``member`` in: ``response`` sets the cookie, with a fresh CSRF token."""
    token = _signer(request).dumps(
        {
            "tenant": str(request_tenant().id),
            "member": member.id,
            "csrf": secrets.token_urlsafe(16),
        }
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="lax",
        path="/",
        secure=request.url.scheme == "https",
    )


def end_session(response: Response) -> None:
    """Sign out: ``response`` deletes the cookie."""
    response.delete_cookie(SESSION_COOKIE, path="/")


def _signer(request: Request) -> URLSafeTimedSerializer:
    # a key of its own per tenant: a cookie signed for acme does not verify on globex
    return URLSafeTimedSerializer(request.app.state.session_keys, salt=f"tracker.session.{request_tenant().id}")
