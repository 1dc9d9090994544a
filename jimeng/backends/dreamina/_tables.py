"""Dreamina web-protocol data: regions, model maps, ratio × resolution tables (no logic).

Every value here comes from protocols/dreamina-web.md (section cited per table). The gateway
backend reads the same tables (``jimeng.backends.gateway._models``): a gateway forwards to this
web service.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = [
    "CN",
    "DEFAULT_IMAGE_MODEL",
    "DEFAULT_RATIO",
    "DEFAULT_RESOLUTION",
    "DEFAULT_VIDEO_MODEL",
    "DEFAULT_VIDEO_RATIO",
    "FOUR_K_CODE_OFFSET",
    "GATEWAY_1K_TURNED",
    "IMAGE_MODELS",
    "INTERNATIONAL",
    "NANOBANANAPRO_4K",
    "RATIO_CODES",
    "RATIO_SIZES",
    "REGIONS",
    "RESOLUTIONS",
    "VIDEO_MODELS",
    "VIDEO_RATIOS",
    "VIDEO_RESOLUTIONS",
    "ImageModel",
    "Region",
    "RegionRule",
    "VideoModel",
]


@attrs.frozen(kw_only=True)
class Region:
    """One site (§1.1): where its calls go and how they identify themselves."""

    code: str  # token prefix without "-" ("cn" for no prefix)
    aid: int
    query_region: str  # the ``region`` query value
    main: str  # mweb + passport origin
    commerce: str  # /commerce/... origin
    imagex: str  # ImageX upload API origin
    aws_region: str  # SigV4 region of the ImageX signature
    lan: str
    loc: str
    site: str  # the web page origin: Referer of generate calls, blob: URLs
    #: CN sends ``webId`` in the query; IPT leaves it out for the international sites (§1.2).
    sends_web_id: bool
    #: ``get_upload_token`` names the ImageX service ``service_id`` (CN) or ``space_name`` (§4.1).
    upload_service_field: str
    default_upload_service: str


CN = "cn"
_CN_ORIGIN = "https://jimeng.jianying.com"
_SG_MAIN = "https://mweb-api-sg.capcut.com"
_SG_COMMERCE = "https://commerce-api-sg.capcut.com"
_SG_IMAGEX = "https://imagex-normal-sg.capcutapi.com"
_INTL_SITE = "https://dreamina.capcut.com"


def _asia(code: str, lan: str) -> Region:
    return Region(
        code=code,
        aid=513641,
        query_region=code.upper(),
        main=_SG_MAIN,
        commerce=_SG_COMMERCE,
        imagex=_SG_IMAGEX,
        aws_region="ap-southeast-1",
        lan=lan,
        loc=code,
        site=_INTL_SITE,
        sends_web_id=False,
        upload_service_field="space_name",
        default_upload_service="wopfjsm1ax",
    )


#: §1.1 table (IPT ``common.ts``, ``dreamina.ts``, ``region-utils.ts``).
REGIONS: Mapping[str, Region] = {
    "cn": Region(
        code="cn",
        aid=513695,
        query_region="cn",  # lowercase since the 3018 fix (§1.3, ZH v0.8.3)
        main=_CN_ORIGIN,
        commerce=_CN_ORIGIN,
        imagex="https://imagex.bytedanceapi.com",
        aws_region="cn-north-1",
        lan="zh-Hans",
        loc="cn",
        site=_CN_ORIGIN,
        sends_web_id=True,
        upload_service_field="service_id",
        default_upload_service="tb4s082cfz",
    ),
    "us": Region(
        code="us",
        aid=513641,
        query_region="US",
        main="https://dreamina-api.us.capcut.com",
        commerce="https://commerce.us.capcut.com",
        imagex="https://imagex16-normal-us-ttp.capcutapi.us",
        aws_region="us-east-1",
        lan="en",
        loc="us",
        site=_INTL_SITE,
        sends_web_id=False,
        upload_service_field="space_name",
        default_upload_service="wopfjsm1ax",
    ),
    "hk": _asia("hk", "en"),
    "jp": _asia("jp", "ja"),
    "sg": _asia("sg", "en"),
}

INTERNATIONAL = frozenset({"us", "hk", "jp", "sg"})
_ASIA = frozenset({"hk", "jp", "sg"})
_ALL = frozenset(REGIONS)

# -- images -------------------------------------------------------------------------------------

#: §3.3: ratio → ``image_ratio`` code at 1k/2k; 4k adds :data:`FOUR_K_CODE_OFFSET`.
RATIO_CODES: Mapping[str, int] = {
    "1:1": 1,
    "4:3": 4,
    "3:4": 2,
    "16:9": 3,
    "9:16": 5,
    "3:2": 7,
    "2:3": 6,
    "21:9": 8,
}
FOUR_K_CODE_OFFSET = 100
RESOLUTIONS = ("1k", "2k", "4k")

#: §3.3 sizes (width, height). §20: IPT's 1k table sends 4:3 as 768×1024 (portrait) with the
#: landscape code 4, and 3:4 the other way round: a swap IPT introduced in cbb62ee, not an
#: upstream rule. This client sends 1k 4:3 as 1024×768, agreeing with its ratio code, with the
#: 2k/4k rows and with the only capture (2k 16:9 sent as width 2560, height 1440), so a
#: landscape request never goes out as a portrait ``large_image_info``.
RATIO_SIZES: Mapping[str, Mapping[str, tuple[int, int]]] = {
    "1k": {
        "1:1": (1024, 1024),
        "4:3": (1024, 768),
        "3:4": (768, 1024),
        "16:9": (1024, 576),
        "9:16": (576, 1024),
        "3:2": (1024, 682),
        "2:3": (682, 1024),
        "21:9": (1195, 512),
    },
    "2k": {
        "1:1": (2048, 2048),
        "4:3": (2304, 1728),
        "3:4": (1728, 2304),
        "16:9": (2560, 1440),
        "9:16": (1440, 2560),
        "3:2": (2496, 1664),
        "2:3": (1664, 2496),
        "21:9": (3024, 1296),
    },
    "4k": {
        "1:1": (4096, 4096),
        "4:3": (4608, 3456),
        "3:4": (3456, 4608),
        "16:9": (5120, 2880),
        "9:16": (2880, 5120),
        "3:2": (4992, 3328),
        "2:3": (3328, 4992),
        "21:9": (6048, 2592),
    },
}

#: §20: the 1k rows a jimeng-api gateway (IPT/DZ ``common.ts``) sends turned round; a
#: gateway client cannot change them, so it must know them to avoid asking for them.
GATEWAY_1K_TURNED = frozenset({"4:3", "3:4"})

#: §3.3: nanobananapro at 4k keeps the codes 1–8 and has its own sizes.
NANOBANANAPRO_4K: Mapping[str, tuple[int, int]] = {
    "1:1": (4096, 4096),
    "4:3": (4693, 3520),
    "3:4": (3520, 4693),
    "16:9": (5404, 3040),
    "9:16": (3040, 5404),
    "3:2": (4992, 3328),
    "2:3": (3328, 4992),
    "21:9": (6197, 2656),
}

DEFAULT_RATIO = "1:1"  # seed 002 defaults: ratio 1:1, resolution 2k, model jimeng-4.0
DEFAULT_RESOLUTION = "2k"


@attrs.frozen(kw_only=True)
class RegionRule:
    """What a model forces on one site (§3.2 nanobanana notes); ``None`` = caller's choice."""

    ratio: str | None = None
    resolution: str | None = None
    size: tuple[int, int] | None = None


