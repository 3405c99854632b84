"""``tenantry brand …``: set, show, preview and reset a tenant's white-label brand; its history
and rollback.

Every change is validated whole before anything is saved: a bad colour, font, name, image or
template is one line on stderr, a non-zero exit, and no change. So are new colours below WCAG
AA contrast (4.5:1), unless ``--allow-low-contrast``; what is saved but worth fixing is
reported as warnings (on stderr, and in ``--json`` output). Every change is a version:
``brand history`` lists them and ``brand rollback --to N`` saves an old one again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tenantry.cli.output import console, emit_json, table, warning
from tenantry.cli.state import get_state
from tenantry.errors import InvalidBrand, LowContrast

if TYPE_CHECKING:
    from tenantry.branding import BrandChange, BrandWarning
    from tenantry.branding.service import Brand

__all__ = ["app"]

app = typer.Typer(
    help="Set, show, preview and reset tenants' white-label brands; their history and rollback.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
TenantOpt = Annotated[str, typer.Option("--tenant", help="The tenant's slug or id.", show_default=False)]
AllowLowContrast = Annotated[
    bool,
    typer.Option("--allow-low-contrast", help="Save colours even if text on them is below WCAG AA contrast (4.5:1)."),
]
ExpectVersion = Annotated[
    int | None, typer.Option("--expect-version", min=0, help="Refuse if the brand is no longer at this version.")
]
_OVERRIDE = "pass --allow-low-contrast to save them anyway"


def _color(name: str) -> Any:
    what = "colour of text on the primary colour" if name == "on_primary" else f"{name} colour"
    return typer.Option(f"--{name.replace('_', '-')}", help=f"The {what} (#rgb, #rrggbb, rgb(), hsl() or a CSS name).")


def _font(name: str) -> Any:
    return typer.Option(
        f"--font-{name}", help=f"The {name} font stack, e.g. 'Inter, Segoe UI, sans-serif' (no quotes)."
    )


@app.command("set")
def set_(
    ctx: typer.Context,
    tenant: TenantOpt,
    primary: Annotated[str | None, _color("primary")] = None,
    on_primary: Annotated[str | None, _color("on_primary")] = None,
    secondary: Annotated[str | None, _color("secondary")] = None,
    background: Annotated[str | None, _color("background")] = None,
    surface: Annotated[str | None, _color("surface")] = None,
    text: Annotated[str | None, _color("text")] = None,
    muted: Annotated[str | None, _color("muted")] = None,
    accent: Annotated[str | None, _color("accent")] = None,
    danger: Annotated[str | None, _color("danger")] = None,
    font_body: Annotated[str | None, _font("body")] = None,
    font_heading: Annotated[str | None, _font("heading")] = None,
    font_mono: Annotated[str | None, _font("mono")] = None,
    product_name: Annotated[
        str | None, typer.Option("--product-name", help="The product's name in pages and e-mail.")
    ] = None,
    sender_name: Annotated[
        str | None, typer.Option("--sender-name", help="The display name e-mail is sent under.")
    ] = None,
    logo: Annotated[Path | None, typer.Option("--logo", help="Logo image: PNG, JPEG or WebP, up to 512 KiB.")] = None,
    favicon: Annotated[Path | None, typer.Option("--favicon", help="Favicon: PNG or ICO, up to 64 KiB.")] = None,
    remove_logo: Annotated[bool, typer.Option("--remove-logo", help="Remove the logo.")] = False,
    remove_favicon: Annotated[bool, typer.Option("--remove-favicon", help="Remove the favicon.")] = False,
    from_json: Annotated[
        Path | None,
        typer.Option("--from-json", help="A (partial) theme as JSON ('-': stdin); the options above win over it."),
    ] = None,
    expect_version: ExpectVersion = None,
    allow_low_contrast: AllowLowContrast = False,
    as_json: JsonFlag = False,
) -> None:
    """Change a tenant's brand: all of it is saved, or (on any bad value, or colours too low in
    contrast to read) none of it."""
    changes, images = _from_json(from_json) if from_json is not None else ({}, {})
    colors = {
        "primary": primary,
        "on_primary": on_primary,
        "secondary": secondary,
        "background": background,
        "surface": surface,
        "text": text,
        "muted": muted,
        "accent": accent,
        "danger": danger,
    }
    _merge(changes, "colors", {k: v for k, v in colors.items() if v is not None})
    fonts = {"body": font_body, "heading": font_heading, "mono": font_mono}
    _merge(changes, "fonts", {k: v for k, v in fonts.items() if v is not None})
    if product_name is not None:
        changes["product_name"] = product_name
    if sender_name is not None:
        _merge(changes, "email", {"sender_name": sender_name})
    for key, path, remove in (("logo", logo, remove_logo), ("favicon", favicon, remove_favicon)):
        if path is not None and remove:
            raise InvalidBrand(f"--{key} and --remove-{key} contradict each other")
        if path is not None:
            images[key] = path
        if remove:
            images.pop(key, None)
            changes[key] = None
    if not changes and not images:
        raise InvalidBrand("nothing to change: give options such as --primary, --logo or --from-json")
    tn = get_state(ctx).tenantry()
    try:
        change = tn.branding.set(
            tenant,
            changes,
            logo=images.get("logo"),
            favicon=images.get("favicon"),
            expected_version=expect_version,
            allow_low_contrast=allow_low_contrast,
        )
    except LowContrast as err:
        raise err.with_hint(_OVERRIDE) from None
    _report(change, "saved", as_json)


@app.command("show")
def show(ctx: typer.Context, tenant: TenantOpt, as_json: JsonFlag = False) -> None:
    """Show a tenant's brand, and what is hard to read in it."""
    tn = get_state(ctx).tenantry()
    brand = tn.branding.get(tenant)
    warnings = tn.branding.warnings(brand)
    if as_json:
        emit_json(brand.to_dict() | {"warnings": [w.to_dict() for w in warnings]})
        return
    table(None, ["field", "value"], _rows(brand))
    _warn(warnings)


