"""A live handle on a submitted task: ``updates()``, ``wait()``, ``result()``, ``cancel()``."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from jimeng._polling import PollPolicy, watch
from jimeng.errors import (
    JimengError,
    TaskCancelledError,
    TaskExpiredError,
    TaskFailedError,
)
from jimeng.models import ImageResult, Task, TaskKind, TaskStatus, VideoResult
from jimeng.models._checks import refuse
from jimeng.models._display import task_repr
from jimeng.models._media import Fetcher, Media
from jimeng.models._replace import replace

if TYPE_CHECKING:
    from jimeng._client import Client

__all__ = ["OnUpdate", "TaskFetcher", "TaskHandle"]

R = TypeVar("R", ImageResult, VideoResult)
OnUpdate = Callable[[Task], Awaitable[None] | None]


class TaskHandle(Generic[R]):
    """A task the server accepted. ``id`` (and ``ref``) survive everything: keep them to resume
    with ``client.tasks.resume(ref)`` from another process, even after a crash."""

    def __init__(self, client: Client, task: Task, *, prompt: str | None = None):
        self._client: Client = client
        self._task: Task = task
        self._prompt: str | None = prompt
        #: When the handle was made (client monotonic clock): a submit's age is known exactly.
        self._made: float = client._monotonic()
        #: Set at submit; polls answer without them, so the handle keeps them for the result.
        self._notes = task.notes

    @property
    def notes(self) -> tuple[str, ...]:
        """What the backend changed to serve the request (e.g. an approximated size)."""
        return self._notes

    def __repr__(self) -> str:
        return task_repr(self._task, "TaskHandle")

    @property
    def id(self) -> str:
        return self._task.id

    @property
    def ref(self) -> str:
        """What ``client.tasks.resume()`` needs (the id, plus the model key where required)."""
        return self._task.ref

    @property
    def kind(self) -> TaskKind:
        return self._task.kind

    @property
    def status(self) -> TaskStatus:
        """The last status seen (no network call)."""
        return self._task.status

    @property
    def task(self) -> Task:
        """The last observation (no network call)."""
        return self._task

    async def refresh(self) -> Task:
        """Ask the server once and return the new observation. Any error (a lost connection
        included) carries the task's id, and the handle keeps it for the next try."""
        if not self._task.done:
            try:
                self._task = await self._client._poll_once(self._task)
            except BaseException as error:
                attach_task(error, self._task)
                raise
        return self._task

    def _age(self) -> float | None:
        """Seconds since the task was submitted: exact for a submit made here, from the
        recorded submit time for a resumed task, ``None`` when unknown (nothing is learned)."""
        if self._prompt is not None:
            return max(0.0, self._client._monotonic() - self._made)
        created = self._task.created_at
        if created is None:
            return None
        try:
            return max(0.0, (self._client._clock() - created).total_seconds())
        except TypeError:  # naive and aware datetimes
            return None

    def _policy(self, poll: PollPolicy | None) -> PollPolicy:
        if poll is not None and not isinstance(poll, PollPolicy):
            raise refuse("poll", "a PollPolicy", poll)
        return poll or self._client._poll_policy(self._task)

    async def updates(self, *, poll: PollPolicy | None = None) -> AsyncIterator[Task]:
        """Yield the current observation, then one per status change, until a terminal state.

        Raises :class:`~jimeng.errors.TaskTimeoutError` (carrying the id) when polling runs out.
        """
        try:
            async for task in self._watch(poll):
                yield self._seen(task)
        except BaseException as error:
            if not isinstance(error, GeneratorExit):
                attach_task(error, self._task)
            raise

    def _watch(self, poll: PollPolicy | None) -> AsyncIterator[Task]:
        age = self._age()
        return watch(
            self._task,
            self._client._poll_once,
            policy=self._policy(poll),
            sleep=self._client._sleep,
            monotonic=self._client._monotonic,
            learner=self._client._shared.learner if age is not None else None,
            age=age or 0.0,
        )

    def _seen(self, task: Task) -> Task:
        """Keep an observation (with the submit's notes, which polls do not repeat)."""
        if self._notes and not task.notes:
            task = replace(task, notes=self._notes)
        self._task = task
        return task

    async def wait(
        self, *, poll: PollPolicy | None = None, on_update: OnUpdate | None = None
    ) -> Task:
        """Poll until the task is terminal and return the last observation (no raise on failure)."""
        if on_update is not None and not callable(on_update):
            raise refuse("on_update", "callable", on_update)
        # The same as iterating updates(), one generator fewer between the caller and the polls.
        try:
            async for task in self._watch(poll):
                task = self._seen(task)
                if on_update is not None:
                    outcome = on_update(task)
                    if inspect.isawaitable(outcome):
                        await outcome
        except BaseException as error:
            attach_task(error, self._task)
            raise
        return self._task

    async def result(
        self, *, poll: PollPolicy | None = None, on_update: OnUpdate | None = None
    ) -> R:
        """Wait, then return the result or raise the task's error (always carrying its id)."""
        task = await self.wait(poll=poll, on_update=on_update)
        try:
            if task.status is TaskStatus.SUCCEEDED and task.result is not None:
                result = task.result
                if self._prompt is not None and result.prompt is None:
                    result = replace(result, prompt=self._prompt)
                if self._notes and not result.notes:
                    result = replace(result, notes=self._notes)
                return cast(R, self._client._bind(result, task))
            error = self._client._task_error(task)
        except BaseException as bug:
            attach_task(bug, task)
            raise
        raise error

    async def cancel(self) -> Task:
        """Ask the server to cancel the task (only queued tasks can be cancelled)."""
        try:
            self._task = await self._client.tasks.cancel(self._task)
        except BaseException as error:
            attach_task(error, self._task)
            raise
        return self._task