@attrs.frozen(kw_only=True)
class ImageModel:
    name: str
    internal: str
    regions: frozenset[str]
    #: §3.4: ``intelligent_ratio`` takes effect only for these models (IPT ``buildCoreParam``).
    intelligent_ratio: bool = False
    legacy: bool = False
    rules: Mapping[str, RegionRule] = attrs.field(factory=dict)
    #: Sizes at 4k when the model has its own table (nanobananapro).
    sizes_4k: Mapping[str, tuple[int, int]] | None = None
    #: Whether 4k adds 100 to the ratio code (§3.3: all but nanobananapro).
    four_k_offset: bool = True
    aliases: tuple[str, ...] = ()


_NANOBANANA_US = RegionRule(ratio="1:1", resolution="2k", size=(1024, 1024))
_NANOBANANA_ASIA = RegionRule(resolution="1k")

#: §3.2 model map and region support (IPT ``IMAGE_MODEL_MAP`` / ``_US`` / ``_ASIA``; MCP, ZH).
IMAGE_MODELS: Mapping[str, ImageModel] = {
    model.name: model
    for model in (
        ImageModel(
            name="jimeng-5.0",
            internal="high_aes_general_v50",
            regions=frozenset({"cn"}) | _ASIA,
            intelligent_ratio=True,
        ),
        ImageModel(
            name="jimeng-4.6",
            internal="high_aes_general_v42",
            regions=frozenset({"cn"}) | _ASIA,
            intelligent_ratio=True,
        ),
        ImageModel(
            name="jimeng-4.5",
            internal="high_aes_general_v40l",
            regions=_ALL,
            intelligent_ratio=True,
        ),
        ImageModel(
            name="jimeng-4.1", internal="high_aes_general_v41", regions=_ALL, intelligent_ratio=True
        ),
        ImageModel(
            name="jimeng-4.0", internal="high_aes_general_v40", regions=_ALL, intelligent_ratio=True
        ),
        ImageModel(
            name="jimeng-3.1",
            internal="high_aes_general_v30l_art_fangzhou:general_v3.0_18b",
            regions=frozenset({"cn"}),
        ),
        ImageModel(
            name="jimeng-3.0", internal="high_aes_general_v30l:general_v3.0_18b", regions=_ALL
        ),
        # Legacy: dropped from IPT in de440ad, still served to MCP/ZH on the CN site.
        ImageModel(
            name="jimeng-2.1",
            internal="high_aes_general_v21_L:general_v2.1_L",
            regions=frozenset({"cn"}),
            legacy=True,
        ),
        ImageModel(
            name="jimeng-2.0-pro",
            internal="high_aes_general_v20_L:general_v2.0_L",
            regions=frozenset({"cn"}),
            legacy=True,
        ),
        ImageModel(
            name="jimeng-2.0",
            internal="high_aes_general_v20:general_v2.0",
            regions=frozenset({"cn"}),
            legacy=True,
        ),
        ImageModel(
            name="jimeng-1.4",
            internal="high_aes_general_v14:general_v1.4",
            regions=frozenset({"cn"}),
            legacy=True,
        ),
        ImageModel(
            name="jimeng-xl-pro", internal="text2img_xl_sft", regions=frozenset({"cn"}), legacy=True
        ),
        ImageModel(
            name="nanobanana",
            internal="external_model_gemini_flash_image_v25",
            regions=INTERNATIONAL,
            rules={"us": _NANOBANANA_US, **{code: _NANOBANANA_ASIA for code in _ASIA}},
        ),
        ImageModel(
            name="nanobananapro",
            internal="dreamina_image_lib_1",
            regions=INTERNATIONAL,
            sizes_4k=NANOBANANAPRO_4K,
            four_k_offset=False,
        ),
    )
}

