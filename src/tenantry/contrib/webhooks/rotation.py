"""Rotating a tenant's webhook secret without breaking its receivers.

::

    secret = rotate_secret(tn, "acme", keep_old=timedelta(days=3))
    # show `secret` to acme once; for three days deliveries carry two signatures,
    # one by the new secret and one by the old, and either verifies

The old secret moves to ``webhooks.previous_secrets`` with an end time (older entries whose
time has passed are dropped); everything happens in one config version, audited with the
secrets redacted.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tenantry.contrib.webhooks.signing import check_secret, new_secret
from tenantry.errors import InvalidInput

if TYPE_CHECKING:
    from tenantry.app import Tenantry

__all__ = ["rotate_secret"]

#: most rotations whose old secret is still kept
MAX_KEPT = 5


def rotate_secret(
    tn: Tenantry,
    tenant: str | uuid.UUID | None = None,
    *,
    plan: str | None = None,
    keep_old: timedelta = timedelta(hours=24),
    secret: str | None = None,
) -> str:
    """Give the endpoint of ``tenant`` (or of ``plan``) a new secret (``secret``, or a fresh
    one) and keep the old one signing for ``keep_old`` (0: replace it at once). Returns the new
    secret: this is the only time it is shown."""
    if keep_old < timedelta(0) or keep_old > timedelta(days=90):
        raise InvalidInput("keep_old must be between 0 and 90 days")
    fresh = secret if secret is not None else new_secret()
    check_secret(fresh)
    now = datetime.now(UTC)

    def change(document: dict[str, Any]) -> dict[str, Any]:
        section = dict(document.get("webhooks") or {})
        old = section.get("secret")
        if not isinstance(old, str):
            raise InvalidInput("this layer has no webhook secret to rotate; set webhooks.url and webhooks.secret first")
        kept = [r for r in section.get("previous_secrets", []) if datetime.fromisoformat(r["until"]) > now]
        if keep_old > timedelta(0):
            kept.insert(0, {"secret": old, "until": (now + keep_old).isoformat()})
        section.update(secret=fresh, previous_secrets=kept[:MAX_KEPT])
        return {**document, "webhooks": section}

    tn.config.modify(
        change,
        tenant=tenant,
        plan=plan,
        action="config.rotate_secret",
        message=f"rotate webhooks.secret, keeping the old one for {keep_old}",
    )
    return fresh
