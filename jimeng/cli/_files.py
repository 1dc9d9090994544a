"""Where results go: `pic/` at the project root, WebP turned into PNG, sizes from headers."""

from __future__ import annotations

import importlib
import os
import shutil
import struct
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jimeng._download import content_name, move_to_free_name

__all__ = [
    "PROJECT_MARKERS",
    "convert_webp",
    "default_folder",
    "image_size",
    "is_webp",
    "project_root",
]

#: Files or folders that mark a project's root (seed 002 looks for ``.git``, ``.claude``…).
PROJECT_MARKERS = (
    ".git",
    ".hg",
    ".svn",
    ".claude",
    "pyproject.toml",
    "setup.py",
    "package.json",
    "Cargo.toml",
    "go.mod",
)


def project_root(start: Path | None = None, markers: Iterable[str] = PROJECT_MARKERS) -> Path:
    """The nearest folder at or above ``start`` holding a project marker; ``start`` if none."""
    here = (start or Path.cwd()).resolve()
    names = tuple(markers)
    for folder in (here, *here.parents):
        if any((folder / name).exists() for name in names):
            return folder
    return here


def default_folder(start: Path | None = None) -> Path:
    """``pic/`` at the project root: where results go without ``--output``/``--output-dir``."""
    return project_root(start) / "pic"


def _head(path: Path, size: int = 64) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size)


def is_webp(path: Path) -> bool:
    head = _head(path, 12)
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def convert_webp(path: Path) -> Path | None:
    """Rewrite a WebP file as PNG and return the new path; ``None`` when Pillow is missing.

    ``name.webp`` becomes ``name.png`` and the WebP is removed; the PNG never replaces another
    file (a taken name gets ``-2``, ``-3``…). The suffix follows the content as in every save
    (see :func:`jimeng._download.content_name`): a WebP misnamed ``lake.png`` is converted in
    place, one named ``lake.jpg`` becomes ``lake.png``. Written to a temporary file first.
    """
    try:
        # Imported by name: Pillow is an optional extra (``pip install "jimeng[pillow]"``).
        pil_image: Any = importlib.import_module("PIL.Image")
    except ImportError:
        return None
    target = content_name(path, ".png")
    # A .part file: if the process dies here, the next save into the folder removes it.
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".jimeng-", suffix=".part")
    os.close(handle)
    temp = Path(temp_name)
    try:
        with pil_image.open(path) as picture:
            picture.save(temp, format="PNG")
        shutil.copymode(path, temp)  # mkstemp makes the file private; keep the saved one's mode
        if target == path:
            os.replace(temp, path)  # the file itself, now holding what its name says
        else:
            target = move_to_free_name(temp, target.parent, target.stem, target.suffix)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if target != path:
        path.unlink(missing_ok=True)
    return target


def image_size(path: Path) -> tuple[int, int] | None:
    """Width and height read from a PNG, WebP or JPEG header; ``None`` for anything else."""
    try:
        head = _head(path, 64)
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            width, height = struct.unpack(">II", head[16:24])
            return int(width), int(height)
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _webp_size(head)
        if head.startswith(b"\xff\xd8"):
            return _jpeg_size(path)
    except (OSError, struct.error):
        return None
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _jpeg_size(path: Path) -> tuple[int, int] | None:
    data = path.read_bytes()[: 1024 * 1024]
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        # Start-of-frame markers carry the size (C0–CF except DHT C4, JPG C8, DAC CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        pos += 2 + length
    return None
