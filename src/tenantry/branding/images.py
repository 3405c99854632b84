"""Logo and favicon images: what a file really is, how big, and whether we take it.

Pure: no I/O. The type comes from the bytes (magic numbers and the container's own structure),
never from the file name; a name whose extension disagrees with the bytes is refused, so a
mislabelled upload is caught rather than served under the wrong type. Dimensions are read from
the headers (PNG ``IHDR``, JPEG ``SOFn``, WebP ``VP8``/``VP8L``/``VP8X``, ICO directory),
which bounds what a browser will be asked to decode.

**SVG is refused.** An SVG is a document, not a picture: it can carry ``<script>``, event
handlers, ``<foreignObject>`` HTML, external references and CSS, and served from the app's own
origin it runs with that origin's cookies. Sanitising it safely means an XML parser, an
allow-list of elements and attributes and of URL schemes inside attributes and styles — a
classic source of bypasses — for little gain: a PNG or WebP logo looks the same. Refusing it
keeps every stored asset a raster image that no browser executes.

PNGs are checked chunk by chunk (CRCs, ``IHDR`` first, ``IEND`` last, nothing after it), JPEGs
must end at their ``EOI`` marker, WebP's RIFF size must match the file: bytes appended to an
image (an HTML or script polyglot) are refused.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "EXTENSIONS",
    "FAVICON",
    "LOGO",
    "Image",
    "ImageRules",
    "encode_png",
    "inspect_image",
]


@dataclass(frozen=True, slots=True)
class ImageRules:
    """What one kind of brand image may be."""

    label: str
    types: tuple[str, ...]
    max_bytes: int
    max_side: int
    min_side: int = 1


#: a tenant's logo: PNG, JPEG or WebP up to 512 KiB and 2048 px a side
LOGO = ImageRules("logo", ("image/png", "image/jpeg", "image/webp"), 512 * 1024, 2048, 16)
#: a tenant's favicon: PNG or ICO up to 64 KiB and 512 px a side
FAVICON = ImageRules("favicon", ("image/png", "image/x-icon"), 64 * 1024, 512, 16)

#: the file extension each accepted type is served under
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/x-icon": "ico"}
_NAMES = {"png": "PNG", "jpg": "JPEG", "webp": "WebP", "ico": "ICO"}
_SUFFIXES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
}


@dataclass(frozen=True, slots=True)
class Image:
    """An accepted image: its bytes, type, size and content address."""

    data: bytes
    content_type: str
    width: int
    height: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.content_type]

    @property
    def size(self) -> int:
        return len(self.data)


def _kind(content_type: str) -> str:
    return _NAMES[EXTENSIONS[content_type]]


def _a(content_type: str) -> str:
    kind = _kind(content_type)
    return f"an {kind}" if kind[0] in "AEIOU" else f"a {kind}"


def _either(types: tuple[str, ...]) -> str:
    kinds = [_kind(t) for t in types]
    return kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " or " + kinds[-1]


def inspect_image(data: bytes, rules: ImageRules, filename: str | None = None) -> Image:
    """Check ``data`` against ``rules``; :class:`ValueError` with a reason when refused."""
    label = rules.label
    if not isinstance(data, bytes | bytearray):
        raise ValueError(f"the {label} must be the image's bytes")
    data = bytes(data)
    if not data:
        raise ValueError(f"the {label} is empty")
    if len(data) > rules.max_bytes:
        raise ValueError(f"the {label} is {len(data) // 1024} KiB; the limit is {rules.max_bytes // 1024} KiB")
    accepted = _either(rules.types)
    content_type = _sniff(data)
    if content_type is None:
        if _looks_like_svg(data):
            raise ValueError(f"SVG {label}s are refused (an SVG can carry scripts); upload a {accepted} image")
        raise ValueError(f"the {label} is not a {accepted} image")
    if content_type not in rules.types:
        raise ValueError(f"the {label} is {_a(content_type)} image; it must be {accepted}")
    if filename is not None:
        suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        claimed = _SUFFIXES.get(suffix)
        if claimed is None:
            raise ValueError(f"{_shown(filename)} has no image extension (.png, .jpg, .jpeg, .webp or .ico)")
        if claimed != content_type:
            raise ValueError(f"{_shown(filename)} holds {_a(content_type)} image, not {_kind(claimed)}")
    try:
        width, height = _READERS[content_type](data)
    except (struct.error, IndexError) as err:
        raise ValueError(f"the {label} is a damaged {_kind(content_type)} file") from err
    if not (rules.min_side <= width <= rules.max_side and rules.min_side <= height <= rules.max_side):
        raise ValueError(
            f"the {label} is {width}x{height} px; each side must be {rules.min_side} to {rules.max_side} px"
        )
    return Image(data=data, content_type=content_type, width=width, height=height)


def _shown(filename: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return repr(name[:60])


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] == b"\x00\x00\x01\x00":
        return "image/x-icon"
    return None


_SVG = re.compile(rb"<svg[\s>/]", re.IGNORECASE)


def _looks_like_svg(data: bytes) -> bool:
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<") and _SVG.search(data[:65536]) is not None


class _Damaged(struct.error):
    pass


def _png(data: bytes) -> tuple[int, int]:
    at, width, height = 8, 0, 0
    seen: list[bytes] = []
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        end = at + 12 + length
        if end > len(data):
            raise _Damaged("truncated chunk")
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(data[at + 4 : end - 4]) != crc:
            raise _Damaged("bad CRC")
        if not seen:
            if kind != b"IHDR" or length != 13:
                raise _Damaged("IHDR is not first")
            width, height = struct.unpack(">II", data[at + 8 : at + 16])
        seen.append(kind)
        at = end
        if kind == b"IEND":
            break
    if not seen or seen[-1] != b"IEND" or at != len(data) or b"IDAT" not in seen:
        raise _Damaged("no IDAT, no IEND, or bytes after IEND")
    return width, height


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(data: bytes) -> tuple[int, int]:
    if not data.endswith(b"\xff\xd9"):
        raise _Damaged("no EOI at the end")
    at = 2
    while at < len(data):
        if data[at] != 0xFF:
            raise _Damaged("not a marker")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            at += 2
            continue
        if marker in (0xD9, 0xDA):  # image data before any frame header
            break
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if length < 2:
            raise _Damaged("bad segment length")
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        at += 2 + length
    raise _Damaged("no frame header")


def _webp(data: bytes) -> tuple[int, int]:
    (riff_size,) = struct.unpack("<I", data[4:8])
    if riff_size + 8 != len(data) or riff_size % 2:
        raise _Damaged("RIFF size does not match the file")
    kind, chunk = data[12:16], data[20:]
    if kind == b"VP8 ":
        if chunk[3:6] != b"\x9d\x01\x2a":
            raise _Damaged("no VP8 start code")
        width, height = struct.unpack("<HH", chunk[6:10])
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8L":
        if chunk[0] != 0x2F:
            raise _Damaged("no VP8L signature")
        (bits,) = struct.unpack("<I", chunk[1:5])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X":
        width = int.from_bytes(chunk[4:7], "little") + 1
        height = int.from_bytes(chunk[7:10], "little") + 1
        return width, height
    raise _Damaged("unknown WebP chunk")


def _ico(data: bytes) -> tuple[int, int]:
    (count,) = struct.unpack("<H", data[4:6])
    if not 1 <= count <= 32:
        raise _Damaged("bad image count")
    largest = (0, 0)
    for i in range(count):
        entry = data[6 + 16 * i : 22 + 16 * i]
        w, h, _colors, _reserved, _planes, _bpp, size, offset = struct.unpack("<BBBBHHII", entry)
        if size == 0 or offset < 6 + 16 * count or offset + size > len(data):
            raise _Damaged("image outside the file")
        image = data[offset : offset + size]
        if not (image.startswith(b"\x89PNG\r\n\x1a\n") or image[:4] == b"\x28\x00\x00\x00"):
            raise _Damaged("neither PNG nor BMP inside")
        largest = max(largest, (w or 256, h or 256))
    return largest


_READERS = {"image/png": _png, "image/jpeg": _jpeg, "image/webp": _webp, "image/x-icon": _ico}


def encode_png(width: int, height: int, rows: Sequence[bytes]) -> bytes:
    """A PNG of ``height`` rows of ``width`` RGBA pixels (4 bytes each), e.g. a generated logo.

    >>> encode_png(1, 1, [b"\\xff\\x00\\x00\\xff"])[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    if len(rows) != height or any(len(row) != 4 * width for row in rows):
        raise ValueError("rows must be height rows of width RGBA pixels")

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + row for row in rows), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
