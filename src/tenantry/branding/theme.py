"""The theme of a tenant's brand as validated data (pydantic), and the warnings it earns.

Pure: no I/O. Every value that reaches a stylesheet, a page or a mail header is checked here,
and stored already normalised: colours as hex, font stacks as lists of names from a safe
alphabet, names without control characters, e-mail templates that compile and render in the
sandbox (:mod:`tenantry.branding.emails`). Asset references (logo, favicon) are never taken
from the caller: they are made from uploaded bytes (:mod:`tenantry.branding.images`).

>>> theme = apply_changes(Theme(), {"colors": {"primary": "rgb(10, 20, 30)"}})
>>> theme.colors.primary
'#0a141e'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from tenantry.branding.colors import contrast_ratio, normalise_color
from tenantry.branding.emails import TEMPLATE_NAME, check_template
from tenantry.branding.images import EXTENSIONS, Image
from tenantry.errors import InvalidBrand, LowContrast

__all__ = [
    "GENERIC_FAMILIES",
    "MIN_CONTRAST",
    "Asset",
    "BrandWarning",
    "Colors",
    "Email",
    "EmailTemplate",
    "Fonts",
    "Theme",
    "apply_changes",
    "asset_of",
    "check_contrast",
    "theme_warnings",
]

#: WCAG 2.x AA minimum contrast for body text
MIN_CONTRAST = 4.5

#: CSS generic font families: written unquoted, and the right way to end a stack
GENERIC_FAMILIES = frozenset(
    {
        "serif",
        "sans-serif",
        "monospace",
        "cursive",
        "fantasy",
        "system-ui",
        "ui-serif",
        "ui-sans-serif",
        "ui-monospace",
        "ui-rounded",
        "math",
        "emoji",
        "fangsong",
    }
)
_CSS_WIDE = frozenset({"inherit", "initial", "unset", "revert", "revert-layer", "default"})
# a family name: ASCII letters, digits, single spaces, '-' and '_'; nothing a stylesheet
# could read as syntax (quotes, ';', braces, parentheses, '\\', '<', '/', ':')
_FAMILY = re.compile(r"[A-Za-z][A-Za-z0-9_-]*(?: [A-Za-z0-9_-]+)*")
# control characters, line and paragraph separators, and bidirectional overrides (spoofing)
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _color(value: Any) -> str:
    return normalise_color(value)


def _font_stack(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ValueError("a font stack is a comma-separated list of family names")
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError("font family names are text")
        name = item.strip()
        if not name:
            raise ValueError("a font stack has an empty family name")
        if any(c in name for c in "\"'"):
            raise ValueError(f"write font names without quotes ({name[:40]!r}); tenantry quotes them itself")
        if len(name) > 64 or not _FAMILY.fullmatch(name):
            raise ValueError(
                f"{name[:40]!r} is not a font family name (letters, digits, spaces, '-' and '_'"
                " only, starting with a letter)"
            )
        if name.lower() in _CSS_WIDE:
            raise ValueError(f"{name!r} is a CSS keyword, not a font family")
        names.append(name.lower() if name.lower() in GENERIC_FAMILIES else name)
    if not 1 <= len(names) <= 10:
        raise ValueError("a font stack has 1 to 10 families")
    return tuple(names)


def _one_line(value: Any, limit: int, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"the {what} is text")
    if _UNPRINTABLE.search(value):
        raise ValueError(f"the {what} may not contain line breaks or control characters")
    text = value.strip()
    if not 1 <= len(text) <= limit:
        raise ValueError(f"the {what} is 1 to {limit} characters")
    return text


def _product(value: Any) -> str:
    return _one_line(value, 80, "product name")


def _sender(value: Any) -> str:
    # a display name in a From: header: one line (no header injection), and no address of its own
    text = _one_line(value, 78, "e-mail sender name")
    if any(c in text for c in "<>@"):
        raise ValueError("the e-mail sender name may not contain '<', '>' or '@' (the address is the app's)")
    return text


Color = Annotated[str, BeforeValidator(_color)]
FontStack = Annotated[tuple[str, ...], BeforeValidator(_font_stack)]
ProductName = Annotated[str, BeforeValidator(_product)]
SenderName = Annotated[str, BeforeValidator(_sender)]

_STRICT = ConfigDict(extra="forbid", frozen=True)


class Colors(BaseModel):
    """The palette, as CSS design tokens ``--brand-<name>`` (``on_primary`` → ``--brand-on-primary``)."""

    model_config = _STRICT

    primary: Color = "#3b5bdb"
    on_primary: Color = "#ffffff"
    secondary: Color = "#495057"
    background: Color = "#f7f8fa"
    surface: Color = "#ffffff"
    text: Color = "#1d2330"
    muted: Color = "#667085"
    accent: Color = "#0c8599"
    danger: Color = "#c92a2a"


_SANS = ("system-ui", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif")


class Fonts(BaseModel):
    """Font stacks (``--brand-font-body``, ``-heading``, ``-mono``)."""

    model_config = _STRICT

    body: FontStack = _SANS
    heading: FontStack = _SANS
    mono: FontStack = ("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace")


class EmailTemplate(BaseModel):
    """One e-mail: a subject and a plain-text body, and optionally an HTML body."""

    model_config = _STRICT

    subject: str
    text: str
    html: str | None = None

    @model_validator(mode="after")
    def _compiles(self, info: ValidationInfo) -> EmailTemplate:
        if info.context and info.context.get("stored"):
            return self  # checked when it was saved; loading it again need not render it
        check_template(self.subject, html=False, part="subject")
        check_template(self.text, html=False, part="text")
        if self.html is not None:
            check_template(self.html, html=True, part="html")
        return self


class Email(BaseModel):
    """How the tenant's e-mail looks: the sender's display name and named templates."""

    model_config = _STRICT

    sender_name: SenderName | None = None
    templates: dict[str, EmailTemplate] = Field(default_factory=dict, max_length=20)

    @model_validator(mode="after")
    def _names(self) -> Email:
        for name in self.templates:
            if not TEMPLATE_NAME.fullmatch(name):
                raise ValueError(f"template name {name[:40]!r} must be a-z, 0-9 and '_', starting with a letter")
        return self


class Asset(BaseModel):
    """A stored image the brand uses, by content address."""

    model_config = _STRICT

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    content_type: Literal["image/png", "image/jpeg", "image/webp", "image/x-icon"]
    size: int = Field(gt=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)

    @property
    def filename(self) -> str:
        """``<sha256>.<ext>``: the asset's name under ``/_brand/assets/``."""
        return f"{self.sha256}.{EXTENSIONS[self.content_type]}"


