"""Checking lines with the library's own validation, before anything is submitted.

A line is valid when the request model accepts it (types, ranges, sizes), the backend accepts it
(models, modes, capabilities) and its local reference files exist: exactly what ``submit``
checks before it sends anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jimeng.backends import Backend
from jimeng.batch._input import BatchLine, LineProblem
from jimeng.errors import JimengError, ValidationError
from jimeng.models import ImageInput, ImageRequest, TaskKind, VideoRequest, Watermark

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


def _local_inputs(request: ImageRequest | VideoRequest) -> list[tuple[str, ImageInput]]:
    if isinstance(request, ImageRequest):
        return [(f"images[{i}]", image) for i, image in enumerate(request.images or ())]
    return [
        (name, image)
        for name, image in (("image", request.image), ("tail_image", request.tail_image))
        if image is not None
    ]


def _check_files(request: ImageRequest | VideoRequest, base: Path | None) -> None:
    for field, image in _local_inputs(request):
        if image.path is None:
            continue
        path = image.path if base is None or image.path.is_absolute() else base / image.path
        if not path.is_file():
            raise ValidationError(field, f"no such file: {image.path}")


def check_lines(
    lines: Sequence[BatchLine], backend: Backend, *, base: Path | None = None
) -> list[LineProblem]:
    """Every problem the library finds in ``lines`` for ``backend`` (no network call)."""
    problems: list[LineProblem] = []
    for line in lines:
        try:
            request = request_for(line)
            if isinstance(request, ImageRequest):
                backend.validate_image(request)
            else:
                backend.validate_video(request)
            _check_files(request, base)
        except ValidationError as error:
            problems.append(
                LineProblem(line=line.number, field=error.field or None, message=_reason(error))
            )
        except (JimengError, TypeError, ValueError) as error:
            # NotSupportedError and the models' own type checks: the line as a whole.
            problems.append(LineProblem(line=line.number, field=None, message=str(error)))
    return problems


def _reason(error: ValidationError) -> str:
    prefix = f"{error.field}: "
    text = error.message
    return text[len(prefix) :] if text.startswith(prefix) else text
