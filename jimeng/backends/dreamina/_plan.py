"""Turning a request into what one site can serve, or a ValidationError saying why not.

Pure functions over the tables in :mod:`._tables`; nothing is sent. A parameter a model does not
take, or that its site would ignore, is an error naming the field and what is allowed there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from jimeng.backends._sizing import SizeChoice, nearest_choice, size_ask
from jimeng.backends.dreamina._tables import (
    DEFAULT_IMAGE_MODEL,
    DEFAULT_RATIO,
    DEFAULT_RESOLUTION,
    DEFAULT_VIDEO_MODEL,
    DEFAULT_VIDEO_RATIO,
    FOUR_K_CODE_OFFSET,
    IMAGE_MODELS,
    RATIO_CODES,
    RATIO_SIZES,
    RESOLUTIONS,
    VIDEO_MODELS,
    VIDEO_RATIOS,
    ImageModel,
    Region,
    RegionRule,
    VideoModel,
)
from jimeng.errors import ValidationError
from jimeng.models import ImageInput, ImageRequest, VideoRequest
from jimeng.models._transforms import MediaInput

__all__ = [
    "IMAGE_PARAMETERS",
    "MAX_REFERENCES",
    "VIDEO_PARAMETERS",
    "ImagePlan",
    "VideoPlan",
    "image_model",
    "plan_image",
    "plan_video",
    "video_model",
]

#: What the web protocol can express for images (§3.1, §4.3) and videos (§6.2).
IMAGE_PARAMETERS = frozenset(
    {
        "model",
        "size",
        "width",
        "height",
        "images",
        "seed",
        "ratio",
        "resolution",
        "intelligent_ratio",
        "negative_prompt",
        "sample_strength",
        "multi_image",
    }
)
VIDEO_PARAMETERS = frozenset(
    {"model", "duration", "aspect_ratio", "resolution", "seed", "image", "tail_image", "fps"}
    | {"function_mode", "reference_images", "reference_videos", "ms_token", "a_bogus"}
)
#: §12: the models IPT sends through the ImageMultiGenerate scene.
MULTI_IMAGE_MODELS = ("jimeng-4.0", "jimeng-4.1", "jimeng-4.5")
#: §11 (IPT): materials in one omni request — 9 images, 3 videos, 12 in all.
MAX_OMNI_IMAGES = 9
MAX_OMNI_VIDEOS = 3
MAX_OMNI_MATERIALS = 12
MAX_REFERENCES = 10  # §4.3: 1–10 input images
DEFAULT_SAMPLE_STRENGTH = 0.5  # §3.1
_SEED_LIMIT = 2**32


def _site(region: Region) -> str:
    return (
        "the CN site (jimeng.jianying.com)"
        if region.code == "cn"
        else (f"the {region.code.upper()} site (dreamina.capcut.com)")
    )


def _unsupported(given: Mapping[str, Any], accepted: frozenset[str], what: str) -> None:
    for name in sorted(given):
        if name not in accepted:
            raise ValidationError(
                name, f"is not a parameter of Dreamina {what}", allowed=sorted(accepted)
            )


M = TypeVar("M", ImageModel, VideoModel)


def _model(name: str | None, region: Region, table: Mapping[str, M], default: str, kind: str) -> M:
    """The model for a public name, alias or internal id, offered on ``region``'s site."""
    if name is None:
        return table[default]
    offered = [model.name for model in table.values() if region.code in model.regions]
    wanted = name.strip().lower()
    model = table.get(wanted) or next(
        (m for m in table.values() if wanted == m.internal.lower() or wanted in m.aliases),
        None,
    )
    if model is None:
        raise ValidationError(
            "model", f"unknown {kind} model {name!r} on {_site(region)}", allowed=offered
        )
    if region.code not in model.regions:
        raise ValidationError(
            "model",
            f"{model.name} is not offered on {_site(region)}; available there",
            allowed=offered,
        )
    return model


def image_model(name: str | None, region: Region) -> ImageModel:
    return _model(name, region, IMAGE_MODELS, DEFAULT_IMAGE_MODEL, "image")


