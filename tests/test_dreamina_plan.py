"""What each Dreamina site can serve: models, ratio × resolution codes, site rules, videos."""

from __future__ import annotations

from typing import Any

import pytest

from jimeng.backends.dreamina._plan import plan_image, plan_video
from jimeng.backends.dreamina._tables import IMAGE_MODELS, REGIONS, VIDEO_MODELS
from jimeng.errors import ValidationError
from jimeng.models import ImageRequest, VideoRequest

CN, US, HK, JP, SG = (REGIONS[code] for code in ("cn", "us", "hk", "jp", "sg"))
PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)


def image(**kwargs: Any) -> ImageRequest:
    return ImageRequest(prompt=kwargs.pop("prompt", "a cat"), **kwargs)


# -- models per site (§3.2) -------------------------------------------------------------------

AVAILABILITY = {
    "jimeng-5.0": {"cn", "hk", "jp", "sg"},
    "jimeng-4.6": {"cn", "hk", "jp", "sg"},
    "jimeng-4.5": {"cn", "us", "hk", "jp", "sg"},
    "jimeng-4.1": {"cn", "us", "hk", "jp", "sg"},
    "jimeng-4.0": {"cn", "us", "hk", "jp", "sg"},
    "jimeng-3.1": {"cn"},
    "jimeng-3.0": {"cn", "us", "hk", "jp", "sg"},
    "jimeng-2.1": {"cn"},
    "jimeng-2.0-pro": {"cn"},
    "jimeng-2.0": {"cn"},
    "jimeng-1.4": {"cn"},
    "jimeng-xl-pro": {"cn"},
    "nanobanana": {"us", "hk", "jp", "sg"},
    "nanobananapro": {"us", "hk", "jp", "sg"},
}


def test_the_table_covers_every_public_model() -> None:
    assert set(IMAGE_MODELS) == set(AVAILABILITY)


@pytest.mark.parametrize("model", sorted(AVAILABILITY))
@pytest.mark.parametrize("site", ["cn", "us", "hk", "jp", "sg"])
def test_model_availability_per_site(model: str, site: str) -> None:
    region = REGIONS[site]
    if site in AVAILABILITY[model]:
        plan = plan_image(image(model=model), region)
        assert plan.model.internal == IMAGE_MODELS[model].internal
        return
    with pytest.raises(ValidationError) as caught:
        plan_image(image(model=model), region)
    assert caught.value.field == "model"
    assert "not offered" in str(caught.value)
    # The error lists what IS available there (no silent fallback).
    offered = [name for name, sites in AVAILABILITY.items() if site in sites]
    assert caught.value.allowed == ", ".join(offered)


def test_unknown_model_lists_the_sites_models() -> None:
    with pytest.raises(ValidationError, match="unknown image model") as caught:
        plan_image(image(model="jimeng-9"), US)
    assert "nanobanana" in str(caught.value.allowed)
    assert "jimeng-3.1" not in str(caught.value.allowed)


def test_default_model_ratio_resolution() -> None:
    plan = plan_image(image(), CN)  # seed 002 defaults
    assert (plan.model.name, plan.ratio, plan.resolution) == ("jimeng-4.0", "1:1", "2k")
    assert (plan.ratio_code, plan.width, plan.height) == (1, 2048, 2048)
    assert (plan.sample_strength, plan.negative_prompt, plan.seed) == (0.5, "", None)


# -- ratio × resolution (§3.3) ----------------------------------------------------------------

RATIO_TABLE = [
    # ratio, resolution, code, width, height
    ("1:1", "1k", 1, 1024, 1024),
    ("4:3", "1k", 4, 1024, 768),  # §20: landscape, unlike IPT's turned row
    ("3:4", "1k", 2, 768, 1024),
    ("16:9", "1k", 3, 1024, 576),
    ("9:16", "1k", 5, 576, 1024),
    ("3:2", "1k", 7, 1024, 682),
    ("2:3", "1k", 6, 682, 1024),
    ("21:9", "1k", 8, 1195, 512),
    ("1:1", "2k", 1, 2048, 2048),
    ("16:9", "2k", 3, 2560, 1440),
    ("21:9", "2k", 8, 3024, 1296),
    ("1:1", "4k", 101, 4096, 4096),
    ("4:3", "4k", 104, 4608, 3456),
    ("3:4", "4k", 102, 3456, 4608),
    ("16:9", "4k", 103, 5120, 2880),
    ("9:16", "4k", 105, 2880, 5120),
    ("3:2", "4k", 107, 4992, 3328),
    ("2:3", "4k", 106, 3328, 4992),
    ("21:9", "4k", 108, 6048, 2592),
]


