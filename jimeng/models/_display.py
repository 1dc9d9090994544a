"""How results look in a notebook and at a prompt: short reprs and inline HTML.

Pure functions over what a model already holds (bytes, inline base64 results, URLs): rendering
never touches the network, so displaying a result is instant and works offline.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from jimeng import _logging
from jimeng._imageinfo import sniff_image

if TYPE_CHECKING:
    from jimeng.models._media import Image, ImageResult, Media, Video, VideoResult
    from jimeng.models._task import Task

__all__ = [
    "REPR_LIMIT",
    "image_html",
    "image_mime",
    "image_result_html",
    "media_repr",
    "result_repr",
    "shorten",
    "task_repr",
    "video_html",
    "video_result_html",
]

#: No repr is longer than this (a line in a notebook or a log).
REPR_LIMIT = 120

_MIME = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
}


def shorten(text: str, limit: int) -> str:
    """``text`` cut in the middle to at most ``limit`` characters (both ends stay readable)."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return "…"[:limit]
    head = (limit - 1) // 2
    tail = limit - 1 - head
    return f"{text[:head]}…{text[len(text) - tail :]}"


def _fit(parts: list[str], closing: str = ">") -> str:
    """Join ``parts`` with registered secrets replaced (a relay's link may carry its key); when
    too long, shorten the last one (a URL or an id) to fit."""
    parts = [_logging.redact(part) for part in parts]
    text = " ".join(parts) + closing
    if len(text) <= REPR_LIMIT:
        return text
    room = REPR_LIMIT - len(" ".join(parts[:-1])) - len(closing) - 1
    parts = [*parts[:-1], shorten(parts[-1], max(room, 8))]
    return shorten(" ".join(parts) + closing, REPR_LIMIT)


def _name(model: object) -> str:
    # The sync client's subclasses are the same models to the reader.
    return type(model).__name__.removeprefix("Sync")


def image_mime(media: Media) -> str | None:
    """The MIME type of an image's bytes (sniffed; the declared type as a fallback)."""
    data = media.content
    if data is None:
        return None
    sniffed = sniff_image(data)
    if sniffed is not None:
        return _MIME[sniffed[0]]
    return media.content_type


def _size(media: Media) -> str | None:
    if media.width and media.height:
        return f"{media.width}x{media.height}"
    return None


def media_repr(media: Media) -> str:
    """``<Image 2048x2048 image/png https://…/1.png>``: size, type, then the URL or byte count."""
    parts = [f"<{_name(media)}"]
    size = _size(media)
    if size:
        parts.append(size)
    duration = getattr(media, "duration", None)
    if duration:
        parts.append(f"{duration:g}s")
    kind = media.content_type or (image_mime(media) if media.content is not None else None)
    if kind:
        parts.append(kind)
    parts.append(media.url if media.url else f"{len(media.data or b'')} bytes")
    return _fit(parts)


def result_repr(result: ImageResult | VideoResult) -> str:
    """``<ImageResult 4 images 2048x2048 jimeng-4.0 task=7390…>``."""
    from jimeng.models._media import ImageResult

    parts = [f"<{_name(result)}"]
    if isinstance(result, ImageResult):
        count = len(result.images)
        parts.append(f"{count} image" + ("" if count == 1 else "s"))
        size = _size(result.images[0]) if result.images else None
    else:
        parts.append("video")
        size = _size(result.video)
        if result.video.duration:
            parts.append(f"{result.video.duration:g}s")
    if size:
        parts.append(size)
    if result.model:
        parts.append(result.model)
    if result.task_id:
        parts.append(f"task={result.task_id}")
    return _fit(parts)


def task_repr(task: Task, label: str = "Task") -> str:
    """``<Task image 7390… succeeded jimeng-4.0 on volcengine>`` (no enum noise)."""
    parts = [f"<{label}", task.kind.value, task.status.value]
    if task.failure is not None and task.failure.code is not None:
        parts.append(f"code={task.failure.code}")
    if task.model:
        parts.append(task.model)
    parts.append(f"on {task.backend}")
    parts.append(f"id={task.id}")
    return _fit(parts)


def _source(media: Media, mime: str | None) -> str:
    """A data URI when the bytes are at hand, else the URL (the browser fetches it, not
    Python)."""
    data = media.content
    if data is not None:
        encoded = base64.b64encode(data).decode("ascii")
        return f"data:{mime or 'application/octet-stream'};base64,{encoded}"
    return media.url or ""


def image_html(image: Image, *, caption: str | None = None) -> str:
    import html  # only notebooks render HTML

    src = html.escape(_source(image, image_mime(image)), quote=True)
    alt = html.escape(caption or "generated image", quote=True)
    tag = f'<img src="{src}" alt="{alt}" style="max-width:100%;height:auto" loading="lazy"/>'
    return f"<figure style='margin:0'>{tag}{_figcaption(caption)}</figure>"


def video_html(video: Video, *, caption: str | None = None) -> str:
    import html

    src = html.escape(_source(video, video.content_type or "video/mp4"), quote=True)
    tag = f'<video src="{src}" controls style="max-width:100%" preload="metadata"></video>'
    return f"<figure style='margin:0'>{tag}{_figcaption(caption)}</figure>"


def _figcaption(caption: str | None) -> str:
    if not caption:
        return ""
    import html

    return f"<figcaption style='font-size:smaller'>{html.escape(caption)}</figcaption>"


def _caption(result: ImageResult | VideoResult, size: str | None) -> str:
    """``“a red fox” · 2048x2048 · jimeng-4.0 · task 7390…`` (what is known)."""
    bits: list[str] = []
    if result.prompt:
        bits.append(f"“{shorten(result.prompt, 200)}”")
    if size:
        bits.append(size)
    if result.model:
        bits.append(result.model)
    if result.backend:
        bits.append(f"on {result.backend}")
    if result.task_id:
        bits.append(f"task {result.task_id}")
    return " · ".join(bits)


def image_result_html(result: ImageResult) -> str:
    """The images as a grid, with a caption naming prompt, size, model and task."""
    cells = "".join(image_html(image) for image in result.images)
    size = _size(result.images[0]) if result.images else None
    grid = (
        "<div style='display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));"
        f"gap:8px'>{cells}</div>"
    )
    return f"<div class='jimeng-result'>{grid}{_figcaption(_caption(result, size))}</div>"


def video_result_html(result: VideoResult) -> str:
    return video_html(result.video, caption=_caption(result, _size(result.video)))
