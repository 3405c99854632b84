"""``tn.branding``: set, read and serve each tenant's white-label brand.

Control-plane calls name the tenant (slug or id) and read or write the catalog. Serving calls
work for the tenant bound to the context and read through a per-process cache:

* brands are cached by **tenant id** (never by slug) in a
  :class:`~tenantry.core.caches.CatalogCache`, trusted only while the catalog listener is
  connected; a change anywhere sends ``brand:<tenant id>`` and every process drops its copy
  within a second (the TTL, ``tenant_cache_ttl``, is only a backstop);
* rendered stylesheets are cached by **(tenant id, brand version)**: versions only grow, so
  an entry can never be mistaken for a newer theme or another tenant's;
* both keep at most ``tenant_cache_size`` entries (the oldest go first), as every
  per-tenant cache does;
* image bytes are cached by content address, but looked up only after the bound tenant's
  own brand was found to reference that address, so a warm cache answers nobody else.

Every change (``set``, ``reset``, ``rollback``) is a new version in the brand's history, as
config's layers have theirs: ``history`` lists them, ``rollback`` saves an old one again.

>>> change = tn.branding.set("acme", {"colors": {"primary": "#c2410c"}}, logo=Path("acme.png"))
>>> [w.message for w in change.warnings]
[]
>>> tn.branding.set("acme", {"colors": {"primary": "#ffff00"}})
Traceback (most recent call last):
tenantry.errors.LowContrast: refused: these colours are hard to read, ...
>>> tn.branding.rollback("acme", 1).brand.version
2
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from tenantry import context
from tenantry.branding.brand import Brand, BrandChange, BrandVersion, ImageInput, Upload
from tenantry.branding.css import Stylesheet, stylesheet
from tenantry.branding.emails import RenderedEmail, one_line, render_template
from tenantry.branding.images import FAVICON, LOGO, Image, ImageRules, inspect_image
from tenantry.branding.theme import (
    BrandWarning,
    Theme,
    apply_changes,
    asset_of,
    check_contrast,
    theme_warnings,
    validate_theme,
)
from tenantry.core.caches import CatalogCache
from tenantry.core.events import EventKind
from tenantry.db.catalog import brands as store
from tenantry.db.catalog import tenants as catalog_tenants
from tenantry.errors import InvalidBrand, InvalidInput, NotFound, TenantNotFound

if TYPE_CHECKING:
    from tenantry.services.plane import ControlPlane

if TYPE_CHECKING:
    pass

__all__ = ["Brand", "BrandChange", "BrandHost", "BrandVersion", "Branding", "Upload"]

_log = logging.getLogger("tenantry.branding")
#: a tenant's theme before any is set, as stored (saving just this writes nothing)
_DEFAULT_THEME = Theme().model_dump(mode="json")


class BrandHost(Protocol):
    """What serves brands to templates and routes: a :class:`tenantry.Tenantry` (``tn``)."""

    @property
    def branding(self) -> Branding: ...


@dataclass
class _Caches:
    brands: CatalogCache[uuid.UUID, Brand]
    """Catalog facts: staleness, bound and invalidation are :class:`CatalogCache`'s."""
    # immutable, so never stale: a stylesheet is per (tenant id, version), and versions only
    # grow; an image is per content address. Only their size is bounded (least recently used)
    styles: OrderedDict[tuple[uuid.UUID, int], Stylesheet] = field(default_factory=OrderedDict)
    assets: OrderedDict[str, tuple[str, bytes]] = field(default_factory=OrderedDict)
    asset_bytes: int = 0


