"""Colours of a theme: parsing CSS colour notations into one hex form, and WCAG contrast.

Pure: no I/O. Accepted notations are ``#rgb``, ``#rgba``, ``#rrggbb``, ``#rrggbbaa``,
``rgb()``/``rgba()`` and ``hsl()``/``hsla()`` in their comma and space syntaxes (``rgb(59 91
219 / 80%)``), and the 148 CSS colour names (``rebeccapurple``, ``Navy``). Everything is normalised to lowercase ``#rrggbb`` (``#rrggbbaa`` when not
opaque), so a stored colour is one token a stylesheet can hold without escaping.

>>> normalise_color("RGB(59, 91, 219)")
'#3b5bdb'
>>> normalise_color("DarkSlateGray")
'#2f4f4f'
>>> round(contrast_ratio("#000000", "#ffffff"), 1)
21.0
"""

from __future__ import annotations

import re

from tenantry.branding.named_colors import NAMED_COLORS

__all__ = ["HEX_COLOR", "RGBA", "composite", "contrast_ratio", "normalise_color", "parse_color", "relative_luminance"]

#: (red, green, blue, alpha), each 0-255
RGBA = tuple[int, int, int, int]

#: the stored form of a colour
HEX_COLOR = re.compile(r"#[0-9a-f]{6}([0-9a-f]{2})?")

_HEX = re.compile(r"#([0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")
_FUNCTION = re.compile(r"(rgba?|hsla?)\(([^()]*)\)", re.IGNORECASE)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_HINT = "use #rgb, #rrggbb, #rrggbbaa, rgb(), hsl() or a CSS colour name such as navy"


def parse_color(value: str) -> RGBA:
    """The colour ``value`` names; :class:`ValueError` with a reason when it names none."""
    if not isinstance(value, str):
        raise ValueError(f"a colour is a string ({_HINT})")
    text = value.strip()
    if len(text) > 64:
        raise ValueError(f"{text[:20]!r}… is not a colour ({_HINT})")
    named = NAMED_COLORS.get(text.lower())
    if named is not None:
        text = named
    if _HEX.fullmatch(text):
        digits = text[1:]
        if len(digits) in (3, 4):
            digits = "".join(d * 2 for d in digits)
        if len(digits) == 6:
            digits += "ff"
        r, g, b, a = (int(digits[i : i + 2], 16) for i in range(0, 8, 2))
        return r, g, b, a
    match = _FUNCTION.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a colour ({_HINT})")
    name, args = match.group(1).lower(), match.group(2).strip()
    parts, alpha = _arguments(text, args)
    if name.startswith("rgb"):
        red, green, blue = (_channel(text, p) for p in parts)
    else:
        red, green, blue = _hsl(text, *parts)
    return red, green, blue, 255 if alpha is None else _alpha(text, alpha)


def normalise_color(value: str) -> str:
    """``value`` as lowercase ``#rrggbb``, or ``#rrggbbaa`` when it is not opaque."""
    r, g, b, a = parse_color(value)
    text = f"#{r:02x}{g:02x}{b:02x}"
    return text if a == 255 else f"{text}{a:02x}"


def _arguments(text: str, args: str) -> tuple[list[str], str | None]:
    if "," in args:
        parts = [p.strip() for p in args.split(",")]
        alpha = parts.pop() if len(parts) == 4 else None
    else:
        head, slash, tail = args.partition("/")
        parts = head.split()
        alpha = tail.strip() if slash else None
    if len(parts) != 3 or alpha == "":
        raise ValueError(f"{text!r} is not a colour: it needs three components and an optional alpha")
    return parts, alpha


def _number(text: str, part: str, units: tuple[str, ...]) -> tuple[float, str]:
    for unit in units:
        if part.lower().endswith(unit) and _NUMBER.fullmatch(part[: len(part) - len(unit)]):
            return float(part[: len(part) - len(unit)]), unit
    if _NUMBER.fullmatch(part):
        return float(part), ""
    raise ValueError(f"{text!r} is not a colour: {part!r} is not a number")


def _channel(text: str, part: str) -> int:
    number, unit = _number(text, part, ("%",))
    if unit == "%":
        number = number * 255 / 100
    if not 0 <= number <= 255:
        raise ValueError(f"{text!r} is not a colour: components run from 0 to 255 (or 0% to 100%)")
    return round(number)


def _alpha(text: str, part: str) -> int:
    number, unit = _number(text, part, ("%",))
    if unit == "%":
        number /= 100
    if not 0 <= number <= 1:
        raise ValueError(f"{text!r} is not a colour: alpha runs from 0 to 1 (or 0% to 100%)")
    return round(number * 255)


def _hsl(text: str, hue_part: str, sat_part: str, light_part: str) -> tuple[int, int, int]:
    hue, unit = _number(text, hue_part, ("deg", "turn"))
    if unit == "turn":
        hue *= 360
    values = []
    for part in (sat_part, light_part):
        number, unit = _number(text, part, ("%",))
        if not 0 <= number <= 100:
            raise ValueError(f"{text!r} is not a colour: saturation and lightness run from 0% to 100%")
        values.append(number / 100)
    sat, light = values
    chroma = (1 - abs(2 * light - 1)) * sat

    def channel(n: int) -> int:
        k = (n + hue / 30) % 12
        return round(255 * (light - chroma / 2 * max(-1.0, min(k - 3, 9 - k, 1.0))))

    return channel(0), channel(8), channel(4)


def composite(foreground: RGBA, background: RGBA) -> RGBA:
    """``foreground`` painted over ``background`` (itself first painted over white)."""
    if background[3] < 255:
        background = composite(background, (255, 255, 255, 255))
    a = foreground[3] / 255
    r, g, b = (round(f * a + bg * (1 - a)) for f, bg in zip(foreground[:3], background[:3]))
    return r, g, b, 255


def relative_luminance(color: RGBA) -> float:
    """WCAG 2.x relative luminance of an opaque colour (0: black, 1: white)."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in color[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(foreground: str, background: str) -> float:
    """WCAG 2.x contrast ratio (1 to 21) of text in ``foreground`` on ``background``;
    translucent colours are composited first."""
    bg = parse_color(background)
    if bg[3] < 255:
        bg = composite(bg, (255, 255, 255, 255))
    fg = composite(parse_color(foreground), bg)
    lighter, darker = sorted((relative_luminance(fg), relative_luminance(bg)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)