@app.command("preview")
def preview(
    ctx: typer.Context,
    tenant: TenantOpt,
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write it (default: brand-preview-<slug>.html).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write a static HTML page that shows the brand (stylesheet inlined, logo as a data URL)."""
    tn = get_state(ctx).tenantry()
    brand = tn.branding.get(tenant)
    page = tn.branding.preview(brand.tenant_id)
    path = out if out is not None else Path(f"brand-preview-{brand.slug}.html")
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as err:
        raise InvalidBrand(f"cannot write {path}: {err.strerror or err}") from None
    if as_json:
        emit_json({"tenant": brand.slug, "version": brand.version, "path": str(path.resolve())})
    else:
        console.print(str(path.resolve()), soft_wrap=True)


@app.command("reset")
def reset(ctx: typer.Context, tenant: TenantOpt, as_json: JsonFlag = False) -> None:
    """Put a tenant's brand back to the defaults."""
    change = get_state(ctx).tenantry().branding.reset(tenant)
    _report(change, "reset", as_json)


@app.command("history")
def history(
    ctx: typer.Context,
    tenant: TenantOpt,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000, help="At most this many versions.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """A brand's versions, newest first: who saved what, when and why."""
    versions = get_state(ctx).tenantry().branding.history(tenant, limit=limit)
    if as_json:
        emit_json([v.to_dict() for v in versions])
        return
    if not versions:
        console.print("no versions yet: the brand has tenantry's defaults")
        return
    table(
        None,
        ["version", "at", "actor", "primary", "product name", "message"],
        [
            (
                v.version,
                f"{v.created_at:%Y-%m-%d %H:%M:%S}",
                v.actor,
                v.theme.get("colors", {}).get("primary", ""),
                v.theme.get("product_name") or "",
                v.message,
            )
            for v in versions
        ],
    )


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    tenant: TenantOpt,
    to: Annotated[
        int, typer.Option("--to", min=0, help="The version to return to (0: the defaults).", show_default=False)
    ],
    message: Annotated[str, typer.Option("--message", "-m", help="Why: kept with the new version.")] = "",
    expect_version: ExpectVersion = None,
    allow_low_contrast: AllowLowContrast = False,
    as_json: JsonFlag = False,
) -> None:
    """Make a brand what it was at version --to, images included, as a new version."""
    branding = get_state(ctx).tenantry().branding
    try:
        change = branding.rollback(
            tenant, to, message=message, expected_version=expect_version, allow_low_contrast=allow_low_contrast
        )
    except LowContrast as err:
        raise err.with_hint(_OVERRIDE) from None
    said = f"rolled back the brand of [bold]{change.brand.slug}[/] to version {to}: now version {change.brand.version}"
    _report(change, "saved", as_json, said)


def _from_json(path: Path) -> tuple[dict[str, Any], dict[str, Path]]:
    """The theme changes in a JSON file, and the image files it names (relative to it)."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidBrand(f"cannot read {path}: {getattr(err, 'strerror', None) or err}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidBrand(f"{path} is not JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    if not isinstance(data, dict):
        raise InvalidBrand(f"{path} must hold a JSON object of theme fields")
    images: dict[str, Path] = {}
    base = Path.cwd() if str(path) == "-" else path.parent
    for key in ("logo", "favicon"):
        value = data.get(key)
        if isinstance(value, str):
            images[key] = base / value
            del data[key]
    return data, images


def _merge(changes: dict[str, Any], key: str, values: dict[str, Any]) -> None:
    if not values:
        return
    current = changes.get(key)
    changes[key] = {**current, **values} if isinstance(current, dict) else values


def _report(change: BrandChange, verb: str, as_json: bool, said: str | None = None) -> None:
    brand = change.brand
    if as_json:
        emit_json(change.to_dict())
    elif change.changed:
        console.print(said or f"{verb} the brand of [bold]{brand.slug}[/]: version {brand.version}")
    else:
        console.print(f"the brand of [bold]{brand.slug}[/] is unchanged (version {brand.version})")
    _warn(change.warnings)


def _warn(warnings: tuple[BrandWarning, ...] | list[BrandWarning]) -> None:
    for each in warnings:
        warning(each.message)


def _rows(brand: Brand) -> list[tuple[str, Any]]:
    theme = brand.theme
    rows: list[tuple[str, Any]] = [
        ("tenant", brand.slug),
        ("version", brand.version),
        ("product name", brand.product_name),
        ("sender name", brand.sender_name),
    ]
    rows += [(f"colour {name}", value) for name, value in theme.colors.model_dump().items()]
    rows += [(f"font {name}", ", ".join(stack)) for name, stack in theme.fonts.model_dump().items()]
    for label in ("logo", "favicon"):
        asset = getattr(theme, label)
        rows.append(
            (
                label,
                "none"
                if asset is None
                else f"{asset.content_type} {asset.width}x{asset.height}, {asset.size} bytes, {asset.filename}",
            )
        )
    rows.append(("e-mail templates", ", ".join(sorted(theme.email.templates)) or "none"))
    if brand.updated_at is not None:
        rows.append(("updated", f"{brand.updated_at:%Y-%m-%d %H:%M:%S} by {brand.updated_by}"))
    return rows
