"""Video 3.0 modes on Volcengine: req_keys, request-building tables per mode (pure), frames from
duration/fps, mode inference, and the combinations each mode refuses (protocols/volcengine.md
§3.2; mode names from the video seed)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from jimeng.backends.volcengine._video import (
    CAMERA_TEMPLATES,
    VIDEO_MODES,
    frames_for,
    video_mode,
)
from jimeng.errors import ValidationError
from jimeng.models import VideoRequest
from tests._images import gif, jpeg, png

FIRST = "https://example.com/first.jpg"
LAST = "https://example.com/last.jpg"


def body(**kwargs: Any) -> dict[str, Any]:
    request = VideoRequest(prompt="p", **kwargs)
    spec = video_mode(request)
    spec.validate(request)
    return spec.body(request)


@pytest.mark.parametrize(
    ("mode", "req_key"),
    [
        ("ti2v_pro", "jimeng_ti2v_v30_pro"),
        ("t2v_1080p", "jimeng_t2v_v30_1080p"),
        ("i2v_first_1080p", "jimeng_i2v_first_v30_1080"),
        ("i2v_first_tail_1080p", "jimeng_i2v_first_tail_v30_1080"),
        ("t2v_720p", "jimeng_t2v_v30"),
        ("i2v_first_720p", "jimeng_i2v_first_v30"),
        ("i2v_first_tail_720p", "jimeng_i2v_first_tail_v30"),
        ("i2v_recamera_720p", "jimeng_i2v_recamera_v30"),
    ],
)
def test_req_keys_exactly_as_the_protocol_table(mode: str, req_key: str) -> None:
    assert VIDEO_MODES[mode].req_key == req_key
    assert video_mode(VideoRequest(prompt="p", mode=req_key)).mode == mode


def test_eight_modes_and_default() -> None:
    assert len(VIDEO_MODES) == 8
    assert video_mode(VideoRequest(prompt="p")).mode == "t2v_720p"


BODIES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({}, {"req_key": "jimeng_t2v_v30"}),
    (
        {"mode": "t2v_720p", "duration": 5, "seed": 11, "aspect_ratio": "9:16"},
        {"req_key": "jimeng_t2v_v30", "seed": 11, "frames": 121, "aspect_ratio": "9:16"},
    ),
    (
        {"mode": "t2v_1080p", "duration": 10, "fps": 24},
        {"req_key": "jimeng_t2v_v30_1080p", "frames": 241},
    ),
    ({"mode": "t2v_1080p", "frames": 241}, {"req_key": "jimeng_t2v_v30_1080p", "frames": 241}),
    (
        {"mode": "i2v_first_720p", "image": FIRST},
        {"req_key": "jimeng_i2v_first_v30", "image_urls": [FIRST]},
    ),
    (
        {"mode": "i2v_first_1080p", "image": FIRST, "duration": 10.0},
        {"req_key": "jimeng_i2v_first_v30_1080", "image_urls": [FIRST], "frames": 241},
    ),
    (
        {"mode": "i2v_first_tail_720p", "image": FIRST, "tail_image": LAST},
        {"req_key": "jimeng_i2v_first_tail_v30", "image_urls": [FIRST, LAST]},
    ),
    (
        {"mode": "i2v_first_tail_1080p", "image": FIRST, "tail_image": LAST, "seed": -1},
        {"req_key": "jimeng_i2v_first_tail_v30_1080", "image_urls": [FIRST, LAST], "seed": -1},
    ),
    (
        {
            "mode": "i2v_recamera_720p",
            "image": FIRST,
            "camera": "dynamic_orbit",
            "camera_strength": "medium",
        },
        {
            "req_key": "jimeng_i2v_recamera_v30",
            "image_urls": [FIRST],
            "template_id": "dynamic_orbit",
            "camera_strength": "medium",
        },
    ),
    ({"mode": "ti2v_pro"}, {"req_key": "jimeng_ti2v_v30_pro"}),
    (
        {"mode": "ti2v_pro", "aspect_ratio": "21:9"},
        {"req_key": "jimeng_ti2v_v30_pro", "aspect_ratio": "21:9"},
    ),
    (
        {"mode": "ti2v_pro", "image": FIRST, "duration": 5},
        {"req_key": "jimeng_ti2v_v30_pro", "image_urls": [FIRST], "frames": 121},
    ),
    # inferred modes (no mode given)
    ({"image": FIRST}, {"req_key": "jimeng_i2v_first_v30", "image_urls": [FIRST]}),
    (
        {"image": FIRST, "tail_image": LAST, "resolution": "1080p"},
        {"req_key": "jimeng_i2v_first_tail_v30_1080", "image_urls": [FIRST, LAST]},
    ),
    ({"resolution": "1080P"}, {"req_key": "jimeng_t2v_v30_1080p"}),
    ({"model": "jimeng-video-3.0-pro"}, {"req_key": "jimeng_ti2v_v30_pro"}),
    (
        {"image": FIRST, "camera": "Handheld", "camera_strength": "WEAK"},
        {
            "req_key": "jimeng_i2v_recamera_v30",
            "image_urls": [FIRST],
            "template_id": "handheld",
            "camera_strength": "weak",
        },
    ),
]


@pytest.mark.parametrize(("kwargs", "fields"), BODIES)
def test_request_body(kwargs: dict[str, Any], fields: dict[str, Any]) -> None:
    assert body(**kwargs) == {"prompt": "p", **fields}


def test_local_frames_travel_as_raw_base64() -> None:
    first, last = png(640, 360), jpeg(1280, 720)
    sent = body(mode="i2v_first_tail_720p", image=first, tail_image=last)
    assert "image_urls" not in sent
    assert sent["binary_data_base64"] == [
        base64.b64encode(first).decode(),
        base64.b64encode(last).decode(),
    ]


@pytest.mark.parametrize(
    ("kwargs", "frames"),
    [
        ({}, None),
        ({"duration": 5}, 121),
        ({"duration": 10}, 241),
        ({"duration": 5.0, "fps": 24}, 121),
        ({"frames": 121}, 121),
        ({"frames": 241, "duration": 10}, 241),
        ({"fps": 24}, None),
    ],
)
def test_frames_from_duration(kwargs: dict[str, Any], frames: int | None) -> None:
    assert frames_for(VideoRequest(prompt="p", **kwargs)) == frames


@pytest.mark.parametrize(
    ("kwargs", "field", "allowed"),
    [
        ({"duration": 4}, "duration", "5, 10"),
        ({"duration": 6}, "duration", "5, 10"),
        ({"duration": 8}, "duration", "5, 10"),
        ({"duration": 5.5}, "duration", "5, 10"),
        ({"fps": 25}, "fps", "24"),
        ({"fps": 30}, "fps", "24"),
        ({"frames": 120}, "frames", "121, 241"),
        ({"frames": 121, "duration": 10}, "frames", "241"),
    ],
)
def test_unsupported_timing_names_the_allowed_values(
    kwargs: dict[str, Any], field: str, allowed: str
) -> None:
    with pytest.raises(ValidationError) as info:
        frames_for(VideoRequest(prompt="p", **kwargs))
    assert info.value.field == field
    assert info.value.allowed == allowed


REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"mode": "t2v_720p", "image": FIRST}, "image"),
    ({"mode": "t2v_1080p", "tail_image": LAST}, "tail_image"),
    ({"mode": "i2v_first_720p"}, "image"),
    ({"mode": "i2v_first_720p", "image": FIRST, "tail_image": LAST}, "tail_image"),
    ({"mode": "i2v_first_tail_720p", "image": FIRST}, "tail_image"),
    ({"mode": "i2v_first_tail_1080p", "tail_image": LAST}, "image"),
    ({"mode": "i2v_first_720p", "image": FIRST, "aspect_ratio": "16:9"}, "aspect_ratio"),
    ({"mode": "ti2v_pro", "image": FIRST, "aspect_ratio": "16:9"}, "aspect_ratio"),
    ({"mode": "ti2v_pro", "image": FIRST, "tail_image": LAST}, "tail_image"),
    ({"mode": "t2v_720p", "aspect_ratio": "2:1"}, "aspect_ratio"),
    ({"mode": "i2v_recamera_720p", "image": FIRST, "camera_strength": "weak"}, "camera"),
    ({"mode": "i2v_recamera_720p", "image": FIRST, "camera": "dynamic_orbit"}, "camera_strength"),
    (
        {
            "mode": "i2v_recamera_720p",
            "image": FIRST,
            "camera": "barrel_roll",
            "camera_strength": "weak",
        },
        "camera",
    ),
    (
        {
            "mode": "i2v_recamera_720p",
            "image": FIRST,
            "camera": "handheld",
            "camera_strength": "max",
        },
        "camera_strength",
    ),
    ({"mode": "i2v_first_720p", "image": FIRST, "camera": "handheld"}, "camera"),
    ({"mode": "t2v_720p", "return_url": True}, "return_url"),
    ({"mode": "t2v_720p", "callback_url": "https://cb"}, "callback_url"),
    ({"mode": "t2v_720p", "function_mode": "first_last_frames"}, "function_mode"),
    ({"mode": "t2v_720p", "seed": 1.5}, "seed"),
    ({"mode": "t2v_720p", "duration": 4}, "duration"),
    ({"mode": "t2v_5s"}, "mode"),
    ({"mode": "t2v_720p", "model": "jimeng-video-3.0-pro"}, "model"),
    ({"model": "seedance-1.0"}, "model"),
    ({"mode": "t2v_720p", "resolution": "1080p"}, "resolution"),
    ({"resolution": "4k"}, "resolution"),
    ({"camera": "handheld", "camera_strength": "weak", "resolution": "1080p"}, "resolution"),
    # local frames: JPEG/PNG, <= 4.7 MB as base64, <= 4096², short side >= 320, ratio <= 3
    ({"mode": "i2v_first_720p", "image": gif()}, "image"),
    ({"mode": "i2v_first_720p", "image": jpeg(640, 300)}, "image"),
    ({"mode": "i2v_first_720p", "image": jpeg(5000, 2000)}, "image"),
    ({"mode": "i2v_first_720p", "image": jpeg(1000, 330)}, "image"),
    ({"mode": "i2v_first_720p", "image": jpeg(pad=3_700_000)}, "image"),
    (
        {"mode": "i2v_first_tail_720p", "image": jpeg(1280, 720), "tail_image": jpeg(720, 1280)},
        "tail_image",
    ),
]


@pytest.mark.parametrize(("kwargs", "field"), REFUSED)
def test_refused_combinations(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        request = VideoRequest(prompt="p", **kwargs)
        video_mode(request).validate(request)
    assert info.value.field == field


def test_aspect_ratio_on_image_to_video_says_why() -> None:
    request = VideoRequest(prompt="p", mode="i2v_first_720p", image=FIRST, aspect_ratio="1:1")
    with pytest.raises(ValidationError, match="text-to-video only"):
        video_mode(request).validate(request)


def test_unknown_template_lists_all_eleven() -> None:
    request = VideoRequest(
        prompt="p", mode="i2v_recamera_720p", image=FIRST, camera="x", camera_strength="weak"
    )
    with pytest.raises(ValidationError) as info:
        video_mode(request).validate(request)
    assert len(CAMERA_TEMPLATES) == 11
    assert info.value.allowed == ", ".join(CAMERA_TEMPLATES)


def test_same_ratio_frames_of_different_sizes_pass() -> None:
    request = VideoRequest(
        prompt="p", mode="i2v_first_tail_720p", image=jpeg(1280, 720), tail_image=png(640, 360)
    )
    video_mode(request).validate(request)


def test_prompt_limit_is_800() -> None:
    video_mode(VideoRequest(prompt="x" * 800)).validate(VideoRequest(prompt="x" * 800))
    with pytest.raises(ValidationError) as info:
        request = VideoRequest(prompt="x" * 801)
        video_mode(request).validate(request)
    assert info.value.field == "prompt"
