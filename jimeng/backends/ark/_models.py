"""The Ark models: public names, model ids, and the rules each applies to a request
(protocols/volcengine.md §12.2 for Seedream images, §12.3 for Seedance videos).

Each spec validates a request completely and builds its body; a parameter a model does not take
is a :class:`~jimeng.errors.ValidationError`, never silently dropped. Facts the protocol notes mark
uncertain ([?], [3P]) are named where they are used.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from jimeng._imageinfo import ImageLimits, check_image, encode_base64
from jimeng.backends._sizing import (
    DEFAULT_RESOLUTION,
    fit_area,
    fit_sides,
    recommended_size,
    size_ask,
)
from jimeng.errors import ConfigurationError, ValidationError
from jimeng.models import SIZE_PRESETS, ImageInput, ImageRequest, VideoRequest

__all__ = [
    "DEFAULT_IMAGE_MODEL",
    "DEFAULT_VIDEO_MODEL",
    "IMAGE_MODELS",
    "VIDEO_MODELS",
    "VIDEO_RATIOS",
    "ArkImageModel",
    "ArkVideoModel",
    "image_url",
    "model_for",
]

_MB = 1024 * 1024

#: §12.2: reference images for Seedream — jpeg/png/webp/bmp/gif (tiff too, which is not sniffed
#: here: a local TIFF is refused, give it by URL), <= 10 MB, ratio within [1/16, 16], sides
#: > 14 px, <= 6000x6000.
SEEDREAM_INPUT = ImageLimits(
    formats=("jpeg", "png", "webp", "bmp", "gif"),
    max_bytes=10 * _MB,
    max_side=6000,
    min_short_side=15,
    max_ratio=16.0,
)
#: §12.2: the 3.0 edit model's older limits, ratio within [1/3, 3].
SEEDEDIT_INPUT = attrs.evolve(SEEDREAM_INPUT, formats=("jpeg", "png"), max_ratio=3.0)
#: §12.3: frames and reference images for Seedance — ratio within (0.4, 2.5), sides in
#: (300, 6000) px, < 30 MB.
SEEDANCE_INPUT = ImageLimits(
    formats=("jpeg", "png", "webp", "bmp", "gif"),
    max_bytes=30 * _MB,
    max_side=6000,
    min_short_side=300,
    max_ratio=2.5,
)

_CONTENT_TYPES = {"jpeg": "jpeg", "png": "png", "webp": "webp", "bmp": "bmp", "gif": "gif"}


def image_url(image: ImageInput, limits: ImageLimits, *, field: str) -> str:
    """A URL as given, or a local image as a ``data:image/<fmt>;base64,`` URI (§12.2)."""
    if image.url is not None and image.data is None:
        return image.url
    if image.data is None:
        raise ValidationError(
            field,
            f"the file {image.describe()} has not been read; pass it through the client, "
            "or give bytes",
        )
    info = check_image(image.data, limits, field=field)
    return f"data:image/{_CONTENT_TYPES[info.format]};base64,{encode_base64(image.data)}"


def _check_local(image: ImageInput, limits: ImageLimits, *, field: str) -> None:
    if image.data is not None:
        check_image(image.data, limits, field=field)


def _seed(seed: int | None) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or not -1 <= seed <= 2**32 - 1:
        raise ValidationError(
            "seed", f"must be an integer in [-1, 4294967295], got {seed!r}", allowed="-1 or 0–2³²−1"
        )
    return seed


def _refuse_unknown(given: Mapping[str, Any], accepts: frozenset[str], where: str) -> None:
    for name in sorted(given):
        if name not in accepts:
            raise ValidationError(name, f"is not a parameter of {where}", allowed=sorted(accepts))


# -- images -----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ArkImageModel:
    """One Seedream (or SeedEdit) model on Ark."""

    name: str
    model_id: str
    #: Size presets the model takes (the model picks the exact size, §12.2).
    presets: tuple[str, ...] = ()
    #: Bounds of an explicit ``WxH``: total pixels and the ratio's bound (long/short).
    min_pixels: int = 1280 * 720
    max_pixels: int = 4096 * 4096
    max_ratio: float = 16.0
    #: Explicit sizes as whole-side bounds instead (3.0 text-to-image).
    side_range: tuple[int, int] | None = None
    #: Only ``size="adaptive"`` (SeedEdit 3.0 follows its input image).
    adaptive_only: bool = False
    min_images: int = 0
    max_images: int = 14
    limits: ImageLimits = SEEDREAM_INPUT
    #: Group generation (``sequential_image_generation``), 4.x only.
    group: bool = True
    #: 3.0 models take ``seed`` and ``guidance_scale`` (our ``scale``) in [1, 10].
    legacy: bool = False

    @property
    def accepts(self) -> frozenset[str]:
        names = {"size", "width", "height", "ratio", "resolution", "watermark", "response_format"}
        if self.max_images:
            names.add("images")
        if self.group:
            names |= {"max_images", "force_single"}
        if self.legacy:
            names |= {"seed", "scale"}
        if self.adaptive_only:
            names -= {"width", "height", "ratio", "resolution"}
        return frozenset(names)

    @property
    def sizes(self) -> str:
        """The size rule in a few words (capabilities, docs)."""
        if self.adaptive_only:
            return "follows the input image"
        if self.side_range is not None:
            return f"exact WxH, sides {self.side_range[0]}–{self.side_range[1]}"
        presets = "/".join(self.presets)
        return f"{presets} presets; exact WxH, {self.min_pixels}–{self.max_pixels} px"

    def validate(self, request: ImageRequest) -> None:
        given = request.given()
        given.pop("model", None)
        _refuse_unknown(given, self.accepts, f"{self.name} on Ark")
        images = request.images or ()
        if not self.min_images <= len(images) <= self.max_images:
            wanted = (
                f"exactly {self.min_images}"
                if self.min_images == self.max_images
                else f"{self.min_images}–{self.max_images}"
            )
            raise ValidationError(
                "images", f"{self.name} takes {wanted} images, got {len(images)}", allowed=wanted
            )
        for index, image in enumerate(images):
            _check_local(image, self.limits, field=f"images[{index}]")
        self.fields(request)

    def _size(self, request: ImageRequest) -> tuple[str | None, tuple[str, ...]]:
        """``size`` (a preset or ``WxH``) for the one sizing vocabulary of every backend, and
        notes on what was approximated. Only what the model cannot make is refused."""
        if self.adaptive_only:
            if request.size is not None or request.width is not None:
                raise ValidationError(
                    "size" if request.size is not None else "width",
                    f"{self.name} follows its input image's size; give no size",
                )
            if request.ratio is not None or request.resolution is not None:
                raise ValidationError(
                    "ratio" if request.ratio is not None else "resolution",
                    f"{self.name} follows its input image's size; give no ratio or resolution",
                )
            return None, ()
        ask = size_ask(request)
        if ask.empty:
            return None, ()
        if ask.pixels is None and ask.ratio is None:
            assert ask.resolution is not None
            return self._preset(ask.resolution.upper())
        if ask.pixels is not None:
            width, height = ask.pixels
            asked = f"{ask.field} {width}x{height}"
        else:
            assert ask.ratio is not None
            resolution = ask.resolution or DEFAULT_RESOLUTION
            width, height = recommended_size(ask.ratio, resolution)
            asked = f"{ask.ratio} at {resolution} ({width}x{height})"
        if max(width, height) / min(width, height) > self.max_ratio:
            raise ValidationError(
                ask.field,
                f"{width}x{height} is too elongated for {self.name}; the ratio must be within "
                f"[1/{self.max_ratio:g}, {self.max_ratio:g}]",
                allowed=f"width/height in [1/{self.max_ratio:g}, {self.max_ratio:g}]",
            )
        if self.side_range is not None:
            low, high = self.side_range
            fitted = fit_sides(width, height, low, high)
            rule = f"each side within [{low}, {high}]"
        else:
            fitted = fit_area(width, height, self.min_pixels, self.max_pixels)
            rule = f"{self.min_pixels} to {self.max_pixels} pixels"
        notes: tuple[str, ...] = ()
        if fitted != (width, height):
            notes = (f"{asked} scaled to {fitted[0]}x{fitted[1]}: {self.name} takes {rule}",)
        return f"{fitted[0]}x{fitted[1]}", notes

    def _preset(self, preset: str) -> tuple[str, tuple[str, ...]]:
        """A bare preset: the model picks the exact size (§12.2). A preset the model lacks
        becomes its nearest one, with a note; a model without presets gets the square size."""
        if preset in self.presets:
            return preset, ()
        if self.presets:
            order = ["1K", "2K", "3K", "4K"]
            nearest = min(self.presets, key=lambda p: abs(order.index(p) - order.index(preset)))
            return nearest, (f"size {preset} is not offered by {self.name}: asked for {nearest}",)
        side = SIZE_PRESETS[preset][0]
        low, high = self.side_range or (side, side)
        fitted = fit_sides(side, side, low, high)
        notes: tuple[str, ...] = ()
        if fitted != (side, side):
            notes = (
                f"size {preset} ({side}x{side}) scaled to {fitted[0]}x{fitted[1]}: {self.name} "
                f"takes each side within [{low}, {high}]",
            )
        return f"{fitted[0]}x{fitted[1]}", notes

    def notes(self, request: ImageRequest) -> tuple[str, ...]:
        """What the size translation approximated (empty when exact)."""
        return self._size(request)[1]

    def fields(self, request: ImageRequest) -> dict[str, Any]:
        """The body fields besides ``model``, ``prompt`` and ``image``."""
        body: dict[str, Any] = {}
        size, _ = self._size(request)
        if size is not None:
            body["size"] = size
        if request.max_images is not None:
            if not 1 <= request.max_images <= 15 - len(request.images or ()):
                raise ValidationError(
                    "max_images",
                    f"must be in [1, 15] with inputs + outputs <= 15, got {request.max_images}",
                    allowed=f"1–{15 - len(request.images or ())}",
                )
            if request.force_single:
                raise ValidationError("max_images", "cannot be combined with force_single")
            body["sequential_image_generation"] = "auto"
            body["sequential_image_generation_options"] = {"max_images": request.max_images}
        elif request.force_single is not None and self.group:
            # §12.2: "disabled" (the default) is one image; "auto" lets the model make a group.
            body["sequential_image_generation"] = "disabled" if request.force_single else "auto"
        if request.response_format is not None:
            if request.response_format not in ("url", "b64_json"):
                raise ValidationError(
                    "response_format",
                    f"unknown format {request.response_format!r}",
                    allowed=["url", "b64_json"],
                )
            body["response_format"] = request.response_format
        watermark = request.watermark
        if watermark is not None and (
            int(watermark.position) != 0 or watermark.text or watermark.opacity != 1.0
        ):
            raise ValidationError(
                "watermark",
                "Ark places its own 'AI生成' mark bottom-right; position, text and opacity "
                "cannot be set",
                allowed="watermark=True or False",
            )
        # §12.2: Ark marks images unless told not to; the library's default is no mark.
        body["watermark"] = watermark is not None
        seed = _seed(request.seed)
        if seed is not None:
            body["seed"] = seed
        if request.scale is not None:
            scale = request.scale
            if (
                isinstance(scale, bool)
                or not isinstance(scale, numbers.Real)
                or not 1 <= scale <= 10
            ):
                raise ValidationError(
                    "scale",
                    f"is {self.name}'s guidance_scale, in [1, 10]; got {scale!r}",
                    allowed="[1, 10]",
                )
            body["guidance_scale"] = float(scale)
        return body

    def body(self, request: ImageRequest, model_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model_id, "prompt": request.prompt}
        images = [
            image_url(image, self.limits, field=f"images[{index}]")
            for index, image in enumerate(request.images or ())
        ]
        if images:
            body["image"] = images[0] if len(images) == 1 else images
        body.update(self.fields(request))
        if request.extra:
            body.update(request.extra)
        return body


# -- videos -----------------------------------------------------------------------------------

VIDEO_RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive")


@attrs.frozen(kw_only=True)
class ArkVideoModel:
    """One Seedance model on Ark (§12.3)."""

    name: str
    model_id: str
    durations: tuple[int, int] = (2, 12)
    #: Whether ``duration=-1`` (the model chooses) is allowed.
    auto_duration: bool = False
    resolutions: tuple[str, ...] = ("480p", "720p", "1080p")
    #: ``text`` (no image), ``frames`` (first, first+last), ``references`` (reference images).
    text: bool = True
    first_frame: bool = True
    last_frame: bool = True
    max_references: int = 0
    frames: bool = True
    camera_fixed: bool = True
    audio: bool = False
    limits: ImageLimits = SEEDANCE_INPUT

    @property
    def accepts(self) -> frozenset[str]:
        names = {"duration", "aspect_ratio", "resolution", "seed", "watermark", "callback_url"}
        names.add("fps")
        if self.first_frame:
            names.add("image")
        if self.last_frame:
            names.add("tail_image")
        if self.max_references:
            names.add("reference_images")
        if self.frames:
            names.add("frames")
        if self.camera_fixed:
            names.add("camera_fixed")
        if self.audio:
            names.add("generate_audio")
        return frozenset(names)

    def validate(self, request: VideoRequest) -> None:
        given = request.given()
        given.pop("model", None)
        _refuse_unknown(given, self.accepts, f"{self.name} on Ark")
        references = request.reference_images or ()
        if references and (request.image is not None or request.tail_image is not None):
            # §12.3: reference images and first/last frames are modes that exclude each other.
            raise ValidationError(
                "reference_images",
                "reference images cannot be combined with first/last frames: they are two "
                "different modes; give one or the other",
            )
        if request.tail_image is not None and request.image is None:
            raise ValidationError("image", "a last frame (tail_image) needs a first frame too")
        if len(references) > self.max_references:
            raise ValidationError(
                "reference_images",
                f"{self.name} takes at most {self.max_references} reference images, "
                f"got {len(references)}",
                allowed=f"0–{self.max_references}",
            )
        if not self.text and request.image is None and not references:
            raise ValidationError(
                "image",
                f"{self.name} is an image-to-video model: give image= (first frame) "
                "or reference_images=",
            )
        for field, image in self._images(request):
            _check_local(image, self.limits, field=field)
        self.fields(request)

    @staticmethod
    def _images(request: VideoRequest) -> list[tuple[str, ImageInput]]:
        pairs = [(name, getattr(request, name)) for name in ("image", "tail_image")]
        pairs += [
            (f"reference_images[{index}]", image)
            for index, image in enumerate(request.reference_images or ())
        ]
        return [(field, image) for field, image in pairs if image is not None]

    def fields(self, request: VideoRequest) -> dict[str, Any]:
        """The top-level body fields (§12.3 prefers them to ``--flags`` in the text)."""
        body: dict[str, Any] = {}
        if request.duration is not None:
            body["duration"] = self._duration(request.duration)
        if request.frames is not None:
            frames = request.frames
            if request.duration is not None:
                raise ValidationError("frames", "give either duration or frames, not both")
            if not 29 <= frames <= 289 or (frames - 25) % 4:
                raise ValidationError(
                    "frames",
                    f"must be 25 + 4n within [29, 289], got {frames}",
                    allowed="29, 33…289",
                )
            body["frames"] = frames
        if request.fps is not None and request.fps != 24:
            raise ValidationError(
                "fps", f"Seedance renders 24 fps only, got {request.fps}", allowed=[24]
            )
        if request.resolution is not None:
            resolution = request.resolution.strip().lower()
            if resolution not in self.resolutions:
                raise ValidationError(
                    "resolution",
                    f"{self.name} takes {', '.join(self.resolutions)}, not {request.resolution!r}",
                    allowed=list(self.resolutions),
                )
            if request.reference_images and resolution == "1080p":
                raise ValidationError(
                    "resolution",
                    "reference-image mode does not render 1080p",
                    allowed=["480p", "720p"],
                )
            body["resolution"] = resolution
        if request.aspect_ratio is not None:
            ratio = request.aspect_ratio.strip()
            if ratio not in VIDEO_RATIOS:
                raise ValidationError(
                    "aspect_ratio", f"unknown ratio {request.aspect_ratio!r}", allowed=VIDEO_RATIOS
                )
            body["ratio"] = ratio
        seed = _seed(request.seed)
        if seed is not None:
            body["seed"] = seed
        if request.camera_fixed is not None:
            if request.reference_images:
                raise ValidationError("camera_fixed", "is not available in reference-image mode")
            body["camera_fixed"] = bool(request.camera_fixed)
        if request.generate_audio is not None:
            body["generate_audio"] = bool(request.generate_audio)
        watermark = request.watermark
        if watermark is not None:
            if int(watermark.position) != 0 or watermark.text or watermark.opacity != 1.0:
                raise ValidationError(
                    "watermark",
                    "Ark places its own mark; position, text and opacity cannot be set",
                    allowed="watermark=True or False",
                )
            body["watermark"] = True
        if request.callback_url is not None:
            if not request.callback_url.lower().startswith(("http://", "https://")):
                raise ValidationError("callback_url", "must be an http(s) URL")
            body["callback_url"] = request.callback_url
        return body

    def _duration(self, duration: float) -> int:
        low, high = self.durations
        whole = isinstance(duration, numbers.Real) and float(duration).is_integer()
        value = int(duration) if whole else None
        if value == -1 and self.auto_duration:
            return -1
        if value is None or not low <= value <= high:
            allowed = f"whole seconds {low}–{high}" + (
                " or -1 (model chooses)" if self.auto_duration else ""
            )
            raise ValidationError(
                "duration", f"{self.name} takes {allowed}, got {duration!r}", allowed=allowed
            )
        return value

    def body(self, request: VideoRequest, model_id: str) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": request.prompt}]
        for field, image in self._images(request):
            role = {"image": "first_frame", "tail_image": "last_frame"}.get(
                field, "reference_image"
            )
            content.append(
                {
                    "type": "image_url",
                    "image_url": {"url": image_url(image, self.limits, field=field)},
                    "role": role,
                }
            )
        body: dict[str, Any] = {"model": model_id, "content": content}
        body.update(self.fields(request))
        if request.extra:
            body.update(request.extra)
        return body


# -- the tables -------------------------------------------------------------------------------

IMAGE_MODELS: Mapping[str, ArkImageModel] = {
    spec.name: spec
    for spec in (
        ArkImageModel(
            name="seedream-4.0", model_id="doubao-seedream-4-0-250828", presets=("1K", "2K", "4K")
        ),
        # §12.2 [3P + one live report]: 4.5 takes 2K/4K and at least 2560x1440 pixels.
        ArkImageModel(
            name="seedream-4.5",
            model_id="doubao-seedream-4-5-251128",
            presets=("2K", "4K"),
            min_pixels=2560 * 1440,
        ),
        # §12.2 [3P]: 5.0 lite presets 2K/3K; its W×H bounds are not documented, 4.5's are used.
        ArkImageModel(
            name="seedream-5.0-lite",
            model_id="doubao-seedream-5-0-260128",
            presets=("2K", "3K"),
            min_pixels=2560 * 1440,
        ),
        # Seedream 3.0 text-to-image: WxH with sides in [512, 2048], seed, guidance_scale.
        ArkImageModel(
            name="seedream-3.0",
            model_id="doubao-seedream-3-0-t2i-250415",
            side_range=(512, 2048),
            max_images=0,
            group=False,
            legacy=True,
        ),
        ArkImageModel(
            name="seededit-3.0",
            model_id="doubao-seededit-3-0-i2i-250628",
            adaptive_only=True,
            min_images=1,
            max_images=1,
            limits=SEEDEDIT_INPUT,
            group=False,
            legacy=True,
        ),
    )
}

VIDEO_MODELS: Mapping[str, ArkVideoModel] = {
    spec.name: spec
    for spec in (
        ArkVideoModel(name="seedance-1.0-pro", model_id="doubao-seedance-1-0-pro-250528"),
        # pro-fast: first frame only [?] (no doc names a last-frame mode for it).
        ArkVideoModel(
            name="seedance-1.0-pro-fast",
            model_id="doubao-seedance-1-0-pro-fast-251015",
            last_frame=False,
        ),
        ArkVideoModel(
            name="seedance-1.0-lite-t2v",
            model_id="doubao-seedance-1-0-lite-t2v-250428",
            first_frame=False,
            last_frame=False,
        ),
        ArkVideoModel(
            name="seedance-1.0-lite-i2v",
            model_id="doubao-seedance-1-0-lite-i2v-250428",
            text=False,
            max_references=4,
        ),
        ArkVideoModel(
            name="seedance-1.5-pro",
            model_id="doubao-seedance-1-5-pro-251215",
            durations=(4, 12),
            auto_duration=True,
            frames=False,
            audio=True,
        ),
        ArkVideoModel(
            name="seedance-2.0",
            model_id="doubao-seedance-2-0-260128",
            durations=(4, 15),
            auto_duration=True,
            max_references=9,
            frames=False,
            camera_fixed=False,
            audio=True,
        ),
        ArkVideoModel(
            name="seedance-2.0-fast",
            model_id="doubao-seedance-2-0-fast-260128",
            durations=(4, 15),
            auto_duration=True,
            resolutions=("480p", "720p"),
            max_references=9,
            frames=False,
            camera_fixed=False,
            audio=True,
        ),
    )
}

DEFAULT_IMAGE_MODEL = "seedream-4.0"
DEFAULT_VIDEO_MODEL = "seedance-1.0-pro"


def byteplus_id(model_id: str) -> str:
    """§12.1 [3P]: BytePlus ids drop the ``doubao-`` prefix."""
    return model_id.removeprefix("doubao-")


def model_for(
    model: str | None,
    table: Mapping[str, Any],
    ids: Mapping[str, str],
    *,
    default: str,
    what: str,
) -> tuple[Any, str]:
    """The spec and the model (or endpoint) id for a public name, alias or id."""
    if model is None:
        return table[default], ids[default]
    wanted = model.strip()
    lowered = wanted.lower()
    for name, spec in table.items():
        known = {name, spec.model_id, byteplus_id(spec.model_id), ids[name]}
        if lowered in known or wanted in known:
            return spec, ids[name]
    hint = ""
    if lowered.startswith("ep-"):
        hint = (
            "; an endpoint id must be mapped to the model it serves, e.g. "
            "Ark(models={'seedream-4.0': 'ep-…'}), so its rules can be checked"
        )
    raise ValidationError(
        "model", f"unknown {what} model {model!r} on Ark{hint}", allowed=sorted(table)
    )


def model_ids(
    overrides: Mapping[str, str], *, byteplus: bool, known: Sequence[Mapping[str, Any]]
) -> dict[str, str]:
    """Public name → the id sent as ``model`` (BytePlus spelling, overrides applied)."""
    names = {name: spec for table in known for name, spec in table.items()}
    for name, value in overrides.items():
        if name not in names:
            raise ConfigurationError(
                f"models: unknown model {name!r}; known: {', '.join(sorted(names))}"
            )
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(f"models[{name!r}] must be a non-empty model or endpoint id")
    ids = {
        name: byteplus_id(spec.model_id) if byteplus else spec.model_id
        for name, spec in names.items()
    }
    ids.update({name: value.strip() for name, value in overrides.items()})
    return ids
