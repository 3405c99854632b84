"""Colours: every accepted notation normalises to one hex form; anything else is refused;
WCAG contrast matches the published reference values."""

from __future__ import annotations

import pytest

from tenantry.branding.colors import HEX_COLOR, contrast_ratio, normalise_color
from tenantry.branding.named_colors import NAMED_COLORS


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("#abc", "#aabbcc"),
        ("#ABCD", "#aabbccdd"),
        ("#3B5BDB", "#3b5bdb"),
        ("#3b5bdb80", "#3b5bdb80"),
        ("#3b5bdbff", "#3b5bdb"),
        ("  #3b5bdb  ", "#3b5bdb"),
        ("rgb(59, 91, 219)", "#3b5bdb"),
        ("RGB(59,91,219)", "#3b5bdb"),
        ("rgb(59 91 219)", "#3b5bdb"),
        ("rgb(59 91 219 / 50%)", "#3b5bdb80"),
        ("rgba(0, 0, 0, 0.5)", "#00000080"),
        ("rgb(100%, 0%, 0%)", "#ff0000"),
        ("hsl(120, 100%, 50%)", "#00ff00"),
        ("hsl(0 0% 100%)", "#ffffff"),
        ("hsl(210deg 50% 40% / .8)", "#336699cc"),
        ("hsla(240, 100%, 50%, 1)", "#0000ff"),
        ("hsl(0.5turn 100% 50%)", "#00ffff"),
        ("navy", "#000080"),
        ("RebeccaPurple", "#663399"),
        ("  WHITE ", "#ffffff"),
        ("lightgoldenrodyellow", "#fafad2"),
        ("grey", "#808080"),
    ],
)
def test_accepted_notations_normalise_to_hex(given: str, stored: str) -> None:
    assert normalise_color(given) == stored
    assert HEX_COLOR.fullmatch(stored)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "bluish",
        "transparent",
        "currentcolor",
        "blue;",
        "light blue",
        "navy blue",
        "#12",
        "#12345",
        "#1234567",
        "#ggg",
        "3b5bdb",
        "rgb(300, 0, 0)",
        "rgb(-1, 0, 0)",
        "rgb(1, 2)",
        "rgb(1, 2, 3, 4, 5)",
        "rgb(1,2,3,)",
        "rgb(1 2 3 /)",
        "rgb(1, 2, 3, 2)",
        "hsl(0, 150%, 50%)",
        "hsl(x, 1%, 1%)",
        "rgb(1px, 2, 3)",
        "url(javascript:alert(1))",
        "expression(alert(1))",
        "#fff; } body { display:none",
        "rgb(1,2,3)</style><script>",
        "var(--x)",
        "calc(1 + 2)",
        "#" + "f" * 100,
    ],
)
def test_everything_else_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        normalise_color(bad)


def test_the_css_colour_names_are_all_148_with_their_values() -> None:
    """Checked against another table of them: Pillow's (CSS Color 4's named colours)."""
    from PIL import ImageColor

    assert len(NAMED_COLORS) == 148
    assert dict(NAMED_COLORS) == {name: value.lower() for name, value in ImageColor.colormap.items()}
    for name, value in NAMED_COLORS.items():
        assert normalise_color(name) == normalise_color(name.upper()) == value


def test_non_strings_are_refused() -> None:
    with pytest.raises(ValueError):
        normalise_color(0x3B5BDB)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fg", "bg", "ratio"),
    [
        ("#000000", "#ffffff", 21.0),
        ("#ffffff", "#ffffff", 1.0),
        ("#767676", "#ffffff", 4.54),  # the lightest grey that passes AA on white
        ("#777777", "#ffffff", 4.48),
        ("#ffffff", "#0000ff", 8.59),
    ],
)
def test_contrast_ratio_matches_wcag_reference_values(fg: str, bg: str, ratio: float) -> None:
    assert contrast_ratio(fg, bg) == pytest.approx(ratio, abs=0.01)
    assert contrast_ratio(bg, fg) == pytest.approx(ratio, abs=0.01)


def test_translucent_text_is_composited_before_measuring() -> None:
    # black at 0 alpha on white is invisible: contrast 1
    assert contrast_ratio("#00000000", "#ffffff") == pytest.approx(1.0)
    assert contrast_ratio("#00000080", "#ffffff") < contrast_ratio("#000000", "#ffffff")
