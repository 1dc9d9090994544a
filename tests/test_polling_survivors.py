"""Edges of the poll schedule pinned by value: the image default cap for long intervals, the
spread's upper bound, the plan's ties (a first poll at the submit, a poll exactly at the 95th
percentile, a poll exactly the tolerance ahead), journals holding something other than a map,
the clock guard that decides whether a wait may teach the learner, the learned schedule past
its tail, the last short slice before a deadline, and the timeout message."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest

import jimeng
from jimeng._polling import (
    MAX_SPREAD,
    DurationEstimate,
    PollLearner,
    PollPolicy,
    learn,
    next_wait,
    planned_polls,
    poll_schedule,
    watch,
)
from jimeng.models import Task, TaskKind, TaskStatus

Z60 = 0.2533471031357997


def make(status: TaskStatus) -> Task:
    return Task(id="t1", kind=TaskKind.IMAGE, status=status, backend="test", ref="ref-1", model="m")


class Clock:
    """A hand-driven clock: ``sleep`` moves it by ``rate`` times the wait, each poll by
    ``poll_takes`` seconds, and polls answer from ``statuses`` (the last one repeats)."""

    def __init__(
        self, statuses: list[TaskStatus], *, rate: float = 1.0, poll_takes: float = 0.0
    ) -> None:
        self.now = 0.0
        self.rate = rate
        self.poll_takes = poll_takes
        self.statuses = list(statuses)
        self.sleeps: list[float] = []
        self.polls = 0

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += self.rate * seconds

    def monotonic(self) -> float:
        return self.now

    async def poll(self, task: Task) -> Task:
        self.now += self.poll_takes
        status = self.statuses[min(self.polls, len(self.statuses) - 1)]
        self.polls += 1
        return make(status)


async def run(
    clock: Clock, policy: PollPolicy, learner: PollLearner | None = None, age: float = 0.0
) -> list[TaskStatus]:
    return [
        task.status
        async for task in watch(
            make(TaskStatus.QUEUED),
            clock.poll,
            policy=policy,
            sleep=clock.sleep,
            monotonic=clock.monotonic,
            learner=learner,
            age=age,
        )
    ]


# -- the environment's defaults ---------------------------------------------------------------


def test_a_long_image_interval_raises_the_cap_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIMENG_POLL_INTERVAL", "15")
    monkeypatch.delenv("JIMENG_MAX_POLL_ATTEMPTS", raising=False)
    policy = PollPolicy.for_kind(TaskKind.IMAGE)
    assert policy == PollPolicy(interval=15.0, max_attempts=60, backoff=1.2, max_interval=15.0)
    assert poll_schedule(policy, [None, None, None]) == [15.0, 15.0, 15.0]


# -- learning -----------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 5, 40])
def test_a_bracket_far_out_caps_the_spread_at_its_maximum(count: int) -> None:
    # e^20..e^21 s against an estimate around 1 s: no mass there, the bracket is trusted and the
    # spread it implies (about 20 in log seconds) is cut to MAX_SPREAD, exactly.
    prior = DurationEstimate(mu=0.0, var=MAX_SPREAD**2, count=count)
    updated = learn(prior, math.exp(20.0), math.exp(21.0))
    assert updated.var == MAX_SPREAD**2 == 2.25
    weight = max(0.2, 1.0 / (count + 1))
    assert updated.mu == pytest.approx(weight * 20.5)
    assert updated.count == count + 1


# -- the plan's ties ----------------------------------------------------------------------------


def test_the_plan_never_polls_at_the_submit_itself() -> None:
    # The 60th percentile is exactly one budget (1 s) after the submit: no poll at age 0.
    var = 0.01
    estimate = DurationEstimate(mu=-(math.sqrt(var) * Z60), var=var, count=5)
    assert estimate.quantile(0.6) == 1.0
    plan = planned_polls(estimate, PollPolicy())
    assert next(plan) == 1.0
    assert next(plan) == 2.0


def test_a_poll_less_than_a_second_after_the_submit_is_kept() -> None:
    # 1.8 s: the 60th percentile is 1.846 s, one budget (1 s) before it is 0.846 s.
    estimate = DurationEstimate(mu=math.log(1.8), var=0.01, count=5)
    anchor = 1.8 * math.exp(0.1 * Z60)
    plan = planned_polls(estimate, PollPolicy())
    assert [next(plan) for _ in range(3)] == pytest.approx([anchor - 1.0, anchor, anchor + 1.0])
    assert next_wait(estimate, 0.0, PollPolicy()) == pytest.approx(anchor - 1.0)


def test_a_poll_landing_exactly_on_the_95th_percentile_ends_the_budget_steps() -> None:
    # A spread for which the 60th percentile plus one budget is the 95th percentile, to the bit:
    # the budget-spaced polls stop there and the 1.5x backoff begins (1.5, 2.25, ... s).
    estimate = DurationEstimate(mu=0.6941471805599453, var=0.07554823282514274, count=5)
    anchor, tail = estimate.quantile(0.6), estimate.quantile(0.95)
    assert anchor + 1.0 == tail
    plan = planned_polls(estimate, PollPolicy(max_interval=10.0))
    ages = [next(plan) for _ in range(6)]
    assert ages == pytest.approx(
        [anchor - 1.0, anchor, tail, tail + 1.5, tail + 3.75, tail + 7.125]
    )


def test_a_poll_exactly_the_tolerance_ahead_counts_as_made() -> None:
    estimate = DurationEstimate(mu=math.log(20.0), var=0.01, count=5)
    plan = planned_polls(estimate, PollPolicy())
    first, second = next(plan), next(plan)
    age = first - 1e-6
    while age + 1e-6 != first:  # an age whose tolerance lands on the poll, to the bit
        age = math.nextafter(age, first if age + 1e-6 < first else 0.0)
    assert next_wait(estimate, age, PollPolicy()) == pytest.approx(second - age)
    assert next_wait(estimate, age, PollPolicy()) > 1.0


# -- the journal ----------------------------------------------------------------------------------


class MetaStore:
    def __init__(self, saved: Any) -> None:
        self.meta: dict[str, Any] = {"poll-estimates": saved}

    async def get_meta(self, key: str) -> Any:
        return self.meta.get(key)

    async def put_meta(self, key: str, value: Any) -> None:
        self.meta[key] = value


@pytest.mark.parametrize("saved", ["junk", [["t|m|image", 1]], 42])
async def test_a_journal_entry_that_is_not_a_map_is_ignored_then_replaced(saved: Any) -> None:
    store = MetaStore(saved)
    learner = PollLearner("t", store=lambda: store)

    assert await learner.estimate(make(TaskStatus.SUCCEEDED)) is None
    assert learner.estimates == {}

    await learner.finished(make(TaskStatus.SUCCEEDED), 4.0, 9.0)
    assert store.meta["poll-estimates"] == {"t|m|image": learn(None, 4.0, 9.0).to_dict()}


# -- which waits teach the learner --------------------------------------------------------------


async def test_back_to_back_polls_on_a_moving_clock_teach() -> None:
    # A zero interval sleeps nothing; the clock moves only by the poll's own 0.25 s.
    clock = Clock([TaskStatus.SUCCEEDED], poll_takes=0.25)
    learner = PollLearner("t")
    assert await run(clock, PollPolicy(interval=0), learner) == [
        TaskStatus.QUEUED,
        TaskStatus.SUCCEEDED,
    ]
    assert clock.sleeps == [0.0]
    assert learner.estimates == {"t|m|image": learn(None, 0.0, 0.25)}


async def test_a_task_done_in_under_a_second_teaches() -> None:
    clock = Clock([TaskStatus.SUCCEEDED])
    learner = PollLearner("t")
    await run(clock, PollPolicy(interval=0.5), learner)
    assert clock.sleeps == [0.5]
    assert learner.estimates == {"t|m|image": learn(None, 0.0, 0.5)}
    assert learner.estimates["t|m|image"].mu == pytest.approx(math.log(0.5) - 0.2)


@pytest.mark.parametrize(("age", "lower"), [(0.0, 0.0), (0.5, 0.5), (3.0, 3.0)])
async def test_the_submit_is_the_first_unfinished_sighting(age: float, lower: float) -> None:
    # Done at the first poll, 2 s after the wait began: the bracket runs from the submit's own
    # sighting (the task's age when the wait began; nothing below when that is the submit).
    clock = Clock([TaskStatus.SUCCEEDED])
    learner = PollLearner("t")
    await run(clock, PollPolicy(interval=2.0), learner, age=age)
    assert learner.estimates == {"t|m|image": learn(None, lower, age + 2.0)}


async def test_a_clock_at_half_speed_still_times() -> None:
    # The clock moved 1 s while 2 s were slept: exactly half, the least that still counts.
    clock = Clock([TaskStatus.SUCCEEDED], rate=0.5)
    learner = PollLearner("t")
    await run(clock, PollPolicy(interval=2.0), learner)
    assert learner.estimates == {"t|m|image": learn(None, 0.0, 1.0)}


async def test_a_clock_that_lags_the_total_sleep_teaches_nothing() -> None:
    # Sleeps do not move the clock, each poll takes 1.5 s: 3 s measured against 8 s slept.
    clock = Clock([TaskStatus.RUNNING, TaskStatus.SUCCEEDED], rate=0.0, poll_takes=1.5)
    learner = PollLearner("t")
    statuses = await run(clock, PollPolicy(interval=4.0), learner)
    assert statuses == [TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.SUCCEEDED]
    assert clock.sleeps == [4.0, 4.0]
    assert learner.estimates == {}


async def test_a_frozen_clock_teaches_nothing_even_for_an_old_task() -> None:
    # Submitted 5 s ago, but the clock never moves while waiting: nothing was timed.
    clock = Clock([TaskStatus.RUNNING, TaskStatus.SUCCEEDED], rate=0.0)
    learner = PollLearner("t")
    await run(clock, PollPolicy(interval=2.0), learner, age=5.0)
    assert clock.sleeps == [2.0, 2.0]
    assert learner.estimates == {}


async def test_a_frozen_clock_and_no_sleep_teach_nothing() -> None:
    clock = Clock([TaskStatus.SUCCEEDED], rate=0.0)
    learner = PollLearner("t")
    await run(clock, PollPolicy(interval=0), learner)
    assert learner.estimates == {}


# -- the learned schedule past its tail ---------------------------------------------------------


async def test_a_task_far_slower_than_learnt_follows_the_capped_backoff() -> None:
    learner = PollLearner("t")
    estimate = DurationEstimate(mu=math.log(5.0), var=0.01, count=5)
    learner.estimates["t|m|image"] = estimate
    policy = PollPolicy(interval=2.0, max_attempts=60, max_interval=4.0)
    clock = Clock([TaskStatus.RUNNING] * 12 + [TaskStatus.SUCCEEDED])

    await run(clock, policy, learner)

    plan = planned_polls(estimate, policy)
    ages = [next(plan) for _ in range(13)]
    assert clock.polls == 13
    assert clock.sleeps == pytest.approx([ages[0]] + [b - a for a, b in itertools.pairwise(ages)])
    assert clock.sleeps[-3:] == pytest.approx([4.0, 4.0, 4.0])  # the cap, past the 95th pct
    assert learner.estimates["t|m|image"].count == 6


# -- the deadline and the timeout -------------------------------------------------------------


async def test_a_last_slice_under_a_second_is_still_polled() -> None:
    clock = Clock([TaskStatus.RUNNING])
    with pytest.raises(jimeng.TaskTimeoutError) as caught:
        await run(clock, PollPolicy(interval=4.0, max_attempts=100, deadline=8.5))
    assert clock.sleeps == [4.0, 4.0, 0.5]
    assert clock.polls == 3
    assert str(caught.value) == (
        "task still running after 3 polls (limits: 100 polls, 8.5s); "
        "resume it later with client.tasks.wait('ref-1') (task_id=t1)"
    )


async def test_the_timeout_message_states_the_limits() -> None:
    clock = Clock([TaskStatus.RUNNING])
    with pytest.raises(jimeng.TaskTimeoutError) as caught:
        await run(clock, PollPolicy(interval=2.0, max_attempts=3))
    assert str(caught.value) == (
        "task still running after 3 polls (limits: 3 polls, 6s); "
        "resume it later with client.tasks.wait('ref-1') (task_id=t1)"
    )

    clock = Clock([TaskStatus.QUEUED])
    with pytest.raises(jimeng.TaskTimeoutError) as caught:
        await run(clock, PollPolicy(interval=0, max_attempts=2))
    assert str(caught.value) == (
        "task still queued after 2 polls (limits: 2 polls, no time limit); "
        "resume it later with client.tasks.wait('ref-1') (task_id=t1)"
    )
