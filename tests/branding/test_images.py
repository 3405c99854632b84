"""Logo and favicon bytes: the type comes from the bytes, sizes and dimensions are bounded,
SVG and anything with a payload appended is refused."""

from __future__ import annotations

import pytest

from tenantry.branding.images import FAVICON, LOGO, inspect_image
from tests.branding.images import pillow, png, png_claiming


@pytest.mark.parametrize(
    ("fmt", "options", "content_type"),
    [
        ("PNG", {}, "image/png"),
        ("JPEG", {}, "image/jpeg"),
        ("JPEG", {"progressive": True}, "image/jpeg"),
        ("WEBP", {"lossless": False}, "image/webp"),
        ("WEBP", {"lossless": True}, "image/webp"),
    ],
)
def test_real_logos_are_read_with_their_dimensions(fmt: str, options: dict, content_type: str) -> None:
    image = inspect_image(pillow(fmt, (200, 80), **options), LOGO)
    assert (image.content_type, image.width, image.height) == (content_type, 200, 80)
    assert len(image.sha256) == 64 and image.extension in {"png", "jpg", "webp"}


def test_webp_with_alpha_uses_the_extended_header() -> None:
    from io import BytesIO

    from PIL import Image as PILImage

    out = BytesIO()
    PILImage.new("RGBA", (300, 120), (10, 20, 30, 128)).save(out, format="WEBP", lossless=False, exact=True)
    image = inspect_image(out.getvalue(), LOGO)
    assert (image.width, image.height) == (300, 120)


def test_favicons_are_png_or_ico() -> None:
    ico = inspect_image(pillow("ICO", (32, 32), sizes=[(16, 16), (32, 32)]), FAVICON, "favicon.ico")
    assert (ico.content_type, ico.width, ico.height) == ("image/x-icon", 32, 32)
    assert inspect_image(png(32, 32), FAVICON, "f.png").content_type == "image/png"
    with pytest.raises(ValueError, match="is a JPEG image; it must be PNG or ICO"):
        inspect_image(pillow("JPEG", (32, 32)), FAVICON)


@pytest.mark.parametrize(
    "svg",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        b'<?xml version="1.0"?>\n<svg width="10" height="10"/>',
        b'\xef\xbb\xbf  <!DOCTYPE svg><SVG onload="alert(1)"></SVG>',
        b"<!-- a logo -->\n<svg>\n<foreignObject><iframe src=x></iframe></foreignObject></svg>",
    ],
)
def test_svg_is_refused_whatever_it_is_called(svg: bytes) -> None:
    for filename in (None, "logo.svg", "logo.png"):
        with pytest.raises(ValueError, match="SVG logos are refused"):
            inspect_image(svg, LOGO, filename)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"GIF89a" + b"\x00" * 50, "not a PNG, JPEG or WebP image"),
        (b"<html><script>alert(1)</script></html>", "not a PNG, JPEG or WebP image"),
        (b"%PDF-1.7", "not a PNG, JPEG or WebP image"),
        (pillow("ICO", (32, 32)), "is an ICO image; it must be PNG, JPEG or WebP"),
    ],
)
def test_other_files_are_refused(data: bytes, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        inspect_image(data, LOGO)


def test_a_name_that_lies_about_the_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="'logo.png' holds a JPEG image, not PNG"):
        inspect_image(pillow("JPEG"), LOGO, "logo.png")
    with pytest.raises(ValueError, match="holds a PNG image, not JPEG"):
        inspect_image(png(), LOGO, "/tmp/x/logo.jpeg")
    with pytest.raises(ValueError, match="no image extension"):
        inspect_image(png(), LOGO, "logo.html")
    with pytest.raises(ValueError, match="no image extension"):
        inspect_image(png(), LOGO, "logo")
    assert inspect_image(pillow("JPEG"), LOGO, "LOGO.JPG").content_type == "image/jpeg"


def test_size_limits() -> None:
    big = png(512, 512, b"\x01\x02\x03\xff")  # compresses well: pad it past the limit instead
    assert len(big) < LOGO.max_bytes
    with pytest.raises(ValueError, match="the logo is 600 KiB; the limit is 512 KiB"):
        inspect_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * (600 * 1024 - 8), LOGO)
    with pytest.raises(ValueError, match="the favicon is 65 KiB; the limit is 64 KiB"):
        inspect_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * (65 * 1024), FAVICON)


@pytest.mark.parametrize(("width", "height"), [(4096, 100), (100, 2049), (8, 8), (65535, 65535), (0, 10)])
def test_dimension_limits(width: int, height: int) -> None:
    with pytest.raises(ValueError, match=f"the logo is {width}x{height} px"):
        inspect_image(png_claiming(width, height), LOGO)


def test_favicon_dimension_limit() -> None:
    with pytest.raises(ValueError, match="the favicon is 1024x1024 px"):
        inspect_image(png_claiming(1024, 1024), FAVICON)
    assert inspect_image(png_claiming(512, 512), FAVICON).width == 512


def test_damaged_and_polyglot_files_are_refused() -> None:
    good = png()
    inspect_image(good, LOGO)
    damaged = [
        good + b"<script>alert(1)</script>",  # bytes after IEND
        good[:-12],  # no IEND
        good[:40],  # truncated mid-chunk
        good[:20] + bytes([good[20] ^ 1]) + good[21:],  # IHDR CRC no longer matches
        pillow("JPEG") + b"<html>",  # bytes after EOI
        pillow("JPEG")[:200],  # truncated
        pillow("WEBP") + b"xx",  # RIFF size no longer matches
        b"\xff\xd8\xff\xd9",  # a JPEG with no frame
    ]
    for data in damaged:
        with pytest.raises(ValueError, match="damaged"):
            inspect_image(data, LOGO)


def test_bytes_are_required() -> None:
    with pytest.raises(ValueError, match="must be the image's bytes"):
        inspect_image("not bytes", LOGO)  # type: ignore[arg-type]
