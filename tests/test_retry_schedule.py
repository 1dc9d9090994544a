"""``call_with_retry`` end to end: how many attempts, which waits, and what is never retried.

Each case scripts what every attempt raises and pins the exact attempts made and the exact
delays slept (jitter off, or a seeded generator), so a change to the schedule, the budget or the
retry table shows up as a different number, not only as "it retried".
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from jimeng._retry import RetryPolicy, call_with_retry, compute_delay
from jimeng.errors import (
    APIConnectionError,
    APITimeoutError,
    ContentPolicyError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)

Outcome = BaseException | str


class Script:
    """Raises the scripted errors in order; a string is a successful answer."""

    def __init__(self, outcomes: Sequence[Outcome]):
        self.outcomes = list(outcomes)
        self.attempts = 0

    async def __call__(self) -> str:
        outcome = self.outcomes[self.attempts]
        self.attempts += 1
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class Recorder:
    def __init__(self) -> None:
        self.slept: list[float] = []
        self.retries: list[tuple[int, str]] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def on_retry(self, attempt: int, error: BaseException | None) -> None:
        self.retries.append((attempt, type(error).__name__))


def busy(retry_after: float | None = None) -> RateLimitError:
    return RateLimitError("busy", code=50429, retry_after=retry_after)


def refused_500() -> ServerError:
    error = ServerError("internal", code=50500)
    error.resend_safe = True
    return error


EXACT = RetryPolicy(max_attempts=4, initial_delay=0.5, max_delay=8.0, jitter=0.0)


async def run(
    outcomes: Sequence[Outcome], policy: RetryPolicy = EXACT, *, idempotent: bool = True
) -> tuple[Script, Recorder, str | BaseException]:
    script, recorder = Script(outcomes), Recorder()
    try:
        result: str | BaseException = await call_with_retry(
            script,
            policy,
            idempotent=idempotent,
            sleep=recorder.sleep,
            rng=random.Random(7),
            on_retry=recorder.on_retry,
        )
    except Exception as error:
        result = error
    return script, recorder, result


@pytest.mark.parametrize(
    ("max_attempts", "slept"),
    [(1, []), (2, [0.5]), (3, [0.5, 1.0]), (4, [0.5, 1.0, 2.0]), (6, [0.5, 1.0, 2.0, 4.0, 8.0])],
)
async def test_the_budget_counts_the_first_try_and_the_backoff_never_restarts(
    max_attempts: int, slept: list[float]
) -> None:
    policy = RetryPolicy(max_attempts=max_attempts, initial_delay=0.5, max_delay=8.0, jitter=0.0)
    script, recorder, result = await run([busy() for _ in range(10)], policy)

    assert script.attempts == max_attempts
    assert recorder.slept == slept
    assert [n for n, _ in recorder.retries] == list(range(1, max_attempts))
    assert isinstance(result, RateLimitError)


async def test_success_after_retries_returns_the_answer_and_stops() -> None:
    script, recorder, result = await run([busy(), refused_500(), "ok", "never"])

    assert result == "ok"
    assert script.attempts == 3
    assert recorder.slept == [0.5, 1.0]
    assert recorder.retries == [(1, "RateLimitError"), (2, "ServerError")]


async def test_retry_after_is_honoured_on_every_retry() -> None:
    _, recorder, result = await run([busy(3.0), busy(1.25), busy(0.0), "ok"])

    assert result == "ok"
    assert recorder.slept == [3.0, 1.25, 0.0]


async def test_a_retry_after_above_the_cap_is_raised_at_once_on_any_attempt() -> None:
    policy = RetryPolicy(max_attempts=4, jitter=0.0, max_retry_after=10.0)
    script, recorder, result = await run([busy(), busy(11.0), "ok"], policy)

    assert isinstance(result, RateLimitError) and result.retry_after == 11.0
    assert script.attempts == 2
    assert recorder.slept == [0.5]


@pytest.mark.parametrize(
    "refusal",
    [
        ContentPolicyError("blocked", code=50412),
        PermissionDeniedError("forbidden", code="AccessDenied", status_code=403),
        ValueError("a bug, not a server answer"),
    ],
    ids=["content-policy", "403", "foreign"],
)
@pytest.mark.parametrize("position", [0, 1, 2])
async def test_a_refusal_is_never_retried_whichever_attempt_meets_it(
    refusal: Exception, position: int
) -> None:
    outcomes: list[Outcome] = [busy() for _ in range(position)] + [refusal, "never"]
    script, recorder, result = await run(outcomes)

    assert result is refusal
    assert script.attempts == position + 1
    assert recorder.slept == [0.5, 1.0][:position]


@pytest.mark.parametrize(
    "ambiguous",
    [
        APIConnectionError("reset", sent=None),
        APITimeoutError("read timeout", sent=None),
        ServerError("bad gateway", status_code=502),
    ],
    ids=["reset", "timeout", "bare-502"],
)
@pytest.mark.parametrize("position", [0, 1, 2])
async def test_an_ambiguous_failure_ends_a_submit_on_any_attempt(
    ambiguous: Exception, position: int
) -> None:
    outcomes: list[Outcome] = [busy() for _ in range(position)] + [ambiguous, "never"]
    script, _, result = await run(outcomes, idempotent=False)

    assert result is ambiguous
    assert script.attempts == position + 1


async def test_an_ambiguous_failure_is_retried_when_idempotent_or_opted_in() -> None:
    failures: list[Outcome] = [APIConnectionError("reset", sent=None), busy(), "ok"]
    polled = await run(failures)
    opted = await run(
        [APITimeoutError("slow", sent=None), APIConnectionError("reset", sent=None), "ok"],
        RetryPolicy(max_attempts=4, jitter=0.0, retry_ambiguous_submit=True),
        idempotent=False,
    )

    assert polled[2] == "ok" and polled[0].attempts == 3
    assert opted[2] == "ok" and opted[0].attempts == 3 and opted[1].slept == [0.5, 1.0]


async def test_a_never_sent_request_may_be_resent_even_as_a_submit() -> None:
    script, recorder, result = await run(
        [APIConnectionError("refused", sent=False), refused_500(), "ok"], idempotent=False
    )

    assert result == "ok"
    assert script.attempts == 3
    assert recorder.slept == [0.5, 1.0]


async def test_a_permanent_connection_failure_is_not_retried() -> None:
    error = APIConnectionError("bad certificate", sent=False, permanent=True)
    script, _, result = await run([error, "never"])

    assert result is error and script.attempts == 1


async def test_jittered_delays_are_the_seeded_draws_of_compute_delay() -> None:
    policy = RetryPolicy(max_attempts=4, initial_delay=1.0, max_delay=8.0, jitter=0.5)
    _, recorder, _ = await run([busy(), busy(), busy(), "ok"], policy)

    rng = random.Random(7)
    expected = [compute_delay(n, None, policy, rng) for n in (1, 2, 3)]
    assert recorder.slept == expected
    assert all(0.5 * base <= d < base for d, base in zip(expected, (1.0, 2.0, 4.0), strict=True))
    assert len(set(recorder.slept)) == 3


@pytest.mark.parametrize(
    ("attempt", "expected"), [(1, 0.25), (2, 0.5), (3, 1.0), (4, 2.0), (5, 3.0), (9, 3.0)]
)
def test_compute_delay_doubles_from_initial_up_to_the_cap(attempt: int, expected: float) -> None:
    policy = RetryPolicy(initial_delay=0.25, max_delay=3.0, jitter=0.0)
    assert compute_delay(attempt, None, policy, random.Random(0)) == expected


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(0, 0.0), (60, 60.0), (60.5, 1.0), (-1, 1.0), ("5", 1.0), (None, 1.0)],
)
def test_compute_delay_takes_a_usable_retry_after_only(
    retry_after: object, expected: float
) -> None:
    error = busy()
    error.retry_after = retry_after  # type: ignore[assignment]
    policy = RetryPolicy(initial_delay=1.0, jitter=0.0, max_retry_after=60.0)
    assert compute_delay(1, error, policy, random.Random(0)) == expected


async def test_a_retry_after_equal_to_the_cap_is_still_waited_for() -> None:
    policy = RetryPolicy(max_attempts=2, jitter=0.0, max_retry_after=10.0)
    _, recorder, result = await run([busy(10.0), "ok"], policy)

    assert result == "ok"
    assert recorder.slept == [10.0]
