"""Generated media as objects: a URL and/or bytes, with ``read()`` and ``save()``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import attrs

from jimeng import _logging
from jimeng.models import _display
from jimeng.models._checks import refuse

if TYPE_CHECKING:
    import PIL.Image

__all__ = ["Fetcher", "Image", "ImageResult", "Media", "Video", "VideoResult"]

PathLike = str | os.PathLike[str]


class Fetcher(Protocol):
    """What media objects use to reach the network and the disk (the client's downloader)."""

    async def read(self, media: Media) -> bytes: ...

    async def save(
        self, media: Media, target: Path, *, index: int, explicit: bool, stamp: str | None = None
    ) -> Path: ...

    def stamp(self) -> str:
        """The ``YYYYMMDD_HHMMSS`` part of default file names, from the client's clock."""
        ...


@attrs.frozen(kw_only=True)
class Media:
    """A generated file: its URL, its bytes, or both."""

    url: str | None = None
    data: bytes | None = attrs.field(default=None, repr=False)
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    #: When the URL stops working (signed result links expire), if known.
    expires_at: datetime | None = None
    _fetcher: Fetcher | None = attrs.field(default=None, repr=False, eq=False, alias="fetcher")
    #: Bytes downloaded by ``read()``, kept for displaying and reading again (images only).
    _downloaded: bytes | None = attrs.field(default=None, init=False, repr=False, eq=False)
    #: Whether ``read()`` keeps what it downloaded (images, not videos: those can be large).
    _keeps_bytes: ClassVar[bool] = False

    def __attrs_post_init__(self) -> None:
        if self.url is None and self.data is None:
            raise ValueError("media needs a url or data")

    def __str__(self) -> str:
        # ``url`` stays the working link; what is shown hides any registered secret in it (a
        # relay may sign its links with the caller's key).
        return _logging.redact(self.url) if self.url else f"<{len(self.data or b'')} bytes>"

    def __repr__(self) -> str:
        return _display.media_repr(self)

    def _require_fetcher(self) -> Fetcher:
        if self._fetcher is None:
            raise RuntimeError("this media object is not bound to a client")
        return self._fetcher

    async def read(self) -> bytes:
        """Return the file's bytes, downloading them when only a URL is known."""
        if self.data is not None:
            return self.data
        if self._downloaded is not None:
            return self._downloaded
        data = await self._require_fetcher().read(self)
        if self._keeps_bytes:
            object.__setattr__(self, "_downloaded", data)
        return data

    @property
    def content(self) -> bytes | None:
        """The bytes at hand without a network call: inline data, or what ``read()`` kept."""
        return self.data if self.data is not None else self._downloaded

    async def save(self, path: PathLike) -> Path:
        """Save the file atomically and return where it went.

        ``path`` is a file name, or a folder (existing, written with a trailing slash, or without
        a suffix), in which case the name is ``jimeng_YYYYMMDD_HHMMSS_1.<ext>``. The extension is
        always the real content's (``cat.jpg`` holding a PNG is saved as ``cat.png``) and no
        existing file is replaced (a taken name gets ``-2``, ``-3``…): use the path returned.
        """
        target, explicit = _target(path)
        return await self._require_fetcher().save(self, target, index=1, explicit=explicit)


@attrs.frozen(kw_only=True, repr=False)
class Image(Media):
    """A generated image. In a notebook it displays inline (from its bytes when they are here
    or were read, else from its URL: displaying never downloads)."""

    _keeps_bytes: ClassVar[bool] = True

    def _repr_html_(self) -> str:
        return _display.image_html(self)

    def _repr_png_(self) -> bytes | None:
        return self.content if _display.image_mime(self) == "image/png" else None

    def _repr_jpeg_(self) -> bytes | None:
        return self.content if _display.image_mime(self) == "image/jpeg" else None

    async def to_pil(self) -> PIL.Image.Image:
        """The image as a Pillow image (reads it first if needed; needs ``jimeng[pillow]``)."""
        return pil_image(await self.read())


@attrs.frozen(kw_only=True, repr=False)
class Video(Media):
    """A generated video (MP4). In a notebook it displays as a ``<video>`` player."""

    duration: float | None = None
    fps: int | None = None
    #: The upstream record and item (Dreamina ``history_id``/``item_id``), where a gateway
    #: reports them: enough to find the video again on the site.
    history_id: str | None = None
    item_id: str | None = None
    #: The preview and high-quality links a gateway may report beside ``url``.
    preview_url: str | None = None
    hq_url: str | None = None

    def _repr_html_(self) -> str:
        return _display.video_html(self)


def pil_image(data: bytes) -> PIL.Image.Image:
    """Decode image bytes with Pillow (an optional extra, imported only here)."""
    try:
        from PIL import Image as PILImage
    except ImportError:
        raise ImportError(
            "to_pil() needs Pillow: pip install 'jimeng[pillow]' (or pip install Pillow)"
        ) from None
    import io

    picture = PILImage.open(io.BytesIO(data))
    picture.load()
    return picture


def _target(path: PathLike) -> tuple[Path, bool]:
    """Decide whether ``path`` names a file (explicit) or a folder to name files in."""
    if not isinstance(path, str | os.PathLike) or not os.fspath(path):
        raise refuse("path", "a file or folder name (str or Path)", path)
    text = os.fspath(path)
    if not isinstance(text, str):
        raise refuse("path", "a file or folder name (str or Path)", path)
    target = Path(text).expanduser()
    is_dir = text.endswith(("/", os.sep)) or target.is_dir() or not target.suffix
    return target, not is_dir


@attrs.frozen(kw_only=True)
class ImageResult:
    """The images one task produced. In a notebook: a grid with the prompt, size, model and
    task id."""

    images: tuple[Image, ...]
    task_id: str | None = None
    model: str | None = None
    backend: str | None = None
    request_id: str | None = None
    #: What the backend counted for billing, when it says (Ark: ``generated_images``,
    #: ``output_tokens``, ``total_tokens``).
    usage: Mapping[str, int] | None = None
    #: The prompt, when this client submitted the task.
    prompt: str | None = None
    #: What the backend changed to serve the request (e.g. a size it approximated).
    notes: tuple[str, ...] = ()
    raw: Mapping[str, Any] = attrs.field(
        factory=dict, repr=False, eq=False, converter=_logging.scrub
    )

    def __repr__(self) -> str:
        return _display.result_repr(self)

    def _repr_html_(self) -> str:
        return _display.image_result_html(self)

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Any:
        return iter(self.images)

    @property
    def urls(self) -> list[str]:
        """The URLs of the images that have one."""
        return [image.url for image in self.images if image.url]

    async def save(self, path: PathLike = "pic/") -> list[Path]:
        """Save every image and return the paths, in order.

        A folder gets ``jimeng_YYYYMMDD_HHMMSS_N.<ext>`` names; a file name is used for one image
        and numbered (``name_1.png``, ``name_2.png``…) for several. As with :meth:`Image.save`, the
        extension is the real content's and a taken name gets ``-2``, ``-3``….
        """
        target, explicit = _target(path)
        return await _save_all(self.images, target, explicit)


@attrs.frozen(kw_only=True)
class VideoResult:
    """The video one task produced.

    Result links are short-lived (Volcengine: one hour): ``expires_at`` says until when ``url``
    works; ``save()`` streams the MP4 to disk. ``aigc_meta_tagged`` is the server's word on
    whether the implicit AIGC label was embedded, when it says.
    """

    video: Video
    task_id: str | None = None
    model: str | None = None
    backend: str | None = None
    request_id: str | None = None
    aigc_meta_tagged: bool | None = None
    #: What the backend counted for billing, when it says (Ark: ``completion_tokens``,
    #: ``total_tokens``).
    usage: Mapping[str, int] | None = None
    #: The prompt, when this client submitted the task.
    prompt: str | None = None
    #: What the backend changed to serve the request (e.g. a duration it mapped).
    notes: tuple[str, ...] = ()
    raw: Mapping[str, Any] = attrs.field(
        factory=dict, repr=False, eq=False, converter=_logging.scrub
    )

    def __repr__(self) -> str:
        return _display.result_repr(self)

    def _repr_html_(self) -> str:
        return _display.video_result_html(self)

    @property
    def url(self) -> str | None:
        return self.video.url

    @property
    def expires_at(self) -> datetime | None:
        return self.video.expires_at

    async def read(self) -> bytes:
        return await self.video.read()

    async def save(self, path: PathLike = "pic/") -> Path:
        """Stream the MP4 to ``path`` (a file name or a folder) atomically; return where it went.
        A file name keeps a suffix that names MP4 (``.mp4``, ``.m4v``, ``.mov``); another media
        suffix becomes ``.mp4``, any other gets ``.mp4`` added (see docs/saving.md)."""
        return await self.video.save(path)


async def _save_all(items: Sequence[Media], target: Path, explicit: bool) -> list[Path]:
    paths: list[Path] = []
    stamp = items[0]._require_fetcher().stamp() if items else None
    for index, item in enumerate(items, start=1):
        file_target = target
        if explicit and len(items) > 1:
            file_target = target.with_name(f"{target.stem}_{index}{target.suffix}")
        paths.append(
            await item._require_fetcher().save(
                item, file_target, index=index, explicit=explicit, stamp=stamp
            )
        )
    return paths


_CONTENT_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
}


def bind_fetcher(items: Iterable[Media], fetcher: Fetcher) -> None:
    """Attach the client's downloader to media built by a pure parser, and fill in the size and
    type of inline images from their bytes (before the caller ever sees the objects)."""
    from jimeng._imageinfo import sniff_image

    for item in items:
        object.__setattr__(item, "_fetcher", fetcher)
        if item.data is not None and (item.width is None or item.content_type is None):
            sniffed = sniff_image(item.data)
            if sniffed is not None:
                kind, width, height = sniffed
                if item.width is None and item.height is None:
                    object.__setattr__(item, "width", width)
                    object.__setattr__(item, "height", height)
                if item.content_type is None:
                    object.__setattr__(item, "content_type", _CONTENT_TYPES[kind])
