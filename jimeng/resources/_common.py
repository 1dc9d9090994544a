"""What the resources share: loading local inputs and submitting through the engine."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from jimeng._handle import attach_task
from jimeng._imageinfo import image_format
from jimeng._polling import PollPolicy
from jimeng.errors import InvalidRequestError, ValidationError
from jimeng.models import ImageInput, Task, TaskStatus
from jimeng.models._checks import callable_, check_argument, instance
from jimeng.models._transforms import AvatarRequest, MediaInput, TransformRequest

if TYPE_CHECKING:
    from jimeng._client import Client

__all__ = [
    "OnSubmit",
    "check_wait_options",
    "load_input",
    "notify",
    "read_local",
    "submit_transform",
]

T = TypeVar("T")
OnSubmit = Callable[[Task], Awaitable[None] | None]

#: Local files larger than this are refused before reading (no backend takes more).
MAX_LOCAL_FILE = 100 * 1024 * 1024


def read_local(path: Path, field: str, *, image: bool = True) -> bytes:
    """A local input's bytes, refused (``ValidationError`` naming ``field``) when the file is
    missing, not a file, too large, empty or (``image``) not an image."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ValidationError(field, f"no such file: {path}") from None
    except OSError as error:
        raise ValidationError(field, f"cannot read {path}: {error.strerror}") from None
    except ValueError:  # a NUL, or a name the file system cannot encode
        raise ValidationError(
            field, f"not a file name the file system can encode: {path!r}"
        ) from None
    if not path.is_file():
        raise ValidationError(field, f"not a file: {path}")
    if size > MAX_LOCAL_FILE:
        raise ValidationError(field, f"{path} is {size} bytes, above {MAX_LOCAL_FILE}")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValidationError(field, f"cannot read {path}: {error.strerror}") from None
    if not image:
        return data
    if not data:
        raise ValidationError(field, f"the file {path} is empty")
    if image_format(data) is None:
        raise ValidationError(
            field,
            f"the file {path} is not an image this library can read (it starts with {data[:8]!r})",
            allowed="PNG, JPEG, WebP, GIF or BMP",
        )
    return data


def check_wait_options(poll: Any, on_submit: Any, on_update: Any) -> None:
    """What ``generate()`` uses after the submit is checked before it: a bad ``poll`` must not
    cost a billed task."""
    if poll is None and on_submit is None and on_update is None:
        return  # nothing given: nothing to check
    check_argument("poll", poll, instance(PollPolicy, "a PollPolicy"))
    check_argument("on_submit", on_submit, callable_())
    check_argument("on_update", on_update, callable_())


async def load_input(image: ImageInput | None, field: str) -> ImageInput | None:
    """Read a local file's bytes (off the event loop); URLs and bytes pass through."""
    if image is None or image.path is None or image.data is not None:
        return image
    data = await asyncio.to_thread(read_local, image.path, field)
    return attrs.evolve(image, data=data)


async def load_media(media: MediaInput, field: str) -> MediaInput:
    """Read a local video's bytes (off the event loop); URLs and bytes pass through."""
    if media.path is None or media.data is not None:
        return media
    data = await asyncio.to_thread(read_local, Path(media.path).expanduser(), field, image=False)
    return attrs.evolve(media, data=data)


async def notify(callback: Callable[[Task], Any] | None, task: Task) -> None:
    if callback is not None:
        outcome = callback(task)
        if inspect.isawaitable(outcome):
            await outcome


async def wait_for_result(
    client: Client, handle: Any, *, on_submit: OnSubmit | None = None, **kwargs: Any
) -> Any:
    """``on_submit``, then ``handle.result()``, leaving the task id on any exception (a
    cancellation, a library error, a bug) from the moment the server accepted the task."""
    try:
        if on_submit is not None:
            await notify(on_submit, handle.task)
        return await handle.result(**kwargs)
    except BaseException as error:
        attach_task(error, handle.task)
        raise


async def submit_transform(client: Client, request: TransformRequest) -> Task:
    """Read the local images of a transform, let the backend check it (before any request),
    run the avatar subject check when asked, then submit through the client's submit path (so
    the accepted task is logged and journalled like a generation)."""
    changes: dict[str, Any] = {}
    for field in ("image", "mask"):
        image = getattr(request, field, None)
        if isinstance(image, ImageInput):
            changes[field] = await load_input(image, field)
    request = attrs.evolve(request, **changes)
    backend = client.backend
    backend.validate_transform(request)
    if isinstance(request, AvatarRequest) and request.check:
        await _check_subject(client, request)
    return await client._submit(backend.submit_transform(request), kind=request.kind)


async def _check_subject(client: Client, request: AvatarRequest) -> None:
    """protocols/volcengine.md §3.4.5 step 1: refuse a portrait without a person-like subject
    before the paid video step."""
    from jimeng._handle import TaskHandle

    check = await client._run(client.backend.check_subject(request), kind=request.kind)
    handle: TaskHandle[Any] = TaskHandle(client, check)
    task = await handle.wait()
    if task.status is not TaskStatus.SUCCEEDED:
        raise client._task_error(task)
    if not task.context.get("subject"):
        raise InvalidRequestError(
            "the subject check found no person, human-like or anthropomorphic subject in the "
            "image; the avatar video was not submitted (pass check=False to submit anyway)",
            code="no_subject",
            backend=task.backend,
            body=task.raw,
            task_id=task.id,
            task_ref=task.ref,
        )
