"""The emulated server's rules for the rest of the family (protocols/volcengine.md §3.4):
inpainting, upscaling, outpainting, motion imitation, OmniHuman and video translation.

Written apart from the client's tables (``backends/volcengine/_family.py``), like
``_volcengine_keys``: each key is checked on its own Action pair, its own field names (singular
``image_url`` strings for OmniHuman and motion 1.0, arrays elsewhere) and its own limits, and
unknown fields are refused.

The sandbox cannot download the videos and audio it is given, so their length comes from the
URL's name: ``…_12s.mp4`` or ``…-45s.mp3`` is 12 or 45 seconds (default 5 s for audio and
driving videos, 10 s for videos to translate). An image URL containing ``no-person`` fails the
OmniHuman subject check.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jimeng.sandbox._volcengine_keys import (
    Rejection,
    Submission,
    decode_images,
    image_count,
    video_size,
)

__all__ = ["TRANSFORM_KEYS", "check_transform", "seconds_of"]

_MB = 1024 * 1024
SYNC2ASYNC = "sync2async"
CV = "cv"
SUBJECT_CHECK = "jimeng_realman_avatar_picture_create_role_omni_v15"

#: req_key → (Action family, output kind).
TRANSFORM_KEYS: Mapping[str, tuple[str, str]] = {
    "jimeng_image2image_dream_inpaint": (SYNC2ASYNC, "image"),
    "jimeng_i2i_seed3_tilesr_cvtob": (SYNC2ASYNC, "image"),
    "jimeng_img2img_seed3_painting_edit": (SYNC2ASYNC, "image"),
    "jimeng_dreamactor_m20_gen_video": (SYNC2ASYNC, "video"),
    "jimeng_dream_actor_m1_gen_video_cv": (SYNC2ASYNC, "video"),
    SUBJECT_CHECK: (CV, "check"),
    "jimeng_realman_avatar_picture_omni_v15": (CV, "video"),
    "video_translate_v2_cvtob": (SYNC2ASYNC, "video"),
}
_SECONDS = re.compile(r"[_-](\d+(?:\.\d+)?)s\.(?:mp4|mov|webm|mp3|wav|m4a|aac|ogg)$", re.I)
_INPUT_INVALID = "failed:50215:Input invalid for this service."


def _invalid(message: str) -> Rejection:
    return Rejection(50200, f"Invalid args: {message}")


def seconds_of(url: str, default: float) -> float:
    match = _SECONDS.search(url.split("?", 1)[0])
    return float(match.group(1)) if match else default


def _fields(payload: Mapping[str, Any], allowed: set[str]) -> None:
    for name in payload:
        if name not in allowed and name != "req_key":
            raise _invalid(f"unknown field {name!r}")


def _url(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise Rejection(50201, f"Missing args: {name}")
    if not value.startswith(("http://", "https://")):
        # A live probe saw data: URIs refused (§3.4.5).
        raise Rejection(50220, f"Download failed: {name} must be an http(s) URL")
    return value


def _prompt(payload: Mapping[str, Any], *, required: bool) -> str:
    prompt = payload.get("prompt")
    if prompt is None and not required:
        return ""
    if not isinstance(prompt, str) or not prompt.strip():
        raise Rejection(50201, "Missing args: prompt")
    if len(prompt) > 800:
        raise _invalid("prompt longer than 800 characters")
    return prompt


def _images(payload: Mapping[str, Any], count: int) -> list[tuple[int, int]]:
    found = image_count(payload)
    if found != count:
        raise _invalid(f"takes exactly {count} images, got {found}")
    return decode_images(payload, int(4.7 * _MB))


def _seed(payload: Mapping[str, Any]) -> None:
    seed = payload.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < -1):
        raise _invalid("seed must be an integer >= -1")


def check_transform(req_key: str, payload: Mapping[str, Any], *, family: str) -> Submission:
    """Check a submit of a §3.4 key on the Action ``family`` it came in on."""
    wanted, _ = TRANSFORM_KEYS[req_key]
    if family != wanted:
        raise Rejection(50200, f"req_key {req_key} not supported")  # §3.4.0 live probe
    check = _CHECKS[req_key]
    return check(payload)


def _inpaint(payload: Mapping[str, Any]) -> Submission:
    _fields(payload, {"image_urls", "binary_data_base64", "prompt", "seed"})
    _prompt(payload, required=True)
    _seed(payload)
    sizes = _images(payload, 2)
    if sizes and sizes[0] != sizes[1]:
        raise _invalid("the mask must have the image's size")
    width, height = sizes[0] if sizes else (1024, 1024)
    return Submission(kind="image", width=width, height=height)


def _upscale(payload: Mapping[str, Any]) -> Submission:
    _fields(payload, {"image_urls", "binary_data_base64", "resolution", "scale"})
    sizes = _images(payload, 1)
    resolution = payload.get("resolution", "4k")
    if resolution not in ("4k", "8k"):
        raise _invalid(f"resolution {resolution!r}")
    scale = payload.get("scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int)):
        raise _invalid("scale must be an integer")
    if scale is not None and not 0 <= scale <= 100:
        raise _invalid("scale out of [0, 100]")
    width, height = sizes[0] if sizes else (1024, 1024)
    if max(width, height) / min(width, height) > 3:
        raise _invalid("aspect ratio out of [1/3, 3]")
    side = 4096 if resolution == "4k" else 8192
    factor = side / max(width, height)
    return Submission(kind="image", width=round(width * factor), height=round(height * factor))


def _outpaint(payload: Mapping[str, Any]) -> Submission:
    sides = ("top", "bottom", "left", "right")
    _fields(payload, {"image_urls", "binary_data_base64", "prompt", "seed", *sides})
    _prompt(payload, required=False)
    _seed(payload)
    count = image_count(payload)
    if count == 2:
        if any(side in payload for side in sides):
            raise _invalid("a canvas and mask take no directional fields")
        sizes = decode_images(payload, int(4.7 * _MB))
        if sizes and sizes[0] != sizes[1]:
            raise _invalid("canvas and mask must have one size")
        width, height = sizes[0] if sizes else (1024, 1024)
        return Submission(kind="image", width=width, height=height)
    sizes = _images(payload, 1)
    ratios = {}
    for side in sides:
        value = payload.get(side, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise _invalid(f"{side} must be within [0, 1]")
        ratios[side] = float(value)
    if not any(ratios.values()):
        raise _invalid("nothing to extend")
    width, height = sizes[0] if sizes else (1024, 1024)
    return Submission(
        kind="image",
        width=round(width * (1 + ratios["left"] + ratios["right"])),
        height=round(height * (1 + ratios["top"] + ratios["bottom"])),
    )


def _video(width_height: tuple[int, int] | None, seconds: float, fps: int) -> Submission:
    shape = f"{width_height[0]}:{width_height[1]}" if width_height else "9:16"
    width, height = video_size(shape)
    return Submission(
        kind="video", width=width, height=height, frames=max(1, round(seconds * fps)), fps=fps
    )


def _motion_v2(payload: Mapping[str, Any]) -> Submission:
    _fields(
        payload,
        {"image_urls", "binary_data_base64", "video_url", "cut_result_first_second_switch"}
        | {"callback_url"},
    )
    sizes = _images(payload, 1)
    if sizes and min(sizes[0]) <= 480:
        raise Rejection(50205, "Image Size Limited: the image must be larger than 480x480")
    video = _url(payload, "video_url")
    switch = payload.get("cut_result_first_second_switch")
    if switch is not None and not isinstance(switch, bool):
        raise _invalid("cut_result_first_second_switch must be a boolean")
    seconds = seconds_of(video, 5.0)
    if seconds > 30:
        raise Rejection(50211, "Video Duration Limited: the driving video is above 30 s")
    return _video(sizes[0] if sizes else None, seconds, 25)


def _motion_v1(payload: Mapping[str, Any]) -> Submission:
    _fields(payload, {"image_url", "video_url"})
    _url(payload, "image_url")
    seconds = seconds_of(_url(payload, "video_url"), 5.0)
    if seconds > 30:
        raise Rejection(50211, "Video Duration Limited: the driving video is above 30 s")
    return _video(None, seconds, 24)


def _subject_check(payload: Mapping[str, Any]) -> Submission:
    _fields(payload, {"image_url"})
    image = _url(payload, "image_url")
    return Submission(kind="check", width=0, height=0, subject="no-person" not in image)


def _avatar(payload: Mapping[str, Any]) -> Submission:
    _fields(
        payload,
        {"image_url", "audio_url", "mask_url", "seed", "prompt", "output_resolution"}
        | {"pe_fast_mode"},
    )
    _url(payload, "image_url")
    audio = _url(payload, "audio_url")
    _prompt(payload, required=False)
    _seed(payload)
    masks = payload.get("mask_url")
    if masks is not None and (
        not isinstance(masks, list) or not all(isinstance(m, str) for m in masks)
    ):
        raise _invalid("mask_url must be a list of URLs")
    if payload.get("output_resolution", 1080) not in (720, 1080):
        raise _invalid("output_resolution must be 720 or 1080")
    if "pe_fast_mode" in payload and not isinstance(payload["pe_fast_mode"], bool):
        raise _invalid("pe_fast_mode must be a boolean")
    seconds = seconds_of(audio, 5.0)
    submission = _video(None, seconds, 25)
    if seconds >= 60:
        # §3.4.5: long audio is accepted at submit and fails at get-result with 50215.
        return Submission(
            kind="video",
            width=submission.width,
            height=submission.height,
            frames=submission.frames,
            fps=25,
            outcome=_INPUT_INVALID,
        )
    return submission


def _translate(payload: Mapping[str, Any]) -> Submission:
    _fields(payload, {"video_url", "src_language", "target_language"})
    video = _url(payload, "video_url")
    for name in ("src_language", "target_language"):
        if not isinstance(payload.get(name), str) or not payload[name]:
            raise Rejection(50201, f"Missing args: {name}")
    seconds = seconds_of(video, 10.0)
    submission = _video(None, seconds, 25)
    if not 5 <= seconds <= 180:
        return Submission(
            kind="video",
            width=submission.width,
            height=submission.height,
            frames=submission.frames,
            fps=25,
            outcome=_INPUT_INVALID,
        )
    return submission


_CHECKS = {
    "jimeng_image2image_dream_inpaint": _inpaint,
    "jimeng_i2i_seed3_tilesr_cvtob": _upscale,
    "jimeng_img2img_seed3_painting_edit": _outpaint,
    "jimeng_dreamactor_m20_gen_video": _motion_v2,
    "jimeng_dream_actor_m1_gen_video_cv": _motion_v1,
    SUBJECT_CHECK: _subject_check,
    "jimeng_realman_avatar_picture_omni_v15": _avatar,
    "video_translate_v2_cvtob": _translate,
}
