"""``/v1/tenants/{tenant}/brand``: a tenant's white-label brand (:mod:`tenantry.branding`).

``GET`` reads it, ``PATCH`` changes theme fields (colours and fonts merge key by key), ``PUT
.../logo`` and ``PUT .../favicon`` upload an image as the raw request body with its
``Content-Type``, ``DELETE`` resets the brand to tenantry's defaults, ``GET .../history`` lists
its versions (newest first, paged) and ``POST .../rollback`` saves an old version again. A
change is validated whole before anything is saved (a refused field is a 422 naming it); new
colours below WCAG AA's 4.5:1 contrast are a 422 whose ``problems`` name each pair, unless the
change says ``allow_low_contrast``; what was saved but is worth fixing comes back as
``warnings``. Writes take an optional ``expected_version``: if the brand changed since, the
write is a 409.

Uploads are read at most to the image's size limit (512 KiB for a logo, 64 KiB for a favicon):
a larger body is a 413 without being read whole. The image is typed by its bytes; a body that
is not the type its ``Content-Type`` says is a 422.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from tenantry.api.auth import Principal, require
from tenantry.api.deps import TN, problems
from tenantry.api.paging import Cursor, Limit, decode_cursor, id_key, paginate
from tenantry.api.schemas import In, JsonValue, Text
from tenantry.app import Tenantry
from tenantry.branding.images import FAVICON, LOGO, ImageRules, inspect_image
from tenantry.branding.service import Brand, BrandChange
from tenantry.errors import InvalidBrand, LowContrast

__all__ = [
    "BrandChangeOut",
    "BrandOut",
    "BrandPatch",
    "BrandRollbackIn",
    "BrandVersionOut",
    "BrandVersionPage",
    "BrandWarningOut",
    "router",
]

router = APIRouter(prefix="/tenants/{tenant}/brand", tags=["brands"])

Read = Annotated[Principal, Depends(require("brands:read"))]
Write = Annotated[Principal, Depends(require("brands:write"))]
TenantKey = Annotated[Text, Path(max_length=100, description="The tenant's slug or id.")]
ExpectedVersion = Annotated[
    int | None,
    Query(ge=0, le=2**31 - 1, description="Refuse the change (409) unless the brand is at this version."),
]


class BrandWarningOut(BaseModel):
    code: str = Field(description="`contrast` or `font_fallback`.")
    message: str
    ratio: float | None = Field(None, description="The contrast ratio, for `contrast`.")


class BrandOut(BaseModel):
    tenant: str = Field(description="The tenant's slug.")
    tenant_id: uuid.UUID
    version: int = Field(description="0: never set (tenantry's defaults).")
    product_name: str = Field(description="The theme's product name, or the tenant's display name.")
    sender_name: str = Field(description="The display name e-mail is sent under.")
    theme: dict[str, Any] = Field(description="Product name, colours (hex), fonts, e-mail, logo and favicon.")
    updated_at: datetime | None
    updated_by: str | None
    warnings: list[BrandWarningOut] = Field(description="What is worth fixing, such as unreadable contrast.")


class BrandChangeOut(BaseModel):
    changed: bool = Field(description="`false`: the brand was so already; nothing was written.")
    brand: BrandOut
    warnings: list[BrandWarningOut]


class BrandPatch(In):
    """Theme fields to change; `null` resets a field to tenantry's default."""

    product_name: Text | None = Field(None, description="One line, 1 to 80 characters.")
    colors: dict[Text, JsonValue] | None = Field(
        None,
        description="By name (`primary`, `on_primary`, `background`, `text`, ...): `#rgb`, `#rrggbb`, `rgb()`, `hsl()`"
        " or a CSS colour name (`navy`).",
    )
    fonts: dict[Text, JsonValue] | None = Field(
        None, description="`body`, `heading`, `mono`: family names, a list or comma-separated."
    )
    email: dict[Text, JsonValue] | None = Field(
        None, description="`sender_name`, and `templates` by name (`subject`, `text`, `html`; `null` removes one)."
    )
    logo: None = Field(None, description="`null` removes the logo (upload one with `PUT .../logo`).")
    favicon: None = Field(None, description="`null` removes the favicon (upload one with `PUT .../favicon`).")
    allow_low_contrast: bool = Field(
        False, description="Save new colours even if text on them falls below WCAG AA contrast (4.5:1); else 422."
    )


