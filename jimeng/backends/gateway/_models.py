"""Public model names, ratios and resolutions of the Jimeng web models (data only).

These are the tables a jimeng-api gateway applies on the user's behalf, taken from
protocols/dreamina-web.md §3.2–§3.4 and §6.1 (IPT ``src/api/consts/common.ts``). They hold no
behaviour so that the Dreamina session backend can share them; the rules built on them live in
``_params.py``.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

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
REGIONS = ("cn", "us", "hk", "jp", "sg")
INTERNATIONAL = frozenset({"us", "hk", "jp", "sg"})
#: Session-id prefix → region (case-insensitive; no prefix means CN).
REGION_PREFIXES: Mapping[str, str] = {"us-": "us", "hk-": "hk", "jp-": "jp", "sg-": "sg"}

_ALL = frozenset(REGIONS)
_NOT_US = frozenset({"cn", "hk", "jp", "sg"})
_ASIA = frozenset({"hk", "jp", "sg"})


@attrs.frozen(kw_only=True)
class ImageModel:
    """One public image model name (§3.2)."""

    name: str
    internal: str
    regions: frozenset[str]
    #: Honours ``intelligent_ratio`` (§3.4: 4.0/4.1/4.5/4.6/5.0; the seed lists only
    #: 4.0/4.1/4.5 — IPT's ``buildCoreParam`` is newer and wins).
    intelligent_ratio: bool = False
    #: Dropped from jimeng-api in ``de440ad`` (2026-02-10); still served by older tools.
    legacy: bool = False


@attrs.frozen(kw_only=True)
class VideoModel:
    """One public video model name (§6.1)."""

    name: str
    internal: str
    regions: frozenset[str]
    #: Durations in seconds the model takes.
    durations: tuple[int, ...]
    default_duration: int = 5
    #: ``resolution`` values the model takes; empty when it takes none.
    resolutions: tuple[str, ...] = ()
    #: Takes ``functionMode="omni_reference"`` (Seedance 2.0, §6.2).
    omni: bool = False


IMAGE_MODELS: Mapping[str, ImageModel] = {
    model.name: model
    for model in (
        ImageModel(
            name="jimeng-5.0", internal="high_aes_general_v50", regions=_NOT_US,
            intelligent_ratio=True,
        ),
        ImageModel(
            name="jimeng-4.6", internal="high_aes_general_v42", regions=_NOT_US,
            intelligent_ratio=True,
        ),
        ImageModel(
            name="jimeng-4.5", internal="high_aes_general_v40l", regions=_ALL,
            intelligent_ratio=True,
        ),
        ImageModel(
            name="jimeng-4.1", internal="high_aes_general_v41", regions=_ALL,
            intelligent_ratio=True,
        ),
        ImageModel(
            name="jimeng-4.0", internal="high_aes_general_v40", regions=_ALL,
            intelligent_ratio=True,
        ),
        ImageModel(
            name="jimeng-3.1",
            internal="high_aes_general_v30l_art_fangzhou:general_v3.0_18b",
            regions=frozenset({"cn"}),
        ),
        ImageModel(
            name="jimeng-3.0", internal="high_aes_general_v30l:general_v3.0_18b", regions=_ALL
        ),
        ImageModel(
            name="jimeng-2.1", internal="high_aes_general_v21_L:general_v2.1_L",
            regions=frozenset({"cn"}), legacy=True,
        ),
        ImageModel(
            name="jimeng-2.0-pro", internal="high_aes_general_v20_L:general_v2.0_L",
            regions=frozenset({"cn"}), legacy=True,
        ),
        ImageModel(
            name="jimeng-2.0", internal="high_aes_general_v20:general_v2.0",
            regions=frozenset({"cn"}), legacy=True,
        ),
        ImageModel(
            name="jimeng-1.4", internal="high_aes_general_v14:general_v1.4",
            regions=frozenset({"cn"}), legacy=True,
        ),
        ImageModel(
            name="jimeng-xl-pro", internal="text2img_xl_sft", regions=frozenset({"cn"}),
            legacy=True,
        ),
        ImageModel(
            name="nanobanana",
            internal="external_model_gemini_flash_image_v25",
            regions=frozenset({"us", "hk", "jp", "sg"}),
        ),
        ImageModel(
            name="nanobananapro", internal="dreamina_image_lib_1",
            regions=frozenset({"us", "hk", "jp", "sg"}),
        ),
    )
}  # fmt: skip

#: IPT's default on every site (§3.2); the seed script's own default is jimeng-4.0.
DEFAULT_IMAGE_MODEL = "jimeng-4.5"

IMAGE_RATIOS = ("1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3", "21:9")
IMAGE_RESOLUTIONS = ("1k", "2k", "4k")

#: ``(resolution, ratio)`` → ``(image_ratio code, width, height)`` (§3.3). 4k adds 100 to the
#: code. The 1k rows for 4:3 and 3:4 are portrait/landscape the wrong way round, as in IPT.
IMAGE_SIZES: Mapping[tuple[str, str], tuple[int, int, int]] = {
    ("1k", "1:1"): (1, 1024, 1024),
    ("1k", "4:3"): (4, 768, 1024),
    ("1k", "3:4"): (2, 1024, 768),
    ("1k", "16:9"): (3, 1024, 576),
    ("1k", "9:16"): (5, 576, 1024),
    ("1k", "3:2"): (7, 1024, 682),
    ("1k", "2:3"): (6, 682, 1024),
    ("1k", "21:9"): (8, 1195, 512),
    ("2k", "1:1"): (1, 2048, 2048),
    ("2k", "4:3"): (4, 2304, 1728),
    ("2k", "3:4"): (2, 1728, 2304),
    ("2k", "16:9"): (3, 2560, 1440),
    ("2k", "9:16"): (5, 1440, 2560),
    ("2k", "3:2"): (7, 2496, 1664),
    ("2k", "2:3"): (6, 1664, 2496),
    ("2k", "21:9"): (8, 3024, 1296),
    ("4k", "1:1"): (101, 4096, 4096),
    ("4k", "4:3"): (104, 4608, 3456),
    ("4k", "3:4"): (102, 3456, 4608),
    ("4k", "16:9"): (103, 5120, 2880),
    ("4k", "9:16"): (105, 2880, 5120),
    ("4k", "3:2"): (107, 4992, 3328),
    ("4k", "2:3"): (106, 3328, 4992),
    ("4k", "21:9"): (108, 6048, 2592),
}

#: nanobananapro at 4k keeps codes 1–8 and has its own sizes (§3.3).
NANOBANANAPRO_4K_SIZES: Mapping[str, tuple[int, int, int]] = {
    "1:1": (1, 4096, 4096),
    "4:3": (4, 4693, 3520),
    "3:4": (2, 3520, 4693),
    "16:9": (3, 5404, 3040),
    "9:16": (5, 3040, 5404),
    "3:2": (7, 4992, 3328),
    "2:3": (6, 3328, 4992),
    "21:9": (8, 6197, 2656),
}

_SEEDANCE_DURATIONS = tuple(range(4, 16))

VIDEO_MODELS: Mapping[str, VideoModel] = {
    model.name: model
    for model in (
        VideoModel(
            name="jimeng-video-seedance-2.0", internal="dreamina_seedance_40_pro",
            regions=frozenset({"cn"}), durations=_SEEDANCE_DURATIONS, omni=True,
        ),
        VideoModel(
            name="jimeng-video-seedance-2.0-fast", internal="dreamina_seedance_40",
            regions=frozenset({"cn"}), durations=_SEEDANCE_DURATIONS, omni=True,
        ),
        VideoModel(
            name="jimeng-video-3.5-pro",
            internal="dreamina_ic_generate_video_model_vgfm_3.5_pro",
            regions=_ALL, durations=(5, 10, 12),
        ),
        VideoModel(
            name="jimeng-video-3.0-pro",
            internal="dreamina_ic_generate_video_model_vgfm_3.0_pro",
            regions=_NOT_US, durations=(5, 10),
        ),
        VideoModel(
            name="jimeng-video-3.0", internal="dreamina_ic_generate_video_model_vgfm_3.0",
            regions=_ALL, durations=(5, 10), resolutions=("720p", "1080p"),
        ),
        VideoModel(
            name="jimeng-video-3.0-fast",
            internal="dreamina_ic_generate_video_model_vgfm_3.0_fast",
            regions=_NOT_US, durations=(5, 10), resolutions=("720p", "1080p"),
        ),
        VideoModel(
            name="jimeng-video-2.0", internal="dreamina_ic_generate_video_model_vgfm_lite",
            regions=_NOT_US, durations=(5, 10),
        ),
        VideoModel(
            name="jimeng-video-2.0-pro", internal="dreamina_ic_generate_video_model_vgfm1.0",
            regions=_NOT_US, durations=(5, 10),
        ),
        VideoModel(
            name="jimeng-video-veo3", internal="dreamina_veo3_generate_video",
            regions=_ASIA, durations=(8,), default_duration=8,
        ),
        VideoModel(
            name="jimeng-video-veo3.1", internal="dreamina_veo3.1_generate_video",
            regions=_ASIA, durations=(8,), default_duration=8,
        ),
        VideoModel(
            name="jimeng-video-sora2", internal="dreamina_sora2_generate_video",
            regions=_ASIA, durations=(4, 8, 12), default_duration=4,
        ),
    )
}  # fmt: skip

DEFAULT_VIDEO_MODEL = "jimeng-video-3.5-pro"
VIDEO_RATIOS = ("1:1", "4:3", "3:4", "16:9", "9:16", "21:9")
VIDEO_RESOLUTIONS = ("720p", "1080p")
VIDEO_FUNCTION_MODES = ("first_last_frames", "omni_reference")
