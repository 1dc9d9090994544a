"""The polling schedule: intervals, backoff, server hints, attempts and the deadline."""

from __future__ import annotations

import pytest

import jimeng
from jimeng._polling import PollPolicy, poll_schedule, watch
from jimeng.models import Task, TaskKind, TaskStatus


def make(status: TaskStatus, poll_after: float | None = None) -> Task:
    return Task(
        id="t1",
        kind=TaskKind.IMAGE,
        status=status,
        backend="test",
        ref="ref-1",
        poll_after=poll_after,
    )


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def test_schedule_backs_off_to_the_cap_and_follows_hints() -> None:
    policy = PollPolicy(interval=2.0, backoff=1.5, max_interval=5.0)
    assert poll_schedule(policy, [None, None, None, 0.5, None]) == [2.0, 3.0, 4.5, 0.5, 5.0]


def test_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert PollPolicy.for_kind(TaskKind.IMAGE).interval == 2.0
    assert PollPolicy.for_kind(TaskKind.IMAGE).max_attempts == 60
    assert PollPolicy.for_kind(TaskKind.VIDEO).interval == 5.0
    assert PollPolicy.for_kind(TaskKind.VIDEO).max_attempts == 120
    monkeypatch.setenv("JIMENG_POLL_INTERVAL", "0.5")
    monkeypatch.setenv("JIMENG_MAX_POLL_ATTEMPTS", "7")
    monkeypatch.setenv("JIMENG_VIDEO_POLL_INTERVAL", "9")
    image = PollPolicy.for_kind(TaskKind.IMAGE)
    assert (image.interval, image.max_attempts, image.total) == (0.5, 7, 3.5)
    assert PollPolicy.for_kind(TaskKind.VIDEO).interval == 9.0
    monkeypatch.setenv("JIMENG_POLL_INTERVAL", "soon")
    with pytest.raises(jimeng.ConfigurationError, match="JIMENG_POLL_INTERVAL"):
        PollPolicy.for_kind(TaskKind.IMAGE)


async def test_updates_only_on_change_and_stop_at_terminal() -> None:
    clock = FakeTime()
    states = iter(
        [
            make(TaskStatus.QUEUED),
            make(TaskStatus.RUNNING),
            make(TaskStatus.RUNNING),
            make(TaskStatus.SUCCEEDED),
        ]
    )

    async def poll(task: Task) -> Task:
        return next(states)

    seen = [
        t.status
        async for t in watch(
            make(TaskStatus.QUEUED),
            poll,
            policy=PollPolicy(interval=1.0, max_attempts=10),
            sleep=clock.sleep,
            monotonic=clock.monotonic,
        )
    ]
    assert seen == [TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.SUCCEEDED]
    assert clock.sleeps == [1.0, 1.0, 1.0, 1.0]


async def test_server_hint_overrides_the_interval() -> None:
    clock = FakeTime()
    states = iter([make(TaskStatus.RUNNING, poll_after=12.0), make(TaskStatus.SUCCEEDED)])

    async def poll(task: Task) -> Task:
        return next(states)

    async for _ in watch(
        make(TaskStatus.QUEUED, poll_after=0.25),
        poll,
        policy=PollPolicy(interval=1.0),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    ):
        pass
    assert clock.sleeps == [0.25, 12.0]


async def test_deadline_stops_before_attempts_run_out() -> None:
    clock = FakeTime()

    async def poll(task: Task) -> Task:
        return make(TaskStatus.RUNNING)

    with pytest.raises(jimeng.TaskTimeoutError) as caught:
        async for _ in watch(
            make(TaskStatus.QUEUED),
            poll,
            policy=PollPolicy(interval=4.0, max_attempts=100, deadline=10.0),
            sleep=clock.sleep,
            monotonic=clock.monotonic,
        ):
            pass
    assert clock.sleeps == [4.0, 4.0, 2.0]
    error = caught.value
    assert error.task_id == "t1" and error.task_ref == "ref-1" and error.status == "running"
    assert "after 3 polls" in str(error)  # the polls really made, not the attempt limit


async def test_poll_errors_get_the_task_id() -> None:
    async def poll(task: Task) -> Task:
        raise jimeng.ServerError("down", code=50500)

    clock = FakeTime()
    with pytest.raises(jimeng.ServerError) as caught:
        async for _ in watch(
            make(TaskStatus.QUEUED),
            poll,
            policy=PollPolicy(),
            sleep=clock.sleep,
            monotonic=clock.monotonic,
        ):
            pass
    assert caught.value.task_id == "t1" and caught.value.task_ref == "ref-1"


def test_attempts_must_be_whole_and_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIMENG_MAX_POLL_ATTEMPTS", "0.5")
    with pytest.raises(jimeng.ConfigurationError, match="at least 1"):
        PollPolicy.for_kind(TaskKind.IMAGE)
    with pytest.raises(ValueError):
        PollPolicy(max_attempts=0)
