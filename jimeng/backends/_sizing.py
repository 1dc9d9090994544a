"""One way to ask for an image size on every backend, translated to what each protocol takes.

A caller may give ``size`` (``1K``/``2K``/``4K`` or ``WxH``), ``width`` + ``height``, or ``ratio``
+ ``resolution``. :func:`size_ask` reads those once into a :class:`SizeAsk`; each backend then
maps it onto its own wire fields with the pure functions here, and says in a note when the result
is not exactly what was asked for. Only a contradiction in the request itself is an error here;
what a backend truly cannot make is its own ValidationError.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import attrs

from jimeng.errors import ValidationError
from jimeng.models import ImageRequest

__all__ = [
    "DEFAULT_RESOLUTION",
    "RATIOS",
    "RECOMMENDED_SIZES",
    "RESOLUTIONS",
    "SizeAsk",
    "SizeChoice",
    "fit_area",
    "fit_sides",
    "nearest_choice",
    "orientation",
    "recommended_size",
    "size_ask",
]

#: The aspect ratios every image backend understands (the web protocol's set, dreamina-web.md
#: §3.3; Volcengine takes any of them as pixels).
RATIOS: tuple[str, ...] = ("1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3", "21:9")
RESOLUTIONS: tuple[str, ...] = ("1k", "2k", "4k")
DEFAULT_RESOLUTION = "2k"
_PRESET = re.compile(r"^\s*([124])\s*[kK]\s*$")

#: Volcengine Jimeng 4.0's recommended sizes (seed 001 "Recommended Sizes"): 2K and 4K rows for
#: the landscape ratios; portrait rows are the same sizes turned; 1K lists only 1:1 (see
#: :func:`recommended_size` for the rest).
RECOMMENDED_SIZES: Mapping[str, Mapping[str, tuple[int, int]]] = {
    "1k": {"1:1": (1024, 1024)},
    "2k": {
        "1:1": (2048, 2048),
        "4:3": (2304, 1728),
        "3:2": (2496, 1664),
        "16:9": (2560, 1440),
        "21:9": (3024, 1296),
    },
    "4k": {
        "1:1": (4096, 4096),
        "4:3": (4694, 3520),
        "3:2": (4992, 3328),
        "16:9": (5404, 3040),
        "21:9": (6198, 2656),
    },
}


def _ratio_value(ratio: str) -> float:
    width, height = ratio.split(":")
    return int(width) / int(height)


def _turned(ratio: str) -> str:
    width, height = ratio.split(":")
    return f"{height}:{width}"


def recommended_size(ratio: str, resolution: str) -> tuple[int, int]:
    """Pixels for ``ratio`` at ``resolution`` on Volcengine 4.x (seed 001's table).

    Portrait ratios are the landscape rows turned. 1K lists only 1:1; its other ratios keep the
    1K area (1024², the smallest the API takes) rounded up, so they never fall below it.
    """
    table = RECOMMENDED_SIZES[resolution]
    if ratio in table:
        return table[ratio]
    if _turned(ratio) in table:
        width, height = table[_turned(ratio)]
        return height, width
    side = {"1k": 1024, "2k": 2048, "4k": 4096}[resolution]
    value = _ratio_value(ratio)
    height = math.ceil(side / math.sqrt(value))
    width = math.ceil(height * value)
    return width, height


def orientation(width: int, height: int) -> int:
    """1 landscape, 0 square, -1 portrait."""
    return (width > height) - (width < height)


@attrs.frozen(kw_only=True)
class SizeAsk:
    """What the caller asked for, read once. ``pixels`` (exact W×H) excludes ``ratio`` and
    ``resolution``; a ``1K``/``2K``/``4K`` size is read as a resolution."""

    pixels: tuple[int, int] | None = None
    ratio: str | None = None
    resolution: str | None = None
    #: The request field to name in errors and notes.
    field: str = "size"

    @property
    def empty(self) -> bool:
        return self.pixels is None and self.ratio is None and self.resolution is None


def _resolution(value: str, field: str) -> str:
    match = _PRESET.match(value)
    if match is None:
        raise ValidationError(field, f"unknown resolution {value!r}", allowed=RESOLUTIONS)
    return f"{match.group(1)}k"


def size_ask(request: ImageRequest) -> SizeAsk:
    """Read the size fields of ``request`` (a contradiction is a ValidationError)."""
    ratio = request.ratio.strip() if request.ratio is not None else None
    if ratio is not None and ratio not in RATIOS:
        raise ValidationError("ratio", f"unknown ratio {request.ratio!r}", allowed=RATIOS)
    resolution = (
        _resolution(request.resolution, "resolution") if request.resolution is not None else None
    )
    if request.size is not None and _PRESET.match(request.size):
        preset = _resolution(request.size, "size")
        if resolution is not None and resolution != preset:
            raise ValidationError(
                "size", f"size {request.size!r} disagrees with resolution {request.resolution!r}"
            )
        return SizeAsk(ratio=ratio, resolution=preset, field="size")
    pixels = request.size_pixels()
    field = "size" if request.size is not None else "width"
    if pixels is not None and (ratio is not None or resolution is not None):
        raise ValidationError(
            field, "give width/height (or size=WxH) or ratio/resolution, not both"
        )
    if pixels is not None:
        return SizeAsk(pixels=pixels, field=field)
    return SizeAsk(ratio=ratio, resolution=resolution, field="ratio" if ratio else "resolution")


@attrs.frozen(kw_only=True)
class SizeChoice:
    """One size a table-driven protocol can name: a ratio at a resolution, and its pixels."""

    ratio: str
    resolution: str
    width: int
    height: int


def nearest_choice(width: int, height: int, choices: Sequence[SizeChoice]) -> SizeChoice:
    """The entry closest to ``width`` × ``height``: same orientation first (a landscape request
    never becomes a portrait image, dreamina-web.md §20), then nearest aspect ratio (log
    distance), then nearest pixel count."""
    wanted = orientation(width, height)
    pool = [c for c in choices if orientation(c.width, c.height) == wanted] or list(choices)
    asked = math.log(width / height)
    area = math.log(width * height)
    return min(
        pool,
        key=lambda c: (
            round(abs(asked - math.log(_ratio_value(c.ratio))), 9),
            abs(area - math.log(c.width * c.height)),
        ),
    )


def fit_area(width: int, height: int, low: int, high: int) -> tuple[int, int]:
    """``width`` × ``height`` scaled, aspect kept, until its area lies within [low, high]."""
    area = width * height
    if low <= area <= high:
        return width, height
    factor = math.sqrt((low if area < low else high) / area)
    scaled_w, scaled_h = width * factor, height * factor
    if area < low:
        return math.ceil(scaled_w), math.ceil(scaled_h)
    return math.floor(scaled_w), math.floor(scaled_h)


def fit_sides(width: int, height: int, low: int, high: int) -> tuple[int, int]:
    """``width`` × ``height`` scaled, aspect kept, until both sides lie within [low, high]
    (clamped when the aspect itself cannot fit)."""
    factor = 1.0
    if max(width, height) > high:
        factor = high / max(width, height)
    elif min(width, height) < low:
        factor = low / min(width, height)
    scaled = (round(width * factor), round(height * factor))
    return tuple(min(max(side, low), high) for side in scaled)  # type: ignore[return-value]
