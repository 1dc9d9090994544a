"""The adaptive limiter: its state machine as pure functions, and end to end against a capped
sandbox on a simulated clock (no real waiting)."""

from __future__ import annotations

import asyncio
import math
import random

import pytest

import jimeng
from jimeng._limits import (
    Limiter,
    Limits,
    LimitState,
    admit,
    concurrency_limit,
    mark_accepted,
    observe,
    pace,
    rate_limit_signal,
    release,
)
from jimeng.errors import RateLimitError, ServerError
from jimeng.sandbox import Sandbox, Stages, VirtualClock

LIMITS = Limits(initial_concurrency=4)


def test_slots_are_granted_up_to_the_limit_then_refused() -> None:
    state = LimitState.initial(LIMITS)
    for expected in (1, 2, 3, 4):
        state, granted = admit(state, LIMITS)
        assert granted and state.in_flight == expected
    state, granted = admit(state, LIMITS)
    assert not granted and state.in_flight == 4
    assert release(state).in_flight == 3
    assert release(LimitState.initial(LIMITS)).in_flight == 0


def test_slow_start_grows_one_per_success_while_full_then_one_per_round_after_a_cut() -> None:
    state = LimitState.initial(LIMITS)._replace(in_flight=4)
    state = observe(state, LIMITS, "ok", sent_at=0, now=1)
    assert state.concurrency == 5.0
    # Not full: no growth (the limit is not what holds the client back).
    idle = observe(state._replace(in_flight=1), LIMITS, "ok", sent_at=1, now=2)
    assert idle.concurrency == 5.0
    full = state._replace(in_flight=5, accepted=5)
    cut = observe(full, LIMITS, "concurrency", sent_at=1, now=2)
    assert cut.concurrency == pytest.approx(4.5) and cut.cut_concurrency and cut.ceiling == 5
    assert concurrency_limit(cut, LIMITS) == 4
    grown = observe(cut._replace(in_flight=4), LIMITS, "ok", sent_at=2, now=3)
    assert grown.concurrency == pytest.approx(4.5 + 1 / 4.5)


def test_a_concurrency_cut_never_keeps_more_than_the_server_holds_and_probes_rarely() -> None:
    limits = Limits(initial_concurrency=8, probe_after=3)
    # 8 submits in flight, the server accepted 3 and refused the rest (cap 3).
    state = LimitState.initial(limits)._replace(in_flight=8, accepted=3)
    cut = observe(state, limits, "concurrency", sent_at=0, now=1)
    assert cut.concurrency == 3.0 and cut.ceiling == 3.0
    # Full at the ceiling: growth waits for probe_after successes, then probes past it.
    full = cut._replace(in_flight=3)
    for _ in range(2):
        full = observe(full, limits, "ok", sent_at=2, now=2)
        assert full.concurrency == 3.0
    full = observe(full, limits, "ok", sent_at=2, now=2)
    assert full.concurrency == pytest.approx(3 + 1 / 3)


def test_slots_count_accepted_tasks_until_released() -> None:
    state = mark_accepted(admit(LimitState.initial(LIMITS), LIMITS)[0])
    assert (state.in_flight, state.accepted) == (1, 1)
    assert release(state, accepted=True) == state._replace(in_flight=0, accepted=0)
    assert release(state).accepted == 1


def test_rate_is_unpaced_until_a_qps_refusal_then_probed_then_grown_additively() -> None:
    state = LimitState.initial(LIMITS)
    state, wait = pace(state, LIMITS, now=0.0)
    assert wait == 0.0 and state.rate is None
    # 20 requests accepted within the first half second, then a 50429: an unpaced burst says
    # little, so pace at 0.9 x what got through and keep probing (slow start).
    for index in range(20):
        state = observe(state, LIMITS, "ok", sent_at=index * 0.025, now=index * 0.025)
    state = observe(state, LIMITS, "rate", sent_at=0.5, now=0.5)
    assert state.rate == pytest.approx(20 * 0.9) and state.probing_rate
    state, first = pace(state, LIMITS, now=0.5)
    state, second = pace(state, LIMITS, now=0.5)
    assert (first, second) == (0.0, pytest.approx(1 / 18))
    state = observe(state, LIMITS, "ok", sent_at=0.6, now=0.6)
    assert state.rate == pytest.approx(19.0)  # +1 per success: doubles every second
    idle = observe(state, LIMITS, "ok", sent_at=0.6, now=0.6, paced=False)
    assert idle.rate == pytest.approx(19.0)  # nobody waited: the rate is not the bottleneck
    # A refusal while paced: the limit lies just below the paced rate; growth turns additive.
    state = observe(state, LIMITS, "rate", sent_at=0.7, now=0.7)
    assert state.rate == pytest.approx(19 * 0.9) and not state.probing_rate
    grown = observe(state, LIMITS, "ok", sent_at=0.8, now=0.8)
    assert grown.rate == pytest.approx(19 * 0.9 + LIMITS.increase)


