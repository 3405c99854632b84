"""The config schema of the test suite's app (and a plugin's section)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Limits(BaseModel):
    max_projects: int = 10
    max_users: int = Field(default=5, ge=1)


class Branding(BaseModel):
    theme: Literal["light", "dark"] = "light"
    title: str = "Tracker"


class AppConfig(BaseModel):
    limits: Limits = Field(default_factory=Limits)
    branding: Branding = Field(default_factory=Branding)
    welcome: str = "hello"
    tags: list[str] = Field(default_factory=list)


class BillingSection(BaseModel):
    """A section a plugin adds: ``tn.config.sections.add("billing", BillingSection)``."""

    currency: Literal["EUR", "USD"] = "EUR"
    seats: int = 1


TENANTRY_CONFIG = AppConfig