def asset_of(image: Image) -> Asset:
    return Asset(
        sha256=image.sha256,
        content_type=image.content_type,  # type: ignore[arg-type]
        size=image.size,
        width=image.width,
        height=image.height,
    )


class Theme(BaseModel):
    """A tenant's brand: product name, palette, fonts, e-mail, logo and favicon.

    Unset fields take tenantry's defaults; ``product_name`` falls back to the tenant's name.
    """

    model_config = _STRICT

    product_name: ProductName | None = None
    colors: Colors = Colors()
    fonts: Fonts = Fonts()
    email: Email = Email()
    logo: Asset | None = None
    favicon: Asset | None = None

    def assets(self) -> dict[str, Asset]:
        """The stored images this theme uses, by sha256."""
        return {a.sha256: a for a in (self.logo, self.favicon) if a is not None}


_MERGED = ("colors", "fonts")


def apply_changes(theme: Theme, changes: Mapping[str, Any]) -> Theme:
    """``theme`` with ``changes`` (a partial theme, as JSON would give it) applied.

    ``colors`` and ``fonts`` merge key by key; ``email.templates`` merges by template name
    (``None`` removes one); other fields are replaced, ``None`` resetting them. ``logo`` and
    ``favicon`` may only be ``None`` here (removed): images are uploaded, never referenced,
    so no tenant can point its brand at another tenant's stored image.
    Raises :class:`InvalidBrand` naming every refused field.
    """
    if not isinstance(changes, Mapping):
        raise InvalidBrand("a brand change is a JSON object of theme fields")
    data = theme.model_dump()
    for key, value in changes.items():
        if key in ("logo", "favicon"):
            if value is not None:
                raise InvalidBrand(f"{key}: upload the image itself; a {key} cannot be set by reference")
            data[key] = None
        elif key in _MERGED and isinstance(value, Mapping):
            data[key] = {**data[key], **value}
        elif key == "email" and isinstance(value, Mapping):
            email = {**data["email"], **{k: v for k, v in value.items() if k != "templates"}}
            templates = value.get("templates", {})
            if isinstance(templates, Mapping):
                merged = dict(email["templates"])
                for name, template in templates.items():
                    if template is None:
                        merged.pop(name, None)
                    else:
                        merged[name] = template
                email["templates"] = merged
            else:
                email["templates"] = templates
            data["email"] = email
        elif value is None and key in data:
            default = Theme.model_fields[key].get_default(call_default_factory=True)
            data[key] = default.model_dump() if isinstance(default, BaseModel) else default
        else:
            data[key] = value
    return validate_theme(data)