def test_accepted_rate_slides_over_one_second_windows() -> None:
    state = LimitState.initial(LIMITS)
    for index in range(10):  # 10 in [0, 1)
        state = observe(state, LIMITS, "ok", sent_at=0, now=index * 0.1)
    assert state.first_accepted == 0.0
    for index in range(4):  # 4 in [1, 1.4)
        state = observe(state, LIMITS, "ok", sent_at=0, now=1.0 + index * 0.1)
    assert state.previous_count == 10 and state.window_count == 4
    # At t=1.5: half of the previous window still counts, plus this window's 4.
    state = observe(state, LIMITS, "rate", sent_at=1.5, now=1.5)
    assert state.rate == pytest.approx((10 * 0.5 + 4) * 0.9)


def test_fixed_caps_bound_the_adaptive_gauges_and_work_without_adaptation() -> None:
    capped = Limits(max_concurrency=2, max_rps=4.0)
    state = LimitState.initial(capped)
    assert concurrency_limit(state, capped) == 2
    waits = []
    for now in (0.0, 0.0, 0.0, 0.6, 5.0):
        state, wait = pace(state, capped, now=now)
        waits.append(wait)
    # Booked one interval apart; a caller arriving after an idle spell goes at once.
    assert waits == [0.0, 0.25, 0.5, pytest.approx(0.15), 0.0]
    assert state.next_send == pytest.approx(5.25)
    fixed = Limits(adaptive=False, max_rps=2.0)
    refused = observe(LimitState.initial(fixed), fixed, "rate", sent_at=0, now=0)
    assert refused.rate is None and refused.refusals == 1
    assert concurrency_limit(LimitState.initial(fixed), fixed) == 1 << 30
    full = LimitState.initial(capped)._replace(in_flight=2, concurrency=2.0)
    assert observe(full, capped, "ok", sent_at=0, now=0).concurrency == 2.0


def test_state_round_trips_through_a_plain_dict() -> None:
    state = observe(
        LimitState.initial(LIMITS)._replace(in_flight=3), LIMITS, "rate", sent_at=0, now=1
    )
    data = state.to_dict()
    assert data["last_concurrency_cut"] is None and data["rate"] == pytest.approx(0.9)
    assert LimitState.from_dict(data) == state
    assert LimitState.from_dict(LimitState.initial(LIMITS).to_dict()).last_rate_cut == -math.inf


def test_the_retry_signal_read_the_limiters_way() -> None:
    assert rate_limit_signal(RateLimitError("x", code=50430)) == "concurrency"
    assert rate_limit_signal(RateLimitError("x", code=50429)) == "rate"
    assert rate_limit_signal(RateLimitError("x", status_code=429)) == "rate"
    assert rate_limit_signal(ServerError("x", code=50500)) is None
    assert rate_limit_signal(ValueError()) is None


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_rps"):
        Limits(max_rps=0)
    with pytest.raises(ValueError, match="decrease"):
        Limits(decrease=1.0)
    assert not Limits.off().enabled


async def test_waiting_slots_are_served_and_counted_as_queued() -> None:
    clock = VirtualClock()
    limiter = Limiter(Limits(max_concurrency=1), "k", clock=clock, sleep=clock.sleep)
    order: list[str] = []
    gate = asyncio.Event()

    async def first() -> None:
        async with limiter.slot():
            order.append("first in")
            await gate.wait()
        order.append("first out")

    async def second() -> None:
        async with limiter.slot():
            order.append("second in")

    tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
    for _ in range(3):
        await asyncio.sleep(0)
    assert limiter.snapshot().queued == 1 and limiter.snapshot().in_flight == 1
    gate.set()
    await asyncio.gather(*tasks)
    assert order == ["first in", "first out", "second in"]
    assert limiter.snapshot().in_flight == 0 and limiter.snapshot().queued == 0


async def test_with_options_copies_share_one_limiter() -> None:
    async with jimeng.Client(Sandbox(), limits=Limits(max_concurrency=3)) as client:
        copy = client.with_options(timeout=5)
        assert copy._limiter is client._limiter
        assert copy._transport.limiter is client._limiter
        assert client.limits.concurrency == 3 and client.limits.key == "sandbox:volcengine"


SID_A, SID_B, SID_C = "a" * 24, "b" * 24, "c" * 24