@pytest.mark.parametrize(("ratio", "resolution", "code", "width", "height"), RATIO_TABLE)
def test_ratio_codes_and_sizes(
    ratio: str, resolution: str, code: int, width: int, height: int
) -> None:
    plan = plan_image(image(model="jimeng-4.5", ratio=ratio, resolution=resolution), HK)
    assert (plan.ratio_code, plan.width, plan.height) == (code, width, height)


@pytest.mark.parametrize(
    ("ratio", "width", "height", "code"),
    [
        ("1:1", 4096, 4096, 1),
        ("4:3", 4693, 3520, 4),
        ("16:9", 5404, 3040, 3),
        ("9:16", 3040, 5404, 5),
        ("21:9", 6197, 2656, 8),
    ],
)
def test_nanobananapro_has_its_own_4k_table(ratio: str, width: int, height: int, code: int) -> None:
    plan = plan_image(image(model="nanobananapro", ratio=ratio, resolution="4K"), US)
    assert (plan.ratio_code, plan.width, plan.height) == (code, width, height)


def test_size_presets_are_resolutions() -> None:
    assert plan_image(image(size="4K"), CN).resolution == "4k"
    assert plan_image(image(size="1k", resolution="1k"), CN).resolution == "1k"
    with pytest.raises(ValidationError, match="disagrees"):
        plan_image(image(size="1K", resolution="2k"), CN)


@pytest.mark.parametrize(
    ("field", "value"), [("ratio", "5:4"), ("resolution", "8k"), ("resolution", "720p")]
)
def test_unknown_ratio_or_resolution(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        plan_image(image(**{field: value}), CN)
    assert caught.value.field == field
    assert caught.value.allowed


# -- direct width/height (seed 004) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "ratio", "resolution", "mapped"),
    [
        (1024, 1024, "1:1", "1k", False),  # MCP's default: exact
        (2560, 1440, "16:9", "2k", False),
        (1360, 1360, "1:1", "1k", True),  # nearer 1k than 2k in pixels
        (1920, 1080, "16:9", "2k", True),
        (1000, 780, "4:3", "1k", True),  # 1.28 is within 10% of 4:3
        (3000, 3000, "1:1", "4k", True),
    ],
)
def test_width_height_map_to_nearest_entry(
    width: int, height: int, ratio: str, resolution: str, mapped: bool
) -> None:
    plan = plan_image(image(width=width, height=height), CN)
    assert (plan.ratio, plan.resolution) == (ratio, resolution)
    assert (plan.mapped is not None) == mapped


@pytest.mark.parametrize(
    ("width", "height", "ratio", "resolution", "size"),
    [
        (1200, 1000, "4:3", "1k", (1024, 768)),  # between 1:1 and 4:3: the landscape one
        (512, 512, "1:1", "1k", (1024, 1024)),  # below the smallest size
        (9000, 9000, "1:1", "4k", (4096, 4096)),
        (4000, 1000, "21:9", "2k", (3024, 1296)),  # wider than 21:9
    ],
)
def test_width_height_far_off_is_approximated_with_a_note(
    width: int, height: int, ratio: str, resolution: str, size: tuple[int, int]
) -> None:
    plan = plan_image(image(width=width, height=height), CN)
    assert (plan.ratio, plan.resolution, (plan.width, plan.height)) == (ratio, resolution, size)
    assert plan.mapped == (
        f"width {width}x{height} approximated as {ratio} at {resolution} "
        f"({size[0]}x{size[1]}): the web protocol makes its table's sizes only"
    )


@pytest.mark.parametrize(
    ("width", "height", "code", "size"),
    [
        (1024, 768, 4, (1024, 768)),  # §20: the case, once sent as 768x1024
        (768, 1024, 2, (768, 1024)),
        (1100, 1000, 4, (1024, 768)),  # nearer 1:1 in aspect, but 1:1 is not landscape
        (1000, 1100, 2, (768, 1024)),
    ],
)
def test_orientation_of_pixel_sizes_is_kept(
    width: int, height: int, code: int, size: tuple[int, int]
) -> None:
    plan = plan_image(image(width=width, height=height), CN)
    assert (plan.ratio_code, (plan.width, plan.height)) == (code, size)
    assert (plan.width > plan.height) == (width > height)