class BrandRollbackIn(In):
    version: int = Field(ge=0, le=2**31 - 1, description="The version to return to (0: tenantry's defaults).")
    message: Text = Field("", max_length=1000, description="Why: kept with the new version.")
    allow_low_contrast: bool = Field(
        False, description="Return to colours below WCAG AA contrast (4.5:1) anyway; else 422."
    )


class BrandVersionOut(BaseModel):
    tenant: str = Field(description="The tenant's slug.")
    version: int
    theme: dict[str, Any] = Field(description="The theme saved at this version.")
    actor: str = Field(description="Who saved it (`token:<name>` through this API).")
    message: str
    created_at: datetime


class BrandVersionPage(BaseModel):
    items: list[BrandVersionOut]
    next: str | None = Field(None, description="URL of the next page; absent on the last one.")
    next_cursor: str | None = None


_T = TypeVar("_T")
_OVERRIDE = "send allow_low_contrast: true to save them anyway"


def _allowing(write: Callable[[], _T]) -> _T:
    """``write()``, its refusal for low contrast naming this API's override."""
    try:
        return write()
    except LowContrast as err:
        raise err.with_hint(_OVERRIDE) from None


def _brand_out(brand: Brand, tn: Tenantry) -> BrandOut:
    warnings = [BrandWarningOut.model_validate(w.to_dict()) for w in tn.branding.warnings(brand)]
    return BrandOut.model_validate({**brand.to_dict(), "warnings": warnings})


def _change_out(change: BrandChange, tn: Tenantry) -> BrandChangeOut:
    return BrandChangeOut(
        changed=change.changed,
        brand=_brand_out(change.brand, tn),
        warnings=[BrandWarningOut.model_validate(w.to_dict()) for w in change.warnings],
    )


@router.get("", response_model=BrandOut, responses=problems(404))
def get_brand(tn: TN, _: Read, tenant: TenantKey) -> BrandOut:
    """The tenant's brand now, with its warnings. Scope: `brands:read`."""
    return _brand_out(tn.branding.get(tenant), tn)


@router.patch("", response_model=BrandChangeOut, responses=problems(400, 404, 409))
def change_brand(
    tn: TN, _: Write, tenant: TenantKey, body: BrandPatch, expected_version: ExpectedVersion = None
) -> BrandChangeOut:
    """Change theme fields: all are validated before any is saved. New colours below WCAG
    AA contrast are refused (422, each pair in `problems`) unless `allow_low_contrast`; what
    is saved but worth fixing comes back as `warnings`. Scope: `brands:write`."""
    changes = body.model_dump(exclude_unset=True, exclude={"allow_low_contrast"})
    allow = body.allow_low_contrast
    return _change_out(
        _allowing(
            lambda: tn.branding.set(tenant, changes, expected_version=expected_version, allow_low_contrast=allow)
        ),
        tn,
    )


@router.delete("", response_model=BrandChangeOut, responses=problems(404, 409))
def reset_brand(tn: TN, _: Write, tenant: TenantKey, expected_version: ExpectedVersion = None) -> BrandChangeOut:
    """Put the brand back to tenantry's defaults (a new version; images no other brand uses
    are removed). Scope: `brands:write`."""
    return _change_out(tn.branding.reset(tenant, expected_version=expected_version), tn)


@router.get("/history", response_model=BrandVersionPage, responses=problems(404))
def brand_history(
    tn: TN, _: Read, tenant: TenantKey, request: Request, response: Response, limit: Limit = 100, cursor: Cursor = None
) -> BrandVersionPage:
    """The brand's versions, newest first: who saved what, when and why. Scope: `brands:read`."""
    before = None if cursor is None else decode_cursor(cursor, id_key)[0]
    found = tn.branding.history(tenant, limit=limit + 1, before=before)
    page, url, next_cursor = paginate(request, response, found, limit, lambda v: (v.version,))
    return BrandVersionPage(
        items=[BrandVersionOut.model_validate(v.to_dict()) for v in page], next=url, next_cursor=next_cursor
    )


