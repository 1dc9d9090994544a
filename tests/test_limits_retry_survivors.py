"""Pins left loose by the retry and limiter suites: an idempotent call keeps retrying ambiguous
failures past its first retry, the queue count after a requeue that had to wait, and a waiter
that leaves (cancelled, or rechecking a shared store) leaves no future behind."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from jimeng._limits import Limits, LimitState
from jimeng._retry import RetryPolicy, call_with_retry
from jimeng.errors import APIConnectionError, APITimeoutError, ServerError
from tests.test_limits_pinned import Rig, SharedStore, at, now, run, shared_rig

# -- retry: idempotence holds for every attempt -----------------------------------------------


@pytest.mark.parametrize(
    "ambiguous",
    [
        lambda: APIConnectionError("reset", sent=None),
        lambda: APITimeoutError("read timeout", sent=None),
        lambda: ServerError("bad gateway", status_code=502),
    ],
    ids=["reset", "timeout", "bare-502"],
)
async def test_an_idempotent_call_retries_ambiguous_failures_on_every_attempt(
    ambiguous: Callable[[], Exception],
) -> None:
    errors = [ambiguous(), ambiguous(), ambiguous()]
    outcomes: list[BaseException | str] = [*errors, "ok"]
    attempts = 0
    slept: list[float] = []
    retries: list[tuple[int, BaseException | None]] = []

    async def attempt() -> str:
        nonlocal attempts
        outcome = outcomes[attempts]
        attempts += 1
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    result = await call_with_retry(
        attempt,
        RetryPolicy(max_attempts=4, initial_delay=0.5, max_delay=8.0, jitter=0.0),
        idempotent=True,
        sleep=sleep,
        rng=random.Random(0),
        on_retry=lambda n, error: retries.append((n, error)),
    )

    assert result == "ok"
    assert attempts == 4
    assert slept == [0.5, 1.0, 2.0]
    assert retries == [(1, errors[0]), (2, errors[1]), (3, errors[2])]


async def test_an_idempotent_call_out_of_budget_raises_the_last_ambiguous_failure() -> None:
    errors = [APIConnectionError(f"reset {n}", sent=None) for n in range(5)]
    attempts = 0
    slept: list[float] = []

    async def attempt() -> str:
        nonlocal attempts
        attempts += 1
        raise errors[attempts - 1]

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    with pytest.raises(APIConnectionError) as raised:
        await call_with_retry(
            attempt,
            RetryPolicy(max_attempts=3, initial_delay=1.0, max_delay=8.0, jitter=0.0),
            idempotent=True,
            sleep=sleep,
            rng=random.Random(0),
        )
    assert raised.value is errors[2]
    assert attempts == 3
    assert slept == [1.0, 2.0]


# -- limiter: the queue count after a requeue that waited -------------------------------------


def test_a_requeue_that_waited_leaves_the_queue_count_at_zero() -> None:
    async def scenario() -> None:
        rig = Rig(Limits(initial_concurrency=2))
        seen: list[tuple[float, int, int]] = []

        async def refused() -> None:
            async with rig.limiter.slot():
                await at(1.0)
                # Nothing of ours accepted: the cut leaves room for one, which b holds.
                await rig.limiter.after_request("concurrency", 0.5)
                await rig.limiter.requeue()
                seen.append((now(), rig.state.in_flight, rig.limiter.snapshot().queued))

        async def other() -> None:
            async with rig.limiter.slot():
                await at(2.0)
                snap = rig.limiter.snapshot()
                seen.append((now(), snap.in_flight, snap.queued))

        await asyncio.gather(refused(), other())
        assert seen == [(2.0, 1, 1), (2.0, 1, 0)]
        assert rig.limiter.snapshot().queued == 0 and rig.state.in_flight == 0
        assert rig.state.concurrency == 1.0

    run(scenario)


# -- limiter: a waiter that leaves takes its future with it -----------------------------------


def test_a_cancelled_slot_waiter_leaves_no_future_behind() -> None:
    async def scenario() -> None:
        rig = Rig(Limits(adaptive=False, max_concurrency=1))
        limiter = rig.limiter
        log: list[tuple[str, float]] = []
        holder = asyncio.create_task(rig.hold(2.0, log, "a"))
        waiter = asyncio.create_task(rig.hold(1.0, log, "b"))
        await at(0.5)
        assert len(limiter._waiters) == 1 and limiter.snapshot().queued == 1
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert waiter.cancelled()
        assert limiter._waiters == []
        assert limiter.snapshot().queued == 0 and rig.state.in_flight == 1
        await holder
        assert log == [("a in", 0.0), ("a out", 2.0)]
        assert rig.state.in_flight == 0

    run(scenario)


def test_rechecks_of_a_shared_store_keep_one_future_per_waiter() -> None:
    async def scenario() -> None:
        store = SharedStore()
        limits = Limits(adaptive=False, max_concurrency=1)
        store.states["acct"] = LimitState.initial(limits)._replace(in_flight=1)
        rig = shared_rig(limits, store)
        limiter = rig.limiter
        counts: list[tuple[float, int]] = []
        log: list[tuple[str, float]] = []

        async def watch() -> None:
            for moment in (0.52, 0.97):  # between rechecks (every 0.05 s)
                await at(moment)
                counts.append((moment, len(limiter._waiters)))
            store.elsewhere("acct", lambda state: state._replace(in_flight=0))

        await asyncio.gather(rig.hold(0.5, log, "a"), watch())
        assert counts == [(0.52, 1), (0.97, 1)]
        assert [name for name, _ in log] == ["a in", "a out"]
        assert log[0][1] == pytest.approx(1.0)
        assert limiter._waiters == []

    run(scenario)