def test_width_height_with_ratio_is_ambiguous() -> None:
    with pytest.raises(ValidationError, match="not both"):
        plan_image(image(width=1024, height=1024, ratio="1:1"), CN)


# -- intelligent ratio (§3.4) -----------------------------------------------------------------


@pytest.mark.parametrize(
    "model", ["jimeng-5.0", "jimeng-4.6", "jimeng-4.5", "jimeng-4.1", "jimeng-4.0"]
)
def test_intelligent_ratio_models(model: str) -> None:
    assert plan_image(image(model=model, intelligent_ratio=True), CN).intelligent_ratio


@pytest.mark.parametrize("model", ["jimeng-3.1", "jimeng-3.0", "jimeng-2.1", "jimeng-xl-pro"])
def test_intelligent_ratio_is_refused_where_ignored(model: str) -> None:
    with pytest.raises(ValidationError, match="ignores intelligent_ratio") as caught:
        plan_image(image(model=model, intelligent_ratio=True), CN)
    assert caught.value.field == "intelligent_ratio"
    assert "jimeng-4.0" in str(caught.value.allowed)
    # Saying "no" to a feature the model lacks is harmless.
    assert not plan_image(image(model=model, intelligent_ratio=False), CN).intelligent_ratio


def test_intelligent_ratio_with_a_ratio_conflicts() -> None:
    with pytest.raises(ValidationError, match="picks the ratio"):
        plan_image(image(intelligent_ratio=True, ratio="16:9"), CN)


# -- nanobanana site rules (§3.2) -------------------------------------------------------------


def test_nanobanana_us_is_fixed() -> None:
    plan = plan_image(image(model="nanobanana"), US)
    assert (plan.width, plan.height, plan.resolution, plan.ratio_code) == (1024, 1024, "2k", 1)
    # Values equal to the forced ones are fine; others would be ignored upstream: refused.
    assert plan_image(image(model="nanobanana", ratio="1:1", resolution="2k"), US).ratio == "1:1"
    assert plan_image(image(model="nanobanana", width=1024, height=1024), US).mapped is None
    with pytest.raises(ValidationError, match="ignore ratio") as caught:
        plan_image(image(model="nanobanana", ratio="16:9"), US)
    assert caught.value.allowed == "1:1"
    with pytest.raises(ValidationError, match="ignore resolution"):
        plan_image(image(model="nanobanana", resolution="4k"), US)


@pytest.mark.parametrize("region", [HK, JP, SG])
def test_nanobanana_asia_forces_1k_and_honours_ratio(region: Any) -> None:
    plan = plan_image(image(model="nanobanana", ratio="16:9"), region)
    assert (plan.resolution, plan.ratio_code, plan.width, plan.height) == ("1k", 3, 1024, 576)
    with pytest.raises(ValidationError, match="always renders at 1k"):
        plan_image(image(model="nanobanana", resolution="2k"), region)


# -- parameters and blend ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("scale", 0.5), ("force_single", True), ("min_ratio", 0.5), ("return_url", True)],
)
def test_parameters_the_web_protocol_lacks(field: str, value: Any) -> None:
    with pytest.raises(ValidationError, match="not a parameter of Dreamina") as caught:
        plan_image(image(**{field: value}), CN)
    assert caught.value.field == field


def test_blend_limits() -> None:
    plan = plan_image(image(images=[PNG] * 10, sample_strength=0.6), CN)
    assert plan.is_blend and plan.sample_strength == 0.6
    with pytest.raises(ValidationError, match="1–10"):
        plan_image(image(images=[PNG] * 11), CN)
    with pytest.raises(ValidationError, match="no seed"):
        plan_image(image(images=[PNG], seed=5), CN)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seed_range(seed: int) -> None:
    with pytest.raises(ValidationError, match="seed"):
        plan_image(image(seed=seed), CN)


# -- videos (§6.1) ----------------------------------------------------------------------------

