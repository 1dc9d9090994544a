"""The Volcengine image models: which ``req_key`` serves which public model name, and the
parameters each accepts (protocols/volcengine.md §3.1).

Each spec validates a request completely and builds its submit body; a parameter a model does not
take is a :class:`~jimeng.errors.ValidationError`, never silently dropped. Public names read the
same on every backend where the model exists (``jimeng-4.0``, ``jimeng-4.6``, ``jimeng-3.1``,
``jimeng-3.0``, ``jimeng-i2i-3.0``).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from jimeng._imageinfo import ImageLimits
from jimeng.backends._sizing import (
    DEFAULT_RESOLUTION,
    fit_area,
    fit_sides,
    recommended_size,
    size_ask,
)
from jimeng.backends.volcengine._inputs import (
    I2I_INPUT,
    IMAGE_INPUT,
    check_local,
    encode_images,
)
from jimeng.errors import ConfigurationError, ValidationError
from jimeng.models import SIZE_PRESETS, ImageRequest, TaskKind

__all__ = [
    "DEFAULT_IMAGE_MODEL",
    "IMAGE_MODELS",
    "RESULT_OPTIONS",
    "ImageModelSpec",
    "check_overrides",
    "check_seed",
    "image_spec",
    "with_req_keys",
]

_AREA_MIN = 1024 * 1024
_AREA_MAX = 4096 * 4096
_RATIO_FLOOR = 1 / 16
_RATIO_CEIL = 16.0
_V3_SIDE = (512, 2048)

#: Fields that travel in ``req_json`` at get-result time rather than in the submit body (§2.3).
RESULT_OPTIONS = frozenset({"watermark", "aigc_meta", "return_url"})

#: A builder returns the submit fields of one ``req_key`` and notes on what it approximated.
Built = tuple[dict[str, Any], tuple[str, ...]]
Builder = Callable[["ImageModelSpec", ImageRequest, bool], Built]


@attrs.frozen(kw_only=True)
class ImageModelSpec:
    """One image ``req_key`` and its rules."""

    name: str
    req_key: str
    kind: TaskKind = TaskKind.IMAGE
    aliases: tuple[str, ...] = ()
    max_prompt: int = 800
    min_images: int = 0
    max_images: int = 0
    limits: ImageLimits = IMAGE_INPUT
    #: Request fields this model takes (besides ``prompt`` and ``model``).
    accepts: frozenset[str] = frozenset()
    #: How pixel sizes are honoured (for ``capabilities()``; the builder enforces it).
    sizes: str = "exact WxH, area 1024²–4096²"
    #: The relays of the official format document ``model``/``resolution`` for this key only.
    relay_extras: bool = False
    build: Builder = attrs.field(repr=False)

    def validate(self, request: ImageRequest, *, relay: bool = False) -> Built:
        """Refuse what this model cannot take; return the submit fields and notes the checks
        computed (:meth:`prepare` can reuse them)."""
        given = request.given()
        given.pop("model", None)
        unknown = given.keys() - self.accepts
        if unknown:
            name = min(unknown)  # the first in name order, whatever the call's order
            raise ValidationError(
                name,
                f"is not a parameter of {self.name} ({self.req_key}) on Volcengine",
                allowed=sorted(self.accepts),
            )
        if len(request.prompt) > self.max_prompt:
            raise ValidationError(
                "prompt",
                f"is {len(request.prompt)} characters; {self.name} takes at most {self.max_prompt}",
                allowed=f"1–{self.max_prompt} characters",
            )
        images = request.images or ()
        if not self.min_images <= len(images) <= self.max_images:
            wanted = (
                f"exactly {self.min_images}"
                if self.min_images == self.max_images
                else f"{self.min_images}–{self.max_images}"
            )
            raise ValidationError(
                "images",
                f"{self.name} takes {wanted} images, got {len(images)}",
                allowed=f"{wanted} images",
            )
        for index, image in enumerate(images):
            check_local(image, self.limits, field=f"images[{index}]")
        return self.build(self, request, relay)  # runs the value checks

    def notes(self, request: ImageRequest, *, relay: bool = False) -> tuple[str, ...]:
        """What the submit body changes from the request (e.g. a size scaled into range)."""
        return self.build(self, request, relay)[1]

    def body(self, request: ImageRequest, *, relay: bool = False) -> dict[str, Any]:
        """The submit body. Images must all be URLs or all be local (see ``_inputs``)."""
        return self.prepare(request, relay=relay)[0]

    def prepare(
        self, request: ImageRequest, *, relay: bool = False, built: Built | None = None
    ) -> Built:
        """The submit body and the notes on what it changed from the request, in one pass
        (``built``: what :meth:`validate` returned for this very request)."""
        body: dict[str, Any] = {"req_key": self.req_key, "prompt": request.prompt}
        if request.images:
            body.update(encode_images(request.images))
        fields, notes = built if built is not None else self.build(self, request, relay)
        body.update(fields)
        if relay and self.relay_extras:
            body["model"] = self.name  # gateway.md §10: the relay's name is ours ("jimeng-4.0")
        if request.extra:
            body.update(request.extra)
        return body, notes


# -- value checks shared by the builders ----------------------------------------------------------


def check_seed(seed: int | None) -> int | None:
    """Seeds are integers; -1 means random (§3.1, §3.2)."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < -1:
        raise ValidationError(
            "seed", f"must be an integer >= -1, got {seed!r}", allowed="-1 (random) or >= 0"
        )
    return seed


