"""The Volcengine model table: which ``req_key`` serves which public model name, and the
parameters each accepts (protocols/volcengine.md §3).

Each spec validates a request completely and builds its submit body; a parameter a model does not
take is a :class:`~jimeng.errors.ValidationError`, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from jimeng.errors import ValidationError
from jimeng.models import ImageRequest, TaskKind

__all__ = ["IMAGE_MODELS", "ImageModelSpec", "image_spec", "spec_for_req_key"]

_AREA_MIN = 1024 * 1024
_AREA_MAX = 4096 * 4096
_RATIO_FLOOR = 1 / 16
_RATIO_CEIL = 16.0


@attrs.frozen(kw_only=True)
class ImageModelSpec:
    """One image ``req_key`` and its rules."""

    name: str
    req_key: str
    kind: TaskKind = TaskKind.IMAGE
    aliases: tuple[str, ...] = ()
    max_prompt: int = 800
    max_images: int = 10
    min_images: int = 0
    #: Request fields this model takes (besides ``prompt`` and ``model``).
    accepts: frozenset[str] = frozenset()
    build: Callable[[ImageModelSpec, ImageRequest], dict[str, Any]] = attrs.field(repr=False)

    def validate(self, request: ImageRequest) -> None:
        given = request.given()
        given.pop("model", None)
        for name in sorted(given):
            if name not in self.accepts:
                raise ValidationError(
                    name,
                    f"is not a parameter of {self.name} ({self.req_key}) on Volcengine",
                    allowed=sorted(self.accepts),
                )
        if len(request.prompt) > self.max_prompt:
            raise ValidationError(
                "prompt",
                f"is {len(request.prompt)} characters; {self.name} takes at most {self.max_prompt}",
            )
        count = len(request.images or ())
        if not self.min_images <= count <= self.max_images:
            raise ValidationError(
                "images",
                f"{self.name} takes {self.min_images}–{self.max_images} images, got {count}",
                allowed=f"{self.min_images}–{self.max_images} images",
            )
        for index, image in enumerate(request.images or ()):
            if image.url is None:
                raise ValidationError(
                    f"images[{index}]",
                    "local files are not supported by this model on Volcengine; pass a URL",
                    allowed="http(s) URL",
                )
        self.build(self, request)  # runs the value checks

    def body(self, request: ImageRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"req_key": self.req_key, "prompt": request.prompt}
        body.update(self.build(self, request))
        if request.extra:
            body.update(request.extra)
        return body


def _check_ratio_bound(name: str, value: float | None) -> None:
    if value is not None and not _RATIO_FLOOR <= value < _RATIO_CEIL:
        raise ValidationError(name, f"must be in [1/16, 16), got {value}", allowed="[0.0625, 16)")


def _build_v40(spec: ImageModelSpec, request: ImageRequest) -> dict[str, Any]:
    """``jimeng_t2i_v40`` fields (§3.1 table)."""
    body: dict[str, Any] = {}
    if request.images:
        body["image_urls"] = [image.url for image in request.images]
    _check_ratio_bound("min_ratio", request.min_ratio)
    _check_ratio_bound("max_ratio", request.max_ratio)
    min_ratio = request.min_ratio if request.min_ratio is not None else 1 / 3
    max_ratio = request.max_ratio if request.max_ratio is not None else 3.0
    if min_ratio > max_ratio:
        raise ValidationError("min_ratio", f"{min_ratio} is above max_ratio {max_ratio}")
    pixels = request.size_pixels()
    if pixels is not None:
        width, height = pixels
        area = width * height
        if not _AREA_MIN <= area <= _AREA_MAX:
            raise ValidationError(
                "size" if request.size is not None else "width",
                f"{width}x{height} has area {area}; it must be within [1024², 4096²]",
                allowed="width*height in [1048576, 16777216]",
            )
        ratio = width / height
        if not min_ratio <= ratio <= max_ratio:
            raise ValidationError(
                "width",
                f"{width}x{height} has ratio {ratio:.4g}, "
                f"outside [{min_ratio:.4g}, {max_ratio:.4g}]",
                allowed="width/height within [min_ratio, max_ratio]",
            )
        if request.width is not None or (request.size and request.size.upper() not in _PRESETS):
            body["width"], body["height"] = width, height
        else:
            body["size"] = area  # presets are sent as the area the doc defines
    if request.scale is not None:
        if not 0.0 <= request.scale <= 1.0:
            raise ValidationError(
                "scale", f"must be in [0, 1], got {request.scale}", allowed="[0, 1]"
            )
        body["scale"] = round(request.scale, 2)
    if request.force_single is not None:
        body["force_single"] = bool(request.force_single)
    if request.min_ratio is not None:
        body["min_ratio"] = request.min_ratio
    if request.max_ratio is not None:
        body["max_ratio"] = request.max_ratio
    return body


_PRESETS = {"1K", "2K", "4K"}

#: Fields that travel in ``req_json`` at get-result time rather than in the submit body.
RESULT_OPTIONS = frozenset({"watermark", "aigc_meta", "return_url"})

IMAGE_MODELS: Mapping[str, ImageModelSpec] = {
    spec.name: spec
    for spec in (
        ImageModelSpec(
            name="jimeng-4.0",
            req_key="jimeng_t2i_v40",
            aliases=("4.0", "jimeng_t2i_v40"),
            accepts=frozenset(
                {
                    "size",
                    "width",
                    "height",
                    "images",
                    "scale",
                    "force_single",
                    "min_ratio",
                    "max_ratio",
                }
            )
            | RESULT_OPTIONS,
            build=_build_v40,
        ),
    )
}

DEFAULT_IMAGE_MODEL = "jimeng-4.0"


def image_spec(model: str | None) -> ImageModelSpec:
    """The spec for a public name, alias or ``req_key``; ValidationError lists what exists."""
    if model is None:
        return IMAGE_MODELS[DEFAULT_IMAGE_MODEL]
    wanted = model.strip().lower()
    for spec in IMAGE_MODELS.values():
        if wanted == spec.name or wanted == spec.req_key or wanted in spec.aliases:
            return spec
    raise ValidationError(
        "model", f"unknown image model {model!r} on Volcengine", allowed=sorted(IMAGE_MODELS)
    )


def spec_for_req_key(req_key: str) -> ImageModelSpec | None:
    for spec in IMAGE_MODELS.values():
        if spec.req_key == req_key:
            return spec
    return None