DEFAULT_IMAGE_MODEL = "jimeng-4.0"

# -- videos -------------------------------------------------------------------------------------

VIDEO_RATIOS = ("1:1", "4:3", "3:4", "16:9", "9:16", "21:9")  # §6.1
DEFAULT_VIDEO_RATIO = "1:1"
VIDEO_RESOLUTIONS = ("720p", "1080p")
_SEEDANCE_DURATIONS = tuple(range(4, 16))
_BASIC_BENEFIT = "basic_video_operation_vgfm_v_three"


@attrs.frozen(kw_only=True)
class VideoModel:
    name: str
    internal: str  # ``model_req_key``
    regions: frozenset[str]
    durations: tuple[int, ...]
    default_duration: int
    benefit_type: str
    #: §6.1: only vgfm_3.0 and vgfm_3.0_fast take ``resolution`` (default 720p).
    resolutions: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    #: Seedance on CN: upstream demands ``a_bogus``/``msToken`` browser tokens (§6.2, §9).
    browser_check: bool = False
    #: Takes ``functionMode="omni_reference"`` (Seedance 2.0, §6.2).
    omni: bool = False
    #: §14 (DZ): benefit types tried in order when upstream answers 5001/1000, each with
    #: whether it is only for videos longer than 4 s (the first is :attr:`benefit_type`).
    benefit_fallbacks: tuple[tuple[str, bool], ...] = ()

    def benefit_types(self, duration: int) -> tuple[str, ...]:
        """The benefit types to offer for a video of ``duration`` seconds, in order (§14)."""
        more = [name for name, longer in self.benefit_fallbacks if duration > 4 or not longer]
        return (self.benefit_type, *more)