def _unit_scale(scale: float | None) -> float | None:
    if scale is None:
        return None
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not 0 <= scale <= 1:
        raise ValidationError("scale", f"must be in [0, 1], got {scale!r}", allowed="[0, 1]")
    return round(float(scale), 2)


def _check_ratio_bound(name: str, value: float | None) -> None:
    if value is not None and not _RATIO_FLOOR <= value < _RATIO_CEIL:
        raise ValidationError(name, f"must be in [1/16, 16), got {value}", allowed="[0.0625, 16)")


def _area_size(
    request: ImageRequest,
    body: dict[str, Any],
    *,
    min_ratio: float,
    max_ratio: float,
    relay: bool,
) -> tuple[str, ...]:
    """4.x sizes: an area in [1024², 4096²] and a ratio within bounds (§3.1).

    ``ratio`` × ``resolution`` become seed 001's recommended sizes; a W×H outside the area range
    is scaled into it (aspect kept) with a note. Only an aspect outside the bounds is refused.
    """
    ask = size_ask(request)
    if ask.empty:
        return ()
    if ask.pixels is None and ask.ratio is None:
        assert ask.resolution is not None
        # A bare preset: the area the doc defines, the model picks the ratio (§3.1).
        if relay:
            body["resolution"] = ask.resolution  # gateway.md §10: relays take "1k"/"2k"/"4k"
        else:
            side = SIZE_PRESETS[ask.resolution.upper()][0]
            body["size"] = side * side
        return ()
    if ask.pixels is not None:
        width, height = ask.pixels
    else:
        assert ask.ratio is not None
        width, height = recommended_size(ask.ratio, ask.resolution or DEFAULT_RESOLUTION)
    ratio = width / height
    if not min_ratio <= ratio <= max_ratio:
        raise ValidationError(
            ask.field,
            f"{width}x{height} has ratio {ratio:.4g}, outside [{min_ratio:.4g}, {max_ratio:.4g}]",
            allowed="width/height within [min_ratio, max_ratio]",
        )
    notes: tuple[str, ...] = ()
    fitted = fit_area(width, height, _AREA_MIN, _AREA_MAX)
    if fitted != (width, height):
        notes = (
            f"{ask.field} {width}x{height} scaled to {fitted[0]}x{fitted[1]}: Volcengine 4.x "
            "takes an area from 1024x1024 to 4096x4096",
        )
    body["width"], body["height"] = fitted
    return notes