def task_error(task: Task, failure_error: Callable[[Task], JimengError | None]) -> JimengError:
    """The exception for a task that ended without a result."""
    message = task.failure.message if task.failure else ""
    code = task.failure.code if task.failure else None
    if task.status is TaskStatus.CANCELLED:
        return TaskCancelledError(
            f"task {task.id} was cancelled", task_id=task.id, task_ref=task.ref, status="cancelled"
        )
    if task.status is TaskStatus.EXPIRED:
        return TaskExpiredError(
            f"task {task.id} is unknown to the server or expired ({task.raw_status}); submit again",
            task_id=task.id,
            task_ref=task.ref,
            status=task.raw_status,
        )
    specific = failure_error(task)
    if specific is not None:
        specific.attach_task(task.id, task.ref)
        return specific
    return TaskFailedError(
        f"task {task.id} failed: {message or task.raw_status or 'no reason given'}",
        task_id=task.id,
        task_ref=task.ref,
        status=task.raw_status,
        code=code,
    )


class TaskFetcher:
    """A result's downloader that leaves the task's id on any error of a read or a save (a
    failed download, a full disk, a cancellation), as every error after acceptance does."""

    def __init__(self, inner: Fetcher, task: Task):
        self._inner = inner
        self._task = task

    async def read(self, media: Media) -> bytes:
        try:
            return await self._inner.read(media)
        except BaseException as error:
            attach_task(error, self._task)
            raise

    async def save(
        self, media: Media, target: Path, *, index: int, explicit: bool, stamp: str | None = None
    ) -> Path:
        try:
            return await self._inner.save(
                media, target, index=index, explicit=explicit, stamp=stamp
            )
        except BaseException as error:
            attach_task(error, self._task)
            raise

    def stamp(self) -> str:
        return self._inner.stamp()


def attach_task(error: BaseException, task: Task) -> None:
    """Leave the task's id on any exception raised after the server accepted it — a library
    error, a ``CancelledError``, a bug — so the caller can still find the paid task.

    Library errors get ``task_id``/``task_ref`` (kept if already set); others get the same
    attributes and a note (``add_note``, Python 3.11+) naming the ref to resume.
    """
    if isinstance(error, JimengError):
        error.attach_task(task.id, task.ref)
        return
    err: Any = error
    if getattr(err, "task_id", None) is not None:
        return  # already attached on the way up
    try:
        err.task_id = task.id
        err.task_ref = task.ref
    except AttributeError:  # an exception type with __slots__: the note still tells
        pass
    if hasattr(error, "add_note"):
        state = "keeps running server-side" if not task.done else "is on the server"
        error.add_note(
            f"jimeng: task {task.id} {state}; resume it with client.tasks.resume({task.ref!r})"
        )
