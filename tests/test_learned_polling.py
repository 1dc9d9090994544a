"""The learned poll schedule: estimates from bracketed observations and the polls they plan
(pure functions, no clock), the zero-interval policy, and the schedule end to end on virtual
time against a sandbox with drawn generation times."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import statistics

import pytest

import jimeng
from jimeng._polling import (
    DurationEstimate,
    PollLearner,
    PollPolicy,
    latency_budget,
    learn,
    next_wait,
    planned_polls,
    watch,
)
from jimeng.models import Task, TaskKind, TaskStatus
from jimeng.sandbox import Sandbox, Stages, VirtualClock

POLICY = PollPolicy.for_kind(TaskKind.IMAGE)


def plan(estimate: DurationEstimate, count: int) -> list[float]:
    polls = planned_polls(estimate, POLICY)
    return [round(next(polls), 3) for _ in range(count)]


def test_the_first_observation_centres_on_its_bracket() -> None:
    first = learn(None, 4.0, 9.0)
    assert first.median == pytest.approx(6.0) and first.count == 1
    assert math.sqrt(first.var) == pytest.approx(math.log(9 / 4) / 4)
    # Seen done at the first poll: only an upper bound, so a little under it.
    bounded = learn(None, 0.0, 10.0)
    assert bounded.median == pytest.approx(10 * math.exp(-0.2))
    assert math.sqrt(bounded.var) == pytest.approx(0.3)


def test_tight_brackets_pull_the_estimate_to_the_truth() -> None:
    estimate = learn(None, 2.0, 4.4)  # what a cold 2 s schedule sees of a 3 s task
    for _ in range(20):
        estimate = learn(estimate, 2.95, 3.05)
    assert estimate.median == pytest.approx(3.0, rel=0.02)
    assert math.sqrt(estimate.var) < 0.1


def test_upper_bounds_alone_do_not_drag_the_estimate_down() -> None:
    """Tasks seen done at the first poll (the median) say only "by then": the update uses the
    expected time below that bound under the current estimate, so half the tasks finishing
    early and half late keeps the median where it is."""
    estimate = DurationEstimate(mu=math.log(10.0), var=0.1**2, count=10)
    median = estimate.median
    for _ in range(50):
        estimate = learn(estimate, 0.0, median)  # done by the first poll
        estimate = learn(estimate, median, estimate.quantile(0.95))  # done by a later poll
    assert estimate.median == pytest.approx(10.0, rel=0.05)


def test_planned_polls_bracket_the_expected_completion_a_budget_apart_then_back_off() -> None:
    estimate = DurationEstimate(mu=math.log(20.0), var=0.1**2, count=5)
    assert latency_budget(estimate) == pytest.approx(2.0)  # a tenth of 20 s
    anchor = 20 * math.exp(0.1 * 0.2533471)  # the 60th percentile
    expected = [anchor - 2, anchor, anchor + 2, anchor + 4, anchor + 7, anchor + 11.5]
    assert plan(estimate, 6) == [round(at, 3) for at in expected]
    # Short jobs: the budget is at least a second; wide estimates reach the cap.
    short = DurationEstimate(mu=math.log(3.0), var=0.05**2, count=5)
    assert latency_budget(short) == 1.0
    wide = DurationEstimate(mu=math.log(60.0), var=0.5**2, count=5)
    steps = plan(wide, 30)
    assert steps[1] - steps[0] == pytest.approx(6.0)
    gaps = [b - a for a, b in itertools.pairwise(steps)]
    assert gaps[-1] == pytest.approx(POLICY.max_interval)


def test_next_wait_picks_the_next_planned_poll_for_any_age() -> None:
    estimate = DurationEstimate(mu=math.log(20.0), var=0.1**2, count=5)
    anchor = 20 * math.exp(0.1 * 0.2533471)
    assert next_wait(estimate, 0.0, POLICY) == pytest.approx(anchor - 2)
    assert next_wait(estimate, anchor - 2, POLICY) == pytest.approx(2.0)
    assert next_wait(estimate, 19.0, POLICY) == pytest.approx(anchor - 19.0)
    # A resumed task long past its plan: the backoff steps continue, capped.
    assert next_wait(estimate, 500.0, POLICY) <= POLICY.max_interval


def test_estimates_round_trip_and_reject_garbage() -> None:
    estimate = DurationEstimate(mu=1.5, var=0.04, count=7)
    assert DurationEstimate.from_dict(estimate.to_dict()) == estimate
    assert DurationEstimate.from_dict({"mu": "x"}) is None
    assert DurationEstimate.from_dict({"mu": 1, "var": -1, "count": 2}) is None
    assert DurationEstimate.from_dict(None) is None


def make(status: TaskStatus) -> Task:
    return Task(id="t", kind=TaskKind.IMAGE, status=status, backend="test", ref="t", model="m")


class Timeline:
    """A task that finishes at ``done_at`` seconds, on a hand-driven clock."""

    def __init__(self, done_at: float) -> None:
        self.now = 0.0
        self.done_at = done_at
        self.sleeps: list[float] = []
        self.polls = 0

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def poll(self, task: Task) -> Task:
        self.polls += 1
        return make(TaskStatus.SUCCEEDED if self.now >= self.done_at else TaskStatus.RUNNING)


async def run(timeline: Timeline, learner: PollLearner, policy: PollPolicy = POLICY) -> None:
    async for _ in watch(
        make(TaskStatus.QUEUED),
        timeline.poll,
        policy=policy,
        sleep=timeline.sleep,
        monotonic=lambda: timeline.now,
        learner=learner,
    ):
        pass


async def test_cold_start_is_todays_schedule_then_the_learned_one_takes_over() -> None:
    learner = PollLearner("test")
    cold = Timeline(done_at=5.0)
    await run(cold, learner)
    assert cold.sleeps == [2.0, 2.4, pytest.approx(2.88)]  # exactly the fixed schedule
    second = Timeline(done_at=5.2)
    await run(second, learner)
    assert len(second.sleeps) == 3  # one observation is not enough to trust
    warm = Timeline(done_at=5.1)
    await run(warm, learner)
    assert warm.polls <= 2 and sum(warm.sleeps) - 5.1 <= 1.0
    estimate = learner.estimates["test|m|image"]
    assert estimate.count == 3 and 4.0 < estimate.median < 6.5


async def test_a_pinned_policy_never_learns_and_server_hints_still_win() -> None:
    learner = PollLearner("test")
    learner.estimates["test|m|image"] = DurationEstimate(mu=math.log(30), var=0.01, count=9)
    pinned = Timeline(done_at=3.0)
    await run(pinned, learner, PollPolicy.fixed(1.0))
    assert pinned.sleeps == [1.0, 1.0, 1.0]
    assert learner.estimates["test|m|image"].count == 9

    hinted = Timeline(done_at=3.0)

    async def poll_with_hint(task: Task) -> Task:
        hinted.polls += 1
        status = TaskStatus.SUCCEEDED if hinted.now >= hinted.done_at else TaskStatus.RUNNING
        return Task(
            id="t",
            kind=TaskKind.IMAGE,
            status=status,
            backend="test",
            ref="t",
            model="m",
            poll_after=1.5,
        )

    first = Task(
        id="t",
        kind=TaskKind.IMAGE,
        status=TaskStatus.QUEUED,
        backend="test",
        ref="t",
        model="m",
        poll_after=1.5,
    )
    async for _ in watch(
        first,
        poll_with_hint,
        policy=POLICY,
        sleep=hinted.sleep,
        monotonic=lambda: hinted.now,
        learner=learner,
    ):
        pass
    assert hinted.sleeps == [1.5, 1.5]


async def test_a_clock_that_does_not_move_teaches_nothing() -> None:
    learner = PollLearner("test")
    for _ in range(3):
        sleeps: list[float] = []

        async def sleep(seconds: float, sleeps: list[float] = sleeps) -> None:
            sleeps.append(seconds)

        async for _ in watch(
            make(TaskStatus.QUEUED),
            lambda task: asyncio.sleep(0, make(TaskStatus.SUCCEEDED)),
            policy=POLICY,
            sleep=sleep,
            monotonic=lambda: 7.0,
            learner=learner,
        ):
            pass
        assert sleeps == [2.0]
    assert learner.estimates == {}


def test_a_zero_interval_is_a_budget_of_polls_and_a_zero_budget_is_refused() -> None:
    policy = PollPolicy(interval=0, max_attempts=5)
    assert policy.total is None
    assert PollPolicy(interval=0, max_attempts=5, deadline=3.0).total == 3.0
    with pytest.raises(jimeng.ValidationError, match="deadline"):
        PollPolicy(interval=0, deadline=0)
    with pytest.raises(jimeng.ValidationError, match="max_attempts"):
        PollPolicy(interval=0, max_attempts=0)


async def test_a_zero_interval_polls_back_to_back_until_done() -> None:
    timeline = Timeline(done_at=0.0)
    states = iter([TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.SUCCEEDED])

    async def poll(task: Task) -> Task:
        timeline.polls += 1
        return make(next(states))

    seen = [
        task.status
        async for task in watch(
            make(TaskStatus.QUEUED),
            poll,
            policy=PollPolicy(interval=0),
            sleep=timeline.sleep,
            monotonic=lambda: timeline.now,
        )
    ]
    assert seen == [TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.SUCCEEDED]
    assert timeline.sleeps == [0.0, 0.0, 0.0] and timeline.polls == 3
    with pytest.raises(jimeng.TaskTimeoutError, match="no time limit"):
        async for _ in watch(
            make(TaskStatus.QUEUED),
            lambda task: asyncio.sleep(0, make(TaskStatus.RUNNING)),
            policy=PollPolicy(interval=0, max_attempts=4),
            sleep=timeline.sleep,
            monotonic=lambda: timeline.now,
        ):
            pass


@pytest.mark.parametrize("seconds", [5.0, 20.0])
async def test_after_warm_up_images_take_about_two_polls_and_little_extra_time(
    seconds: float,
) -> None:
    clock = VirtualClock()
    stages = Stages(generate_delay=seconds, distribution="uniform", spread=0.2)
    sandbox = Sandbox(stages=stages, seed=3)
    sandbox.server.clock = clock
    async with jimeng.Client(
        sandbox, sleep=clock.sleep, monotonic=clock, rng=random.Random(0)
    ) as client:
        for index in range(5):
            await client.images.generate(f"warm-up {index}")
        polls, extra = [], []
        for index in range(15):
            handle = await client.images.submit(f"measured {index}")
            started = clock.now
            await handle.result()
            task = sandbox.server.tasks[handle.id]
            polls.append(task.polls)
            extra.append(clock.now - started - task.stages.generate_delay)
    assert statistics.median(polls) <= 2
    assert statistics.median(extra) <= max(0.1 * seconds, 1.0)


async def test_estimates_outlive_the_client_through_the_journal(tmp_path: object) -> None:
    from pathlib import Path

    journal = Path(str(tmp_path)) / "journal.sqlite3"
    clock = VirtualClock()
    sandbox = Sandbox(stages=Stages(generate_delay=8.0), seed=1)
    sandbox.server.clock = clock
    async with jimeng.Client(sandbox, sleep=clock.sleep, monotonic=clock, journal=journal) as c:
        for index in range(3):
            await c.images.generate(f"learn {index}")
        learned = dict(c._shared.learner.estimates)  # type: ignore[union-attr]
        assert [e.count for e in learned.values()] == [3]
    sandbox2 = Sandbox(stages=Stages(generate_delay=8.0), seed=2)
    sandbox2.server.clock = clock
    async with jimeng.Client(sandbox2, sleep=clock.sleep, monotonic=clock, journal=journal) as c:
        handle = await c.images.submit("remembered")
        await handle.result()
        assert sandbox2.server.tasks[handle.id].polls <= 2  # warm from the first poll
        (estimate,) = c._shared.learner.estimates.values()  # type: ignore[union-attr]
        assert estimate.count == 4
