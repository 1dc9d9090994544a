"""Typed request, task and result models."""

from typing import TYPE_CHECKING, Any

from jimeng.models._media import Image, ImageResult, Media, Video, VideoResult
from jimeng.models._requests import (
    SIZE_PRESETS,
    AigcMeta,
    ImageInput,
    ImageInputLike,
    ImageRequest,
    VideoRequest,
    Watermark,
    WatermarkPosition,
)
from jimeng.models._task import QueueStats, Task, TaskFailure, TaskKind, TaskStatus

__all__ = [
    "REMOVE_PROMPT",
    "SIZE_PRESETS",
    "AigcMeta",
    "AvatarRequest",
    "Image",
    "ImageInput",
    "ImageInputLike",
    "ImageRequest",
    "ImageResult",
    "InpaintRequest",
    "Media",
    "MediaInput",
    "MotionRequest",
    "OutpaintRequest",
    "QueueStats",
    "Task",
    "TaskFailure",
    "TaskKind",
    "TaskStatus",
    "TranslateRequest",
    "UpscaleRequest",
    "Video",
    "VideoRequest",
    "VideoResult",
    "Watermark",
    "WatermarkPosition",
]

if TYPE_CHECKING:
    from jimeng.models._transforms import (
        REMOVE_PROMPT,
        AvatarRequest,
        InpaintRequest,
        MediaInput,
        MotionRequest,
        OutpaintRequest,
        TranslateRequest,
        UpscaleRequest,
    )

#: The edit and video-transform requests load on first use (``import jimeng`` stays light).
_TRANSFORMS = frozenset(
    {
        "REMOVE_PROMPT",
        "AvatarRequest",
        "InpaintRequest",
        "MediaInput",
        "MotionRequest",
        "OutpaintRequest",
        "TranslateRequest",
        "UpscaleRequest",
    }
)


def __getattr__(name: str) -> Any:
    if name not in _TRANSFORMS:
        raise AttributeError(f"module 'jimeng.models' has no attribute {name!r}")
    from jimeng.models import _transforms

    value = getattr(_transforms, name)
    globals()[name] = value
    return value
