"""Signatures of deliveries, as the Standard Webhooks specification has them.

Each delivery carries ``webhook-id`` (the event's id, the same on every retry, so a receiver
can drop duplicates), ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``:
``v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>``, one entry per secret in force
and separated by spaces, as the specification allows, so that during a rotation receivers
holding either the new secret or the old one accept the delivery.

A secret is ``whsec_`` followed by the base64 of 24 to 64 random bytes: what :func:`new_secret`
makes, and the only form tenantry accepts (:func:`check_secret`), because it is the form
every Standard Webhooks library decodes the same way. Receivers check deliveries with
:func:`verify` or any of those libraries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping

from tenantry.errors import InvalidSecret

__all__ = [
    "MAX_KEY_BYTES",
    "MIN_KEY_BYTES",
    "PREFIX",
    "check_secret",
    "new_secret",
    "sign",
    "signature_headers",
    "verify",
]

#: seconds a receiver accepts between the timestamp and its clock, either way
TOLERANCE = 300
PREFIX = "whsec_"
#: the key (decoded) is this many bytes at least, and at most :data:`MAX_KEY_BYTES`
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64


def new_secret(size: int = 32) -> str:
    """A fresh secret: ``whsec_`` and the base64 of ``size`` random bytes (24 to 64)."""
    if not MIN_KEY_BYTES <= size <= MAX_KEY_BYTES:
        raise InvalidSecret(f"a webhook key is {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes, not {size}")
    return PREFIX + base64.b64encode(secrets.token_bytes(size)).decode()


def check_secret(secret: str) -> bytes:
    """The key of ``secret``; :class:`~tenantry.InvalidSecret` unless it is ``whsec_`` and
    standard base64 of 24 to 64 bytes."""
    if not isinstance(secret, str) or not secret.startswith(PREFIX):
        raise InvalidSecret(
            f"a webhook secret is {PREFIX} followed by the base64 of {MIN_KEY_BYTES}-{MAX_KEY_BYTES} random bytes;"
            " make one with tenantry.contrib.webhooks.new_secret()"
        )
    try:
        key = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret(f"the part of the webhook secret after {PREFIX} is not standard base64") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise InvalidSecret(
            f"the webhook secret's key is {len(key)} bytes; it must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES}"
        )
    return key


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<signature>`` of one delivery."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(check_secret(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    secret: str | Iterable[str], message_id: str, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    """The three headers a delivery is sent with; several secrets (the new one and those a
    rotation keeps valid) give one signature each, space-separated."""
    moment = int(time.time()) if timestamp is None else timestamp
    keys = [secret] if isinstance(secret, str) else list(dict.fromkeys(secret))
    if not keys:
        raise InvalidSecret("a delivery needs at least one secret to be signed with")
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(moment),
        "webhook-signature": " ".join(sign(key, message_id, moment, body) for key in keys),
    }


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, tolerance: int = TOLERANCE, now: float | None = None
) -> bool:
    """Whether ``headers`` (names in lowercase) sign ``body`` with ``secret``, recently; one
    matching ``v1`` entry among several is enough."""
    message_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    if not message_id or not stamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(stamp)) > tolerance:
        return False
    expected = sign(secret, message_id, int(stamp), body)
    return any(hmac.compare_digest(expected, given) for given in headers.get("webhook-signature", "").split())
