"""A theme as a stylesheet of design tokens (CSS custom properties), with its ETag.

Pure: no I/O. Every value was normalised by :mod:`tenantry.branding.theme` (hex colours,
family names from a safe alphabet); each is checked again against the same alphabet as it is
written, so nothing a stylesheet could read as syntax can ever be emitted.

The ETag and the URL digest hash the tenant's id with the CSS: two tenants with identical
themes still get different validators, so no cache can answer one tenant with the other's
response by validator alone.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass

from tenantry.branding.theme import GENERIC_FAMILIES, Theme

__all__ = ["Stylesheet", "font_values", "render_css", "stylesheet"]

_SAFE_COLOR = re.compile(r"#[0-9a-f]{6}(?:[0-9a-f]{2})?")
_SAFE_FAMILY = re.compile(r"[A-Za-z][A-Za-z0-9 _-]*")


@dataclass(frozen=True, slots=True)
class Stylesheet:
    """One tenant's rendered stylesheet at one brand version."""

    tenant_id: uuid.UUID
    version: int
    css: str
    digest: str
    """16 hex digits of sha256(tenant id, CSS): the versioned URL ``theme.<digest>.css``."""

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'

    @property
    def filename(self) -> str:
        return f"theme.{self.digest}.css"


def _family(name: str) -> str:
    if not _SAFE_FAMILY.fullmatch(name):
        raise ValueError(f"unsafe font family {name!r}")
    return name if name in GENERIC_FAMILIES else f'"{name}"'


def _color(value: str) -> str:
    if not _SAFE_COLOR.fullmatch(value):
        raise ValueError(f"unsafe colour {value!r}")
    return value


def font_values(theme: Theme) -> dict[str, str]:
    """The font stacks as CSS values (``body``, ``heading``, ``mono``): names quoted, generic
    families bare."""
    return {name: ", ".join(_family(f) for f in getattr(theme.fonts, name)) for name in ("body", "heading", "mono")}


def render_css(theme: Theme) -> str:
    """The theme's design tokens on ``:root``: ``--brand-primary``, ``--brand-font-body``…"""
    lines = ["/* tenantry brand: design tokens */", ":root {"]
    for name, value in theme.colors.model_dump().items():
        lines.append(f"  --brand-{name.replace('_', '-')}: {_color(value)};")
    for name, stack in font_values(theme).items():
        lines.append(f"  --brand-font-{name}: {stack};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def stylesheet(tenant_id: uuid.UUID, version: int, theme: Theme) -> Stylesheet:
    """Render ``theme`` for the tenant and brand version."""
    css = render_css(theme)
    digest = hashlib.sha256(tenant_id.bytes + css.encode()).hexdigest()[:16]
    return Stylesheet(tenant_id=tenant_id, version=version, css=css, digest=digest)