def _side_size(request: ImageRequest, body: dict[str, Any]) -> tuple[str, ...]:
    """3.x sizes: width and height each in [512, 2048] (§3.1); larger or smaller asks are
    scaled into range (aspect kept) with a note."""
    ask = size_ask(request)
    if ask.empty:
        return ()
    if ask.pixels is not None:
        width, height = ask.pixels
        asked = f"{ask.field} {width}x{height}"
    else:
        ratio, resolution = ask.ratio or "1:1", ask.resolution or DEFAULT_RESOLUTION
        width, height = recommended_size(ratio, resolution)
        asked = f"{ratio} at {resolution} ({width}x{height})"
    low, high = _V3_SIDE
    fitted = fit_sides(width, height, low, high)
    body["width"], body["height"] = fitted
    if fitted == (width, height):
        return ()
    return (
        f"{asked} scaled to {fitted[0]}x{fitted[1]}: Volcengine 3.x takes sides from {low} to "
        f"{high}",
    )


# -- builders per req_key -------------------------------------------------------------------------


def _build_v40(spec: ImageModelSpec, request: ImageRequest, relay: bool) -> Built:
    """``jimeng_t2i_v40`` fields (§3.1 table)."""
    body: dict[str, Any] = {}
    _check_ratio_bound("min_ratio", request.min_ratio)
    _check_ratio_bound("max_ratio", request.max_ratio)
    min_ratio = request.min_ratio if request.min_ratio is not None else 1 / 3
    max_ratio = request.max_ratio if request.max_ratio is not None else 3.0
    if min_ratio > max_ratio:
        raise ValidationError("min_ratio", f"{min_ratio} is above max_ratio {max_ratio}")
    notes = _area_size(request, body, min_ratio=min_ratio, max_ratio=max_ratio, relay=relay)
    scale = _unit_scale(request.scale)
    if scale is not None:
        body["scale"] = scale
    if request.force_single is not None:
        body["force_single"] = bool(request.force_single)
    if request.min_ratio is not None:
        body["min_ratio"] = request.min_ratio
    if request.max_ratio is not None:
        body["max_ratio"] = request.max_ratio
    return body, notes


def _build_v46(spec: ImageModelSpec, request: ImageRequest, relay: bool) -> Built:
    """4.6 fields (§3.1, [3P]): 4.0's sizes, but ``scale`` is an integer 1–100 (default 50)."""
    body: dict[str, Any] = {}
    notes = _area_size(request, body, min_ratio=1 / 3, max_ratio=3.0, relay=False)
    scale = request.scale
    if scale is not None:
        integral = isinstance(scale, numbers.Real) and float(scale).is_integer()
        if isinstance(scale, bool) or not integral or not 1 <= scale <= 100:
            raise ValidationError(
                "scale",
                f"jimeng-4.6 takes an integer scale from 1 to 100 (not 4.0's 0–1), got {scale!r}",
                allowed="integer 1–100",
            )
        body["scale"] = int(scale)
    if request.force_single is not None:
        body["force_single"] = bool(request.force_single)
    return body, notes


def _build_v3_t2i(spec: ImageModelSpec, request: ImageRequest, relay: bool) -> Built:
    """``jimeng_t2i_v31`` / ``jimeng_t2i_v30`` fields (§3.1)."""
    body: dict[str, Any] = {}
    notes = _side_size(request, body)
    if request.use_pre_llm is not None:
        body["use_pre_llm"] = bool(request.use_pre_llm)
    seed = check_seed(request.seed)
    if seed is not None:
        body["seed"] = seed
    return body, notes


def _build_i2i_v30(spec: ImageModelSpec, request: ImageRequest, relay: bool) -> Built:
    """``jimeng_i2i_v30`` fields (§3.1). Its size range is disputed ([512, 2048] vs 512–1536);
    the 3.x text-to-image range [512, 2048] is used, so the server has the last word above 1536."""
    body: dict[str, Any] = {}
    notes = _side_size(request, body)
    scale = _unit_scale(request.scale)
    if scale is not None:
        body["scale"] = scale
    seed = check_seed(request.seed)
    if seed is not None:
        body["seed"] = seed
    return body, notes


