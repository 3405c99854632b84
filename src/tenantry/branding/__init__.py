"""White-label branding: each tenant's theme (colours, fonts, logo, favicon, product name,
e-mail sender and templates), validated, stored content-addressed in the catalog, served as a
stylesheet of design tokens, and offered to templates.

* :mod:`~tenantry.branding.theme` — the validated theme and its warnings (pure)
* :mod:`~tenantry.branding.colors`, :mod:`~tenantry.branding.images`,
  :mod:`~tenantry.branding.emails`, :mod:`~tenantry.branding.css` — the pure parts
* the catalog tables: :mod:`tenantry.db.catalog.brands`
* :mod:`~tenantry.branding.service` — ``tn.branding``: set, get, serve, cache
* :mod:`~tenantry.branding.asgi` — :class:`BrandRoutes`, the ``/_brand`` routes
* :mod:`~tenantry.branding.jinja` — :func:`install_brand_helpers`, ``brand()`` in templates
"""

from tenantry.branding.asgi import BrandRoutes
from tenantry.branding.emails import RenderedEmail
from tenantry.branding.jinja import BrandView, install_brand_helpers
from tenantry.branding.service import Brand, BrandChange, Branding, Upload
from tenantry.branding.theme import BrandWarning, Theme

__all__ = [
    "Brand",
    "BrandChange",
    "BrandRoutes",
    "BrandView",
    "BrandWarning",
    "Branding",
    "RenderedEmail",
    "Theme",
    "Upload",
    "install_brand_helpers",
]