def validate_theme(data: Any) -> Theme:
    """``data`` as a :class:`Theme`; :class:`InvalidBrand` naming every refused field."""
    try:
        return Theme.model_validate(data)
    except ValidationError as err:
        raise InvalidBrand(describe(err)) from None


def describe(err: ValidationError) -> str:
    """One line for a pydantic error: ``field.path: reason; …``."""
    parts = []
    for item in err.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or "theme"
        kind, message = item["type"], item["msg"]
        if kind == "extra_forbidden":
            message = "unknown field"
        elif kind == "value_error":
            message = message.removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    shown = "; ".join(parts[:3])
    return shown if len(parts) <= 3 else f"{shown}; and {len(parts) - 3} more"


@dataclass(frozen=True, slots=True)
class BrandWarning:
    """Something saved but worth fixing, such as text that is hard to read.

    ``code`` is ``contrast`` (with ``ratio`` below :data:`MIN_CONTRAST`) or ``font_fallback``.
    """

    code: str
    message: str
    ratio: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "ratio": self.ratio}


#: (foreground, background, what it is) pairs that must be readable
_PAIRS = (
    ("text", "background", "text on the background"),
    ("text", "surface", "text on surfaces"),
    ("muted", "background", "muted text on the background"),
    ("on_primary", "primary", "text on the primary colour"),
    ("primary", "background", "links in the primary colour on the background"),
)


def _contrast(colors: Colors) -> list[tuple[str, float, str]]:
    """``(what, ratio, the colours)`` of each pair below :data:`MIN_CONTRAST`."""
    found = []
    for fg, bg, what in _PAIRS:
        ratio = contrast_ratio(getattr(colors, fg), getattr(colors, bg))
        if ratio < MIN_CONTRAST:
            found.append((what, ratio, f"{fg} {getattr(colors, fg)} on {bg} {getattr(colors, bg)}"))
    return found


def check_contrast(before: Theme, after: Theme, *, allow_low_contrast: bool = False) -> None:
    """Refuse (:class:`~tenantry.LowContrast`) a change to the colours that leaves a pair of
    them below WCAG AA's 4.5:1, unless ``allow_low_contrast``.

    Only a change of colours is judged: a brand saved with low contrast (before this rule, or
    with the override) can still change its name, fonts or images without the override.
    """
    if allow_low_contrast or after.colors == before.colors:
        return
    failing = _contrast(after.colors)
    if failing:
        shown = "; ".join(f"{what} {ratio:.2f}:1 ({pair})" for what, ratio, pair in failing)
        raise LowContrast(
            f"refused: these colours are hard to read, below {MIN_CONTRAST}:1 contrast (WCAG AA): {shown}",
            [f"{what}: {pair}, {ratio:.2f}:1" for what, ratio, pair in failing],
            hint="choose readable colours, or pass allow_low_contrast=True to save them anyway",
        )


def theme_warnings(theme: Theme) -> list[BrandWarning]:
    """What a theme gets wrong without being invalid: WCAG contrast below 4.5:1, font stacks
    without a generic family to fall back on."""
    found = [
        BrandWarning(
            "contrast",
            f"{what}: hard to read, {pair} has contrast {ratio:.2f}:1, below {MIN_CONTRAST}:1 (WCAG AA)",
            round(ratio, 2),
        )
        for what, ratio, pair in _contrast(theme.colors)
    ]
    for name in ("body", "heading", "mono"):
        stack = getattr(theme.fonts, name)
        if not any(family in GENERIC_FAMILIES for family in stack):
            found.append(
                BrandWarning("font_fallback", f"the {name} font stack ends without a generic family such as sans-serif")
            )
    return found
