"""Checking lines with the library's own validation, before anything is submitted.

A line is valid when the request model accepts it (types, ranges, sizes), its local reference
files can be read (they exist, are files, are images), and the backend accepts it (models,
modes, capabilities, and each file's format, pixel size and byte size against the model's
limits): exactly what ``submit`` checks before it sends anything, in the same order.

The backends judge a file by its bytes, so a line's files are read for its check with the reader
``submit`` uses, and let go after it. A file several lines share is read once: the files read
last are kept, up to :data:`KEEP_BYTES` together.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from jimeng.backends import Backend
from jimeng.batch._input import BatchLine, LineProblem
from jimeng.errors import JimengError, ValidationError
from jimeng.models import ImageInput, ImageRequest, TaskKind, VideoRequest, Watermark
from jimeng.models._transforms import MediaInput
from jimeng.resources._common import read_local

__all__ = ["PARAMETER_TO_FIELD", "check_lines", "request_for"]

#: ``generate`` parameters whose request-model field has another name.
PARAMETER_TO_FIELD = {
    TaskKind.IMAGE: {"extra_body": "extra"},
    TaskKind.VIDEO: {"extra_body": "extra", "ratio": "aspect_ratio"},
}


def request_for(line: BatchLine) -> ImageRequest | VideoRequest:
    """The request model ``submit`` would build for ``line`` (raising its ``ValidationError``)."""
    renames = PARAMETER_TO_FIELD[line.kind]
    values: dict[str, Any] = {}
    for name, value in line.params.items():
        field = renames.get(name, name)
        if field == "watermark" and isinstance(value, bool):
            value = Watermark() if value else None
        if field == "aspect_ratio" and values.get(field) not in (None, value):
            raise ValidationError("ratio", "ratio and aspect_ratio disagree; give one")
        values[field] = value
    model = VideoRequest if line.kind is TaskKind.VIDEO else ImageRequest
    return model(prompt=line.prompt, **values)


#: Bytes of local files kept between line checks (so lines sharing a file read it once).
KEEP_BYTES = 64 * 1024 * 1024


class LocalFiles:
    """Local reference files, read as ``submit`` reads them; the ones read last are kept (up
    to ``keep`` bytes together, by path, size and modification time)."""

    def __init__(self, keep: int = KEEP_BYTES):
        self._keep = keep
        self._kept: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._size = 0

    def read(self, path: Path, field: str, *, image: bool) -> bytes:
        try:
            stat = path.stat()
        except OSError:
            return read_local(path, field, image=image)  # refuses it, naming the field
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, image)
        data = self._kept.get(key)
        if data is not None:
            self._kept.move_to_end(key)
            return data
        data = read_local(path, field, image=image)
        if len(data) <= self._keep:
            self._kept[key] = data
            self._size += len(data)
            while self._size > self._keep:
                _, dropped = self._kept.popitem(last=False)
                self._size -= len(dropped)
        return data

    def image(self, image: ImageInput | None, field: str) -> ImageInput | None:
        if image is None or image.path is None or image.data is not None:
            return image
        return attrs.evolve(image, data=self.read(image.path, field, image=True))

    def images(
        self, images: Sequence[ImageInput] | None, field: str
    ) -> tuple[ImageInput, ...] | None:
        if not images:
            return None
        return tuple(
            loaded
            for index, image in enumerate(images)
            if (loaded := self.image(image, f"{field}[{index}]")) is not None
        )

    def media(self, media: MediaInput, field: str) -> MediaInput:
        if media.path is None or media.data is not None:
            return media
        path = Path(media.path).expanduser()
        return attrs.evolve(media, data=self.read(path, field, image=False))

    def loaded(self, request: ImageRequest | VideoRequest) -> ImageRequest | VideoRequest:
        """``request`` with its local files read, like ``submit_request`` reads them."""
        if isinstance(request, ImageRequest):
            if not request.images:
                return request
            return attrs.evolve(request, images=self.images(request.images, "images"))
        videos = None
        if request.reference_videos:
            videos = tuple(
                self.media(video, f"reference_videos[{index}]")
                for index, video in enumerate(request.reference_videos)
            )
        return attrs.evolve(
            request,
            image=self.image(request.image, "image"),
            tail_image=self.image(request.tail_image, "tail_image"),
            reference_images=self.images(request.reference_images, "reference_images"),
            reference_videos=videos,
        )


def check_lines(lines: Sequence[BatchLine], backend: Backend) -> list[LineProblem]:
    """Every problem the library finds in ``lines`` for ``backend`` (no network call). Local
    files are read (relative paths from the current folder, as ``submit`` reads them): call it
    off the event loop."""
    problems: list[LineProblem] = []
    files = LocalFiles()
    for line in lines:
        try:
            request = files.loaded(request_for(line))
            if isinstance(request, ImageRequest):
                backend.validate_image(request)
            else:
                backend.validate_video(request)
        except ValidationError as error:
            problems.append(
                LineProblem(
                    line=line.number,
                    id=line.id,
                    field=error.field or None,
                    message=_reason(error),
                )
            )
        except (JimengError, TypeError, ValueError) as error:
            # NotSupportedError and the models' own type checks: the line as a whole.
            problems.append(
                LineProblem(line=line.number, id=line.id, field=None, message=str(error))
            )
    return problems


def _reason(error: ValidationError) -> str:
    prefix = f"{error.field}: "
    text = error.message
    return text[len(prefix) :] if text.startswith(prefix) else text