class Branding:
    """White-label brands of one :class:`~tenantry.Tenantry` (use ``tn.branding``)."""

    def __init__(
        self, tn: ControlPlane, *, max_stylesheets: int = 1024, max_asset_bytes: int = 32 * 1024 * 1024
    ) -> None:
        self._tn = tn
        self._max_styles = max_stylesheets
        self._max_asset_bytes = max_asset_bytes
        self._lock = threading.Lock()
        settings = tn.settings
        self._cache = _Caches(
            CatalogCache("brands", ttl=settings.tenant_cache_ttl, size=settings.tenant_cache_size, trusted=tn.trusted)
        )
        tn.subscribe(self._on_event, self._clear)

    # -- control plane ----------------------------------------------------------------------
    def get(self, tenant: str | uuid.UUID) -> Brand:
        """The tenant's brand, read from the catalog now."""
        with self._tn.admin() as conn:
            found = catalog_tenants.get_tenant(conn, tenant)
            stored = store.read_brand(conn, found.id)
        if stored is None:
            raise TenantNotFound(f"no tenant {str(tenant)!r}")
        return _brand(stored)

    def set(
        self,
        tenant: str | uuid.UUID,
        changes: Mapping[str, Any] | None = None,
        *,
        logo: ImageInput | None = None,
        favicon: ImageInput | None = None,
        expected_version: int | None = None,
        allow_low_contrast: bool = False,
    ) -> BrandChange:
        """Change the tenant's brand: ``changes`` is a partial theme (``{"colors": {"primary":
        "#d9480f"}, "product_name": "Roadrunner"}``), ``logo`` and ``favicon`` new images.

        Everything is validated before anything is written, and written in one transaction:
        one bad field and nothing is saved (:class:`~tenantry.InvalidBrand`). New colours
        that leave text below WCAG AA contrast (4.5:1) are refused
        (:class:`~tenantry.LowContrast`) unless ``allow_low_contrast``; what is saved but worth
        fixing (such low contrast, a font stack without a generic family) comes back as
        warnings. ``expected_version`` refuses the change (:class:`~tenantry.Conflict`) if
        someone else changed the brand since.
        """
        images: list[Image] = []
        extra: dict[str, Any] = {}
        for key, value, rules in (("logo", logo, LOGO), ("favicon", favicon, FAVICON)):
            if value is not None:
                image = _image(value, rules)
                images.append(image)
                extra[key] = asset_of(image)
        if changes is not None and not isinstance(changes, Mapping):
            raise InvalidBrand("a brand change is a JSON object of theme fields")
        for key in extra:
            if changes is not None and changes.get(key) is not None:
                raise InvalidBrand(f"{key}: upload the image itself; a {key} cannot be set by reference")

        def build(stored: dict[str, Any] | None) -> dict[str, Any]:
            before = _theme(stored, tenant)
            theme = apply_changes(before, changes or {})
            if extra:
                theme = theme.model_copy(update=extra)
            check_contrast(before, theme, allow_low_contrast=allow_low_contrast)
            return theme.model_dump(mode="json")

        return self._write(tenant, build, images, "brand.set", expected_version)

    def reset(self, tenant: str | uuid.UUID, *, expected_version: int | None = None) -> BrandChange:
        """Put the tenant's brand back to tenantry's defaults (a new version; the images stay
        stored for the history, so a rollback can bring them back)."""
        defaults = Theme().model_dump(mode="json")
        return self._write(tenant, lambda _stored: defaults, [], "brand.reset", expected_version, message="reset")

    def history(self, tenant: str | uuid.UUID, *, limit: int = 100, before: int | None = None) -> list[BrandVersion]:
        """The brand's versions, newest first: who saved what, when and why. ``before``: only
        versions older than that one (the previous page's last)."""
        if not 1 <= limit <= 10_000:
            raise InvalidInput("limit must be between 1 and 10000")
        with self._tn.admin() as conn:
            found = catalog_tenants.get_tenant(conn, tenant)
            rows = store.read_history(conn, found.id, limit=limit, before=before)
        return [BrandVersion(found.slug, r.version, r.theme, r.actor, r.message, r.created_at) for r in rows]

    def rollback(
        self,
        tenant: str | uuid.UUID,
        version: int,
        *,
        message: str = "",
        expected_version: int | None = None,
        allow_low_contrast: bool = False,
    ) -> BrandChange:
        """Make the brand what it was at ``version`` (0: tenantry's defaults), as a new version,
        images included. Judged as a change: the theme must still validate, and colours below
        WCAG AA are refused unless ``allow_low_contrast``. Rolling back to what the brand is
        already changes nothing."""
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise InvalidInput(f"version {version!r} must be a whole number >= 0")
        if len(message) > 1000:
            raise InvalidInput("a message is at most 1000 characters")
        target = Theme()
        if version > 0:
            with self._tn.admin() as conn:
                found = catalog_tenants.get_tenant(conn, tenant)
                old = store.read_version(conn, found.id, version)
                if old is None:
                    latest = store.read_history(conn, found.id, limit=1)
                    has = f"versions up to {latest[0].version}" if latest else "no versions yet"
                    raise NotFound(f"the brand of {found.slug!r} has no version {version} ({has})")
            try:
                target = validate_theme(old.theme)
            except InvalidBrand as err:
                raise InvalidBrand(f"version {version} no longer validates: {err.message}") from None

        def build(stored: dict[str, Any] | None) -> dict[str, Any]:
            check_contrast(_theme(stored, tenant), target, allow_low_contrast=allow_low_contrast)
            return target.model_dump(mode="json")

        return self._write(
            tenant, build, [], "brand.rollback", expected_version, message=message or f"rollback to version {version}"
        )

    def _write(
        self,
        key: str | uuid.UUID,
        build: Callable[[dict[str, Any] | None], dict[str, Any]],
        images: list[Image],
        action: str,
        expected_version: int | None,
        *,
        message: str = "",
    ) -> BrandChange:
        with self._tn.admin() as conn:
            tenant = catalog_tenants.get_tenant(conn, key)
            # the change is applied to the theme as it is inside the write's transaction, so
            # two concurrent changes of different fields both land
            write = store.write_brand(
                conn,
                tenant,
                build,
                images,
                default=_DEFAULT_THEME,
                actor=self._tn.actor,
                action=action,
                message=message,
                expected_version=expected_version,
            )
            stored = store.read_brand(conn, tenant.id)
        assert stored is not None
        self._forget(str(tenant.id))
        brand = _brand(stored)
        return BrandChange(brand=brand, changed=write.changed, warnings=tuple(theme_warnings(brand.theme)))

    def warnings(self, brand: Brand) -> list[BrandWarning]:
        """Contrast and font problems of the brand's theme."""
        return theme_warnings(brand.theme)

    # -- serving the bound tenant -------------------------------------------------------------
    def current(self) -> Brand:
        """The brand of the tenant bound to the context (cached; see the module docs)."""
        return self.for_tenant(context.require().id)

    async def acurrent(self) -> Brand:
        """:meth:`current` for async code: a cache miss reads the catalog off the event loop."""
        return await self.afor_tenant(context.require().id)

    def for_tenant(self, tenant_id: uuid.UUID) -> Brand:
        """The brand of the tenant with this id, through the same cache as :meth:`current`,
        with no tenant bound: for pages about a tenant that cannot be bound, such as the
        edge's page for a suspended one. It reads the routing views, as the data plane may."""
        hit = self._cached(tenant_id)
        return hit if hit is not None else self._load(tenant_id)

    async def afor_tenant(self, tenant_id: uuid.UUID) -> Brand:
        """:meth:`for_tenant` for async code: a cache miss reads the catalog off the event loop."""
        hit = self._cached(tenant_id)
        return hit if hit is not None else await asyncio.to_thread(self._load, tenant_id)

    def stylesheet(self, brand: Brand) -> Stylesheet:
        """The brand's stylesheet, rendered once per (tenant id, version)."""
        key = (brand.tenant_id, brand.version)
        with self._lock:
            hit = self._cache.styles.get(key)
            if hit is not None:
                self._cache.styles.move_to_end(key)
                return hit
        rendered = stylesheet(brand.tenant_id, brand.version, brand.theme)
        with self._lock:
            self._cache.styles[key] = rendered
            while len(self._cache.styles) > min(self._max_styles, self._tn.settings.tenant_cache_size):
                self._cache.styles.popitem(last=False)
        return rendered

    def asset(self, brand: Brand, filename: str) -> tuple[str, bytes] | None:
        """``(content type, bytes)`` of ``<sha256>.<ext>`` if ``brand`` uses that image."""
        sha = self._referenced(brand, filename)
        if sha is None:
            return None
        hit = self._cached_asset(sha)
        return hit if hit is not None else self._load_asset(brand.tenant_id, sha)

    async def aasset(self, brand: Brand, filename: str) -> tuple[str, bytes] | None:
        """:meth:`asset` for async code."""
        sha = self._referenced(brand, filename)
        if sha is None:
            return None
        hit = self._cached_asset(sha)
        return hit if hit is not None else await asyncio.to_thread(self._load_asset, brand.tenant_id, sha)

    @staticmethod
    def _referenced(brand: Brand, filename: str) -> str | None:
        # the only gate to image bytes: the brand itself must use this exact file
        for asset in brand.theme.assets().values():
            if asset.filename == filename:
                return asset.sha256
        return None

    def render_email(
        self, name: str, values: Mapping[str, Any] | None = None, *, tenant: str | uuid.UUID | None = None
    ) -> RenderedEmail:
        """Render the e-mail template ``name`` of the bound tenant (or of ``tenant``).

        ``values`` may give ``recipient``, ``action_url`` and ``data`` (see
        :data:`tenantry.branding.emails.VARIABLES`); the brand's names always come from the brand.
        """
        brand = self.current() if tenant is None else self.get(tenant)
        template = brand.theme.email.templates.get(name)
        if template is None:
            known = ", ".join(sorted(brand.theme.email.templates)) or "none"
            raise NotFound(f"the brand of {brand.slug!r} has no e-mail template {name!r} (templates: {known})")
        variables = {"recipient": {}, "action_url": "", "data": {}, **(values or {})}
        variables |= {
            "product_name": brand.product_name,
            "sender_name": brand.sender_name,
            "tenant_name": brand.tenant_name,
        }
        try:
            subject = one_line(render_template(template.subject, variables, html=False, part="subject"))
            text = render_template(template.text, variables, html=False, part="text")
            html = None if template.html is None else render_template(template.html, variables, html=True, part="html")
        except ValueError as err:
            raise InvalidBrand(f"e-mail template {name!r}: {err}") from None
        return RenderedEmail(sender_name=brand.sender_name, subject=subject, text=text, html=html)

    def preview(self, tenant: str | uuid.UUID) -> str:
        """A static HTML page showing the tenant's brand (stylesheet inlined, images as data
        URLs, e-mails rendered with sample values)."""
        from tenantry.branding.preview import preview_html  # the page's template loads only here

        brand = self.get(tenant)
        return preview_html(brand, self.image(brand, "logo"), self.image(brand, "favicon"))

    def image(self, brand: Brand, which: str) -> tuple[str, bytes] | None:
        """The brand's ``logo`` or ``favicon`` bytes, read from the catalog (for previews)."""
        asset = getattr(brand.theme, which)
        if asset is None:
            return None
        with self._tn.admin() as conn:
            return store.read_asset(conn, brand.tenant_id, asset.sha256)

    # -- the cache ------------------------------------------------------------------------------
    def _cached(self, tenant_id: uuid.UUID) -> Brand | None:
        hit = self._cache.brands.get(tenant_id)
        return hit if hit is not None and hit.tenant_id == tenant_id else None

    def _load(self, tenant_id: uuid.UUID) -> Brand:
        self._tn.listen()
        ticket = self._cache.brands.begin()
        with self._tn.catalog_reader() as conn:
            stored = store.read_brand(conn, tenant_id)
        if stored is None:
            raise TenantNotFound(f"no tenant {str(tenant_id)!r}")
        brand = _brand(stored)
        self._cache.brands.put(tenant_id, brand, ticket)  # unless an invalidation raced this read
        return brand

    def _cached_asset(self, sha: str) -> tuple[str, bytes] | None:
        with self._lock:
            hit = self._cache.assets.get(sha)
            if hit is not None:
                self._cache.assets.move_to_end(sha)
            return hit

    def _load_asset(self, tenant_id: uuid.UUID, sha: str) -> tuple[str, bytes] | None:
        with self._tn.catalog_reader() as conn:
            found = store.read_asset(conn, tenant_id, sha)
        if found is not None and len(found[1]) <= self._max_asset_bytes // 4:
            with self._lock:
                if sha not in self._cache.assets:
                    self._cache.assets[sha] = found
                    self._cache.asset_bytes += len(found[1])
                while self._cache.asset_bytes > self._max_asset_bytes:
                    _, (_, dropped) = self._cache.assets.popitem(last=False)
                    self._cache.asset_bytes -= len(dropped)
        return found

    def _on_event(self, kind: EventKind, key: str) -> None:
        if kind in (EventKind.TENANT, EventKind.BRAND):
            self._forget(key)

    def _forget(self, tenant_id: str) -> None:
        """Drop what is cached of one tenant's brand (a ``brand:`` or ``tenant:`` event)."""
        try:
            key = uuid.UUID(tenant_id)
        except ValueError:
            return
        self._cache.brands.drop(key)

    def _clear(self) -> None:
        """Drop every cached brand (the listener reconnected: notices may have been missed)."""
        self._cache.brands.clear()