VIDEO_AVAILABILITY = {
    "jimeng-video-seedance-2.0": {"cn"},
    "jimeng-video-seedance-2.0-fast": {"cn"},
    "jimeng-video-3.5-pro": {"cn", "us", "hk", "jp", "sg"},
    "jimeng-video-3.0-pro": {"cn", "hk", "jp", "sg"},
    "jimeng-video-3.0": {"cn", "us", "hk", "jp", "sg"},
    "jimeng-video-3.0-fast": {"cn", "hk", "jp", "sg"},
    "jimeng-video-2.0": {"cn", "hk", "jp", "sg"},
    "jimeng-video-2.0-pro": {"cn", "hk", "jp", "sg"},
    "jimeng-video-veo3": {"hk", "jp", "sg"},
    "jimeng-video-veo3.1": {"hk", "jp", "sg"},
    "jimeng-video-sora2": {"hk", "jp", "sg"},
}


@pytest.mark.parametrize("model", sorted(VIDEO_AVAILABILITY))
@pytest.mark.parametrize("site", ["cn", "us", "sg"])
def test_video_model_availability(model: str, site: str) -> None:
    request = VideoRequest(prompt="waves", model=model)
    if site in VIDEO_AVAILABILITY[model]:
        assert plan_video(request, REGIONS[site]).model.name == model
    else:
        with pytest.raises(ValidationError, match="not offered"):
            plan_video(request, REGIONS[site])


def test_video_table_is_complete() -> None:
    assert set(VIDEO_MODELS) == set(VIDEO_AVAILABILITY)


@pytest.mark.parametrize(
    ("model", "good", "bad", "default"),
    [
        ("jimeng-video-3.5-pro", [5, 10, 12], [4, 8], 5),
        ("jimeng-video-3.0", [5, 10], [7, 12], 5),
        ("jimeng-video-seedance-2.0", [4, 9, 15], [3, 16], 5),
        ("jimeng-video-veo3", [8], [5], 8),
        ("jimeng-video-sora2", [4, 8, 12], [5], 4),
    ],
)
def test_video_durations(model: str, good: list[int], bad: list[int], default: int) -> None:
    region = SG if "veo" in model or "sora" in model else CN
    assert plan_video(VideoRequest(prompt="p", model=model), region).duration == default
    for duration in good:
        assert (
            plan_video(VideoRequest(prompt="p", model=model, duration=duration), region).duration
            == duration
        )
    for duration in bad:
        with pytest.raises(ValidationError, match="seconds"):
            plan_video(VideoRequest(prompt="p", model=model, duration=duration), region)
    with pytest.raises(ValidationError):
        plan_video(VideoRequest(prompt="p", model=model, duration=good[0] + 0.5), region)


def test_video_resolution_only_where_supported() -> None:
    plan = plan_video(VideoRequest(prompt="p", model="jimeng-video-3.0"), CN)
    assert plan.resolution == "720p"
    plan = plan_video(
        VideoRequest(prompt="p", model="jimeng-video-3.0-fast", resolution="1080P"), CN
    )
    assert plan.resolution == "1080p"
    assert plan_video(VideoRequest(prompt="p", model="jimeng-video-3.5-pro"), CN).resolution is None
    with pytest.raises(ValidationError, match="takes no resolution"):
        plan_video(VideoRequest(prompt="p", model="jimeng-video-3.5-pro", resolution="720p"), CN)


def test_video_ratio_frames_and_modes() -> None:
    assert plan_video(VideoRequest(prompt="p"), CN).ratio == "1:1"
    assert plan_video(VideoRequest(prompt="p", aspect_ratio="21:9"), CN).ratio == "21:9"
    with pytest.raises(ValidationError, match="aspect ratio"):
        plan_video(VideoRequest(prompt="p", aspect_ratio="3:2"), CN)
    with pytest.raises(ValidationError, match="first frame"):
        plan_video(VideoRequest(prompt="p", image=PNG, aspect_ratio="16:9"), CN)
    with pytest.raises(ValidationError, match="needs a first frame"):
        plan_video(VideoRequest(prompt="p", tail_image=PNG), CN)
    plan = plan_video(VideoRequest(prompt="p", image=PNG, tail_image=PNG), CN)
    assert len(plan.frames) == 2
    with pytest.raises(ValidationError, match="24 fps"):
        plan_video(VideoRequest(prompt="p", fps=30), CN)
    with pytest.raises(ValidationError, match="omni"):
        plan_video(VideoRequest(prompt="p", function_mode="omni_reference"), CN)
    with pytest.raises(ValidationError, match="not a parameter"):
        plan_video(VideoRequest(prompt="p", camera="zoom_in"), CN)


def test_video_alias() -> None:
    plan = plan_video(VideoRequest(prompt="p", model="jimeng-video-s2.0"), CN)
    assert plan.model.name == "jimeng-video-2.0"
