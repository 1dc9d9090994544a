"""The emulated server's rules per ``req_key`` and the shape of what each returns
(protocols/volcengine.md §3, §5; relays: gateway.md §10).

Written independently of the client's model tables on purpose: the sandbox checks what the real
server checks, so a client-side mistake shows up as the server's error, not as agreement with
itself. It is stricter than the real server in one way: unknown body fields are refused, so a
field the client should not send is caught in tests.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

import attrs

from jimeng._imageinfo import sniff_image

__all__ = [
    "IMAGE_KEYS",
    "VIDEO_KEYS",
    "Rejection",
    "Submission",
    "check_submit",
    "decode_images",
    "image_count",
    "video_size",
]

_MB = 1024 * 1024
_N_IMAGES = re.compile(r"(\d+)\s*(?:images|pictures|张)", re.IGNORECASE)


class Rejection(Exception):
    """A business error the server answers instead of accepting a submit."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@attrs.frozen(kw_only=True)
class VideoKey:
    resolution: str
    images: tuple[int, int]  # (min, max) input images
    ratio: bool  # aspect_ratio allowed (text-to-video only)
    camera: bool = False


#: §3.2 table.
VIDEO_KEYS: Mapping[str, VideoKey] = {
    "jimeng_t2v_v30": VideoKey(resolution="720p", images=(0, 0), ratio=True),
    "jimeng_t2v_v30_1080p": VideoKey(resolution="1080p", images=(0, 0), ratio=True),
    "jimeng_i2v_first_v30": VideoKey(resolution="720p", images=(1, 1), ratio=False),
    "jimeng_i2v_first_v30_1080": VideoKey(resolution="1080p", images=(1, 1), ratio=False),
    "jimeng_i2v_first_tail_v30": VideoKey(resolution="720p", images=(2, 2), ratio=False),
    "jimeng_i2v_first_tail_v30_1080": VideoKey(resolution="1080p", images=(2, 2), ratio=False),
    "jimeng_i2v_recamera_v30": VideoKey(resolution="720p", images=(1, 1), ratio=False, camera=True),
    "jimeng_ti2v_v30_pro": VideoKey(resolution="1080p", images=(0, 1), ratio=True),
}

#: §3.1: fields per image key (besides req_key and prompt) and input image limits.
IMAGE_KEYS: Mapping[str, frozenset[str]] = {
    "jimeng_t2i_v40": frozenset(
        {"image_urls", "binary_data_base64", "size", "width", "height", "scale"}
        | {"force_single", "min_ratio", "max_ratio"}
    ),
    "jimeng_seedream46_cvtob": frozenset(
        {"image_urls", "binary_data_base64", "size", "width", "height", "scale", "force_single"}
    ),
    "jimeng_t2i_v31": frozenset({"width", "height", "use_pre_llm", "seed"}),
    "jimeng_t2i_v30": frozenset({"width", "height", "use_pre_llm", "seed"}),
    "jimeng_i2i_v30": frozenset(
        {"image_urls", "binary_data_base64", "width", "height", "scale", "seed"}
    ),
}
_MAX_IMAGES = {"jimeng_t2i_v40": 10, "jimeng_seedream46_cvtob": 14, "jimeng_i2i_v30": 1}
_VIDEO_FIELDS = frozenset({"image_urls", "binary_data_base64", "seed", "frames"})
_RATIOS = {"16:9", "4:3", "1:1", "3:4", "9:16", "21:9"}
_TEMPLATES = {
    "hitchcock_dolly_in",
    "hitchcock_dolly_out",
    "robo_arm",
    "dynamic_orbit",
    "central_orbit",
    "crane_push",
    "quick_pull_back",
    "counterclockwise_swivel",
    "clockwise_swivel",
    "handheld",
    "rapid_push_pull",
}
#: Relays document ``model`` and ``resolution`` for 4.0 only (gateway.md §10).
_RELAY_EXTRAS = frozenset({"model", "resolution"})
_RELAY_RESOLUTIONS = {"1k": 1024, "2k": 2048, "4k": 4096}


@attrs.frozen(kw_only=True)
class Submission:
    """An accepted submit: what kind of task, and what the result should look like."""

    kind: str  # "image", "video" or "check" (the OmniHuman subject check, §3.4.5)
    width: int
    height: int
    count: int = 1
    frames: int = 121
    fps: int = 24
    #: The subject check's answer (a person-like subject found).
    subject: bool | None = None
    #: An outcome decided at submit (e.g. audio too long fails at get-result, §3.4.5).
    outcome: str | None = None


