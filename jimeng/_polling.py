"""Waiting for tasks: a schedule, not a sleep.

The interval starts at ``interval``, grows by ``backoff`` after each unchanged poll up to
``max_interval``, follows the server's hint when it gives one, and stops at ``max_attempts`` polls
or the ``deadline`` (seconds since the wait began), whichever comes first. Updates are emitted on
every status change. Defaults follow the seeds' environment variables.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import attrs

from jimeng.errors import ConfigurationError, TaskTimeoutError
from jimeng.models import Task, TaskKind
from jimeng.models._checks import integer, number, required

__all__ = ["PollPolicy", "poll_schedule", "watch"]

Sleep = Callable[[float], Awaitable[None]]
Monotonic = Callable[[], float]


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigurationError(f"{name} must be positive, got {raw!r}")
    return value


def _env_attempts(name: str, default: int) -> int:
    value = _env_number(name, default)
    if value < 1 or value != int(value):
        raise ConfigurationError(f"{name} must be a whole number of polls, at least 1")
    return int(value)


@attrs.frozen(kw_only=True)
class PollPolicy:
    """How often and how long to poll a task."""

    interval: float = attrs.field(default=2.0, validator=required(number(minimum=0)))
    max_attempts: int = attrs.field(default=60, validator=required(integer(minimum=1)))
    #: Factor applied to the interval after each unchanged poll (1 = constant).
    backoff: float = attrs.field(default=1.0, validator=required(number(minimum=1)))
    max_interval: float = attrs.field(default=10.0, validator=required(number(minimum=0)))
    #: Overall limit in seconds; ``None`` means ``interval * max_attempts``.
    deadline: float | None = attrs.field(default=None, validator=number(positive=True))

    @classmethod
    def for_kind(cls, kind: TaskKind) -> PollPolicy:
        """Defaults for a task kind, from the environment like the seed scripts.

        Images: ``JIMENG_POLL_INTERVAL`` (2 s) and ``JIMENG_MAX_POLL_ATTEMPTS`` (60).
        Videos: ``JIMENG_VIDEO_POLL_INTERVAL`` (5 s) and ``JIMENG_VIDEO_MAX_POLL_ATTEMPTS`` (120).
        """
        if kind is TaskKind.VIDEO:
            interval = _env_number("JIMENG_VIDEO_POLL_INTERVAL", 5.0)
            attempts = _env_attempts("JIMENG_VIDEO_MAX_POLL_ATTEMPTS", 120)
            return cls(
                interval=interval,
                max_attempts=attempts,
                backoff=1.2,
                max_interval=max(interval, 20.0),
            )
        interval = _env_number("JIMENG_POLL_INTERVAL", 2.0)
        attempts = _env_attempts("JIMENG_MAX_POLL_ATTEMPTS", 60)
        return cls(
            interval=interval, max_attempts=attempts, backoff=1.2, max_interval=max(interval, 10.0)
        )

    @property
    def total(self) -> float:
        return self.deadline if self.deadline is not None else self.interval * self.max_attempts


def poll_schedule(policy: PollPolicy, hints: list[float | None]) -> list[float]:
    """The waits before each poll given the server hints seen so far (pure, for tests/docs)."""
    waits: list[float] = []
    current = policy.interval
    for hint in hints:
        wait = hint if hint is not None else current
        waits.append(wait)
        current = min(current * policy.backoff, policy.max_interval)
    return waits


async def watch(
    first: Task,
    poll: Callable[[Task], Awaitable[Task]],
    *,
    policy: PollPolicy,
    sleep: Sleep,
    monotonic: Monotonic = time.monotonic,
) -> AsyncIterator[Task]:
    """Yield ``first``, then every changed observation until the task is terminal.

    Raises :class:`TaskTimeoutError` (with the task id) when attempts or the deadline run out.
    Errors from ``poll`` propagate with the task id attached.
    """
    yield first
    task = first
    if task.done:
        return
    started = monotonic()
    interval = policy.interval
    polls = 0
    for _ in range(policy.max_attempts):
        wait = task.poll_after if task.poll_after is not None else interval
        remaining = policy.total - (monotonic() - started)
        if remaining <= 0:
            break
        await sleep(min(wait, remaining))
        polls += 1
        try:
            latest = await poll(task)
        except Exception as error:
            attach = getattr(error, "attach_task", None)
            if attach is not None:
                attach(task.id, task.ref)
            raise
        if latest.status != task.status or latest.done:
            yield latest
        task = latest
        if task.done:
            return
        interval = min(interval * policy.backoff, policy.max_interval)
    raise TaskTimeoutError(
        f"task still {task.status.value} after {polls} polls "
        f"(limits: {policy.max_attempts} polls, {policy.total:g}s); "
        f"resume it later with client.tasks.wait({task.ref!r})",
        task_id=task.id,
        task_ref=task.ref,
        status=task.status.value,
    )
