"""Retry policy: what is retried, how long to wait, and when a submit may be sent again.

One table decides (see :func:`should_retry`); tenacity runs it with an injectable sleep so tests
never wait for real.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

if TYPE_CHECKING:
    from tenacity import AsyncRetrying, RetryCallState

from jimeng.errors import APIConnectionError, APIError
from jimeng.models._checks import boolean, integer, number, required

__all__ = ["RetryPolicy", "call_with_retry", "compute_delay", "retrying", "should_retry"]

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
#: Called before each retry wait with the number of the attempt that failed and its error.
OnRetry = Callable[[int, BaseException | None], Any]


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How transient failures are retried.

    ``max_attempts`` counts the first try. Delays grow ``initial_delay * 2**n`` up to ``max_delay``,
    each reduced by a random fraction up to ``jitter``. A server's ``Retry-After`` is used instead
    when present and not above ``max_retry_after`` (a longer one is not waited for: the error is
    raised). ``retry_ambiguous_submit`` allows resending a submit after a timeout or reset, when
    the server may already have accepted (and will bill) the first one.
    """

    max_attempts: int = attrs.field(default=4, validator=required(integer(minimum=1)))
    initial_delay: float = attrs.field(default=0.5, validator=required(number(minimum=0)))
    max_delay: float = attrs.field(default=8.0, validator=required(number(minimum=0)))
    jitter: float = attrs.field(default=0.25, validator=required(number(minimum=0, maximum=1)))
    max_retry_after: float = attrs.field(default=60.0, validator=required(number(minimum=0)))
    retry_ambiguous_submit: bool = attrs.field(default=False, validator=required(boolean()))

    @classmethod
    def disabled(cls) -> RetryPolicy:
        return cls(max_attempts=1)


def should_retry(error: BaseException, *, idempotent: bool, policy: RetryPolicy) -> bool:
    """The retry table.

    ============================================  ==========  =====================
    failure                                       idempotent  submit (not idempotent)
    ============================================  ==========  =====================
    rate limit (50429, 50430, HTTP 429)           yes         yes: nothing was accepted
    server error the backend marks resend-safe    yes         yes: the server answered "no"
    (Volcengine 50500, 50501, FailToConnect)
    other server errors (bare 502, timeouts…)     yes         only if ambiguous allowed
    connection refused / DNS (never sent)         yes         yes
    reset, timeout (maybe sent)                   yes         only if ambiguous allowed
    Retry-After longer than ``max_retry_after``   no          no
    anything else                                 no          no
    ============================================  ==========  =====================
    """
    if isinstance(error, APIError):
        if not error.retryable:
            return False
        if error.retry_after is not None and error.retry_after > policy.max_retry_after:
            return False
        if idempotent or error.resend_safe:
            return True
        return policy.retry_ambiguous_submit
    if isinstance(error, APIConnectionError):
        if error.permanent:
            return False
        return idempotent or error.sent is False or policy.retry_ambiguous_submit
    return False


def compute_delay(
    attempt: int, error: BaseException | None, policy: RetryPolicy, rng: random.Random
) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` starts at 1)."""
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, int | float) and 0 <= retry_after <= policy.max_retry_after:
        return float(retry_after)
    base: float = min(policy.initial_delay * (2.0 ** (attempt - 1)), policy.max_delay)
    return base * (1.0 - policy.jitter * rng.random())


class _Wait:
    """tenacity's wait strategy (any callable of the retry state will do)."""

    def __init__(self, policy: RetryPolicy, rng: random.Random, offset: int = 0):
        self.policy = policy
        self.rng = rng
        self.offset = offset

    def __call__(self, retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        attempt = retry_state.attempt_number + self.offset
        return compute_delay(attempt, error, self.policy, self.rng)


def retrying(
    policy: RetryPolicy,
    *,
    idempotent: bool,
    sleep: Sleep,
    rng: random.Random,
    on_retry: OnRetry | None = None,
    attempts_made: int = 0,
) -> AsyncRetrying:
    """A tenacity controller applying :func:`should_retry` and :func:`compute_delay`.

    ``attempts_made`` counts attempts already made outside the controller (they use up the
    budget and the backoff steps).
    """
    # tenacity is imported here, on the first retry: most calls never need it.
    from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

    return AsyncRetrying(
        stop=stop_after_attempt(max(1, policy.max_attempts - attempts_made)),
        wait=_Wait(policy, rng, offset=attempts_made),
        retry=retry_if_exception(
            lambda error: should_retry(error, idempotent=idempotent, policy=policy)
        ),
        sleep=sleep,
        reraise=True,
        before_sleep=None if on_retry is None else _before_sleep(on_retry, attempts_made),
    )


def _before_sleep(on_retry: OnRetry, offset: int) -> Callable[[RetryCallState], None]:
    def hook(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        on_retry(state.attempt_number + offset, error)

    return hook


async def call_with_retry(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    idempotent: bool,
    sleep: Sleep,
    rng: random.Random,
    on_retry: OnRetry | None = None,
) -> T:
    """Run ``attempt`` under the policy.

    The first try runs bare (most calls succeed, and a tenacity controller costs tens of
    microseconds per call); a retryable failure hands the rest of the budget to tenacity.
    """
    try:
        return await attempt()
    except Exception as error:
        if policy.max_attempts <= 1 or not should_retry(
            error, idempotent=idempotent, policy=policy
        ):
            raise
        first = error
    return await retry_after_first(
        attempt, first, policy, idempotent=idempotent, sleep=sleep, rng=rng, on_retry=on_retry
    )


async def retry_after_first(
    attempt: Callable[[], Awaitable[T]],
    first: Exception,
    policy: RetryPolicy,
    *,
    idempotent: bool,
    sleep: Sleep,
    rng: random.Random,
    on_retry: OnRetry | None = None,
) -> T:
    """The rest of :func:`call_with_retry` after a first attempt failed with the retryable
    ``first`` (for callers that run the first attempt themselves, without a closure)."""
    delay = compute_delay(1, first, policy, rng)
    if on_retry is not None:
        on_retry(1, first)
    await sleep(delay)
    controller = retrying(
        policy,
        idempotent=idempotent,
        sleep=sleep,
        rng=rng,
        on_retry=on_retry,
        attempts_made=1,
    )
    async for retry in controller:
        with retry:
            return await attempt()
    raise AssertionError("unreachable")  # pragma: no cover
