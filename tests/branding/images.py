"""Image bytes for the branding tests: real encoder output (Pillow) and hand-made oddities."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image as PILImage

from tenantry.branding.images import encode_png


def pillow(
    fmt: str, size: tuple[int, int] = (64, 32), color: tuple[int, int, int] = (200, 30, 30), **options: object
) -> bytes:
    """An image of ``size`` encoded by Pillow as ``fmt`` (PNG, JPEG, WEBP, ICO)."""
    out = io.BytesIO()
    mode = "RGB" if fmt == "JPEG" else "RGBA"
    PILImage.new(mode, size, color).save(out, format=fmt, **options)
    return out.getvalue()


def png(width: int = 32, height: int = 32, rgba: bytes = b"\x10\x20\x30\xff") -> bytes:
    """A valid PNG drawn with tenantry's own encoder (each colour gives other bytes)."""
    return encode_png(width, height, [rgba * width] * height)


def png_claiming(width: int, height: int) -> bytes:
    """A structurally valid PNG whose header claims ``width`` x ``height`` (a tiny IDAT)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")
