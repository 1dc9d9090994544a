"""The poll schedule's arithmetic by value, against independent oracles: the normal density and
distribution, the truncated-normal moments (by numeric integration), the learning step, the plan
of poll times, the environment's numbers and the learner's use of the journal."""

from __future__ import annotations

import itertools
import logging
import math
from typing import Any

import pytest

from jimeng._polling import (
    EWMA_WEIGHT,
    MAX_SPREAD,
    MIN_SPREAD,
    DurationEstimate,
    PollLearner,
    PollPolicy,
    _cdf,
    _inside,
    _phi,
    learn,
    next_wait,
    planned_polls,
)
from jimeng.errors import ConfigurationError
from jimeng.models import Task, TaskKind, TaskStatus


def integrate(f: Any, low: float, high: float, steps: int = 20000) -> float:
    """Simpson's rule: the oracle for the truncated-normal moments."""
    h = (high - low) / steps
    total = f(low) + f(high)
    for i in range(1, steps):
        total += (4 if i % 2 else 2) * f(low + i * h)
    return total * h / 3


def truncated_moments(mu: float, var: float, low: float, high: float) -> tuple[float, float]:
    sd = math.sqrt(var)
    low = max(low, mu - 12 * sd)
    high = min(high, mu + 12 * sd)

    def density(x: float) -> float:
        return math.exp(-((x - mu) ** 2) / (2 * var))

    mass = integrate(density, low, high)
    mean = integrate(lambda x: x * density(x), low, high) / mass
    second = integrate(lambda x: (x - mean) ** 2 * density(x), low, high) / mass
    return mean, second


def test_phi_and_cdf_are_the_standard_normal() -> None:
    assert _phi(0.0) == pytest.approx(0.3989422804014327, rel=1e-12)
    assert _phi(1.0) == pytest.approx(0.24197072451914337, rel=1e-12)
    assert _phi(-2.0) == pytest.approx(0.05399096651318806, rel=1e-12)
    assert _phi(math.inf) == 0.0 and _phi(-math.inf) == 0.0
    assert _cdf(0.0) == 0.5
    assert _cdf(1.0) == pytest.approx(0.8413447460685429, rel=1e-12)
    assert _cdf(-1.5) == pytest.approx(0.06680720126885807, rel=1e-12)
    assert _cdf(-math.inf) == 0.0 and _cdf(math.inf) == 1.0


@pytest.mark.parametrize(
    ("mu", "var", "low", "high"),
    [
        (0.0, 1.0, -1.0, 1.0),
        (2.0, 0.25, 2.1, 3.0),
        (1.0, 0.5, 0.2, 1.1),
        (2.5, 0.09, -math.inf, 2.4),
        (0.0, 1.0, -math.inf, -0.5),
    ],
)
def test_inside_gives_the_truncated_normal_moments(
    mu: float, var: float, low: float, high: float
) -> None:
    mean, spread = _inside(mu, var, low, high)
    want_mean, want_spread = truncated_moments(mu, var, low, high)
    assert mean == pytest.approx(want_mean, abs=1e-6)
    assert spread == pytest.approx(want_spread, abs=1e-6)


def test_a_bracket_far_in_the_tail_is_trusted_as_it_is() -> None:
    # 40 standard deviations out: no mass left, the bracket itself is the evidence.
    assert _inside(0.0, 0.01, 4.0, 5.0) == (4.5, 1.0 / 12)
    assert _inside(0.0, 0.01, 4.0, 7.0) == (5.5, 9.0 / 12)
    assert _inside(0.0, 0.01, -math.inf, -4.0) == (-4.0, 0.01)


