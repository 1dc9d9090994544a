"""Typed request, task and result models."""

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
