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

__all__ = [
    "SIZE_PRESETS",
    "AigcMeta",
    "Image",
    "ImageInput",
    "ImageInputLike",
    "ImageRequest",
    "ImageResult",
    "Media",
    "QueueStats",
    "Task",
    "TaskFailure",
    "TaskKind",
    "TaskStatus",
    "Video",
    "VideoRequest",
    "VideoResult",
    "Watermark",
    "WatermarkPosition",
]