def test_the_first_observation_by_value() -> None:
    two_sided = learn(None, math.e, math.e**3)
    assert (two_sided.mu, two_sided.var, two_sided.count) == (2.0, 0.25, 1)
    narrow = learn(None, 10.0, 10.5)  # spread floored at 0.15
    assert narrow.mu == pytest.approx((math.log(10) + math.log(10.5)) / 2)
    assert narrow.var == pytest.approx(0.15**2)
    one_sided = learn(None, 0.0, math.e**2)  # done at the first poll
    assert (one_sided.mu, one_sided.var, one_sided.count) == (pytest.approx(1.8), 0.09, 1)
    wide = learn(None, 0.01, 1e6)  # spread capped
    assert wide.var == pytest.approx(MAX_SPREAD**2)
    assert learn(None, 0.0, 0.0).mu == pytest.approx(math.log(1e-3) - 0.2)


def test_a_later_observation_moves_by_the_weight_of_its_count() -> None:
    prior = DurationEstimate(mu=2.0, var=0.04, count=1)
    low, high = math.log(9.0), math.log(11.0)
    mean, within = _inside(2.0, 0.04, low, high)

    second = learn(prior, 9.0, 11.0)  # weight 1/2: the first two average equally
    assert second.count == 2
    assert second.mu == pytest.approx(2.0 + 0.5 * (mean - 2.0))
    assert second.var == pytest.approx(0.5 * 0.04 + 0.5 * (within + (mean - 2.0) ** 2))

    seasoned = DurationEstimate(mu=2.0, var=0.04, count=30)
    later = learn(seasoned, 9.0, 11.0)  # then the EWMA weight
    assert later.mu == pytest.approx(2.0 + EWMA_WEIGHT * (mean - 2.0))
    assert later.count == 31


def test_the_spread_stays_within_its_bounds() -> None:
    tight = learn(DurationEstimate(mu=2.0, var=MIN_SPREAD**2, count=50), 7.38, 7.39)
    assert tight.var == pytest.approx(MIN_SPREAD**2)
    loose = learn(DurationEstimate(mu=0.0, var=MAX_SPREAD**2, count=1), 1e-3, 1e4)
    assert loose.var <= MAX_SPREAD**2 + 1e-12


def test_a_first_bound_at_zero_is_one_sided() -> None:
    prior = DurationEstimate(mu=2.0, var=0.04, count=5)
    mean, _ = _inside(2.0, 0.04, -math.inf, math.log(8.0))
    assert learn(prior, 0.0, 8.0).mu == pytest.approx(2.0 + EWMA_WEIGHT * (mean - 2.0))


@pytest.mark.parametrize(
    ("data", "kept"),
    [
        ({"mu": 1.0, "var": 0.1, "count": 1}, True),
        ({"mu": 1.0, "var": 0.0, "count": 3}, False),
        ({"mu": 1.0, "var": 0.1, "count": 0}, False),
        ({"mu": "nan", "var": 0.1, "count": 3}, False),
        ({"mu": 1.0, "var": "inf", "count": 3}, False),
        ({"mu": 1.0, "var": 0.1}, False),
        ("garbage", False),
    ],
)
def test_saved_estimates_are_checked(data: Any, kept: bool) -> None:
    restored = DurationEstimate.from_dict(data)
    assert (restored is not None) is kept
    if kept:
        assert restored == DurationEstimate(mu=1.0, var=0.1, count=1)


def test_the_plan_around_a_known_duration() -> None:
    # 20 s with little spread: polls a budget of 2 s apart from one budget before the 60th
    # percentile until past the 95th (about 23.6 s), then steps of 3, 4.5, 6.75 and the 10 s cap.
    estimate = DurationEstimate(mu=math.log(20.0), var=0.01, count=5)
    anchor = 20.0 * math.exp(0.1 * 0.2533471031357997)
    assert estimate.quantile(0.95) == pytest.approx(20.0 * math.exp(0.1 * 1.6448536269514722))
    plan = planned_polls(estimate, PollPolicy(max_interval=10.0))

    assert [next(plan) for _ in range(9)] == pytest.approx(
        [anchor + d for d in (-2.0, 0.0, 2.0, 4.0, 7.0, 11.5, 18.25, 28.25, 38.25)]
    )