def video_model(name: str | None, region: Region) -> VideoModel:
    return _model(name, region, VIDEO_MODELS, DEFAULT_VIDEO_MODEL, "video")


# -- images -------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ImagePlan:
    """Everything the payload builder needs, already checked against one site."""

    model: ImageModel
    region: Region
    ratio: str
    resolution: str
    ratio_code: int
    width: int
    height: int
    intelligent_ratio: bool
    negative_prompt: str
    sample_strength: float
    seed: int | None
    images: tuple[ImageInput, ...] = ()
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    #: How a direct width/height was approximated (a note for the result), if it was.
    mapped: str | None = None
    #: §12: the ImageMultiGenerate scene (several pictures from one prompt).
    multi_image: bool = False

    @property
    def is_blend(self) -> bool:
        return bool(self.images)


def _sizes(model: ImageModel, resolution: str) -> Mapping[str, tuple[int, int]]:
    if resolution == "4k" and model.sizes_4k is not None:
        return model.sizes_4k
    return RATIO_SIZES[resolution]


def _choices(model: ImageModel, rule: RegionRule) -> list[SizeChoice]:
    """The (ratio, resolution, size) entries the model can make on this site."""
    ratios = [rule.ratio] if rule.ratio else list(RATIO_CODES)
    resolutions = [rule.resolution] if rule.resolution else list(RESOLUTIONS)
    out = []
    for resolution in resolutions:
        for ratio in ratios:
            width, height = rule.size or _sizes(model, resolution)[ratio]
            out.append(SizeChoice(ratio=ratio, resolution=resolution, width=width, height=height))
    return out


def _check_seed(seed: int | None, field: str = "seed") -> None:
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < _SEED_LIMIT:
        raise ValidationError(field, f"must be an integer in [0, 2**32), got {seed!r}")


def plan_image(request: ImageRequest, region: Region) -> ImagePlan:
    """Check ``request`` against ``region``'s site and resolve every default."""
    given = request.given()
    _unsupported(given, IMAGE_PARAMETERS, "image generation")
    model = image_model(request.model, region)
    images = request.images or ()
    if images and len(images) > MAX_REFERENCES:
        raise ValidationError(
            "images",
            f"blend takes 1–{MAX_REFERENCES} reference images, got {len(images)}",
            allowed=f"1–{MAX_REFERENCES} images",
        )
    if images and request.seed is not None:  # §4.3
        raise ValidationError(
            "seed", "blend (image-to-image) takes no seed on Dreamina; leave it unset"
        )
    _check_seed(request.seed)
    rule = model.rules.get(region.code, RegionRule())

    ask = size_ask(request)
    ratio, resolution, pixels = ask.ratio, ask.resolution, ask.pixels

    # Site rules (§3.2 nanobanana): a value the site would override is an error, not a no-op.
    forced = rule.ratio or rule.resolution
    if forced:
        what = (
            f"always makes {rule.size[0]}x{rule.size[1]} ({rule.ratio}, {rule.resolution})"
            if rule.size
            else f"always renders at {rule.resolution}"
        )
        if rule.ratio and ratio is not None and ratio != rule.ratio:
            raise ValidationError(
                "ratio",
                f"{model.name} on {_site(region)} {what}; upstream would ignore ratio "
                f"{ratio!r}, so leave it out",
                allowed=[rule.ratio],
            )
        if rule.resolution and resolution is not None and resolution != rule.resolution:
            raise ValidationError(
                "resolution",
                f"{model.name} on {_site(region)} {what}; upstream would ignore resolution "
                f"{resolution!r}, so leave it out",
                allowed=[rule.resolution],
            )

    mapped = None
    if pixels is not None:
        # The site only ever sends its table's sizes: the nearest entry of the same
        # orientation, with a note when it is not exactly what was asked for.
        choice = nearest_choice(pixels[0], pixels[1], _choices(model, rule))
        ratio, resolution = choice.ratio, choice.resolution
        width, height = choice.width, choice.height
        if (width, height) != pixels:
            mapped = (
                f"{ask.field} {pixels[0]}x{pixels[1]} approximated as {ratio} at {resolution} "
                f"({width}x{height}): the web protocol makes its table's sizes only"
            )
    else:
        ratio = rule.ratio or ratio or DEFAULT_RATIO
        resolution = rule.resolution or resolution or DEFAULT_RESOLUTION
        width, height = rule.size or _sizes(model, resolution)[ratio]

    code = RATIO_CODES[ratio]
    if resolution == "4k" and model.four_k_offset:
        code += FOUR_K_CODE_OFFSET  # §3.3

    multi = bool(request.multi_image)
    if multi:
        if model.name not in MULTI_IMAGE_MODELS:
            raise ValidationError(
                "multi_image", f"{model.name} has no multi-image scene", allowed=MULTI_IMAGE_MODELS
            )
        if images:
            raise ValidationError("multi_image", "is for text-to-image only, not with images")

    intelligent = bool(request.intelligent_ratio)
    if intelligent:
        if not model.intelligent_ratio:  # §3.4
            supporting = [
                m.name
                for m in IMAGE_MODELS.values()
                if m.intelligent_ratio and region.code in m.regions
            ]
            raise ValidationError(
                "intelligent_ratio",
                f"{model.name} ignores intelligent_ratio; it works with",
                allowed=supporting,
            )
        if not images and (request.ratio is not None or pixels is not None):
            raise ValidationError(
                "intelligent_ratio",
                "the server picks the ratio from the prompt; do not also give ratio or a size",
            )
    return ImagePlan(
        model=model,
        region=region,
        ratio=ratio,
        resolution=resolution,
        ratio_code=code,
        width=width,
        height=height,
        intelligent_ratio=intelligent,
        negative_prompt=request.negative_prompt or "",
        sample_strength=(
            request.sample_strength
            if request.sample_strength is not None
            else DEFAULT_SAMPLE_STRENGTH
        ),
        seed=request.seed,
        images=tuple(images),
        extra=dict(request.extra or {}),
        mapped=mapped,
        multi_image=multi,
    )