#: Every image backend takes the same size fields (``jimeng.backends._sizing``).
_SIZES = frozenset({"size", "width", "height", "ratio", "resolution"})
_SIDES = "exact WxH, sides 512–2048"

IMAGE_MODELS: Mapping[str, ImageModelSpec] = {
    spec.name: spec
    for spec in (
        ImageModelSpec(
            name="jimeng-4.0",
            req_key="jimeng_t2i_v40",
            aliases=("4.0",),
            max_images=10,
            accepts=_SIZES
            | {"images", "scale", "force_single", "min_ratio", "max_ratio"}
            | RESULT_OPTIONS,
            relay_extras=True,
            build=_build_v40,
        ),
        # §3.1 / §8.1: the 4.6 key is disputed. Most independent clients use
        # jimeng_seedream46_cvtob; a minority guess jimeng_t2i_v46. The majority wins; override
        # with Volcengine(req_keys={"jimeng-4.6": "..."}).
        ImageModelSpec(
            name="jimeng-4.6",
            req_key="jimeng_seedream46_cvtob",
            aliases=("4.6",),
            max_images=14,
            accepts=_SIZES | {"images", "scale", "force_single"} | RESULT_OPTIONS,
            build=_build_v46,
        ),
        ImageModelSpec(
            name="jimeng-3.1",
            req_key="jimeng_t2i_v31",
            aliases=("3.1",),
            accepts=_SIZES | {"use_pre_llm", "seed"} | RESULT_OPTIONS,
            sizes=_SIDES,
            build=_build_v3_t2i,
        ),
        ImageModelSpec(
            name="jimeng-3.0",
            req_key="jimeng_t2i_v30",
            aliases=("3.0",),
            accepts=_SIZES | {"use_pre_llm", "seed"} | RESULT_OPTIONS,
            sizes=_SIDES,
            build=_build_v3_t2i,
        ),
        # §3.1: one schema spells the field image_url; every other key and most clients use
        # image_urls (or binary_data_base64), so this one does too.
        ImageModelSpec(
            name="jimeng-i2i-3.0",
            req_key="jimeng_i2i_v30",
            aliases=("i2i-3.0", "jimeng-3.0-i2i"),
            min_images=1,
            max_images=1,
            limits=I2I_INPUT,
            accepts=_SIZES | {"images", "scale", "seed"} | RESULT_OPTIONS,
            sizes=_SIDES,
            build=_build_i2i_v30,
        ),
    )
}

DEFAULT_IMAGE_MODEL = "jimeng-4.0"


def with_req_keys(
    models: Mapping[str, ImageModelSpec], overrides: Mapping[str, str]
) -> dict[str, ImageModelSpec]:
    """The table with some ``req_key`` values replaced (names not in the table are ignored)."""
    return {
        name: attrs.evolve(spec, req_key=overrides[name]) if name in overrides else spec
        for name, spec in models.items()
    }


def check_overrides(overrides: Mapping[str, str], known: set[str]) -> None:
    for name, req_key in overrides.items():
        if name not in known:
            raise ConfigurationError(
                f"req_keys: unknown model or mode {name!r}; known: {', '.join(sorted(known))}"
            )
        if not isinstance(req_key, str) or not req_key.strip():
            raise ConfigurationError(f"req_keys[{name!r}] must be a non-empty string")


def image_spec(
    model: str | None, models: Mapping[str, ImageModelSpec] = IMAGE_MODELS
) -> ImageModelSpec:
    """The spec for a public name, alias or ``req_key``; ValidationError lists what exists."""
    if model is None:
        return models[DEFAULT_IMAGE_MODEL]
    wanted = model.strip().lower()
    for spec in models.values():
        if wanted == spec.name or wanted == spec.req_key or wanted in spec.aliases:
            return spec
    raise ValidationError(
        "model", f"unknown image model {model!r} on Volcengine", allowed=sorted(models)
    )