def test_a_short_task_is_not_polled_before_it_was_submitted() -> None:
    estimate = DurationEstimate(mu=math.log(0.5), var=0.01, count=5)  # budget 1 s > anchor
    plan = planned_polls(estimate, PollPolicy())
    assert next(plan) == pytest.approx(estimate.quantile(0.6))


def test_the_backoff_after_the_tail_grows_to_the_cap() -> None:
    estimate = DurationEstimate(mu=math.log(10.0), var=0.0009, count=5)
    plan = list(zip(range(30), planned_polls(estimate, PollPolicy(max_interval=4.0)), strict=False))
    ages = [at for _, at in plan]
    steps = [b - a for a, b in itertools.pairwise(ages)]
    assert steps[-1] == pytest.approx(4.0)
    assert max(steps) == pytest.approx(4.0)
    assert [round(s, 6) for s in steps if s > 1.0 + 1e-9][:3] == [1.5, 2.25, 3.375]


def test_next_wait_is_the_time_to_the_next_poll_strictly_ahead() -> None:
    estimate = DurationEstimate(mu=math.log(20.0), var=0.01, count=5)
    plan = planned_polls(estimate, PollPolicy())
    first, second = next(plan), next(plan)

    assert next_wait(estimate, 0.0, PollPolicy()) == pytest.approx(first)
    assert next_wait(estimate, first, PollPolicy()) == pytest.approx(second - first)
    assert next_wait(estimate, first - 1e-7, PollPolicy()) == pytest.approx(second - first + 1e-7)


# -- the environment ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "interval", "attempts"),
    [
        ({}, 2.0, 60),
        ({"JIMENG_POLL_INTERVAL": "", "JIMENG_MAX_POLL_ATTEMPTS": "  "}, 2.0, 60),
        ({"JIMENG_POLL_INTERVAL": "0.5", "JIMENG_MAX_POLL_ATTEMPTS": "1"}, 0.5, 1),
        ({"JIMENG_MAX_POLL_ATTEMPTS": "3.0"}, 2.0, 3),
    ],
)
def test_image_defaults_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], interval: float, attempts: int
) -> None:
    for name in ("JIMENG_POLL_INTERVAL", "JIMENG_MAX_POLL_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert PollPolicy.for_kind(TaskKind.IMAGE) == PollPolicy(
        interval=interval, max_attempts=attempts, backoff=1.2, max_interval=max(interval, 10.0)
    )


def test_video_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JIMENG_VIDEO_POLL_INTERVAL", raising=False)
    monkeypatch.setenv("JIMENG_VIDEO_MAX_POLL_ATTEMPTS", "7")
    assert PollPolicy.for_kind(TaskKind.VIDEO) == PollPolicy(
        interval=5.0, max_attempts=7, backoff=1.2, max_interval=20.0
    )
    monkeypatch.setenv("JIMENG_VIDEO_POLL_INTERVAL", "30")
    assert PollPolicy.for_kind(TaskKind.VIDEO).max_interval == 30.0


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("JIMENG_POLL_INTERVAL", "0", "JIMENG_POLL_INTERVAL must be a positive number, got '0'"),
        ("JIMENG_POLL_INTERVAL", "-1", "JIMENG_POLL_INTERVAL must be a positive number, got '-1'"),
        ("JIMENG_POLL_INTERVAL", "soon", "JIMENG_POLL_INTERVAL must be a number, got 'soon'"),
        (
            "JIMENG_POLL_INTERVAL",
            "nan",
            "JIMENG_POLL_INTERVAL must be a positive number, got 'nan'",
        ),
        (
            "JIMENG_POLL_INTERVAL",
            "inf",
            "JIMENG_POLL_INTERVAL must be a positive number, got 'inf'",
        ),
        (
            "JIMENG_MAX_POLL_ATTEMPTS",
            "2.5",
            "JIMENG_MAX_POLL_ATTEMPTS must be a whole number of polls, at least 1",
        ),
        (
            "JIMENG_MAX_POLL_ATTEMPTS",
            "0",
            "JIMENG_MAX_POLL_ATTEMPTS must be a positive number, got '0'",
        ),
        (
            "JIMENG_MAX_POLL_ATTEMPTS",
            "0.5",
            "JIMENG_MAX_POLL_ATTEMPTS must be a whole number of polls, at least 1",
        ),
    ],
)
def test_bad_environment_numbers_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        PollPolicy.for_kind(TaskKind.IMAGE)
    assert str(caught.value) == message