@router.post("/rollback", response_model=BrandChangeOut, responses=problems(400, 404, 409))
def rollback_brand(
    tn: TN, _: Write, tenant: TenantKey, body: BrandRollbackIn, expected_version: ExpectedVersion = None
) -> BrandChangeOut:
    """Make the brand what it was at `version` (0: the defaults), images included, as a new
    version; judged as a change (colours below WCAG AA need `allow_low_contrast`).
    Scope: `brands:write`."""
    change = _allowing(
        lambda: tn.branding.rollback(
            tenant,
            body.version,
            message=body.message,
            expected_version=expected_version,
            allow_low_contrast=body.allow_low_contrast,
        )
    )
    return _change_out(change, tn)


def _image_body(rules: ImageRules) -> dict[str, Any]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {"requestBody": {"required": True, "content": {kind: binary for kind in rules.types}}}


async def _read_image(request: Request, rules: ImageRules) -> bytes:
    """The body, if its content type is one ``rules`` takes and it is within the size limit."""
    declared = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if declared not in rules.types:
        raise HTTPException(
            415, f"send the {rules.label} as {', '.join(rules.types)}, not {declared or 'no content type'}"
        )
    too_large = f"the {rules.label} may be at most {rules.max_bytes // 1024} KiB"
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > rules.max_bytes:
        raise HTTPException(413, too_large)
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > rules.max_bytes:
            raise HTTPException(413, too_large)
    return bytes(data)


def _upload(
    tn: Tenantry, tenant: str, rules: ImageRules, declared: str, data: bytes, expected: int | None
) -> BrandChange:
    try:
        image = inspect_image(data, rules)
    except ValueError as err:
        raise InvalidBrand(f"{rules.label}: {err}") from None
    if image.content_type != declared:
        raise InvalidBrand(f"{rules.label}: the body is {image.content_type}, but was sent as {declared}")
    if rules is LOGO:
        return tn.branding.set(tenant, None, logo=data, expected_version=expected)
    return tn.branding.set(tenant, None, favicon=data, expected_version=expected)


async def _put_image(
    tn: Tenantry, tenant: str, request: Request, rules: ImageRules, expected: int | None
) -> BrandChangeOut:
    data = await _read_image(request, rules)
    declared = request.headers["content-type"].partition(";")[0].strip().lower()
    change = await anyio.to_thread.run_sync(lambda: _upload(tn, tenant, rules, declared, data, expected))
    return _change_out(change, tn)


@router.put(
    "/logo", response_model=BrandChangeOut, responses=problems(404, 409, 413, 415), openapi_extra=_image_body(LOGO)
)
async def upload_logo(
    tn: TN, _: Write, tenant: TenantKey, request: Request, expected_version: ExpectedVersion = None
) -> BrandChangeOut:
    """Upload the logo: the image's bytes as the body, `Content-Type` `image/png`,
    `image/jpeg` or `image/webp`; at most 512 KiB and 2048 px a side. SVG is refused.
    Scope: `brands:write`."""
    return await _put_image(tn, tenant, request, LOGO, expected_version)


@router.put(
    "/favicon",
    response_model=BrandChangeOut,
    responses=problems(404, 409, 413, 415),
    openapi_extra=_image_body(FAVICON),
)
async def upload_favicon(
    tn: TN, _: Write, tenant: TenantKey, request: Request, expected_version: ExpectedVersion = None
) -> BrandChangeOut:
    """Upload the favicon: the image's bytes as the body, `Content-Type` `image/png` or
    `image/x-icon`; at most 64 KiB and 512 px a side. Scope: `brands:write`."""
    return await _put_image(tn, tenant, request, FAVICON, expected_version)
