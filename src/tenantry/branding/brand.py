"""A tenant's brand as the service returns it: :class:`Brand`, :class:`BrandChange`,
:class:`BrandVersion`, and :class:`Upload` for image bytes with their file name."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tenantry.branding.emails import one_line
from tenantry.branding.theme import BrandWarning, Theme

__all__ = ["Brand", "BrandChange", "BrandVersion", "ImageInput", "Upload"]


@dataclass(frozen=True, slots=True)
class Brand:
    """A tenant's brand at one version (version 0: never set, tenantry's defaults)."""

    tenant_id: uuid.UUID
    slug: str
    tenant_name: str
    theme: Theme
    version: int
    updated_at: datetime | None = None
    updated_by: str | None = None

    @property
    def product_name(self) -> str:
        """The theme's product name, or the tenant's display name."""
        return self.theme.product_name or self.tenant_name

    @property
    def sender_name(self) -> str:
        """The display name e-mail is sent under (default: the product name)."""
        return one_line(self.theme.email.sender_name or self.product_name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.slug,
            "tenant_id": str(self.tenant_id),
            "version": self.version,
            "product_name": self.product_name,
            "sender_name": self.sender_name,
            "theme": self.theme.model_dump(mode="json"),
            "updated_at": None if self.updated_at is None else self.updated_at.isoformat(),
            "updated_by": self.updated_by,
        }


@dataclass(frozen=True, slots=True)
class BrandChange:
    """What a save did: the brand now, whether it changed, and what to fix."""

    brand: Brand
    changed: bool
    warnings: tuple[BrandWarning, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "brand": self.brand.to_dict(),
            "warnings": [w.to_dict() for w in self.warnings],
        }


@dataclass(frozen=True, slots=True)
class BrandVersion:
    """One version of a tenant's brand, as its history keeps it."""

    slug: str
    version: int
    theme: dict[str, Any]
    """The theme as saved (JSON: colours as hex, images by content address)."""
    actor: str
    message: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.slug,
            "version": self.version,
            "theme": self.theme,
            "actor": self.actor,
            "message": self.message,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Upload:
    """Image bytes as uploaded, with the file name they came under (checked against the bytes)."""

    data: bytes
    filename: str | None = None


ImageInput = bytes | Upload | os.PathLike[str]