def test_a_fixed_policy_keeps_its_options() -> None:
    assert PollPolicy.fixed(3.0, max_attempts=5, backoff=2.0) == PollPolicy(
        interval=3.0, max_attempts=5, backoff=2.0, adaptive=False
    )


# -- the learner and the journal -------------------------------------------------------------


class MetaStore:
    def __init__(self, saved: Any = None, *, fail: bool = False) -> None:
        self.meta: dict[str, Any] = {} if saved is None else {"poll-estimates": saved}
        self.fail = fail
        self.reads: list[str] = []

    async def get_meta(self, key: str) -> Any:
        self.reads.append(key)
        if self.fail:
            raise OSError("disk gone")
        return self.meta.get(key)

    async def put_meta(self, key: str, value: Any) -> None:
        self.meta[key] = value


def task(model: str | None = "m") -> Task:
    return Task(
        id="1", kind=TaskKind.IMAGE, status=TaskStatus.SUCCEEDED, backend="b", ref="1", model=model
    )


def test_learner_keys_name_scope_model_and_kind() -> None:
    learner = PollLearner("volc@host")
    assert learner.key(task()) == "volc@host|m|image"
    assert learner.key(task(None)) == "volc@host|-|image"


async def test_the_learner_reads_the_journal_once_and_keeps_what_it_learnt() -> None:
    saved = {
        "s|m|image": {"mu": 2.0, "var": 0.04, "count": 4},
        "s|x|image": {"mu": "bad"},
    }
    store = MetaStore(saved)
    learner = PollLearner("s", store=lambda: store)

    warm = await learner.estimate(task())
    await learner.estimate(task())

    assert warm == DurationEstimate(mu=2.0, var=0.04, count=4)
    assert store.reads == ["poll-estimates"]
    assert set(learner.estimates) == {"s|m|image"}

    await learner.finished(task(), 7.0, 8.0)
    written = store.meta["poll-estimates"]
    assert written["s|m|image"] == learner.estimates["s|m|image"].to_dict()
    assert written["s|m|image"]["count"] == 5
    assert written["s|x|image"] == {"mu": "bad"}  # other entries are kept as they were


async def test_a_cold_family_has_no_estimate_until_it_is_warm() -> None:
    learner = PollLearner("s")
    assert await learner.estimate(task()) is None
    await learner.finished(task(), 7.0, 8.0)
    assert await learner.estimate(task()) is None  # one observation is not enough
    await learner.finished(task(), 7.0, 8.0)
    assert (await learner.estimate(task())) == learner.estimates["s|m|image"]


async def test_what_was_learnt_in_this_process_wins_over_the_journal() -> None:
    store = MetaStore({"s|m|image": {"mu": 9.0, "var": 0.04, "count": 9}})
    learner = PollLearner("s", store=lambda: store)
    learner.estimates["s|m|image"] = DurationEstimate(mu=1.0, var=0.04, count=3)

    assert await learner.estimate(task()) == DurationEstimate(mu=1.0, var=0.04, count=3)


async def test_a_failing_journal_never_fails_the_task(caplog: pytest.LogCaptureFixture) -> None:
    store = MetaStore(fail=True)
    learner = PollLearner("s", store=lambda: store)

    with caplog.at_level(logging.WARNING, logger="jimeng"):
        await learner.finished(task(), 7.0, 8.0)

    assert learner.estimates["s|m|image"].count == 1
    assert [r.getMessage() for r in caplog.records] == ["could not save poll estimates: disk gone"]