# -- videos -------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class VideoPlan:
    model: VideoModel
    region: Region
    duration: int
    ratio: str
    resolution: str | None
    seed: int | None
    first_frame: ImageInput | None = None
    last_frame: ImageInput | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    #: §11: omni reference mode, with its image materials in prompt-reference order.
    omni: bool = False
    references: tuple[ImageInput, ...] = ()
    #: §11: omni video materials (uploaded through VOD), after the images in material order.
    videos: tuple[MediaInput, ...] = ()
    #: §14: benefit types to offer, in order (the first is the model's own).
    benefit_types: tuple[str, ...] = ()
    #: §15: the caller's browser tokens for the generate call's query (CN only).
    browser_tokens: Mapping[str, str] = attrs.field(factory=dict, repr=False)

    @property
    def frames(self) -> tuple[ImageInput, ...]:
        """What to upload, in order: the omni materials, or the first/last frames."""
        if self.omni:
            return self.references
        return tuple(f for f in (self.first_frame, self.last_frame) if f is not None)


def plan_video(request: VideoRequest, region: Region) -> VideoPlan:
    given = request.given()
    _unsupported(given, VIDEO_PARAMETERS, "video generation")
    model = video_model(request.model, region)
    mode = request.function_mode or "first_last_frames"
    if mode not in ("first_last_frames", "omni_reference"):
        raise ValidationError(
            "function_mode",
            f"unknown mode {mode!r}",
            allowed=["first_last_frames", "omni_reference"],
        )
    omni = mode == "omni_reference"
    references = request.reference_images or ()
    videos = request.reference_videos or ()
    if omni:
        if not model.omni:  # §11
            raise ValidationError(
                "function_mode",
                f"omni_reference needs a Seedance 2.0 model, not {model.name}",
                allowed=[m.name for m in VIDEO_MODELS.values() if m.omni],
            )
        if request.image is not None or request.tail_image is not None:
            raise ValidationError(
                "image",
                "omni reference mode takes its materials as reference_images (named in the "
                "prompt as @image_file_1, @image_file_2…), not first/last frames",
            )
        if len(references) > MAX_OMNI_IMAGES:
            raise ValidationError(
                "reference_images",
                f"omni reference mode takes at most {MAX_OMNI_IMAGES} images, got "
                f"{len(references)}",
                allowed=f"0–{MAX_OMNI_IMAGES} images",
            )
        if len(videos) > MAX_OMNI_VIDEOS:
            raise ValidationError(
                "reference_videos",
                f"omni reference mode takes at most {MAX_OMNI_VIDEOS} videos, got {len(videos)}",
                allowed=f"0–{MAX_OMNI_VIDEOS} videos",
            )
        if not 1 <= len(references) + len(videos) <= MAX_OMNI_MATERIALS:
            raise ValidationError(
                "reference_images",
                "omni reference mode needs at least one material (reference_images or "
                f"reference_videos) and takes at most {MAX_OMNI_MATERIALS}",
                allowed=f"1–{MAX_OMNI_MATERIALS} materials",
            )
    elif references or videos:
        raise ValidationError(
            "reference_images" if references else "reference_videos",
            "are omni reference materials; pass function_mode='omni_reference' (Seedance 2.0)",
        )
    tokens = {
        name: value
        for name, value in (("msToken", request.ms_token), ("a_bogus", request.a_bogus))
        if value
    }
    if tokens and region.code != "cn":  # §15
        raise ValidationError(
            "ms_token" if request.ms_token else "a_bogus",
            f"only the CN site takes browser tokens; {_site(region)} would ignore them",
        )
    if request.fps is not None and request.fps != 24:
        raise ValidationError("fps", "the web protocol always renders 24 fps", allowed=[24])
    duration = model.default_duration
    if request.duration is not None:
        if float(request.duration) != int(request.duration) or int(request.duration) not in (
            model.durations
        ):
            raise ValidationError(
                "duration",
                f"{model.name} makes videos of {_durations(model.durations)} seconds, "
                f"got {request.duration:g}",
                allowed=_durations(model.durations),
            )
        duration = int(request.duration)
    if request.tail_image is not None and request.image is None:
        raise ValidationError("tail_image", "a last frame needs a first frame (image=)")
    ratio = DEFAULT_VIDEO_RATIO
    if request.aspect_ratio is not None:
        if request.image is not None:
            # §6.1: with an image input the ratio is decided by the image.
            raise ValidationError(
                "aspect_ratio", "with a first frame the video takes the image's aspect ratio"
            )
        ratio = request.aspect_ratio.strip()
        if ratio not in VIDEO_RATIOS:
            raise ValidationError(
                "aspect_ratio", f"unknown aspect ratio {ratio!r}", allowed=VIDEO_RATIOS
            )
    resolution: str | None = None
    if model.resolutions:
        resolution = model.resolutions[0]
    if request.resolution is not None:
        wanted = request.resolution.strip().lower()
        if not model.resolutions:  # §6.1
            raise ValidationError(
                "resolution",
                f"{model.name} takes no resolution; only jimeng-video-3.0 and "
                "jimeng-video-3.0-fast do",
            )
        if wanted not in model.resolutions:
            raise ValidationError(
                "resolution",
                f"unknown resolution {request.resolution!r}",
                allowed=model.resolutions,
            )
        resolution = wanted
    _check_seed(request.seed)
    return VideoPlan(
        model=model,
        region=region,
        duration=duration,
        ratio=ratio,
        resolution=resolution,
        seed=request.seed,
        first_frame=request.image,
        last_frame=request.tail_image,
        extra=dict(request.extra or {}),
        omni=omni,
        references=tuple(references),
        videos=tuple(videos),
        benefit_types=model.benefit_types(duration),
        browser_tokens=tokens,
    )


def _durations(values: tuple[int, ...]) -> str:
    if len(values) > 3 and values == tuple(range(values[0], values[-1] + 1)):
        return f"{values[0]}–{values[-1]}"
    return ", ".join(str(v) for v in values)
