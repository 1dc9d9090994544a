"""``multipart/form-data`` bodies as plain bytes (RFC 7578), built by a pure function.

A backend yields a :class:`~jimeng._http.Call` whose ``body`` is exact bytes, so uploads are
encoded here rather than by aiohttp's writer: the same fields always give the same bytes (the
boundary is derived from the content), and tests can read the body back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import attrs

__all__ = ["FilePart", "content_type_of", "encode_multipart"]

_CRLF = b"\r\n"

_IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".mp4": "video/mp4",
}


@attrs.frozen(kw_only=True)
class FilePart:
    """One file field: its form name, the file name sent, its type and bytes."""

    name: str
    filename: str
    data: bytes = attrs.field(repr=False)
    content_type: str = "application/octet-stream"


def content_type_of(extension: str) -> str:
    """The MIME type for a sniffed extension (``.png`` …), octet-stream when unknown."""
    return _IMAGE_TYPES.get(extension, "application/octet-stream")


def _quote(value: str) -> str:
    # RFC 7578 §4.2: names and file names are quoted strings; escape what would end them.
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _boundary(fields: Sequence[tuple[str, str]], files: Sequence[FilePart]) -> str:
    digest = hashlib.sha256()
    for name, value in fields:
        digest.update(name.encode() + b"\0" + value.encode() + b"\0")
    for part in files:
        digest.update(part.name.encode() + b"\0" + part.filename.encode() + b"\0")
        digest.update(hashlib.sha256(part.data).digest())
    return f"jimeng-{digest.hexdigest()[:32]}"


def encode_multipart(
    fields: Sequence[tuple[str, str]],
    files: Sequence[FilePart] = (),
    *,
    boundary: str | None = None,
) -> tuple[bytes, str]:
    """Encode text ``fields`` then ``files``; return ``(body, content_type)``.

    Without ``boundary`` one is derived from the content, so equal input gives equal bytes.
    A boundary that occurs inside the content is refused (a derived one never does in practice:
    it is a 128-bit hash of that content).
    """
    boundary = boundary or _boundary(fields, files)
    marker = b"--" + boundary.encode("ascii")
    chunks: list[bytes] = []
    for name, value in fields:
        chunks += [
            marker,
            _CRLF,
            f'Content-Disposition: form-data; name="{_quote(name)}"'.encode(),
            _CRLF,
            _CRLF,
            value.encode("utf-8"),
            _CRLF,
        ]
    for part in files:
        if marker in part.data:
            raise ValueError("multipart boundary occurs inside a file; pass another boundary")
        chunks += [
            marker,
            _CRLF,
            (
                f'Content-Disposition: form-data; name="{_quote(part.name)}"; '
                f'filename="{_quote(part.filename)}"'
            ).encode(),
            _CRLF,
            f"Content-Type: {part.content_type}".encode(),
            _CRLF,
            _CRLF,
            part.data,
            _CRLF,
        ]
    chunks += [marker, b"--", _CRLF]
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"
