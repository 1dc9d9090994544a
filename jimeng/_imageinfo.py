"""What an image is, from its first bytes: format and pixel size, and the limits a model sets.

Standard library only. The SDK uses this to check local inputs (files, bytes) against a model's
rules before any request; the sandbox uses the same sniffer to check what it receives.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Collection
from typing import Literal

import attrs

from jimeng.errors import ValidationError

__all__ = [
    "ImageFormat",
    "ImageInfo",
    "ImageLimits",
    "base64_length",
    "check_image",
    "encode_base64",
    "image_format",
    "png_size",
    "sniff_image",
]

ImageFormat = Literal["png", "jpeg", "webp", "gif", "bmp"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Return ``(width, height)`` from a PNG header.

    Raises:
        ValueError: if ``data`` does not start with a PNG signature and IHDR chunk.
    """
    if len(data) < 24 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    width, height = struct.unpack_from(">II", data, 16)
    return int(width), int(height)


# Start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _sniff_jpeg(data: bytes) -> tuple[ImageFormat, int, int] | None:
    pos, size = 2, len(data)
    while pos + 1 < size:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        pos += 2
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a payload
            continue
        if marker in (0xD9, 0xDA):  # EOI / start of scan before any frame header
            return None
        if pos + 2 > size:
            return None
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2:
            return None
        if marker in _JPEG_SOF:
            if pos + 7 > size:
                return None
            height, width = struct.unpack_from(">HH", data, pos + 3)
            return "jpeg", int(width), int(height)
        pos += length
    return None


