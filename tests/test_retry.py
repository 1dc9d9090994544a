"""The retry table and the delay computation, with no real waiting."""

from __future__ import annotations

import random

import pytest

from jimeng._retry import RetryPolicy, compute_delay, retrying, should_retry
from jimeng.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    ContentPolicyError,
    RateLimitError,
    ServerError,
)

POLICY = RetryPolicy()


def refused(error: ServerError) -> ServerError:
    """As a backend marks an answer that proves nothing was accepted."""
    error.resend_safe = True
    return error


@pytest.mark.parametrize(
    ("error", "idempotent", "expected"),
    [
        (RateLimitError("x", code=50429), False, True),
        (RateLimitError("x", code=50430), True, True),
        (refused(ServerError("x", code=50500)), False, True),
        (ServerError("InternalServiceTimeout", code="InternalServiceTimeout"), False, False),
        (ServerError("x", code=50501), True, True),
        (ServerError("bare 502", code=None, status_code=502), False, False),
        (ServerError("bare 502", code=None, status_code=502), True, True),
        (APIConnectionError("refused", sent=False), False, True),
        (APIConnectionError("bad certificate", sent=False, permanent=True), True, False),
        (APIConnectionError("reset", sent=None), False, False),
        (APIConnectionError("reset", sent=None), True, True),
        (APITimeoutError("slow", sent=None), False, False),
        (APITimeoutError("slow", sent=None), True, True),
        (ContentPolicyError("no", code=50412), True, False),
        (AuthenticationError("no", code="SignatureDoesNotMatch"), True, False),
        (APIError("other", code=50520), True, False),
        (RateLimitError("x", code=50429, retry_after=3600), True, False),
        (ValueError("not ours"), True, False),
    ],
)
def test_retry_table(error: BaseException, idempotent: bool, expected: bool) -> None:
    assert should_retry(error, idempotent=idempotent, policy=POLICY) is expected


def test_ambiguous_submit_opt_in() -> None:
    policy = RetryPolicy(retry_ambiguous_submit=True)
    assert should_retry(APIConnectionError("reset", sent=None), idempotent=False, policy=policy)
    assert should_retry(ServerError("502"), idempotent=False, policy=policy)


def test_delays_grow_exponentially_capped_with_jitter() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=4.0, jitter=0.25)
    rng = random.Random(1)
    delays = [compute_delay(n, None, policy, rng) for n in range(1, 8)]
    bases = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    for delay, base in zip(delays, bases, strict=True):
        assert base * 0.75 <= delay <= base


def test_no_jitter_is_exact() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=8.0, jitter=0.0)
    rng = random.Random(0)
    assert [compute_delay(n, None, policy, rng) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 8]


def test_retry_after_replaces_the_backoff() -> None:
    error = RateLimitError("x", retry_after=2.5)
    assert compute_delay(1, error, POLICY, random.Random(0)) == 2.5


async def test_tenacity_controller_uses_the_injected_sleep() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    calls = 0
    policy = RetryPolicy(max_attempts=3, jitter=0.0, initial_delay=1.0)
    with pytest.raises(RateLimitError):
        async for attempt in retrying(policy, idempotent=True, sleep=sleep, rng=random.Random(0)):
            with attempt:
                calls += 1
                raise RateLimitError("busy", code=50429)
    assert calls == 3
    assert slept == [1.0, 2.0]


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    assert RetryPolicy.disabled().max_attempts == 1
