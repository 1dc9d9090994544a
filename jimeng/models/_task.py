"""Task records: what the server says about a submitted generation."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from jimeng import _logging

if TYPE_CHECKING:
    from jimeng.models._media import ImageResult, VideoResult

__all__ = ["QueueStats", "Task", "TaskFailure", "TaskKind", "TaskStatus"]


class TaskStatus(str, enum.Enum):
    """The library's task states. Each backend's own words map onto these."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        """True once the task will not change any more."""
        return self in _TERMINAL

    def __str__(self) -> str:
        return self.value


# A tuple, not a set: membership then compares by identity first, where a set would hash the
# member with the Python-level ``Enum.__hash__`` (read for every poll).
_TERMINAL = (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.EXPIRED)


class TaskKind(str, enum.Enum):
    """What a task generates."""

    IMAGE = "image"
    VIDEO = "video"

    def __str__(self) -> str:
        return self.value


@attrs.frozen(kw_only=True)
class TaskFailure:
    """Why a task failed, in the backend's own terms."""

    code: int | str | None = attrs.field(default=None, converter=_logging.scrub)
    message: str = attrs.field(default="", converter=_logging.scrub)


@attrs.frozen(kw_only=True)
class QueueStats:
    """A task server's queue when it answered (the gateway's ``queue_stats``): tasks running,
    tasks waiting, and how many it runs at once."""

    running: int = 0
    queued: int = 0
    max_concurrent: int | None = None


@attrs.frozen(kw_only=True)
class Task:
    """One observation of a server-side task.

    ``id`` is the server's task id. ``ref`` is what :meth:`Tasks.resume` needs to pick the task up
    later (for most backends it equals ``id``; some also need the model key). ``raw_status`` is the
    server's own word for the state, ``raw`` the whole decoded answer.
    """

    id: str
    kind: TaskKind
    status: TaskStatus
    backend: str
    ref: str
    model: str | None = None
    raw_status: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None
    failure: TaskFailure | None = None
    result: ImageResult | VideoResult | None = attrs.field(default=None, repr=False)
    #: What the backend changed to serve the request (e.g. a size it approximated); the
    #: result carries the same notes.
    notes: tuple[str, ...] = attrs.field(default=(), eq=False)
    #: The server's queue when it answered, where it reports one (gateways in task mode).
    queue: QueueStats | None = attrs.field(default=None, eq=False)
    #: Seconds the server asks the client to wait before the next poll, when it says so.
    poll_after: float | None = attrs.field(default=None, repr=False)
    #: The decoded answer, registered secrets scrubbed.
    raw: Mapping[str, Any] = attrs.field(
        factory=dict, repr=False, eq=False, converter=_logging.scrub
    )
    #: Backend-private state carried from one poll to the next (never sent to users' logs).
    context: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    def __repr__(self) -> str:
        from jimeng.models._display import task_repr

        return task_repr(self)

    @property
    def done(self) -> bool:
        """True once the task reached a terminal state."""
        return self.status in _TERMINAL