def _invalid(message: str) -> Rejection:
    return Rejection(50200, f"Invalid args: {message}")


def _int(payload: Mapping[str, Any], name: str) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"{name} must be an integer")
    return value


def decode_images(payload: Mapping[str, Any], max_base64: int | None) -> list[tuple[int, int]]:
    """Decode ``binary_data_base64``; return the (width, height) of each image."""
    encoded = payload.get("binary_data_base64")
    if encoded is None:
        return []
    if not isinstance(encoded, list) or not all(isinstance(item, str) for item in encoded):
        raise _invalid("binary_data_base64 must be a list of strings")
    sizes = []
    for text in encoded:
        if max_base64 is not None and len(text) > max_base64:
            raise Rejection(50205, "Image Size Limited: base64 image above 4.7 MB")
        try:
            data = base64.b64decode(text, validate=True)  # a "data:" prefix fails here (§4.2)
        except (binascii.Error, ValueError):
            raise Rejection(50207, "Image Decode Error: invalid base64") from None
        sniffed = sniff_image(data)
        if sniffed is None or sniffed[0] not in ("jpeg", "png"):
            raise Rejection(50207, "Image Decode Error: only JPEG and PNG are supported")
        _, width, height = sniffed
        if max(width, height) > 4096:
            raise Rejection(50205, f"Image Size Limited: {width}x{height} above 4096x4096")
        if max(width, height) / min(width, height) > 3:
            raise _invalid(f"image ratio of {width}x{height} out of [1/3, 3]")
        sizes.append((width, height))
    return sizes


def image_count(payload: Mapping[str, Any]) -> int:
    urls = payload.get("image_urls")
    if urls is not None and (
        not isinstance(urls, list)
        or not all(isinstance(url, str) and url.startswith(("http://", "https://")) for url in urls)
    ):
        raise _invalid("image_urls must be a list of http(s) URLs")
    if urls and payload.get("binary_data_base64"):
        raise _invalid("give image_urls or binary_data_base64, not both")
    return len(urls or payload.get("binary_data_base64") or [])


def check_submit(
    payload: Mapping[str, Any], *, relay: bool = False, family: str = "sync2async"
) -> Submission:
    """Check a submit body as the server would; raise :class:`Rejection` when it is refused.
    ``family`` is the Action pair it came in on: the generation keys answer on
    ``CVSync2Async*`` only (§3.4.0)."""
    req_key = payload.get("req_key")
    if family != "sync2async":
        raise _invalid(f"req_key {req_key!r} not supported")
    prompt = payload.get("prompt")
    if not isinstance(req_key, str) or (req_key not in IMAGE_KEYS and req_key not in VIDEO_KEYS):
        raise _invalid(f"req_key {req_key!r}")
    if not isinstance(prompt, str) or not prompt.strip():
        raise Rejection(50201, "Missing args: prompt")
    if len(prompt) > 800:
        raise _invalid("prompt longer than 800 characters")
    if req_key in VIDEO_KEYS:
        return _check_video(req_key, payload)
    return _check_image(req_key, payload, prompt, relay=relay)


