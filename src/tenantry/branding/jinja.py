"""``install_brand_helpers``: the bound tenant's brand in Jinja2 templates.

::

    install_brand_helpers(templates.env, tn)

    {% set b = brand() %}
    <link rel="stylesheet" href="{{ b.css_url }}">
    <link rel="icon" href="{{ b.favicon_url }}">
    <img src="{{ b.logo_url }}" alt="{{ b.product_name }}"> {{ b.product_name }}

URLs are the versioned, immutable ones (they change when the brand does), under the prefix
:class:`~tenantry.BrandRoutes` is mounted at. ``brand()`` reads through ``tn.branding``'s
cache; an async handler can warm it off the event loop first with
``await tn.branding.acurrent()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jinja2 import Environment

from tenantry import context
from tenantry.branding.css import font_values
from tenantry.branding.theme import Asset, Theme

if TYPE_CHECKING:
    from tenantry.branding.service import BrandHost

__all__ = ["BrandView", "install_brand_helpers"]


@dataclass(frozen=True, slots=True)
class BrandView:
    """What a template sees of the brand (all ``None`` URLs when no tenant is bound)."""

    product_name: str
    version: int = 0
    css_url: str | None = None
    logo_url: str | None = None
    favicon_url: str | None = None
    logo: Asset | None = None
    colors: dict[str, str] = field(default_factory=dict)
    fonts: dict[str, str] = field(default_factory=dict)


def install_brand_helpers(env: Environment, tn: BrandHost, *, prefix: str = "/_brand", default_name: str = "") -> None:
    """Add ``brand()`` to ``env``'s globals: the :class:`BrandView` of the bound tenant."""
    prefix = "/" + prefix.strip("/")
    branding = tn.branding

    def brand() -> BrandView:
        if context.current() is None:
            theme = Theme()
            return BrandView(product_name=default_name, colors=theme.colors.model_dump(), fonts=font_values(theme))
        current = branding.current()
        theme = current.theme
        return BrandView(
            product_name=current.product_name,
            version=current.version,
            css_url=f"{prefix}/{branding.stylesheet(current).filename}",
            logo_url=None if theme.logo is None else f"{prefix}/assets/{theme.logo.filename}",
            favicon_url=None if theme.favicon is None else f"{prefix}/assets/{theme.favicon.filename}",
            logo=theme.logo,
            colors=theme.colors.model_dump(),
            fonts=font_values(theme),
        )

    env.globals["brand"] = brand