#: §6.1 (IPT ``VIDEO_MODEL_MAP`` / ``_US`` / ``_ASIA``). Names follow IPT and ZH where MCP v1.10
#: reuses ``jimeng-video-2.0`` for Seedance (§6.1 "Disagreements"); ``-s2.0`` is an alias.
VIDEO_MODELS: Mapping[str, VideoModel] = {
    model.name: model
    for model in (
        VideoModel(
            name="jimeng-video-seedance-2.0",
            internal="dreamina_seedance_40_pro",
            regions=frozenset({"cn"}),
            durations=_SEEDANCE_DURATIONS,
            default_duration=5,
            benefit_type="dreamina_video_seedance_20_pro",
            browser_check=True,
            omni=True,
            benefit_fallbacks=(
                ("dreamina_video_seedance_20_pro_with_video", True),
                ("dreamina_seedance_20_pro", False),
                ("dreamina_seedance_20_pro_with_video", True),
            ),
        ),
        VideoModel(
            name="jimeng-video-seedance-2.0-fast",
            internal="dreamina_seedance_40",
            regions=frozenset({"cn"}),
            durations=_SEEDANCE_DURATIONS,
            default_duration=5,
            # No "video_" prefix: ZH v0.8.3 fixed "credit prededuct failed" this way.
            benefit_type="dreamina_seedance_20_fast",
            browser_check=True,
            omni=True,
            benefit_fallbacks=(
                ("dreamina_seedance_20_fast_with_video", True),
                ("dreamina_video_seedance_20_fast", False),
                ("dreamina_video_seedance_20_fast_with_video", True),
            ),
        ),
        VideoModel(
            name="jimeng-video-3.5-pro",
            internal="dreamina_ic_generate_video_model_vgfm_3.5_pro",
            regions=_ALL,
            durations=(5, 10, 12),
            default_duration=5,
            benefit_type="dreamina_video_seedance_15_pro",
        ),
        VideoModel(
            name="jimeng-video-3.0-pro",
            internal="dreamina_ic_generate_video_model_vgfm_3.0_pro",
            regions=frozenset({"cn"}) | _ASIA,
            durations=(5, 10),
            default_duration=5,
            benefit_type=_BASIC_BENEFIT,
        ),
        VideoModel(
            name="jimeng-video-3.0",
            internal="dreamina_ic_generate_video_model_vgfm_3.0",
            regions=_ALL,
            durations=(5, 10),
            default_duration=5,
            benefit_type=_BASIC_BENEFIT,
            resolutions=VIDEO_RESOLUTIONS,
        ),
        VideoModel(
            name="jimeng-video-3.0-fast",
            internal="dreamina_ic_generate_video_model_vgfm_3.0_fast",
            regions=frozenset({"cn"}) | _ASIA,
            durations=(5, 10),
            default_duration=5,
            benefit_type=_BASIC_BENEFIT,
            resolutions=VIDEO_RESOLUTIONS,
        ),
        VideoModel(
            name="jimeng-video-2.0",
            internal="dreamina_ic_generate_video_model_vgfm_lite",
            regions=frozenset({"cn"}) | _ASIA,
            durations=(5, 10),
            default_duration=5,
            benefit_type=_BASIC_BENEFIT,
            aliases=("jimeng-video-s2.0",),
        ),
        VideoModel(
            name="jimeng-video-2.0-pro",
            internal="dreamina_ic_generate_video_model_vgfm1.0",
            regions=frozenset({"cn"}) | _ASIA,
            durations=(5, 10),
            default_duration=5,
            benefit_type=_BASIC_BENEFIT,
        ),
        VideoModel(
            name="jimeng-video-veo3",
            internal="dreamina_veo3_generate_video",
            regions=_ASIA,
            durations=(8,),
            default_duration=8,
            benefit_type="generate_video_veo3",
        ),
        VideoModel(
            name="jimeng-video-veo3.1",
            internal="dreamina_veo3.1_generate_video",
            regions=_ASIA,
            durations=(8,),
            default_duration=8,
            benefit_type="generate_video_veo3.1",
        ),
        VideoModel(
            name="jimeng-video-sora2",
            internal="dreamina_sora2_generate_video",
            regions=_ASIA,
            durations=(4, 8, 12),
            default_duration=4,
            benefit_type="generate_video_sora2",
        ),
    )
}

DEFAULT_VIDEO_MODEL = "jimeng-video-3.5-pro"  # IPT default, offered on every site
