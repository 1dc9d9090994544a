"""The Jimeng Video 3.0 modes on Volcengine: mode → ``req_key``, inputs and fields
(protocols/volcengine.md §3.2; mode names from the video seed).

The official API has no ``duration`` or ``fps``: it takes ``frames`` = 24·n + 1, and only 121
(5 s) or 241 (10 s), at 24 fps. The seed's script offers 4/5/6/8/10 s and 24/25/30 fps; what the
API cannot render is refused with a ValidationError naming the values it can.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from jimeng._imageinfo import ImageLimits
from jimeng.backends.volcengine._inputs import (
    VIDEO_INPUT,
    check_local,
    check_same_ratio,
    encode_images,
)
from jimeng.backends.volcengine._models import check_seed
from jimeng.errors import ValidationError
from jimeng.models import TaskKind, VideoRequest

__all__ = [
    "ASPECT_RATIOS",
    "CAMERA_STRENGTHS",
    "CAMERA_TEMPLATES",
    "DEFAULT_MODE",
    "FPS",
    "FRAMES_BY_DURATION",
    "VIDEO_MODELS",
    "VIDEO_MODES",
    "VideoModeSpec",
    "frames_for",
    "video_mode",
]

VIDEO_3_0 = "jimeng-video-3.0"
VIDEO_3_0_PRO = "jimeng-video-3.0-pro"
VIDEO_MODELS = (VIDEO_3_0, VIDEO_3_0_PRO)

#: Text-to-video ratios (§3.2); image-to-video follows the image.
ASPECT_RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9")
#: ``template_id`` of the recamera mode (§3.2).
CAMERA_TEMPLATES = (
    "hitchcock_dolly_in",
    "hitchcock_dolly_out",
    "robo_arm",
    "dynamic_orbit",
    "central_orbit",
    "crane_push",
    "quick_pull_back",
    "counterclockwise_swivel",
    "clockwise_swivel",
    "handheld",
    "rapid_push_pull",
)
CAMERA_STRENGTHS = ("weak", "medium", "strong")
#: §3.2: frames 121 (5 s) or 241 (10 s), i.e. 24·n + 1 at 24 fps.
FPS = 24
FRAMES_BY_DURATION: Mapping[int, int] = {5: 121, 10: 241}
DEFAULT_FRAMES = 121

FirstFrame = Literal["none", "optional", "required"]


@attrs.frozen(kw_only=True)
class VideoModeSpec:
    """One video mode: its ``req_key``, resolution, inputs and extra fields."""

    mode: str
    req_key: str
    model: str
    resolution: Literal["720p", "1080p"]
    first_frame: FirstFrame
    tail_frame: bool = False
    camera: bool = False
    description: str = ""
    kind: TaskKind = TaskKind.VIDEO
    max_prompt: int = 800
    limits: ImageLimits = VIDEO_INPUT

    @property
    def image_count(self) -> str:
        if self.tail_frame:
            return "2 images (image and tail_image)"
        return {"none": "no image", "optional": "0 or 1 image", "required": "1 image"}[
            self.first_frame
        ]

    def takes_ratio(self, request: VideoRequest) -> bool:
        """``aspect_ratio`` is for text-to-video only (§3.2)."""
        return self.first_frame == "none" or (
            self.first_frame == "optional" and request.image is None
        )

    def _refuse(self, name: str, request: VideoRequest) -> ValidationError:
        where = f"mode {self.mode} ({self.req_key})"
        if name == "aspect_ratio":
            return ValidationError(
                name,
                f"applies to text-to-video only; in {where} the video takes the image's ratio",
            )
        if name == "image":
            return ValidationError(
                name,
                f"{where} takes no image; for image-to-video use i2v_first_{self.resolution} "
                "(or leave mode unset)",
                allowed=self.image_count,
            )
        if name == "tail_image":
            return ValidationError(
                name,
                f"{where} takes {self.image_count}; for first and last frames use "
                f"i2v_first_tail_{self.resolution} (or leave mode unset)",
                allowed=self.image_count,
            )
        if name in ("camera", "camera_strength"):
            return ValidationError(name, f"is only for mode i2v_recamera_720p, not {where}")
        return ValidationError(name, f"is not a parameter of {where} on Volcengine")

    def validate(self, request: VideoRequest) -> None:
        allowed = {"model", "mode", "resolution", "duration", "fps", "frames", "seed"}
        allowed |= {"watermark", "aigc_meta"}
        if self.takes_ratio(request):
            allowed.add("aspect_ratio")
        if self.first_frame != "none":
            allowed.add("image")
        if self.tail_frame:
            allowed.add("tail_image")
        if self.camera:
            allowed |= {"camera", "camera_strength"}
        for name in sorted(request.given()):
            if name not in allowed:
                raise self._refuse(name, request)
        if len(request.prompt) > self.max_prompt:
            raise ValidationError(
                "prompt",
                f"is {len(request.prompt)} characters; video 3.0 takes at most {self.max_prompt}",
                allowed=f"1–{self.max_prompt} characters",
            )
        if self.first_frame == "required" and request.image is None:
            raise ValidationError(
                "image", f"mode {self.mode} needs a first-frame image", allowed=self.image_count
            )
        if self.tail_frame and request.tail_image is None:
            raise ValidationError(
                "tail_image",
                f"mode {self.mode} needs a last-frame image besides image",
                allowed=self.image_count,
            )
        first = check_local(request.image, self.limits, field="image") if request.image else None
        tail = (
            check_local(request.tail_image, self.limits, field="tail_image")
            if request.tail_image
            else None
        )
        check_same_ratio(first, tail)
        self.fields(request)  # runs the value checks

    def fields(self, request: VideoRequest) -> dict[str, Any]:
        """The submit fields besides ``req_key``, ``prompt`` and the images."""
        body: dict[str, Any] = {}
        seed = check_seed(request.seed)
        if seed is not None:
            body["seed"] = seed
        frames = frames_for(request)
        if frames is not None:
            body["frames"] = frames
        if request.aspect_ratio is not None:
            ratio = request.aspect_ratio.strip()
            if ratio not in ASPECT_RATIOS:
                raise ValidationError(
                    "aspect_ratio", f"unknown ratio {request.aspect_ratio!r}", allowed=ASPECT_RATIOS
                )
            body["aspect_ratio"] = ratio
        if self.camera:
            template = (request.camera or "").strip().lower()
            if template not in CAMERA_TEMPLATES:
                raise ValidationError(
                    "camera",
                    "is required for i2v_recamera_720p"
                    if request.camera is None
                    else f"unknown camera template {request.camera!r}",
                    allowed=CAMERA_TEMPLATES,
                )
            strength = (request.camera_strength or "").strip().lower()
            if strength not in CAMERA_STRENGTHS:
                raise ValidationError(
                    "camera_strength",
                    "is required for i2v_recamera_720p"
                    if request.camera_strength is None
                    else f"unknown strength {request.camera_strength!r}",
                    allowed=CAMERA_STRENGTHS,
                )
            body["template_id"] = template
            body["camera_strength"] = strength
        return body

    def body(self, request: VideoRequest) -> dict[str, Any]:
        """The submit body. Images must all be URLs or all be local (see ``_inputs``)."""
        body: dict[str, Any] = {"req_key": self.req_key, "prompt": request.prompt}
        frames = [image for image in (request.image, request.tail_image) if image is not None]
        body.update(encode_images(frames))
        body.update(self.fields(request))
        if request.extra:
            body.update(request.extra)
        return body


def frames_for(request: VideoRequest) -> int | None:
    """``frames`` from ``frames``/``duration``/``fps``; ``None`` when none was given."""
    frames: int | None = None
    allowed_frames = sorted(FRAMES_BY_DURATION.values())
    if request.frames is not None:
        if request.frames not in allowed_frames or isinstance(request.frames, bool):
            raise ValidationError(
                "frames",
                f"{request.frames!r} is not available: the official API renders 121 (5 s) or "
                "241 (10 s) frames at 24 fps",
                allowed=allowed_frames,
            )
        frames = int(request.frames)
    if request.fps is not None and (isinstance(request.fps, bool) or request.fps != FPS):
        raise ValidationError(
            "fps",
            f"{request.fps!r} is not available: the official API renders 24 fps only "
            "(25 and 30 fps are not)",
            allowed=[FPS],
        )
    if request.duration is not None:
        duration = request.duration
        valid = isinstance(duration, numbers.Real) and not isinstance(duration, bool)
        seconds = int(duration) if valid and float(duration).is_integer() else None
        if seconds not in FRAMES_BY_DURATION:
            raise ValidationError(
                "duration",
                f"{duration!r} s is not available: the official API renders 5 s or 10 s "
                "(121 or 241 frames at 24 fps; 4, 6 and 8 s are not)",
                allowed=sorted(FRAMES_BY_DURATION),
            )
        assert seconds is not None
        by_duration = FRAMES_BY_DURATION[seconds]
        if frames is not None and frames != by_duration:
            raise ValidationError(
                "frames",
                f"{frames} frames disagree with duration {seconds} s ({by_duration} frames)",
                allowed=[by_duration],
            )
        frames = by_duration
    return frames


def _spec(
    mode: str,
    req_key: str,
    resolution: Literal["720p", "1080p"],
    first: FirstFrame,
    description: str,
    *,
    tail: bool = False,
    camera: bool = False,
    model: str = VIDEO_3_0,
) -> VideoModeSpec:
    return VideoModeSpec(
        mode=mode,
        req_key=req_key,
        model=model,
        resolution=resolution,
        first_frame=first,
        tail_frame=tail,
        camera=camera,
        description=description,
    )


# §3.2 and §8.2: the 1080P image-to-video keys end in "_1080" (no "p"), as in the video seed and
# the sources quoting the official doc; a few clients guess "_1080p". 720P text-to-video is
# jimeng_t2v_v30 (the official-doc copy), not jimeng_t2v_v30_720p. Both are overridable with
# Volcengine(req_keys={"i2v_first_1080p": "..."}).
VIDEO_MODES: Mapping[str, VideoModeSpec] = {
    spec.mode: spec
    for spec in (
        _spec(
            "ti2v_pro",
            "jimeng_ti2v_v30_pro",
            "1080p",
            "optional",
            "3.0 Pro, 1080P: text-to-video, or first frame to video",
            model=VIDEO_3_0_PRO,
        ),
        _spec("t2v_1080p", "jimeng_t2v_v30_1080p", "1080p", "none", "text-to-video, 1080P"),
        _spec(
            "i2v_first_1080p",
            "jimeng_i2v_first_v30_1080",
            "1080p",
            "required",
            "first frame to video, 1080P",
        ),
        _spec(
            "i2v_first_tail_1080p",
            "jimeng_i2v_first_tail_v30_1080",
            "1080p",
            "required",
            "first and last frames to video, 1080P",
            tail=True,
        ),
        _spec("t2v_720p", "jimeng_t2v_v30", "720p", "none", "text-to-video, 720P"),
        _spec("i2v_first_720p", "jimeng_i2v_first_v30", "720p", "required", "first frame, 720P"),
        _spec(
            "i2v_first_tail_720p",
            "jimeng_i2v_first_tail_v30",
            "720p",
            "required",
            "first and last frames to video, 720P",
            tail=True,
        ),
        _spec(
            "i2v_recamera_720p",
            "jimeng_i2v_recamera_v30",
            "720p",
            "required",
            "image plus a camera movement template, 720P",
            camera=True,
        ),
    )
}

DEFAULT_MODE = "t2v_720p"


def _infer_mode(request: VideoRequest, model: str) -> str:
    """Without ``mode``: Pro for the Pro model, else by inputs and resolution (720p default)."""
    if model == VIDEO_3_0_PRO:
        return "ti2v_pro"
    resolution = (request.resolution or "720p").strip().lower()
    if resolution not in ("720p", "1080p"):
        raise ValidationError(
            "resolution", f"unknown resolution {request.resolution!r}", allowed=["720p", "1080p"]
        )
    if request.camera is not None or request.camera_strength is not None:
        return "i2v_recamera_720p"
    if request.tail_image is not None:
        return f"i2v_first_tail_{resolution}"
    if request.image is not None:
        return f"i2v_first_{resolution}"
    return f"t2v_{resolution}"


def video_mode(
    request: VideoRequest, modes: Mapping[str, VideoModeSpec] = VIDEO_MODES
) -> VideoModeSpec:
    """The mode a request asks for: ``mode`` (a mode name or its ``req_key``), or inferred."""
    model = VIDEO_3_0
    if request.model is not None:
        model = request.model.strip().lower()
        if model not in VIDEO_MODELS:
            raise ValidationError(
                "model",
                f"unknown video model {request.model!r} on Volcengine",
                allowed=VIDEO_MODELS,
            )
    if request.mode is None:
        spec = modes[_infer_mode(request, model)]
    else:
        wanted = request.mode.strip().lower()
        found = modes.get(wanted) or next(
            (item for item in modes.values() if item.req_key == wanted), None
        )
        if found is None:
            raise ValidationError(
                "mode", f"unknown video mode {request.mode!r}", allowed=list(modes)
            )
        spec = found
    if request.model is not None and spec.model != model:
        raise ValidationError(
            "model",
            f"{model} does not serve mode {spec.mode}",
            allowed=[name for name, item in modes.items() if item.model == model],
        )
    if request.resolution is not None:
        resolution = request.resolution.strip().lower()
        if resolution != spec.resolution:
            raise ValidationError(
                "resolution",
                f"mode {spec.mode} renders {spec.resolution}, not {request.resolution!r}",
                allowed=[spec.resolution],
            )
    return spec