def _sniff_webp(data: bytes) -> tuple[ImageFormat, int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", data, 26)
        return "webp", width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack_from("<I", data, 21)
        return "webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return "webp", width, height
    return None


_MAGIC: tuple[tuple[bytes, ImageFormat], ...] = (
    (_PNG_SIGNATURE, "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
)


def image_format(data: bytes) -> ImageFormat | None:
    """The format an image's magic bytes announce (no size parsing: see :func:`sniff_image`)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((name for magic, name in _MAGIC if data.startswith(magic)), None)


def sniff_image(data: bytes) -> tuple[ImageFormat, int, int] | None:
    """Identify an image by its magic bytes and return ``(format, width, height)``.

    Recognises PNG, JPEG (first start-of-frame marker), WebP (VP8, VP8L and VP8X), GIF and
    BMP. Returns ``None`` for anything else, including truncated headers.
    """
    if data[:8] == _PNG_SIGNATURE:
        if len(data) >= 24 and data[12:16] == b"IHDR":
            width, height = png_size(data)
            return "png", width, height
        return None
    if data[:3] == b"\xff\xd8\xff":
        return _sniff_jpeg(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _sniff_webp(data)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack_from("<HH", data, 6)
        return "gif", int(width), int(height)
    if data[:2] == b"BM" and len(data) >= 26:
        (dib_size,) = struct.unpack_from("<I", data, 14)
        if dib_size == 12:  # OS/2 BITMAPCOREHEADER uses 16-bit sizes
            width, height = struct.unpack_from("<HH", data, 18)
        elif dib_size >= 16:
            width, height = struct.unpack_from("<ii", data, 18)
        else:
            return None
        # Negative height means top-down row order, not a negative size.
        return "bmp", abs(int(width)), abs(int(height))
    return None


# --------------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------------

_MB = 1024 * 1024


@attrs.frozen(kw_only=True)
class ImageInfo:
    """A sniffed image: its format, pixel size and byte size."""

    format: ImageFormat
    width: int
    height: int
    size: int

    @property
    def ratio(self) -> float:
        """Width over height."""
        return self.width / self.height

    @property
    def long_short_ratio(self) -> float:
        """The long side over the short side (always >= 1)."""
        return max(self.width, self.height) / min(self.width, self.height)


@attrs.frozen(kw_only=True)
class ImageLimits:
    """What a model accepts as an input image. ``None`` means "no limit stated".

    ``max_bytes`` limits the file, ``max_base64_bytes`` the base64 text that carries it.
    ``max_ratio`` bounds the long side over the short side.
    """

    formats: Collection[ImageFormat] = ("jpeg", "png")
    max_bytes: int | None = None
    max_base64_bytes: int | None = None
    max_side: int | None = None
    min_short_side: int | None = None
    max_ratio: float | None = None

    def describe(self) -> str:
        """The limits in words, for error messages and docs."""
        parts = ["/".join(fmt.upper() for fmt in self.formats)]
        if self.max_bytes is not None:
            parts.append(f"file <= {_megabytes(self.max_bytes)}")
        if self.max_base64_bytes is not None:
            parts.append(f"base64 <= {_megabytes(self.max_base64_bytes)}")
        if self.max_side is not None:
            parts.append(f"<= {self.max_side}x{self.max_side} px")
        if self.min_short_side is not None:
            parts.append(f"short side >= {self.min_short_side} px")
        if self.max_ratio is not None:
            parts.append(f"long/short side <= {self.max_ratio:g}")
        return ", ".join(parts)


def _megabytes(size: int) -> str:
    return f"{size / _MB:.3g} MB"


def base64_length(size: int) -> int:
    """Length of the padded base64 text for ``size`` bytes."""
    return 4 * ((size + 2) // 3)


def encode_base64(data: bytes) -> str:
    """Raw base64 (no ``data:`` prefix, no line breaks), as the Volcengine API wants it."""
    return base64.b64encode(data).decode("ascii")


def check_image(data: bytes, limits: ImageLimits, *, field: str) -> ImageInfo:
    """Sniff ``data`` and check it against ``limits``; raise ValidationError naming ``field``."""
    sniffed = sniff_image(data)
    if sniffed is None:
        raise ValidationError(
            field,
            "is not a recognisable image (checked the magic bytes)",
            allowed=", ".join(fmt.upper() for fmt in limits.formats),
        )
    fmt, width, height = sniffed
    info = ImageInfo(format=fmt, width=width, height=height, size=len(data))
    if fmt not in limits.formats:
        raise ValidationError(
            field,
            f"is a {fmt.upper()} image; this model takes only "
            + "/".join(item.upper() for item in limits.formats),
            allowed=", ".join(item.upper() for item in limits.formats),
        )
    if width <= 0 or height <= 0:
        raise ValidationError(field, f"has an empty size {width}x{height}")
    if limits.max_bytes is not None and info.size > limits.max_bytes:
        raise ValidationError(
            field,
            f"is {_megabytes(info.size)}; the limit is {_megabytes(limits.max_bytes)}",
            allowed=limits.describe(),
        )
    encoded = base64_length(info.size)
    if limits.max_base64_bytes is not None and encoded > limits.max_base64_bytes:
        raise ValidationError(
            field,
            f"is {_megabytes(info.size)}, {_megabytes(encoded)} as base64; "
            f"the limit is {_megabytes(limits.max_base64_bytes)} of base64",
            allowed=limits.describe(),
        )
    if limits.max_side is not None and max(width, height) > limits.max_side:
        raise ValidationError(
            field,
            f"is {width}x{height}; sides must be at most {limits.max_side}",
            allowed=limits.describe(),
        )
    if limits.min_short_side is not None and min(width, height) < limits.min_short_side:
        raise ValidationError(
            field,
            f"is {width}x{height}; the short side must be at least {limits.min_short_side}",
            allowed=limits.describe(),
        )
    if limits.max_ratio is not None and info.long_short_ratio > limits.max_ratio + 1e-9:
        raise ValidationError(
            field,
            f"is {width}x{height} (ratio {info.long_short_ratio:.3g}); "
            f"the long side may be at most {limits.max_ratio:g}x the short side",
            allowed=limits.describe(),
        )
    return info