async def test_web_session_limits_are_keyed_by_their_sessions_never_naming_them() -> None:
    pool = jimeng.Dreamina(tokens=f"us-{SID_A},{SID_B}")
    same = jimeng.Dreamina(tokens=[SID_B, f"us-{SID_A}"])  # the same pool, in another order
    other = jimeng.Dreamina(tokens=SID_C)
    region = jimeng.Dreamina(tokens=f"hk-{SID_A},{SID_B}")  # the same id on another site
    assert pool.limit_key() == same.limit_key()
    assert len({pool.limit_key(), other.limit_key(), region.limit_key()}) == 3
    assert pool.limit_key().startswith("dreamina:…")
    one = jimeng.Gateway(token=SID_A, url="http://127.0.0.1:8000", allow_http=True)
    two = jimeng.Gateway(token=SID_A, url="http://127.0.0.1:8001", allow_http=True)
    three = jimeng.Gateway(token=SID_C, url="http://127.0.0.1:8000", allow_http=True)
    assert one.limit_key().endswith("@http://127.0.0.1:8000")
    assert len({one.limit_key(), two.limit_key(), three.limit_key()}) == 3
    for backend in (pool, other, region, one, two, three):
        key = backend.limit_key()
        assert SID_A not in key and SID_B not in key and SID_C not in key
    async with jimeng.Client(pool, limits=Limits(max_concurrency=2)) as client:
        assert client.limits.key == same.limit_key()


async def test_capped_sandbox_submits_finish_without_storming_the_limit() -> None:
    """400 submits against 20 requests/s: all accepted, few refusals, near the cap."""
    clock = VirtualClock()
    sandbox = Sandbox(max_rps=20.0, seed=1)
    sandbox.server.clock = clock
    async with jimeng.Client(
        sandbox, sleep=clock.sleep, monotonic=clock, rng=random.Random(0)
    ) as client:
        started = clock.now
        handles = await asyncio.gather(*(client.images.submit(f"cat {i}") for i in range(400)))
        elapsed = clock.now - started
    assert len({handle.id for handle in handles}) == 400
    refused = sandbox.server.refused["rate"]
    sent = sandbox.server.requests["submit"]
    assert sent == 400 + refused
    assert refused / sent <= 0.05
    assert 400 / elapsed >= 0.85 * 20.0  # slow start included; the benchmark runs 1000
    assert client.limits.rate is not None and 17.0 < client.limits.rate < 22.0


async def test_concurrency_capped_sandbox_generations_hold_their_slot_until_done() -> None:
    clock = VirtualClock()
    sandbox = Sandbox(max_concurrent_tasks=3, stages=Stages(generate_delay=2.0), seed=1)
    sandbox.server.clock = clock
    poll = jimeng.PollPolicy(interval=0.5, max_attempts=100)
    async with jimeng.Client(
        sandbox, sleep=clock.sleep, monotonic=clock, rng=random.Random(0), image_poll=poll
    ) as client:
        results = await asyncio.gather(*(client.images.generate(f"dog {i}") for i in range(12)))
    assert len(results) == 12
    refused = sandbox.server.refused["concurrency"]
    # The first burst (8 slots before the server said anything) overshoots by 5; after that
    # the learned limit of 3 holds and nothing more is refused.
    assert refused == 5
    assert client.limits.concurrency == 3 and client.limits.in_flight == 0


def test_sandbox_generation_times_follow_the_chosen_distribution() -> None:
    rng = random.Random(7)
    fixed = Stages(generate_delay=10.0)
    assert fixed.draw(rng) is fixed
    uniform = [
        Stages(generate_delay=10.0, distribution="uniform", spread=0.2).draw(rng).generate_delay
        for _ in range(500)
    ]
    assert 8.0 <= min(uniform) < 8.2 and 11.8 < max(uniform) <= 12.0
    lognormal = sorted(
        Stages(generate_delay=10.0, distribution="lognormal", spread=0.3).draw(rng).generate_delay
        for _ in range(501)
    )
    assert 9.3 < lognormal[250] < 10.7  # the median is generate_delay
    assert lognormal[-1] > 18.0 and lognormal[0] < 5.5  # a long tail both ways
    with pytest.raises(ValueError):
        Stages(distribution="normal")  # type: ignore[arg-type]


async def test_sandbox_refuses_with_the_real_envelopes() -> None:
    sandbox = Sandbox(max_rps=1.0, max_concurrent_tasks=1, stages=Stages(generate_delay=5))
    clock = VirtualClock()
    sandbox.server.clock = clock
    async with jimeng.Client(
        sandbox, retry=jimeng.RetryPolicy.disabled(), limits=Limits.off()
    ) as client:
        await client.images.submit("first")
        with pytest.raises(RateLimitError) as rate:
            await client.images.submit("too fast")
        assert (rate.value.code, rate.value.status_code) == (50429, 429)
        assert rate.value.message == "Request Has Reached API Limit, Please Try Later"
        clock.now += 1.0
        with pytest.raises(RateLimitError) as busy:
            await client.images.submit("too many")
        assert (busy.value.code, busy.value.status_code) == (50430, 429)
        assert busy.value.message == "Request Has Reached API Concurrent Limit, Please Try Later"
        clock.now += 5.0
        await client.images.submit("room again")
    assert sandbox.server.refused == {"rate": 1, "concurrency": 1}
