"""The webhooks plugin's section of a tenant's config: ``tenantry config set webhooks ...``.

::

    tenantry config set webhooks '{"url": "https://hooks.acme.example/tracker",
                                   "secret": "whsec_...", "events": ["task.*"]}' --tenant acme

A URL needs a secret (every delivery is signed): ``whsec_`` and the base64 of 24 to 64 random
bytes (:func:`~tenantry.contrib.webhooks.new_secret` makes one). It is a secret field: stored
sealed, shown redacted. Events are names (``task.created``) or prefixes (``task.*``); ``*``
(the default) subscribes to everything.

Rotation (:func:`~tenantry.contrib.webhooks.rotate_secret`) moves the secret to
``previous_secrets`` with an end time; until then deliveries carry a signature by each, so
receivers can switch to the new secret at their own pace.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, HttpUrl, SecretStr, field_validator, model_validator

from tenantry.contrib.webhooks.signing import check_secret
from tenantry.errors import InvalidSecret

__all__ = ["EVENT_NAME", "RetiredSecret", "WebhooksConfig", "subscribed"]

#: an event's name: dotted lowercase words, ``project.created``
EVENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}(\.[a-z][a-z0-9_]{0,39}){1,3}")
_PATTERN = re.compile(rf"\*|{EVENT_NAME.pattern}|([a-z][a-z0-9_]{{0,39}}\.){{1,3}}\*")


def _whsec(value: SecretStr | None) -> SecretStr | None:
    if value is not None:
        try:
            check_secret(value.get_secret_value())
        except InvalidSecret as err:
            raise ValueError(str(err)) from None
    return value


class RetiredSecret(BaseModel):
    """A secret replaced by a rotation, still signing deliveries until ``until``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: SecretStr
    until: AwareDatetime

    @field_validator("secret")
    @classmethod
    def _standard(cls, value: SecretStr | None) -> SecretStr | None:
        return _whsec(value)


class WebhooksConfig(BaseModel):
    """Where a tenant's events go, how they are signed, and which ones it wants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrl | None = None
    """The endpoint (``https://`` or ``http://``) that receives a POST per event."""
    secret: SecretStr | None = None
    """The signing secret: ``whsec_`` and the base64 of 24 to 64 bytes (Standard Webhooks)."""
    previous_secrets: list[RetiredSecret] = Field(default_factory=list, max_length=5)
    """Secrets a rotation replaced, each signing too until its ``until``."""
    events: list[str] = Field(default_factory=lambda: ["*"], max_length=100)
    """Event names or ``prefix.*`` patterns; ``*``: all."""

    @field_validator("url")
    @classmethod
    def _plain_url(cls, value: HttpUrl | None) -> HttpUrl | None:
        if value is not None:
            if value.username or value.password:
                raise ValueError("must not carry a user name or password; use the secret")
            if len(str(value)) > 2000:
                raise ValueError("must be at most 2000 characters")
        return value

    @field_validator("secret")
    @classmethod
    def _standard(cls, value: SecretStr | None) -> SecretStr | None:
        return _whsec(value)

    @field_validator("events")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not _PATTERN.fullmatch(pattern):
                raise ValueError(f"{pattern[:60]!r} is not an event name (task.created), a prefix (task.*) or *")
        return value

    @model_validator(mode="after")
    def _signed(self) -> WebhooksConfig:
        if self.url is not None and self.secret is None:
            raise ValueError("a webhook url needs a secret to sign deliveries with (set both at once)")
        return self

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets a delivery at ``now`` is signed with: the current one, then those a
        rotation keeps valid until later than ``now``."""
        if self.secret is None:
            return []
        kept = [r.secret.get_secret_value() for r in self.previous_secrets if r.until > now]
        return [self.secret.get_secret_value(), *kept]


def subscribed(patterns: list[str], event: str) -> bool:
    """Whether ``event`` matches one of ``patterns``."""
    for pattern in patterns:
        if pattern == "*" or pattern == event or (pattern.endswith(".*") and event.startswith(pattern[:-1])):
            return True
    return False
