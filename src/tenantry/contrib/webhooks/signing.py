"""Signatures of deliveries, as the Standard Webhooks specification has them.

Each delivery carries ``webhook-id`` (the event's id, the same on every retry, so a receiver
can drop duplicates), ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``:
``v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>``. The key is the base64 part of
a ``whsec_...`` secret, or the UTF-8 bytes of any other secret. Receivers check it with
:func:`verify` (or any Standard Webhooks library).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

__all__ = ["sign", "signature_headers", "verify"]

#: seconds a receiver accepts between the timestamp and its clock, either way
TOLERANCE = 300


def _key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            pass  # not base64 after all: the text is the key
    return secret.encode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<signature>`` of one delivery."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(secret: str, message_id: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The three headers a delivery is sent with."""
    moment = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(moment),
        "webhook-signature": sign(secret, message_id, moment, body),
    }


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, tolerance: int = TOLERANCE, now: float | None = None) -> bool:
    """Whether ``headers`` (names in lowercase) sign ``body`` with ``secret``, recently."""
    message_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    if not message_id or not stamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(stamp)) > tolerance:
        return False
    expected = sign(secret, message_id, int(stamp), body)
    return any(hmac.compare_digest(expected, given) for given in headers.get("webhook-signature", "").split())