def _theme(stored: dict[str, Any] | None, tenant: object) -> Theme:
    if stored is None:
        return Theme()
    try:
        return Theme.model_validate(stored, context={"stored": True})
    except ValidationError as err:
        # a theme saved under older rules: serve the defaults rather than fail every page
        _log.warning("the stored brand of tenant %s no longer validates; using the defaults: %s", tenant, err)
        return Theme()


def _brand(stored: store.StoredBrand) -> Brand:
    return Brand(
        tenant_id=stored.tenant_id,
        slug=stored.slug,
        tenant_name=stored.tenant_name,
        theme=_theme(stored.theme, stored.slug),
        version=stored.version,
        updated_at=stored.updated_at,
        updated_by=stored.updated_by,
    )


def _image(value: ImageInput, rules: ImageRules) -> Image:
    if isinstance(value, Upload):
        data, filename = value.data, value.filename
    elif isinstance(value, bytes | bytearray):
        data, filename = bytes(value), None
    elif isinstance(value, os.PathLike):
        path = Path(value)
        try:
            if path.stat().st_size > rules.max_bytes:
                raise InvalidBrand(
                    f"{rules.label}: {path.name} is {path.stat().st_size // 1024} KiB; the limit is {rules.max_bytes // 1024} KiB"
                )
            data, filename = path.read_bytes(), path.name
        except OSError as err:
            raise InvalidBrand(f"{rules.label}: cannot read {path}: {err.strerror or err}") from None
    else:
        raise InvalidBrand(f"{rules.label}: give the image as bytes, an Upload or a path")
    try:
        return inspect_image(data, rules, filename)
    except ValueError as err:
        raise InvalidBrand(f"{rules.label}: {err}") from None
