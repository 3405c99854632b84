"""The webhooks plugin's section of a tenant's config: ``tenantry config set webhooks ...``.

::

    tenantry config set webhooks '{"url": "https://hooks.acme.example/tracker",
                                   "secret": "whsec_...", "events": ["task.*"]}' --tenant acme

A URL needs a secret (every delivery is signed); events are names (``task.created``) or
prefixes (``task.*``); ``*`` (the default) subscribes to everything.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

__all__ = ["EVENT_NAME", "WebhooksConfig", "subscribed"]

#: an event's name: dotted lowercase words, ``project.created``
EVENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}(\.[a-z][a-z0-9_]{0,39}){1,3}")
_PATTERN = re.compile(rf"\*|{EVENT_NAME.pattern}|([a-z][a-z0-9_]{{0,39}}\.){{1,3}}\*")


class WebhooksConfig(BaseModel):
    """Where a tenant's events go, how they are signed, and which ones it wants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrl | None = None
    """The endpoint (``https://`` or ``http://``) that receives a POST per event."""
    secret: str | None = Field(default=None, min_length=16, max_length=200)
    """The signing secret: ``whsec_<base64>`` (Standard Webhooks) or any 16+ character text."""
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
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("must be printable text")
        return value

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


def subscribed(patterns: list[str], event: str) -> bool:
    """Whether ``event`` matches one of ``patterns``."""
    for pattern in patterns:
        if pattern == "*" or pattern == event or (pattern.endswith(".*") and event.startswith(pattern[:-1])):
            return True
    return False