def _check_fields(payload: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for name in payload:
        if name not in allowed and name not in ("req_key", "prompt"):
            raise _invalid(f"unknown field {name!r}")


def _check_image(
    req_key: str, payload: Mapping[str, Any], prompt: str, *, relay: bool
) -> Submission:
    allowed = IMAGE_KEYS[req_key]
    if relay and req_key == "jimeng_t2i_v40":
        allowed = allowed | _RELAY_EXTRAS
    _check_fields(payload, allowed)
    count = image_count(payload)
    limit = _MAX_IMAGES.get(req_key, 0)
    if count > limit or (req_key == "jimeng_i2i_v30" and count != 1):
        raise _invalid(f"{req_key} takes {'exactly 1' if limit == 1 else f'0-{limit}'} images")
    decode_images(payload, 15 * _MB * 4 // 3 + 4 if limit > 1 else int(4.7 * _MB))
    if ("width" in payload) != ("height" in payload):
        raise _invalid("width and height go together")
    width, height = _int(payload, "width"), _int(payload, "height")
    if req_key in ("jimeng_t2i_v40", "jimeng_seedream46_cvtob"):
        size = _int(payload, "size")
        if relay and "model" in payload and payload["model"] != "jimeng-4.0":
            raise _invalid(f"model {payload['model']!r}")
        resolution = payload.get("resolution")
        if resolution is not None:
            if resolution not in _RELAY_RESOLUTIONS:
                raise _invalid(f"resolution {resolution!r}")
            side = _RELAY_RESOLUTIONS[resolution]
            size = side * side
        if size is not None and not 1024 * 1024 <= size <= 4096 * 4096:
            raise _invalid("size out of range")
        if width is not None and height is not None:
            if not 1024 * 1024 <= width * height <= 4096 * 4096:
                raise _invalid("width*height out of range")
            low, high = payload.get("min_ratio", 1 / 3), payload.get("max_ratio", 3)
            if not low <= width / height <= high:
                raise _invalid("aspect ratio out of range")
        elif size is not None:
            width = height = int(size**0.5)
        else:
            width = height = 2048
        scale = payload.get("scale")
        if req_key == "jimeng_seedream46_cvtob":
            if scale is not None and (not isinstance(scale, int) or not 1 <= scale <= 100):
                raise _invalid("scale must be an integer in [1, 100]")
        elif scale is not None and not 0 <= scale <= 1:
            raise _invalid("scale out of range")
        images = 1
        match = _N_IMAGES.search(prompt)
        if match and not payload.get("force_single"):
            images = max(1, min(int(match.group(1)), 15 - count))
        return Submission(kind="image", width=width, height=height, count=images)
    if width is not None and height is not None:
        if not (512 <= width <= 2048 and 512 <= height <= 2048):
            raise _invalid("width and height must be within [512, 2048]")
    else:
        width = height = 1328  # §3.1: 3.x default
    if "use_pre_llm" in payload and not isinstance(payload["use_pre_llm"], bool):
        raise _invalid("use_pre_llm must be a boolean")
    seed = _int(payload, "seed")
    if seed is not None and seed < -1:
        raise _invalid("seed must be -1 or above")
    scale = payload.get("scale")
    if scale is not None and not 0 <= scale <= 1:
        raise _invalid("scale out of range")
    return Submission(kind="image", width=width, height=height)


def _check_video(req_key: str, payload: Mapping[str, Any]) -> Submission:
    key = VIDEO_KEYS[req_key]
    allowed = _VIDEO_FIELDS | ({"aspect_ratio"} if key.ratio else set())
    if key.camera:
        allowed = allowed | {"template_id", "camera_strength"}
    _check_fields(payload, frozenset(allowed))
    count = image_count(payload)
    low, high = key.images
    if not low <= count <= high:
        raise _invalid(f"{req_key} takes {low}-{high} images, got {count}")
    sizes = decode_images(payload, int(4.7 * _MB))
    for width, height in sizes:
        if min(width, height) < 320:
            raise _invalid(f"image {width}x{height}: the short side must be at least 320")
    if len(sizes) == 2:
        (w1, h1), (w2, h2) = sizes
        if abs(w1 / h1 - w2 / h2) > 0.01 * (w1 / h1):
            raise _invalid("first and tail frames must share one aspect ratio")
    frames = _int(payload, "frames")
    if frames is not None and frames not in (121, 241):
        raise _invalid("frames must be 121 or 241")
    seed = _int(payload, "seed")
    if seed is not None and seed < -1:
        raise _invalid("seed must be -1 or above")
    ratio = payload.get("aspect_ratio")
    if ratio is not None and (ratio not in _RATIOS or count):
        raise _invalid(f"aspect_ratio {ratio!r}")
    if key.camera:
        if payload.get("template_id") not in _TEMPLATES:
            raise _invalid(f"template_id {payload.get('template_id')!r}")
        if payload.get("camera_strength") not in ("weak", "medium", "strong"):
            raise _invalid(f"camera_strength {payload.get('camera_strength')!r}")
    if sizes:
        width, height = sizes[0]
        shape = f"{width}:{height}"
    else:
        shape = ratio or "16:9"
    small_width, small_height = video_size(shape)
    return Submission(kind="video", width=small_width, height=small_height, frames=frames or 121)


def video_size(shape: str) -> tuple[int, int]:
    """A small even frame size with the ratio ``w:h`` (the sandbox's MP4s stay tiny)."""
    left, _, right = shape.partition(":")
    ratio = float(left) / float(right)
    if ratio >= 1:
        width, height = 320, round(320 / ratio)
    else:
        width, height = round(320 * ratio), 320
    return max(2, width - width % 2), max(2, height - height % 2)
