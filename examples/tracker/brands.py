"""A white-label brand for each demo tenant: colours, fonts, product name, a welcome e-mail,
and a logo and favicon drawn here in code (small PNGs, no image files in the repository).

:func:`brand` sets one tenant's brand through ``tn.branding`` unless it has one already, so a
rerun keeps what someone changed with ``tenantry brand set``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from tenantry import Tenantry
from tenantry.branding.images import encode_png

__all__ = ["BRANDS", "brand", "logo_png"]

_RGBA = tuple[int, int, int, int]
_CLEAR: _RGBA = (0, 0, 0, 0)


def _hex(color: str) -> _RGBA:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16), 255


def _anvil(x: float, y: float) -> bool:
    # a flat top with a horn to the left, a waist, and a broad foot
    top = 0.22 <= y <= 0.42 and (0.30 <= x <= 0.88 or (0.08 <= x < 0.30 and y <= 0.22 + (x - 0.08) * 0.9))
    waist = 0.42 < y <= 0.66 and 0.42 <= x <= 0.74
    foot = 0.66 < y <= 0.80 and 0.26 <= x <= 0.90
    return top or waist or foot


def _globe(x: float, y: float) -> bool:
    r = math.hypot(x - 0.5, y - 0.5)
    if r > 0.42:
        return False
    ring = r > 0.36
    meridian = abs(x - 0.5) < 0.03 or abs(math.hypot((x - 0.5) * 2.2, y - 0.5) - 0.42) < 0.04
    parallel = any(abs(y - p) < 0.025 for p in (0.32, 0.5, 0.68))
    return ring or meridian or parallel


def _stack(x: float, y: float) -> bool:
    # three stacked sheets (TPS reports), each offset a little
    for i, top in enumerate((0.18, 0.40, 0.62)):
        left = 0.14 + 0.08 * i
        if left <= x <= left + 0.62 and top <= y <= top + 0.16:
            return True
    return False


def logo_png(shape: Callable[[float, float], bool], color: str, size: int = 64) -> bytes:
    """A ``size``-pixel PNG of ``shape`` (a test on 0..1 coordinates) in ``color``."""
    ink = bytes(_hex(color))
    clear = bytes(_CLEAR)
    rows = [
        b"".join(ink if shape((col + 0.5) / size, (row + 0.5) / size) else clear for col in range(size))
        for row in range(size)
    ]
    return encode_png(size, size, rows)


#: slug -> (theme changes, logo shape)
BRANDS: dict[str, tuple[dict[str, Any], Callable[[float, float], bool]]] = {
    "acme": (
        {
            "product_name": "Acme Tracker",
            "colors": {
                "primary": "#c2410c",
                "background": "#fff8f0",
                "surface": "#ffffff",
                "text": "#2d1a0e",
                "muted": "#6b4e3d",
                "accent": "#9c36b5",
            },
            "fonts": {"heading": "Georgia, Times New Roman, serif"},
            "email": {
                "sender_name": "Acme Tracker",
                "templates": {
                    "welcome": {
                        "subject": "Welcome to {{ product_name }}",
                        "text": "Hello {{ recipient.name }},\n\nMeep meep: {{ action_url }}\n",
                        "html": '<p>Hello {{ recipient.name }},</p><p><a href="{{ action_url }}">Start tracking</a></p>',
                    }
                },
            },
        },
        _anvil,
    ),
    "globex": (
        {
            "product_name": "Globex Projects",
            "colors": {
                "primary": "#237032",
                "background": "#f3faf4",
                "surface": "#ffffff",
                "text": "#14301c",
                "muted": "#4d6652",
                "accent": "#0b7285",
            },
            "fonts": {"body": "Trebuchet MS, Verdana, sans-serif", "heading": "Trebuchet MS, Verdana, sans-serif"},
            "email": {"sender_name": "Globex Corporation"},
        },
        _globe,
    ),
    "initech": (
        {
            "product_name": "Initech TPS",
            "colors": {
                "primary": "#1864ab",
                "background": "#f1f5fb",
                "surface": "#ffffff",
                "text": "#1b2a41",
                "muted": "#56657a",
                "accent": "#5f3dc4",
            },
            "fonts": {"heading": "Courier New, monospace"},
            "email": {"sender_name": "Initech"},
        },
        _stack,
    ),
}


def brand(tn: Tenantry, slug: str) -> bool:
    """Give ``slug`` its demo brand unless it has a brand already; ``True`` if it was set."""
    if slug not in BRANDS or tn.branding.get(slug).version > 0:
        return False
    changes, shape = BRANDS[slug]
    color = changes["colors"]["primary"]
    tn.branding.set(slug, changes, logo=logo_png(shape, color, 64), favicon=logo_png(shape, color, 32))
    return True
