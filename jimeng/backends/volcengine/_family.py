"""The rest of the Jimeng family on the visual API: inpainting, upscaling, outpainting, motion
imitation, OmniHuman avatars and video translation (protocols/volcengine.md §3.4).

One spec per verb and model: its ``req_key``, which Action pair it is submitted and polled with
(§3.4.0: the ``req_key`` alone does not tell), the polling defaults of §3.4.7, and a pure builder
that validates a request and returns its submit fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs

from jimeng._imageinfo import ImageInfo, ImageLimits
from jimeng._polling import PollPolicy
from jimeng.backends.volcengine._inputs import check_local
from jimeng.errors import ValidationError
from jimeng.models import ImageInput, TaskKind
from jimeng.models._transforms import (
    AvatarRequest,
    InpaintRequest,
    MediaInput,
    MotionRequest,
    OutpaintRequest,
    TransformRequest,
    TranslateRequest,
    UpscaleRequest,
)

__all__ = [
    "AVATAR_CHECK",
    "OUTPAINT_FIELDS",
    "TRANSFORMS",
    "Family",
    "TransformSpec",
    "transform_spec",
]

_MB = 1024 * 1024

#: §3.4.0: which Action pair a key is submitted and polled with.
Family = Literal["sync2async", "cv"]

#: §3.4.1–3.4.3: JPEG/PNG, <= 4.7 MB per file, <= 4096x4096.
EDIT_INPUT = ImageLimits(formats=("jpeg", "png"), max_bytes=int(4.7 * _MB), max_side=4096)
#: §3.4.2: and an aspect ratio within [1/3, 3].
UPSCALE_INPUT = attrs.evolve(EDIT_INPUT, max_ratio=3.0)
#: §3.4.4 (2.0): jpeg/png, above 480x480, < 4.7 MB (larger than 1920x1080 is scaled down).
MOTION_INPUT = ImageLimits(formats=("jpeg", "png"), max_bytes=int(4.7 * _MB), min_short_side=481)

#: §3.4.3 [?]: the directional fields of outpainting as third parties send them; replace them
#: with ``Volcengine(outpaint_fields={"left": "…"})`` if the service names them otherwise.
OUTPAINT_FIELDS: Mapping[str, str] = {
    "left": "left",
    "right": "right",
    "top": "top",
    "bottom": "bottom",
}
MOTION_V2 = "jimeng_dreamactor_m20_gen_video"
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")

Builder = Callable[["TransformSpec", Any, Mapping[str, str]], dict[str, Any]]


def _inpaint_poll() -> PollPolicy:
    # §3.4.7: seconds to ~1 min; 2–3 s, cap ~5 min.
    return PollPolicy(interval=2.0, backoff=1.2, max_interval=5.0, max_attempts=150, deadline=300)


def _video_poll(interval: float, deadline: float) -> PollPolicy:
    return PollPolicy(
        interval=interval,
        backoff=1.2,
        max_interval=max(10.0, interval),
        max_attempts=int(deadline // interval) + 1,
        deadline=deadline,
    )


@attrs.frozen(kw_only=True)
class TransformSpec:
    """One verb on one ``req_key``."""

    verb: str
    name: str
    req_key: str
    kind: TaskKind
    family: Family = "sync2async"
    poll: PollPolicy = attrs.field(factory=_inpaint_poll)
    #: §2.1: CVCancelTask is documented for the CVSync2Async family only.
    cancellable: bool = True
    #: Get-result options: ``images`` ones (return_url, logo_info, aigc_meta) or AIGC only.
    result_options: Literal["image", "aigc"] = "image"
    #: Limits of the images sent in ``image_urls`` / ``binary_data_base64``.
    limits: ImageLimits = EDIT_INPUT
    build: Builder = attrs.field(repr=False)

    def inputs(self, request: Any) -> list[tuple[str, ImageInput]]:
        """The images that travel as ``image_urls`` or ``binary_data_base64`` (field, image);
        keys that take a singular ``image_url`` string have none here."""
        if self.verb in ("edit", "outpaint") and getattr(request, "mask", None) is not None:
            return [("image", request.image), ("mask", request.mask)]
        if self.verb in ("edit", "upscale", "outpaint") or self.name == "motion-2.0":
            return [("image", request.image)]
        return []

    def fields(self, request: Any, outpaint: Mapping[str, str] = OUTPAINT_FIELDS) -> dict[str, Any]:
        """Validate ``request`` and return its submit fields (``req_key`` included, the images
        of :meth:`inputs` not: the caller encodes them, all URLs or all inline)."""
        body: dict[str, Any] = {"req_key": self.req_key}
        body.update(self.build(self, request, outpaint))
        if request.extra:
            body.update(request.extra)
        return body


# -- shared checks -------------------------------------------------------------------------------


def _url_only(media: MediaInput, field: str, what: str) -> str:
    if media.url is None:
        raise ValidationError(
            field,
            f"the visual API downloads the {what} itself, so it must be a public http(s) URL; "
            f"{media.describe()!r} is a local file: upload it somewhere reachable first",
            allowed="http(s) URL",
        )
    return media.url


def _image_url_only(image: ImageInput, field: str, spec: TransformSpec) -> str:
    if image.url is None:  # §3.4: image_url only, no binary_data_base64
        raise ValidationError(
            field,
            f"{spec.name} downloads the image itself, so it must be a public http(s) URL, not "
            "a local file or bytes: upload it somewhere reachable first",
            allowed="http(s) URL",
        )
    return image.url


def _prompt(prompt: str | None, limit: int = 800) -> None:
    if prompt is not None and len(prompt) > limit:
        raise ValidationError(
            "prompt", f"is {len(prompt)} characters; at most {limit}", allowed=f"1–{limit} chars"
        )


def _refuse_given(request: Any, accepted: set[str], spec: TransformSpec) -> None:
    for name in sorted(request.given()):
        if name not in accepted:
            raise ValidationError(
                name,
                f"is not a parameter of {spec.name} ({spec.req_key}) on Volcengine",
                allowed=sorted(accepted - {"image", "video", "audio", "mask"}),
            )


def _local(image: ImageInput, limits: ImageLimits, field: str) -> ImageInfo | None:
    return check_local(image, limits, field=field)


# -- builders ------------------------------------------------------------------------------------


def _inpaint(spec: TransformSpec, request: InpaintRequest, _: Mapping[str, str]) -> dict[str, Any]:
    """§3.4.1: exactly [image, mask]; mask white = repaint, black = keep; same size."""
    _refuse_given(
        request,
        {"prompt", "image", "mask", "seed", "watermark", "aigc_meta", "return_url"},
        spec,
    )
    _prompt(request.prompt)
    image = _local(request.image, EDIT_INPUT, "image")
    mask = _local(request.mask, EDIT_INPUT, "mask")
    if (
        image is not None
        and mask is not None
        and (image.width, image.height)
        != (
            mask.width,
            mask.height,
        )
    ):
        raise ValidationError(
            "mask",
            f"is {mask.width}x{mask.height} but the image is {image.width}x{image.height}; "
            "the mask must have the image's size",
            allowed=f"{image.width}x{image.height}",
        )
    body: dict[str, Any] = {"prompt": request.prompt}
    if request.seed is not None:
        body["seed"] = request.seed
    return body


def _upscale(spec: TransformSpec, request: UpscaleRequest, _: Mapping[str, str]) -> dict[str, Any]:
    """§3.4.2: one image, ``resolution`` 4k/8k, ``scale`` = detail 0–100."""
    _refuse_given(
        request, {"image", "resolution", "detail", "watermark", "aigc_meta", "return_url"}, spec
    )
    _local(request.image, UPSCALE_INPUT, "image")
    body: dict[str, Any] = {}
    if request.resolution is not None:
        resolution = request.resolution.strip().lower()
        if resolution not in ("4k", "8k"):
            raise ValidationError(
                "resolution", f"unknown resolution {request.resolution!r}", allowed=["4k", "8k"]
            )
        body["resolution"] = resolution
    if request.detail is not None:
        body["scale"] = request.detail
    return body


def _outpaint(
    spec: TransformSpec, request: OutpaintRequest, names: Mapping[str, str]
) -> dict[str, Any]:
    """§3.4.3 [?]: one image with directional fractions, or [canvas, mask] of one size."""
    _refuse_given(
        request,
        {"image", "prompt", "left", "right", "top", "bottom", "mask", "seed"}
        | {"watermark", "aigc_meta", "return_url"},
        spec,
    )
    _prompt(request.prompt)
    image = _local(request.image, EDIT_INPUT, "image")
    body: dict[str, Any] = {}
    if request.mask is not None:
        mask = _local(request.mask, EDIT_INPUT, "mask")
        if (
            image is not None
            and mask is not None
            and (image.width, image.height)
            != (
                mask.width,
                mask.height,
            )
        ):
            raise ValidationError(
                "mask",
                f"is {mask.width}x{mask.height} but the canvas is {image.width}x{image.height}",
                allowed=f"{image.width}x{image.height}",
            )
    else:
        for side in ("left", "right", "top", "bottom"):
            value = getattr(request, side)
            if value is not None:
                body[names[side]] = float(value)
    if request.prompt is not None:
        body["prompt"] = request.prompt
    if request.seed is not None:
        body["seed"] = request.seed
    return body


def _motion_v2(spec: TransformSpec, request: MotionRequest, _: Mapping[str, str]) -> dict[str, Any]:
    """§3.4.4 2.0: one image (URL or base64), ``video_url``, optional trim and callback."""
    _refuse_given(
        request,
        {"image", "video", "model", "trim_start", "aigc_meta", "callback_url"},
        spec,
    )
    _local(request.image, MOTION_INPUT, "image")
    body: dict[str, Any] = {"video_url": _url_only(request.video, "video", "driving video")}
    if request.trim_start is not None:
        body["cut_result_first_second_switch"] = request.trim_start
    if request.callback_url is not None:
        body["callback_url"] = request.callback_url
    return body


def _motion_v1(spec: TransformSpec, request: MotionRequest, _: Mapping[str, str]) -> dict[str, Any]:
    """§3.4.4 1.0 [3P]: singular ``image_url`` and ``video_url`` strings."""
    _refuse_given(request, {"image", "video", "model", "aigc_meta"}, spec)
    return {
        "image_url": _image_url_only(request.image, "image", spec),
        "video_url": _url_only(request.video, "video", "driving video"),
    }


def _avatar(spec: TransformSpec, request: AvatarRequest, _: Mapping[str, str]) -> dict[str, Any]:
    """§3.4.5 step 3: ``image_url``/``audio_url`` strings (data URIs are refused by the
    service), optional masks, prompt, seed, resolution 720/1080, fast mode."""
    _refuse_given(
        request,
        {"image", "audio", "prompt", "resolution", "fast", "masks", "seed", "check"}
        | {"aigc_meta"},
        spec,
    )
    _prompt(request.prompt, 300)
    body: dict[str, Any] = {
        "image_url": _image_url_only(request.image, "image", spec),
        "audio_url": _url_only(request.audio, "audio", "audio"),
    }
    if request.masks:
        for index, mask in enumerate(request.masks):
            if not isinstance(mask, str) or not mask.startswith(("http://", "https://")):
                raise ValidationError(f"masks[{index}]", "must be an http(s) URL", value=mask)
        body["mask_url"] = list(request.masks)
    if request.seed is not None:
        body["seed"] = request.seed
    if request.prompt is not None:
        body["prompt"] = request.prompt
    if request.resolution is not None:
        body["output_resolution"] = request.resolution
    if request.fast is not None:
        body["pe_fast_mode"] = request.fast
    return body


def _avatar_check(
    spec: TransformSpec, request: AvatarRequest, _: Mapping[str, str]
) -> dict[str, Any]:
    """§3.4.5 step 1: ``image_url`` only."""
    return {"image_url": _image_url_only(request.image, "image", spec)}


def _translate(
    spec: TransformSpec, request: TranslateRequest, _: Mapping[str, str]
) -> dict[str, Any]:
    """§3.4.6 [3P]: ``video_url``, ``src_language`` (default zh, as jimeng-ai-mcp), and
    ``target_language``. The code list is not confirmed [?]: only the shape is checked."""
    _refuse_given(request, {"video", "target_language", "source_language", "aigc_meta"}, spec)
    source = (request.source_language or "zh").strip()
    target = request.target_language.strip()
    for field, code in (("source_language", source), ("target_language", target)):
        if not _LANGUAGE.match(code):
            raise ValidationError(
                field, f"{code!r} is not a language code", allowed="short codes: zh, en, ja, ko…"
            )
    if source == target:
        raise ValidationError("target_language", f"is the source language ({source}) too")
    return {
        "video_url": _url_only(request.video, "video", "video"),
        "src_language": source,
        "target_language": target,
    }


# -- the table -----------------------------------------------------------------------------------

_MOTION_POLL = _video_poll(5.0, 1200.0)  # §3.4.7: RTF ≈ 18, up to ~9 min, more at peak

TRANSFORMS: Mapping[str, TransformSpec] = {
    spec.name: spec
    for spec in (
        TransformSpec(
            verb="edit",
            name="jimeng-inpaint",
            req_key="jimeng_image2image_dream_inpaint",
            kind=TaskKind.IMAGE,
            build=_inpaint,
        ),
        TransformSpec(
            verb="upscale",
            name="jimeng-upscale",
            req_key="jimeng_i2i_seed3_tilesr_cvtob",
            kind=TaskKind.IMAGE,
            limits=UPSCALE_INPUT,
            build=_upscale,
        ),
        TransformSpec(
            verb="outpaint",
            name="jimeng-outpaint",
            req_key="jimeng_img2img_seed3_painting_edit",
            kind=TaskKind.IMAGE,
            build=_outpaint,
        ),
        TransformSpec(
            verb="imitate_motion",
            name="motion-2.0",
            req_key=MOTION_V2,
            kind=TaskKind.VIDEO,
            poll=_MOTION_POLL,
            result_options="aigc",
            limits=MOTION_INPUT,
            build=_motion_v2,
        ),
        TransformSpec(
            verb="imitate_motion",
            name="motion-1.0",
            req_key="jimeng_dream_actor_m1_gen_video_cv",
            kind=TaskKind.VIDEO,
            poll=_MOTION_POLL,
            result_options="aigc",
            build=_motion_v1,
        ),
        TransformSpec(
            verb="avatar",
            name="omnihuman-1.5",
            req_key="jimeng_realman_avatar_picture_omni_v15",
            kind=TaskKind.VIDEO,
            family="cv",
            poll=_video_poll(5.0, 1200.0),  # minutes, scaling with the audio (§3.4.7)
            cancellable=False,
            result_options="aigc",
            build=_avatar,
        ),
        TransformSpec(
            verb="translate",
            name="video-translate-2.0",
            req_key="video_translate_v2_cvtob",
            kind=TaskKind.VIDEO,
            poll=_video_poll(10.0, 1800.0),
            result_options="aigc",
            build=_translate,
        ),
    )
}

#: §3.4.5 step 1, the subject check before an avatar video (its result is JSON, not media).
AVATAR_CHECK = TransformSpec(
    verb="avatar-check",
    name="omnihuman-1.5-check",
    req_key="jimeng_realman_avatar_picture_create_role_omni_v15",
    kind=TaskKind.VIDEO,
    family="cv",
    poll=PollPolicy(interval=2.0, backoff=1.2, max_interval=5.0, max_attempts=60, deadline=180),
    cancellable=False,
    result_options="aigc",
    build=_avatar_check,
)

_DEFAULTS: Mapping[str, str] = {
    "edit": "jimeng-inpaint",
    "upscale": "jimeng-upscale",
    "outpaint": "jimeng-outpaint",
    "imitate_motion": "motion-2.0",
    "avatar": "omnihuman-1.5",
    "translate": "video-translate-2.0",
}


def transform_spec(
    request: TransformRequest, table: Mapping[str, TransformSpec] = TRANSFORMS
) -> TransformSpec:
    """The spec serving ``request`` (``model=`` picks motion 1.0 or 2.0)."""
    model = getattr(request, "model", None)
    if model is None:
        return table[_DEFAULTS[request.verb]]
    wanted = model.strip().lower()
    for spec in table.values():
        aliases = (spec.name, spec.req_key, spec.name.split("-")[-1])
        if spec.verb == request.verb and wanted in aliases:
            return spec
    allowed = sorted(spec.name for spec in table.values() if spec.verb == request.verb)
    raise ValidationError("model", f"unknown {request.verb} model {model!r}", allowed=allowed)
