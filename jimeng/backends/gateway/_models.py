"""The web models' tables as a jimeng-api gateway applies them (data only).

A gateway forwards to the same Dreamina web service the session backend speaks, so the model
names, region availability and ratio × resolution tables are the Dreamina backend's
(``jimeng.backends.dreamina._tables``, protocols/dreamina-web.md §3.2–§3.4, §6.1), seen here in
the shape the gateway's rules (``_params.py``) and its sandbox use. Only the defaults differ.
"""

from __future__ import annotations

from collections.abc import Mapping

from jimeng.backends.dreamina import _tables as web
from jimeng.backends.dreamina._tables import ImageModel, VideoModel

__all__ = [
    "DEFAULT_IMAGE_MODEL",
    "DEFAULT_VIDEO_MODEL",
    "IMAGE_MODELS",
    "IMAGE_RATIOS",
    "IMAGE_RESOLUTIONS",
    "IMAGE_SIZES",
    "INTERNATIONAL",
    "NANOBANANAPRO_4K_SIZES",
    "REGIONS",
    "REGION_PREFIXES",
    "VIDEO_FUNCTION_MODES",
    "VIDEO_MODELS",
    "VIDEO_RATIOS",
    "VIDEO_RESOLUTIONS",
    "ImageModel",
    "VideoModel",
]

#: Sites a session id belongs to; the id's prefix says which (§1.1, §2.4).
REGIONS: tuple[str, ...] = tuple(web.REGIONS)
INTERNATIONAL = web.INTERNATIONAL
REGION_PREFIXES: Mapping[str, str] = {f"{code}-": code for code in REGIONS if code != web.CN}

IMAGE_MODELS: Mapping[str, ImageModel] = web.IMAGE_MODELS
#: IPT's default on every site (§3.2); the Dreamina backend follows the seed script (jimeng-4.0).
DEFAULT_IMAGE_MODEL = "jimeng-4.5"

IMAGE_RATIOS: tuple[str, ...] = tuple(web.RATIO_CODES)
IMAGE_RESOLUTIONS: tuple[str, ...] = web.RESOLUTIONS


def _gateway_size(resolution: str, ratio: str) -> tuple[int, int]:
    width, height = web.RATIO_SIZES[resolution][ratio]
    if resolution == "1k" and ratio in web.GATEWAY_1K_TURNED:
        return height, width  # dreamina-web.md §20: what the gateway really sends upstream
    return width, height


#: ``(resolution, ratio)`` → ``(image_ratio code, width, height)`` as a jimeng-api gateway sends
#: them (§3.3): 4k adds 100 to the code; the 1k 4:3 / 3:4 rows are turned round (§20).
IMAGE_SIZES: Mapping[tuple[str, str], tuple[int, int, int]] = {
    (resolution, ratio): (
        web.RATIO_CODES[ratio] + (web.FOUR_K_CODE_OFFSET if resolution == "4k" else 0),
        *_gateway_size(resolution, ratio),
    )
    for resolution in web.RESOLUTIONS
    for ratio in web.RATIO_CODES
}

#: nanobananapro at 4k keeps codes 1–8 and has its own sizes (§3.3).
NANOBANANAPRO_4K_SIZES: Mapping[str, tuple[int, int, int]] = {
    ratio: (web.RATIO_CODES[ratio], *size) for ratio, size in web.NANOBANANAPRO_4K.items()
}

VIDEO_MODELS: Mapping[str, VideoModel] = web.VIDEO_MODELS
DEFAULT_VIDEO_MODEL = web.DEFAULT_VIDEO_MODEL
VIDEO_RATIOS: tuple[str, ...] = web.VIDEO_RATIOS
VIDEO_RESOLUTIONS: tuple[str, ...] = web.VIDEO_RESOLUTIONS
VIDEO_FUNCTION_MODES = ("first_last_frames", "omni_reference")
