"""Requests that transform media the caller already has: edit (inpaint), upscale and outpaint an
image; drive a portrait with a video (motion imitation) or with audio (avatar); translate a video.

Like :class:`~jimeng.ImageRequest`, each is validated when built (types, ranges that hold
everywhere); the backend then checks its own rules (formats, sizes, whether a URL is required)
before any request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import attrs

from jimeng.models._checks import (
    boolean,
    check_url,
    instance,
    integer,
    number,
    one_of,
    refuse,
    required,
    text,
    url,
)
from jimeng.models._requests import (
    _SEED,
    AigcMeta,
    ImageInput,
    ImageInputLike,
    Watermark,
    _check_extra,
    _url_repr,
    check_path,
)
from jimeng.models._task import TaskKind

__all__ = [
    "REMOVE_PROMPT",
    "AvatarRequest",
    "InpaintRequest",
    "MediaInput",
    "MotionRequest",
    "OutpaintRequest",
    "TransformRequest",
    "TranslateRequest",
    "UpscaleRequest",
]

#: protocols/volcengine.md §3.4.1: the inpainting prompt that erases the masked area.
REMOVE_PROMPT = "删除"


def _required_image(value: ImageInputLike | ImageInput, field: str) -> ImageInput:
    if value is None:
        raise refuse(field, "an image (URL, path or bytes)", value)
    return ImageInput.of(value, field=field)


def _image(value: ImageInputLike | ImageInput) -> ImageInput:
    return _required_image(value, "image")


def _mask(value: ImageInputLike | ImageInput) -> ImageInput:
    return _required_image(value, "mask")


def _optional_mask(value: ImageInputLike | ImageInput | None) -> ImageInput | None:
    return None if value is None else _required_image(value, "mask")


def _watermark(value: Watermark | bool | None) -> Watermark | None:
    if value is None or value is False:
        return None
    if value is True:
        return Watermark()
    if isinstance(value, Watermark):
        return value
    raise refuse("watermark", "a Watermark or True/False", value)


@attrs.frozen(kw_only=True)
class MediaInput:
    """A video or audio: a public ``http(s)`` URL the server fetches itself, a local file, or
    bytes. Backends that take no bytes refuse files with a clear error; Dreamina's omni mode
    uploads them (``data`` is filled from ``path`` before the backend sees it)."""

    url: str | None = None
    path: str | None = None
    data: bytes | None = attrs.field(default=None, repr=False)

    @classmethod
    def of(cls, value: str | os.PathLike[str] | bytes | MediaInput, *, field: str) -> MediaInput:
        if isinstance(value, MediaInput):
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            if not value:
                raise refuse(field, "non-empty bytes", value)
            return cls(data=bytes(value))
        if isinstance(value, str) and value.lower().startswith(("http://", "https://")):
            return cls(url=check_url(field, value))
        if isinstance(value, str | os.PathLike):
            name = os.fspath(value)
            if not isinstance(name, str):
                raise refuse(field, "a URL, a path or bytes", value)
            return cls(path=check_path(field, name))
        raise refuse(field, "a URL, a path or bytes", value)

    def describe(self) -> str:
        if self.url or self.path:
            return self.url or self.path or ""
        return f"<{len(self.data or b'')} bytes>"


def _required_media(value: Any, field: str) -> MediaInput:
    if value is None:
        raise refuse(field, "a URL", value)
    return MediaInput.of(value, field=field)


def _video(value: str | os.PathLike[str] | MediaInput) -> MediaInput:
    return _required_media(value, "video")


def _audio(value: str | os.PathLike[str] | MediaInput) -> MediaInput:
    return _required_media(value, "audio")


def _masks(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple):
        raise refuse("masks", "a list of mask URLs", value)
    return tuple(check_url(f"masks[{index}]", mask) for index, mask in enumerate(value))


def _fraction(field: str) -> Any:
    return number(field, minimum=0.0, maximum=1.0)


class _Request:
    """What every transform request shares."""

    kind: ClassVar[TaskKind]
    #: The verb's name in errors, logs and backend tables.
    verb: ClassVar[str]

    def given(self) -> dict[str, Any]:
        """The parameters the caller set (``None`` means "not given")."""
        return {
            field.name: value
            for field in attrs.fields(type(self))  # type: ignore[arg-type]
            if field.name != "extra" and (value := getattr(self, field.name)) is not None
        }


@attrs.frozen(kw_only=True)
class InpaintRequest(_Request):
    """Repaint the white area of ``mask`` on ``image`` with ``prompt``; the prompt
    :data:`REMOVE_PROMPT` (``"删除"``) erases it instead."""

    kind: ClassVar[TaskKind] = TaskKind.IMAGE
    verb: ClassVar[str] = "edit"

    prompt: str = attrs.field(validator=required(text()))
    image: ImageInput = attrs.field(converter=_image)
    mask: ImageInput = attrs.field(converter=_mask)
    seed: int | None = attrs.field(default=None, validator=_SEED)
    watermark: Watermark | None = attrs.field(default=None, converter=_watermark)
    aigc_meta: AigcMeta | None = attrs.field(
        default=None, validator=instance(AigcMeta, "an AigcMeta")
    )
    return_url: bool | None = attrs.field(default=None, validator=boolean())
    extra: Mapping[str, Any] | None = attrs.field(default=None, validator=_check_extra)


@attrs.frozen(kw_only=True)
class UpscaleRequest(_Request):
    """Upscale ``image`` to ``resolution`` (``"4k"`` or ``"8k"``); ``detail`` (0–100) is how
    much new detail the model may invent."""

    kind: ClassVar[TaskKind] = TaskKind.IMAGE
    verb: ClassVar[str] = "upscale"

    image: ImageInput = attrs.field(converter=_image)
    resolution: str | None = attrs.field(default=None, validator=text())
    detail: int | None = attrs.field(default=None, validator=integer(minimum=0, maximum=100))
    watermark: Watermark | None = attrs.field(default=None, converter=_watermark)
    aigc_meta: AigcMeta | None = attrs.field(
        default=None, validator=instance(AigcMeta, "an AigcMeta")
    )
    return_url: bool | None = attrs.field(default=None, validator=boolean())
    extra: Mapping[str, Any] | None = attrs.field(default=None, validator=_check_extra)


@attrs.frozen(kw_only=True)
class OutpaintRequest(_Request):
    """Extend ``image`` beyond its borders: ``left``/``right``/``top``/``bottom`` are fractions
    of the original side (0–1) to add on each side. Or give ``mask`` (a canvas already padded
    as ``image``, white where to paint) instead of the fractions."""

    kind: ClassVar[TaskKind] = TaskKind.IMAGE
    verb: ClassVar[str] = "outpaint"

    image: ImageInput = attrs.field(converter=_image)
    prompt: str | None = attrs.field(default=None, validator=text())
    left: float | None = attrs.field(default=None, validator=_fraction("left"))
    right: float | None = attrs.field(default=None, validator=_fraction("right"))
    top: float | None = attrs.field(default=None, validator=_fraction("top"))
    bottom: float | None = attrs.field(default=None, validator=_fraction("bottom"))
    mask: ImageInput | None = attrs.field(default=None, converter=_optional_mask)
    seed: int | None = attrs.field(default=None, validator=_SEED)
    watermark: Watermark | None = attrs.field(default=None, converter=_watermark)
    aigc_meta: AigcMeta | None = attrs.field(
        default=None, validator=instance(AigcMeta, "an AigcMeta")
    )
    return_url: bool | None = attrs.field(default=None, validator=boolean())
    extra: Mapping[str, Any] | None = attrs.field(default=None, validator=_check_extra)

    def __attrs_post_init__(self) -> None:
        sides = (self.left, self.right, self.top, self.bottom)
        if self.mask is not None and any(side is not None for side in sides):
            raise refuse(
                "mask", "either a mask or left/right/top/bottom, not both", "mask and fractions"
            )
        if self.mask is None and not any(sides):
            raise refuse(
                "left",
                "at least one of left, right, top, bottom above 0 (or a mask)",
                None,
                allowed="fractions in (0, 1]",
            )


@attrs.frozen(kw_only=True)
class MotionRequest(_Request):
    """Make the person (or pet, or character) in ``image`` move like the one in ``video``."""

    kind: ClassVar[TaskKind] = TaskKind.VIDEO
    verb: ClassVar[str] = "imitate_motion"

    image: ImageInput = attrs.field(converter=_image)
    video: MediaInput = attrs.field(converter=_video)
    model: str | None = attrs.field(default=None, validator=text())
    #: Trim the ~1 s transition the model puts at the start (2.0; default on).
    trim_start: bool | None = attrs.field(default=None, validator=boolean())
    aigc_meta: AigcMeta | None = attrs.field(
        default=None, validator=instance(AigcMeta, "an AigcMeta")
    )
    callback_url: str | None = attrs.field(default=None, repr=_url_repr, validator=url())
    extra: Mapping[str, Any] | None = attrs.field(default=None, validator=_check_extra)


@attrs.frozen(kw_only=True)
class AvatarRequest(_Request):
    """Make the portrait in ``image`` speak ``audio`` (OmniHuman). ``check`` runs the subject
    check first (cheap; refuses portraits without a person-like subject before the paid video)."""

    kind: ClassVar[TaskKind] = TaskKind.VIDEO
    verb: ClassVar[str] = "avatar"

    image: ImageInput = attrs.field(converter=_image)
    audio: MediaInput = attrs.field(converter=_audio)
    prompt: str | None = attrs.field(default=None, validator=text())
    resolution: int | None = attrs.field(default=None, validator=one_of((720, 1080)))
    #: Faster, lower quality (the app pairs it with 720).
    fast: bool | None = attrs.field(default=None, validator=boolean())
    #: Mask URLs choosing which subject speaks (from a subject detection).
    masks: tuple[str, ...] | None = attrs.field(default=None, converter=_masks)
    seed: int | None = attrs.field(default=None, validator=_SEED)
    check: bool = attrs.field(default=True, validator=boolean())
    aigc_meta: AigcMeta | None = attrs.field(
        default=None, validator=instance(AigcMeta, "an AigcMeta")
    )
    extra: Mapping[str, Any] | None = attrs.field(default=None, validator=_check_extra)


@attrs.frozen(kw_only=True)
class TranslateRequest(_Request):
    """Dub the speaker in ``video`` into ``target_language`` (lip-synced)."""

    kind: ClassVar[TaskKind] = TaskKind.VIDEO
    verb: ClassVar[str] = "translate"

    video: MediaInput = attrs.field(converter=_video)
    target_language: str = attrs.field(validator=required(text()))
    source_language: str | None = attrs.field(default=None, validator=text())
    aigc_meta: AigcMeta | None = attrs.field(
        default=None, validator=instance(AigcMeta, "an AigcMeta")
    )
    extra: Mapping[str, Any] | None = attrs.field(default=None, validator=_check_extra)


TransformRequest = (
    InpaintRequest
    | UpscaleRequest
    | OutpaintRequest
    | MotionRequest
    | AvatarRequest
    | TranslateRequest
)

Verb = Literal["edit", "upscale", "outpaint", "imitate_motion", "avatar", "translate"]
