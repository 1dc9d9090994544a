"""Small image fixtures for input tests: real PNGs and minimal JPEG headers (sniffable)."""

from __future__ import annotations

import struct

from jimeng.sandbox._media import render_png


def png(width: int = 640, height: int = 360, *, pad: int = 0, prompt: str = "ref") -> bytes:
    """A real PNG; ``pad`` appends bytes to make the file larger without changing its size."""
    return render_png(prompt, width, height) + bytes(pad)


def jpeg(width: int = 640, height: int = 360, *, pad: int = 0) -> bytes:
    """A JPEG header with a baseline frame marker: enough for format and size sniffing."""
    app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = (
        b"\xff\xc0\x00\x11\x08"
        + struct.pack(">HH", height, width)
        + bytes.fromhex("03012200021101031101")
    )
    return b"\xff\xd8" + app0 + sof + bytes(pad) + b"\xff\xd9"


def gif(width: int = 640, height: int = 360) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + bytes(20)
