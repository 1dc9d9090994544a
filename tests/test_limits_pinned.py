"""The limiter pinned value by value: its pure decisions as tables with exact expected states,
and :class:`Limiter` as a state machine on an event loop whose clock jumps from timer to timer
(waits, queue counts, wake-ups and log lines at exact virtual times; nothing really sleeps)."""

from __future__ import annotations

import asyncio
import logging
import math
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs
import pytest

from jimeng._limits import (
    SHARED_RECHECK,
    Limiter,
    Limits,
    LimitSnapshot,
    LimitState,
    LocalLimitStore,
    Signal,
    accepted_rate,
    admit,
    concurrency_limit,
    holding_slot,
    mark_accepted,
    observe,
    pace,
    rate_limit_signal,
    release,
    request_rate,
)
from jimeng.errors import RateLimitError

T = TypeVar("T")
INF = math.inf
UNCAPPED = 1073741824  # what concurrency_limit reports when nothing caps it (2**30)


# -- settings ---------------------------------------------------------------------------------


def test_limits_defaults() -> None:
    limits = Limits()
    assert (
        limits.max_concurrency,
        limits.max_rps,
        limits.adaptive,
        limits.initial_concurrency,
        limits.decrease,
        limits.increase,
        limits.min_rps,
        limits.probe_after,
        limits.store,
    ) == (None, None, True, 8, 0.9, 0.02, 0.2, 100, None)
    off = Limits.off()
    assert (off.adaptive, off.max_concurrency, off.max_rps) == (False, None, None)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_concurrency", 0),
        ("max_concurrency", -1),
        ("max_rps", 0.0),
        ("max_rps", -0.5),
        ("initial_concurrency", 0),
        ("decrease", 0.0),
        ("decrease", 1.0),
        ("increase", -0.01),
        ("min_rps", 0.0),
        ("probe_after", -1),
    ],
)
def test_out_of_range_settings_are_refused_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        Limits(**{field: value})


def test_a_fixed_cap_must_be_positive_or_none() -> None:
    with pytest.raises(ValueError) as error:
        Limits(max_rps=0)
    assert str(error.value) == "max_rps must be positive or None, got 0"
    with pytest.raises(ValueError) as error:
        Limits(max_concurrency=-2)
    assert str(error.value) == "max_concurrency must be positive or None, got -2"


@pytest.mark.parametrize(
    "settings",
    [
        {"max_concurrency": 1},
        {"max_concurrency": None, "max_rps": None},
        {"max_rps": 0.001},
        {"initial_concurrency": 1},
        {"decrease": 0.01},
        {"decrease": 0.99},
        {"increase": 0.0},
        {"min_rps": 0.001},
        {"probe_after": 0},
    ],
)
def test_settings_at_the_edge_of_their_range_are_accepted(settings: dict[str, Any]) -> None:
    limits = Limits(**settings)
    for name, value in settings.items():
        assert getattr(limits, name) == value


@pytest.mark.parametrize(
    ("limits", "enabled"),
    [
        (Limits(), True),
        (Limits.off(), False),
        (Limits(adaptive=False), False),
        (Limits(adaptive=False, max_concurrency=2), True),
        (Limits(adaptive=False, max_rps=1.5), True),
        (Limits(max_concurrency=2, max_rps=1.5), True),
    ],
)
def test_limiting_is_enabled_by_adaptation_or_a_fixed_cap(limits: Limits, enabled: bool) -> None:
    assert limits.enabled is enabled


# -- the state and its plain-dict form ----------------------------------------------------------


def test_initial_state() -> None:
    state = LimitState.initial(Limits(initial_concurrency=5))
    assert state == LimitState(
        concurrency=5.0,
        in_flight=0,
        accepted=0,
        ceiling=None,
        successes_since_cut=0,
        rate=None,
        next_send=0.0,
        cut_concurrency=False,
        last_concurrency_cut=-INF,
        last_rate_cut=-INF,
        probing_rate=True,
        first_accepted=None,
        window_start=0.0,
        window_count=0,
        previous_count=0,
        refusals=0,
    )
    assert type(state.concurrency) is float


def test_to_dict_writes_never_as_none_and_keeps_everything_else() -> None:
    assert LimitState.initial(Limits(initial_concurrency=3)).to_dict() == {
        "concurrency": 3.0,
        "in_flight": 0,
        "accepted": 0,
        "ceiling": None,
        "successes_since_cut": 0,
        "rate": None,
        "next_send": 0.0,
        "cut_concurrency": False,
        "last_concurrency_cut": None,
        "last_rate_cut": None,
        "probing_rate": True,
        "first_accepted": None,
        "window_start": 0.0,
        "window_count": 0,
        "previous_count": 0,
        "refusals": 0,
    }
    cut = LimitState(concurrency=2.5, last_concurrency_cut=7.0, last_rate_cut=-8.0, rate=1.5)
    data = cut.to_dict()
    assert (data["last_concurrency_cut"], data["last_rate_cut"], data["rate"]) == (7.0, -8.0, 1.5)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"concurrency": 4.0}, LimitState(concurrency=4.0)),
        (
            {"concurrency": 4.0, "last_concurrency_cut": None, "last_rate_cut": None},
            LimitState(concurrency=4.0),
        ),
        (
            {"concurrency": 4.0, "last_concurrency_cut": 3.5, "last_rate_cut": None},
            LimitState(concurrency=4.0, last_concurrency_cut=3.5),
        ),
        (
            {"concurrency": 4.0, "last_rate_cut": 2.5},
            LimitState(concurrency=4.0, last_rate_cut=2.5),
        ),
        (
            # Fields a newer or older version wrote are ignored.
            {"concurrency": 2.0, "in_flight": 1, "owner": "worker-3", "version": 2},
            LimitState(concurrency=2.0, in_flight=1),
        ),
    ],
)
def test_from_dict(data: dict[str, Any], expected: LimitState) -> None:
    assert LimitState.from_dict(data) == expected


def test_a_busy_state_round_trips_through_a_plain_dict() -> None:
    state = LimitState(
        concurrency=3.25,
        in_flight=3,
        accepted=2,
        ceiling=4.0,
        successes_since_cut=7,
        rate=6.5,
        next_send=12.25,
        cut_concurrency=True,
        last_concurrency_cut=10.0,
        last_rate_cut=-INF,
        probing_rate=False,
        first_accepted=1.0,
        window_start=11.0,
        window_count=5,
        previous_count=6,
        refusals=2,
    )
    assert LimitState.from_dict(state.to_dict()) == state


# -- the gauges -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "concurrency", "expected"),
    [
        (Limits(), 4.0, 4),
        (Limits(), 4.99, 4),
        (Limits(), 1.5, 1),
        (Limits(), 1.0, 1),
        (Limits(), 0.5, 1),
        (Limits(max_concurrency=3), 8.0, 3),
        (Limits(max_concurrency=3), 3.0, 3),
        (Limits(max_concurrency=3), 2.5, 2),
        (Limits(max_concurrency=3), 0.5, 1),
        (Limits(adaptive=False, max_concurrency=3), 0.5, 3),
        (Limits(adaptive=False, max_concurrency=3), 9.0, 3),
        (Limits(adaptive=False), 8.0, UNCAPPED),
        (Limits(adaptive=False, max_rps=2.0), 8.0, UNCAPPED),
    ],
)
def test_concurrency_limit(limits: Limits, concurrency: float, expected: int) -> None:
    limit = concurrency_limit(LimitState(concurrency=concurrency), limits)
    assert limit == expected and type(limit) is int


@pytest.mark.parametrize(
    ("limits", "rate", "expected"),
    [
        (Limits(), None, None),
        (Limits(), 5.0, 5.0),
        (Limits(adaptive=False), 5.0, None),
        (Limits(max_rps=3.0), None, 3.0),
        (Limits(max_rps=3.0), 5.0, 3.0),
        (Limits(max_rps=3.0), 2.0, 2.0),
        (Limits(adaptive=False, max_rps=3.0), 2.0, 3.0),
        (Limits(adaptive=False, max_rps=3.0), None, 3.0),
    ],
)
def test_request_rate(limits: Limits, rate: float | None, expected: float | None) -> None:
    assert request_rate(LimitState(concurrency=4.0, rate=rate), limits) == expected


# -- slots ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "in_flight", "granted"),
    [
        (Limits(initial_concurrency=4), 0, True),
        (Limits(initial_concurrency=4), 3, True),
        (Limits(initial_concurrency=4), 4, False),
        (Limits(initial_concurrency=4), 5, False),
        (Limits(initial_concurrency=4, max_concurrency=2), 1, True),
        (Limits(initial_concurrency=4, max_concurrency=2), 2, False),
        (Limits(adaptive=False), 1000, True),
    ],
)
def test_admit_takes_a_slot_only_below_the_limit(
    limits: Limits, in_flight: int, granted: bool
) -> None:
    state = LimitState.initial(limits)._replace(in_flight=in_flight, accepted=1, refusals=2)
    after, ok = admit(state, limits)
    assert ok is granted
    assert after == (state._replace(in_flight=in_flight + 1) if granted else state)


@pytest.mark.parametrize(
    ("in_flight", "accepted", "task_accepted", "expected"),
    [
        (3, 2, False, (2, 2)),
        (3, 2, True, (2, 1)),
        (1, 1, True, (0, 0)),
        (1, 0, True, (0, 0)),
        (0, 0, False, (0, 0)),
        (0, 0, True, (0, 0)),
        (0, 3, True, (0, 2)),
    ],
)
def test_release(
    in_flight: int, accepted: int, task_accepted: bool, expected: tuple[int, int]
) -> None:
    state = LimitState(concurrency=4.0, in_flight=in_flight, accepted=accepted, refusals=1)
    after = release(state, accepted=task_accepted)
    assert (after.in_flight, after.accepted) == expected
    assert after == state._replace(in_flight=expected[0], accepted=expected[1])


def test_release_by_default_keeps_the_accepted_count() -> None:
    assert release(LimitState(concurrency=4.0, in_flight=2, accepted=2)) == LimitState(
        concurrency=4.0, in_flight=1, accepted=2
    )


def test_mark_accepted_counts_one_more_accepted_task() -> None:
    state = LimitState(concurrency=4.0, in_flight=3, accepted=1)
    assert mark_accepted(state) == state._replace(accepted=2)


# -- pacing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "rate", "next_send", "now", "booked", "wait"),
    [
        (Limits(), 4.0, 0.0, 10.0, 10.25, 0.0),
        (Limits(), 4.0, 10.0, 10.0, 10.25, 0.0),
        (Limits(), 4.0, 10.5, 10.0, 10.75, 0.5),
        (Limits(), 0.5, 11.0, 10.0, 13.0, 1.0),
        (Limits(max_rps=2.0), None, 10.25, 10.0, 10.75, 0.25),
        (Limits(max_rps=2.0), 8.0, 10.0, 10.0, 10.5, 0.0),
        (Limits(adaptive=False, max_rps=2.0), 8.0, 0.0, 10.0, 10.5, 0.0),
    ],
)
def test_pace_books_one_interval_after_the_previous_send_or_now(
    limits: Limits, rate: float | None, next_send: float, now: float, booked: float, wait: float
) -> None:
    state = LimitState(concurrency=4.0, rate=rate, next_send=next_send)
    after, waited = pace(state, limits, now)
    assert (after, waited) == (state._replace(next_send=booked), wait)


@pytest.mark.parametrize("limits", [Limits(), Limits(adaptive=False)])
def test_pace_without_a_rate_books_nothing(limits: Limits) -> None:
    state = LimitState(concurrency=4.0, rate=None if limits.adaptive else 3.0, next_send=20.0)
    assert pace(state, limits, 10.0) == (state, 0.0)


# -- the accepted-request windows -------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (10.0, 14.0),  # all of the previous window, plus this one's 4
        (10.5, 9.0),  # half of the previous window
        (10.75, 6.5),
        (11.0, 4.0),  # the current window is a whole second old
        (11.5, 2.0),  # and fades out over the next
        (11.75, 1.0),
        (12.0, 0.0),
        (12.5, 0.0),
        (40.0, 0.0),
    ],
)
def test_accepted_rate_slides_over_the_windows(now: float, expected: float) -> None:
    state = LimitState(concurrency=4.0, window_start=10.0, window_count=4, previous_count=10)
    assert accepted_rate(state, now) == expected


def test_accepted_rate_of_a_fresh_state_is_zero() -> None:
    assert accepted_rate(LimitState(concurrency=4.0), 1000.0) == 0.0


def test_accepted_requests_fill_one_second_windows() -> None:
    limits = Limits(adaptive=False)  # only the windows change
    state = LimitState.initial(limits)
    expected = [
        # now, first_accepted, window_start, window_count, previous_count
        (5.0, 5.0, 5.0, 1, 0),
        (5.5, 5.0, 5.0, 2, 0),
        (5.875, 5.0, 5.0, 3, 0),
        (6.0, 5.0, 6.0, 1, 3),  # exactly a second later: a new window
        (6.25, 5.0, 6.0, 2, 3),
        (7.75, 5.0, 7.75, 1, 2),  # less than two seconds: the last window is the previous
        (8.5, 5.0, 7.75, 2, 2),
        (9.75, 5.0, 9.75, 1, 0),  # exactly two seconds later: nothing recent before it
        (20.0, 5.0, 20.0, 1, 0),
    ]
    for now, first, start, count, previous in expected:
        state = observe(state, limits, "ok", sent_at=now, now=now)
        assert (
            state.first_accepted,
            state.window_start,
            state.window_count,
            state.previous_count,
        ) == (first, start, count, previous), now
    assert state._replace(first_accepted=None, window_start=0.0, window_count=0) == (
        LimitState.initial(limits)
    )


# -- learning from an accepted request ---------------------------------------------------------

BASE = LimitState(
    concurrency=4.0, first_accepted=1.0, window_start=9.5, window_count=2, previous_count=3
)
GROWTH = Limits(initial_concurrency=4, probe_after=3, increase=0.25)
#: What one more accepted request at t=10 does to BASE's windows.
WINDOW: dict[str, Any] = {"window_count": 3}


@pytest.mark.parametrize(
    ("limits", "before", "paced", "changes"),
    [
        # Not full: only the success is counted.
        (GROWTH, {"in_flight": 2}, True, {"successes_since_cut": 1}),
        (GROWTH, {"in_flight": 0}, True, {"successes_since_cut": 1}),
        # Full (or one short of it): slow start adds a whole slot per success.
        (GROWTH, {"in_flight": 3}, True, {"successes_since_cut": 1, "concurrency": 5.0}),
        (GROWTH, {"in_flight": 4}, True, {"successes_since_cut": 1, "concurrency": 5.0}),
        (
            GROWTH,
            {"in_flight": 4, "concurrency": 4.5},
            True,
            {"successes_since_cut": 1, "concurrency": 5.5},
        ),
        # After a cut: one slot per round (1/limit per success).
        (
            GROWTH,
            {"in_flight": 4, "cut_concurrency": True, "successes_since_cut": 5},
            True,
            {"successes_since_cut": 6, "concurrency": 4.25},
        ),
        # Below probe_after successes since the cut, growth stops at the proven ceiling ...
        (
            GROWTH,
            {"in_flight": 4, "cut_concurrency": True, "ceiling": 4.0, "successes_since_cut": 1},
            True,
            {"successes_since_cut": 2},
        ),
        (
            GROWTH,
            {"concurrency": 2.0, "in_flight": 2, "ceiling": 2.5, "successes_since_cut": 1},
            True,
            {"successes_since_cut": 2, "concurrency": 2.5},
        ),
        # ... and the probe_after-th success probes past it.
        (
            GROWTH,
            {"in_flight": 4, "cut_concurrency": True, "ceiling": 4.0, "successes_since_cut": 2},
            True,
            {"successes_since_cut": 3, "concurrency": 4.25},
        ),
        # A growth never lowers the gauge (a ceiling or cap below it leaves it as it is).
        (
            GROWTH,
            {"in_flight": 4, "ceiling": 2.0, "successes_since_cut": 0},
            True,
            {"successes_since_cut": 1},
        ),
        (
            Limits(initial_concurrency=8, max_concurrency=3),
            {"concurrency": 8.0, "in_flight": 2},
            True,
            {"successes_since_cut": 1},
        ),
        # The fixed cap bounds the growth.
        (
            Limits(max_concurrency=5),
            {"concurrency": 4.5, "in_flight": 4},
            True,
            {"successes_since_cut": 1, "concurrency": 5.0},
        ),
        # The learned rate grows by one per paced success while probing, then by `increase`.
        (
            GROWTH,
            {"rate": 10.0, "in_flight": 1},
            True,
            {"successes_since_cut": 1, "rate": 11.0},
        ),
        (
            GROWTH,
            {"rate": 10.0, "probing_rate": False, "in_flight": 1},
            True,
            {"successes_since_cut": 1, "rate": 10.25},
        ),
        # Unpaced successes say nothing about the rate; without a learned rate there is none.
        (GROWTH, {"rate": 10.0, "in_flight": 1}, False, {"successes_since_cut": 1}),
        (GROWTH, {"rate": None, "in_flight": 1}, True, {"successes_since_cut": 1}),
        # Without adaptation only the windows move.
        (Limits(adaptive=False, max_concurrency=4), {"rate": 10.0, "in_flight": 4}, True, {}),
    ],
)
def test_observe_ok(
    limits: Limits, before: dict[str, Any], paced: bool, changes: dict[str, Any]
) -> None:
    state = BASE._replace(**before)
    after = observe(state, limits, "ok", sent_at=9.0, now=10.0, paced=paced)
    assert after == state._replace(**WINDOW, **changes)


def test_observe_ok_treats_requests_as_paced_by_default() -> None:
    state = BASE._replace(rate=10.0)
    assert observe(state, GROWTH, "ok", sent_at=9.0, now=10.0).rate == 11.0


# -- learning from a refusal --------------------------------------------------------------------

HALF = Limits(initial_concurrency=8, decrease=0.5, min_rps=0.2)


@pytest.mark.parametrize(
    ("before", "changes"),
    [
        # 8 in flight, 3 accepted by the server: it holds 3.
        (
            {"concurrency": 8.0, "in_flight": 8, "accepted": 3},
            {"concurrency": 3.0, "ceiling": 3.0},
        ),
        # Otherwise a multiplicative cut of what was in flight ...
        (
            {"concurrency": 8.0, "in_flight": 5, "accepted": 6},
            {"concurrency": 2.5, "ceiling": 6.0},
        ),
        # ... or of the gauge, when fewer are in flight than it allows.
        (
            {"concurrency": 4.0, "in_flight": 8, "accepted": 8},
            {"concurrency": 2.0, "ceiling": 8.0},
        ),
        # Never below one slot; nothing accepted still proves one.
        (
            {"concurrency": 8.0, "in_flight": 0, "accepted": 0},
            {"concurrency": 1.0, "ceiling": 1.0},
        ),
        (
            {"concurrency": 8.0, "in_flight": 0, "accepted": 5},
            {"concurrency": 1.0, "ceiling": 5.0},
        ),
        (
            {"concurrency": 8.0, "in_flight": 3, "accepted": 0},
            {"concurrency": 1.0, "ceiling": 1.0},
        ),
        (
            {"concurrency": 1.5, "in_flight": 6, "accepted": 6},
            {"concurrency": 1.0, "ceiling": 6.0},
        ),
        # The growth count restarts and slow start ends.
        (
            {"concurrency": 6.0, "in_flight": 6, "accepted": 6, "successes_since_cut": 40},
            {"concurrency": 3.0, "ceiling": 6.0},
        ),
    ],
)
def test_observe_concurrency_refusal_cuts(before: dict[str, Any], changes: dict[str, Any]) -> None:
    state = BASE._replace(last_concurrency_cut=4.0, refusals=2, **before)
    after = observe(state, HALF, "concurrency", sent_at=5.0, now=10.0)
    assert after == state._replace(
        refusals=3,
        successes_since_cut=0,
        cut_concurrency=True,
        last_concurrency_cut=10.0,
        **changes,
    )


@pytest.mark.parametrize(("in_flight", "accepted"), [(1, 5), (0, 5), (1, 1)])
def test_a_refusal_with_at_most_one_in_flight_cuts_to_one_slot(
    in_flight: int, accepted: int
) -> None:
    limits = Limits(initial_concurrency=8)  # decrease 0.9: one slot x 0.9 rounds up to one
    state = LimitState.initial(limits)._replace(in_flight=in_flight, accepted=accepted)
    after = observe(state, limits, "concurrency", sent_at=0.0, now=1.0)
    assert (after.concurrency, after.ceiling) == (1.0, float(accepted))


@pytest.mark.parametrize("sent_at", [4.0, 3.0])
def test_a_concurrency_refusal_sent_before_the_last_cut_is_only_counted(sent_at: float) -> None:
    state = BASE._replace(in_flight=8, accepted=3, last_concurrency_cut=4.0, refusals=2)
    after = observe(state, HALF, "concurrency", sent_at=sent_at, now=10.0)
    assert after == state._replace(refusals=3)


@pytest.mark.parametrize(
    ("before", "changes"),
    [
        # First refusal: pace at decrease x what was accepted over the last second (2 in this
        # window, half of the previous 3 at t=10: 3.5), and keep probing.
        ({"rate": None}, {"rate": 1.75, "probing_rate": True}),
        # Nothing accepted lately: start from one request per second.
        ({"rate": None, "window_count": 0, "previous_count": 0}, {"rate": 0.5}),
        # A refusal while paced: the limit lies just below the paced rate; probing ends.
        ({"rate": 10.0}, {"rate": 5.0, "probing_rate": False}),
        ({"rate": 10.0, "probing_rate": False}, {"rate": 5.0}),
        # Never below min_rps.
        ({"rate": 0.3}, {"rate": 0.2, "probing_rate": False}),
        # A send booked later than now stays booked.
        ({"rate": 10.0, "next_send": 12.5}, {"rate": 5.0, "probing_rate": False}),
    ],
)
def test_observe_rate_refusal_cuts(before: dict[str, Any], changes: dict[str, Any]) -> None:
    state = BASE._replace(last_rate_cut=4.0, next_send=3.0, refusals=1)._replace(**before)
    after = observe(state, HALF, "rate", sent_at=5.0, now=10.0)
    assert after == state._replace(
        refusals=2, last_rate_cut=10.0, next_send=max(state.next_send, 10.0), **changes
    )


def test_the_first_rate_refusal_never_paces_below_min_rps() -> None:
    limits = Limits(min_rps=1.5, decrease=0.5)
    state = LimitState.initial(limits)
    assert observe(state, limits, "rate", sent_at=0.0, now=1.0).rate == 1.5


def test_the_first_rate_refusal_reads_the_windows_at_the_time_of_the_answer() -> None:
    state = BASE._replace(window_start=9.0, window_count=4, previous_count=10)
    # At 10.5 the window holding 4 is 1.5 s old: half of it counts.
    after = observe(state, HALF, "rate", sent_at=10.0, now=10.5)
    assert after.rate == 1.0 and after.next_send == 10.5


@pytest.mark.parametrize("sent_at", [4.0, 2.0])
def test_a_rate_refusal_sent_before_the_last_cut_is_only_counted(sent_at: float) -> None:
    state = BASE._replace(rate=10.0, last_rate_cut=4.0)
    assert observe(state, HALF, "rate", sent_at=sent_at, now=10.0) == state._replace(refusals=1)


@pytest.mark.parametrize("signal", ["rate", "concurrency"])
def test_without_adaptation_a_refusal_is_only_counted(signal: Signal) -> None:
    limits = Limits(adaptive=False, max_concurrency=4, max_rps=2.0)
    state = BASE._replace(in_flight=4, accepted=4, rate=3.0)
    assert observe(state, limits, signal, sent_at=5.0, now=10.0) == state._replace(refusals=1)


@pytest.mark.parametrize(
    ("error", "signal"),
    [
        (RateLimitError("busy", code=50430), "concurrency"),
        (RateLimitError("busy", code="50430"), "concurrency"),
        (RateLimitError("busy", code="InflightBatchsizeExceeded"), "concurrency"),
        (RateLimitError("busy", code="QuotaExceeded"), "concurrency"),
        (RateLimitError("fast", code=50429), "rate"),
        (RateLimitError("fast", code="50429"), "rate"),
        (RateLimitError("fast", status_code=429), "rate"),
        (ValueError("no"), None),
    ],
)
def test_rate_limit_signal(error: BaseException, signal: Signal | None) -> None:
    assert rate_limit_signal(error) == signal


# -- the local store ------------------------------------------------------------------------------


async def test_the_local_store_applies_changes_from_the_initial_state() -> None:
    store = LocalLimitStore()
    initial = LimitState(concurrency=2.0)
    assert store.peek("a") is None
    granted = await store.update("a", initial, lambda state: admit(state, Limits()))
    assert granted is True
    assert store.peek("a") == initial._replace(in_flight=1)
    assert store.apply("a", initial, lambda state: (state, state.in_flight)) == 1
    assert store.apply("b", initial, lambda state: (state._replace(rate=1.0), "b")) == "b"
    assert store.states == {
        "a": initial._replace(in_flight=1),
        "b": initial._replace(rate=1.0),
    }


# -- the limiter, on an event loop whose clock jumps to the next timer ---------------------------


class _JumpingSelector:
    """Never blocks: moves the loop's clock to the next timer instead. With nothing scheduled
    every task waits for something that can never come, so that is an error, not a hang (and
    so is a scenario that runs on for an hour of virtual time)."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop
        self._inner = selectors.DefaultSelector()

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None:
            raise RuntimeError("deadlock: every task waits and no timer is due")
        self._loop.now += timeout
        if self._loop.now > 3600.0:  # every scenario ends within seconds
            raise RuntimeError("the scenario never ends")
        return self._inner.select(0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_JumpingSelector(self))  # type: ignore[arg-type]

    def time(self) -> float:
        return self.now


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(scenario())
    finally:
        loop.close()


def now() -> float:
    return asyncio.get_running_loop().time()


async def at(moment: float) -> None:
    await asyncio.sleep(moment - now())


class SharedStore:
    """A store other processes write too (as Redis would be): each update is a round trip,
    ``peek`` shows what this process saw last, ``elsewhere`` is another process's write."""

    def __init__(self) -> None:
        self.states: dict[str, LimitState] = {}
        self.seen: dict[str, LimitState] = {}
        self.transactions = 0

    async def update(
        self, key: str, initial: LimitState, change: Callable[[LimitState], tuple[LimitState, T]]
    ) -> T:
        await asyncio.sleep(0)
        self.transactions += 1
        state, result = change(self.states.get(key, initial))
        self.states[key] = self.seen[key] = state
        return result

    def peek(self, key: str) -> LimitState | None:
        return self.seen.get(key)

    def elsewhere(self, key: str, change: Callable[[LimitState], LimitState]) -> None:
        self.states[key] = change(self.states[key])


class Rig:
    """A limiter on the virtual clock, with its sleeps recorded."""

    def __init__(self, limits: Limits, key: str = "acct") -> None:
        self.sleeps: list[float] = []
        self.limiter = Limiter(limits, key, clock=now, sleep=self._sleep)

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(seconds)

    @property
    def state(self) -> LimitState:
        return self.limiter.state()

    async def hold(self, seconds: float, log: list[tuple[str, float]], name: str) -> None:
        async with self.limiter.slot():
            log.append((f"{name} in", now()))
            await asyncio.sleep(seconds)
        log.append((f"{name} out", now()))


def test_a_disabled_limiter_neither_waits_nor_learns_nor_holds_slots() -> None:
    async def scenario() -> None:
        rig = Rig(Limits.off())
        limiter = rig.limiter
        await at(5.0)
        assert await limiter.before_request() == (5.0, False)
        assert await limiter.before_request() == (5.0, False)
        await limiter.after_request("rate", 4.0)
        await limiter.after_request("concurrency", 4.0)
        await limiter.after_request("ok", 4.0)
        async with limiter.slot():
            assert not holding_slot()
            await limiter.accepted()
            await limiter.requeue()
        assert limiter.store.peek("acct") is None
        assert limiter.snapshot() == LimitSnapshot(
            key="acct", concurrency=None, in_flight=0, rate=None, queued=0, refusals=0
        )
        assert rig.sleeps == []

    run(scenario)


def test_a_disabled_limiter_leaves_a_slot_held_under_another_limiter_alone() -> None:
    async def scenario() -> None:
        enabled, disabled = Rig(Limits(max_concurrency=2)), Rig(Limits.off(), key="other")
        async with enabled.limiter.slot():
            await disabled.limiter.accepted()
            await disabled.limiter.requeue()
            assert disabled.state == LimitState.initial(Limits.off())
            assert enabled.state == LimitState.initial(Limits())._replace(in_flight=1)

    run(scenario)


@pytest.mark.parametrize(
    ("limits", "snapshot"),
    [
        (Limits(), (8, None)),
        (Limits(initial_concurrency=3, max_rps=2.5), (3, 2.5)),
        (Limits(max_concurrency=2), (2, None)),
        (Limits(adaptive=False, max_rps=2.0), (None, 2.0)),
    ],
)
def test_snapshot_of_a_fresh_limiter(
    limits: Limits, snapshot: tuple[int | None, float | None]
) -> None:
    limiter = Limiter(limits, "acct")
    assert limiter.state() == LimitState.initial(limits)
    assert limiter.snapshot() == LimitSnapshot(
        key="acct",
        concurrency=snapshot[0],
        in_flight=0,
        rate=snapshot[1],
        queued=0,
        refusals=0,
    )


def test_waiting_generations_queue_and_enter_one_release_at_a_time() -> None:
    async def scenario() -> None:
        rig = Rig(Limits(adaptive=False, max_concurrency=1))
        log: list[tuple[str, float]] = []
        seen: list[tuple[float, int, int]] = []

        async def watch() -> None:
            for moment in (1.0, 2.5, 3.5, 4.5):
                await at(moment)
                snap = rig.limiter.snapshot()
                seen.append((moment, snap.in_flight, snap.queued))

        await asyncio.gather(
            rig.hold(2.0, log, "a"), rig.hold(1.0, log, "b"), rig.hold(1.0, log, "c"), watch()
        )
        assert log == [
            ("a in", 0.0),
            ("a out", 2.0),
            ("b in", 2.0),
            ("b out", 3.0),
            ("c in", 3.0),
            ("c out", 4.0),
        ]
        assert seen == [(1.0, 1, 2), (2.5, 1, 1), (3.5, 1, 0), (4.5, 0, 0)]
        assert rig.sleeps == []

    run(scenario)


def test_a_nested_slot_uses_the_held_one() -> None:
    async def scenario() -> None:
        rig = Rig(Limits(max_concurrency=1))
        assert not holding_slot()
        async with rig.limiter.slot():
            assert holding_slot()
            async with rig.limiter.slot():
                assert holding_slot() and rig.state.in_flight == 1
            assert holding_slot() and rig.state.in_flight == 1
        assert not holding_slot() and rig.state.in_flight == 0

    run(scenario)


def test_a_success_that_grows_the_limit_lets_a_waiter_in_at_once() -> None:
    async def scenario() -> None:
        rig = Rig(Limits(initial_concurrency=1))
        log: list[tuple[str, float]] = []

        async def first() -> None:
            async with rig.limiter.slot():
                log.append(("a in", now()))
                await at(0.5)
                await rig.limiter.after_request("ok", 0.25)
                await at(3.0)
            log.append(("a out", now()))

        await asyncio.gather(first(), rig.hold(1.0, log, "b"))
        assert log == [("a in", 0.0), ("b in", 0.5), ("b out", 1.5), ("a out", 3.0)]
        assert rig.state.concurrency == 2.0 and rig.state.in_flight == 0

    run(scenario)


def test_accepted_marks_the_held_slot_once() -> None:
    async def scenario() -> None:
        rig = Rig(Limits())
        await rig.limiter.accepted()  # no slot held: nothing to mark
        assert rig.state.accepted == 0
        async with rig.limiter.slot():
            await rig.limiter.accepted()
            await rig.limiter.accepted()
            assert (rig.state.in_flight, rig.state.accepted) == (1, 1)
        assert (rig.state.in_flight, rig.state.accepted) == (0, 0)
        async with rig.limiter.slot():  # a slot whose task was never accepted
            assert (rig.state.in_flight, rig.state.accepted) == (1, 0)
        assert (rig.state.in_flight, rig.state.accepted) == (0, 0)

    run(scenario)


def test_requeue_with_room_keeps_a_slot_and_forgets_the_acceptance() -> None:
    async def scenario() -> None:
        rig = Rig(Limits(initial_concurrency=4))
        await rig.limiter.requeue()  # no slot held: nothing to give back
        assert rig.state == LimitState.initial(rig.limiter.limits)
        async with rig.limiter.slot():
            await rig.limiter.accepted()
            assert (rig.state.in_flight, rig.state.accepted) == (1, 1)
            await rig.limiter.requeue()
            assert (rig.state.in_flight, rig.state.accepted, now()) == (1, 0, 0.0)
            await rig.limiter.accepted()  # the retry was accepted in turn
            assert (rig.state.in_flight, rig.state.accepted) == (1, 1)
        assert (rig.state.in_flight, rig.state.accepted) == (0, 0)
        assert rig.limiter.snapshot().queued == 0

    run(scenario)


def test_requeue_after_a_cut_waits_until_the_cut_limit_has_room() -> None:
    async def scenario() -> None:
        rig = Rig(Limits(initial_concurrency=2))
        log: list[tuple[str, float]] = []
        seen: list[tuple[int, int, int | None]] = []

        async def refused() -> None:
            async with rig.limiter.slot():
                log.append(("a in", now()))
                await at(1.0)
                # The server holds none of ours and refuses: the limit drops to one.
                await rig.limiter.after_request("concurrency", 0.5)
                await rig.limiter.requeue()
                log.append(("a again", now()))
                await asyncio.sleep(2.0)
            log.append(("a out", now()))

        async def early() -> None:
            await at(0.5)
            await rig.hold(2.0, log, "c")  # queues before the requeue

        async def watch() -> None:
            await at(2.0)
            snap = rig.limiter.snapshot()
            seen.append((snap.in_flight, snap.queued, snap.concurrency))

        await asyncio.gather(refused(), rig.hold(3.0, log, "b"), early(), watch())
        # One slot at a time after the cut: one of the two waiters enters when b leaves, the
        # other when that one leaves.
        assert log[:3] == [("a in", 0.0), ("b in", 0.0), ("b out", 3.0)]
        assert sorted(moment for name, moment in log if name in ("a again", "c in")) == [3.0, 5.0]
        assert sorted(moment for name, moment in log if name in ("a out", "c out")) == [5.0, 7.0]
        assert seen == [(1, 2, 1)]
        assert rig.limiter.snapshot().queued == 0 and rig.state.in_flight == 0

    run(scenario)


def test_unpaced_requests_go_at_once_and_book_nothing() -> None:
    async def scenario() -> None:
        rig = Rig(Limits())
        await at(3.0)
        assert await rig.limiter.before_request() == (3.0, False)
        assert await rig.limiter.before_request() == (3.0, False)
        assert rig.limiter.store.peek("acct") is None and rig.sleeps == []

    run(scenario)


def test_paced_requests_queue_in_order_one_interval_apart() -> None:
    async def scenario() -> None:
        rig = Rig(Limits(adaptive=False, max_rps=2.0))
        seen: list[tuple[float, int]] = []

        async def watch() -> None:
            for moment in (1.25, 1.75, 2.25):
                await at(moment)
                seen.append((moment, rig.limiter.snapshot().queued))

        await at(1.0)
        *sends, _ = await asyncio.gather(
            rig.limiter.before_request(),
            rig.limiter.before_request(),
            rig.limiter.before_request(),
            watch(),
        )
        assert sends == [(1.0, False), (1.5, True), (2.0, True)]
        assert rig.sleeps == [0.5, 0.5]
        assert seen == [(1.25, 2), (1.75, 1), (2.25, 0)]
        assert rig.state.next_send == 2.5 and rig.limiter.snapshot().queued == 0
        # After an idle spell the next request goes at once.
        await at(4.0)
        assert await rig.limiter.before_request() == (4.0, False)
        assert rig.state.next_send == 4.5

    run(scenario)


def test_a_queued_request_whose_turn_is_already_due_goes_without_sleeping() -> None:
    async def scenario() -> None:
        rig = Rig(Limits(adaptive=False, max_rps=2.0))

        async def late_sleep(seconds: float) -> None:  # a timer that fires a second late
            rig.sleeps.append(seconds)
            await asyncio.sleep(seconds + 1.0)

        rig.limiter.sleep = late_sleep
        sends = await asyncio.gather(
            rig.limiter.before_request(),
            rig.limiter.before_request(),
            rig.limiter.before_request(),
        )
        assert list(sends) == [(0.0, False), (1.5, True), (1.5, True)]
        assert rig.sleeps == [0.5]
        assert rig.state.next_send == 2.0 and rig.limiter.snapshot().queued == 0

    run(scenario)


def test_a_cancelled_sleeper_passes_the_turn_on() -> None:
    async def scenario() -> None:
        rig = Rig(Limits(adaptive=False, max_rps=1.0))
        assert await rig.limiter.before_request() == (0.0, False)
        sleeper = asyncio.create_task(rig.limiter.before_request())
        queued = asyncio.create_task(rig.limiter.before_request())
        await at(0.5)
        assert rig.limiter.snapshot().queued == 2
        sleeper.cancel()
        await asyncio.sleep(0)
        assert rig.limiter.snapshot().queued == 1
        # The cancelled request's booking (t=1) stands; the next one books t=2.
        assert await queued == (2.0, True)
        assert rig.sleeps == [1.0, 1.5]
        assert sleeper.cancelled() and rig.limiter.snapshot().queued == 0

    run(scenario)


def test_a_cancelled_queued_request_leaves_the_queue() -> None:
    async def scenario() -> None:
        rig = Rig(Limits(adaptive=False, max_rps=1.0))
        await rig.limiter.before_request()
        sleeper = asyncio.create_task(rig.limiter.before_request())
        queued = asyncio.create_task(rig.limiter.before_request())
        last = asyncio.create_task(rig.limiter.before_request())
        await at(0.5)
        assert rig.limiter.snapshot().queued == 3
        queued.cancel()
        await asyncio.sleep(0)
        assert rig.limiter.snapshot().queued == 2
        assert await sleeper == (1.0, True)
        assert await last == (2.0, True)
        assert rig.limiter.snapshot().queued == 0

    run(scenario)


def test_pacing_starts_after_the_first_rate_refusal(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        rig = Rig(Limits(initial_concurrency=4, decrease=0.5))
        limiter = rig.limiter
        for moment in (0.0, 0.125, 0.25, 0.375):
            await at(moment)
            sent_at, paced = await limiter.before_request()
            assert (sent_at, paced) == (moment, False)
            await limiter.after_request("ok", sent_at, paced=paced)
        await at(0.5)
        sent_at, paced = await limiter.before_request()
        await limiter.after_request("rate", sent_at, paced=paced)
        # 4 accepted in the last second: pace at half of that.
        assert limiter.snapshot().rate == 2.0
        sends = await asyncio.gather(*(limiter.before_request() for _ in range(3)))
        assert sends == [(0.5, False), (1.0, True), (1.5, True)]
        assert rig.sleeps == [0.5, 0.5]
        # A paced success while probing adds one request per second; an unpaced one nothing.
        await limiter.after_request("ok", 1.5, paced=True)
        assert limiter.snapshot().rate == 3.0
        await limiter.after_request("ok", 1.5, paced=False)
        assert limiter.snapshot().rate == 3.0
        await limiter.after_request("ok", 1.5)  # paced unless told otherwise
        assert limiter.snapshot().rate == 4.0
        assert limiter.snapshot().refusals == 1

    with caplog.at_level(logging.INFO, logger="jimeng"):
        run(scenario)
    assert [r.getMessage() for r in caplog.records] == [
        "rate limit (rate): pacing at 2.00 requests/s for acct"
    ]


def test_answers_update_the_state_of_the_limiters_key() -> None:
    async def scenario() -> None:
        store = LocalLimitStore()
        one = Limiter(Limits(initial_concurrency=2, store=store), "one", clock=now)
        two = Limiter(Limits(initial_concurrency=2, store=store), "two", clock=now)
        await at(2.0)
        async with one.slot():
            await one.after_request("ok", 1.5)
        await two.after_request("concurrency", 1.5)
        assert store.states["one"] == LimitState(
            concurrency=3.0,
            successes_since_cut=1,
            first_accepted=2.0,
            window_start=2.0,
            window_count=1,
        )
        assert store.states["two"] == LimitState(
            concurrency=1.0,
            ceiling=1.0,
            cut_concurrency=True,
            last_concurrency_cut=2.0,
            refusals=1,
        )

    run(scenario)


# -- log lines ----------------------------------------------------------------------------------


def messages(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int, str]]:
    return [(r.name, r.levelno, r.getMessage()) for r in caplog.records]


def test_a_concurrency_cut_is_logged_once_with_the_limits_before_and_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        rig = Rig(Limits(initial_concurrency=5))
        limiter = rig.limiter

        async def generation(accepted: bool) -> None:
            async with limiter.slot():
                if accepted:
                    await limiter.accepted()
                await at(2.0)

        async def refusals() -> None:
            await at(1.0)
            await limiter.after_request("concurrency", 0.5)  # 4 in flight, 3 accepted: 3
            await limiter.after_request("concurrency", 0.75)  # sent before the cut: known
            await at(1.5)
            await limiter.after_request("concurrency", 1.25)  # 3 x 0.9, still proved 3
            await limiter.after_request("ok", 1.25)  # full: grows back to the ceiling

        await asyncio.gather(*(generation(n < 3) for n in range(4)), refusals())
        assert (rig.state.concurrency, rig.state.ceiling) == (3.0, 3.0)

    with caplog.at_level(logging.INFO, logger="jimeng"):
        run(scenario)
    assert messages(caplog) == [
        ("jimeng", logging.INFO, "rate limit (concurrency): concurrency 5 -> 3 for acct"),
        ("jimeng", logging.INFO, "rate limit (concurrency): concurrency 3 -> 2 for acct"),
    ]


def test_the_logged_concurrency_is_the_capped_limit(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        rig = Rig(Limits(initial_concurrency=8, max_concurrency=4), key="acct-2")

        async def generation() -> None:
            async with rig.limiter.slot():
                await rig.limiter.accepted()
                await at(2.0)

        async def refusal() -> None:
            await at(1.0)
            await rig.limiter.after_request("concurrency", 0.5)  # 4 x 0.9 = 3.6

        await asyncio.gather(*(generation() for _ in range(4)), refusal())

    with caplog.at_level(logging.INFO, logger="jimeng"):
        run(scenario)
    assert messages(caplog) == [
        ("jimeng", logging.INFO, "rate limit (concurrency): concurrency 4 -> 3 for acct-2")
    ]


def test_a_refusal_that_changes_nothing_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        rig = Rig(Limits(initial_concurrency=1, min_rps=0.5, decrease=0.5))
        limiter = rig.limiter
        async with limiter.slot():
            await limiter.after_request("concurrency", 0.0)  # already at one slot
        await limiter.after_request("rate", 0.0)  # 1 x 0.5 = 0.5 requests/s: logged
        await at(1.0)
        await limiter.after_request("rate", 0.5)  # already at min_rps
        await limiter.after_request("rate", 0.0)  # sent before the cut
        await limiter.after_request("ok", 0.5)
        assert limiter.snapshot().refusals == 4

    with caplog.at_level(logging.INFO, logger="jimeng"):
        run(scenario)
    assert messages(caplog) == [
        ("jimeng", logging.INFO, "rate limit (rate): pacing at 0.50 requests/s for acct")
    ]


def test_rate_cuts_are_logged_with_two_decimals(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        rig = Rig(Limits(initial_concurrency=4))
        limiter = rig.limiter
        for _ in range(7):
            await limiter.after_request("ok", 0.0)
        await limiter.after_request("rate", 0.0)  # 7 x 0.9 = 6.3
        await at(0.5)
        await limiter.after_request("rate", 0.25)  # 6.3 x 0.9 = 5.67

    with caplog.at_level(logging.INFO, logger="jimeng"):
        run(scenario)
    assert [m for _, _, m in messages(caplog)] == [
        "rate limit (rate): pacing at 6.30 requests/s for acct",
        "rate limit (rate): pacing at 5.67 requests/s for acct",
    ]


# -- a store shared with other processes ----------------------------------------------------------


def shared_rig(limits: Limits, store: SharedStore) -> Rig:
    return Rig(attrs.evolve(limits, store=store))


def test_waiters_on_a_shared_store_recheck_it_every_shared_recheck() -> None:
    assert SHARED_RECHECK == 0.05

    async def scenario() -> None:
        store = SharedStore()
        limits = Limits(adaptive=False, max_concurrency=1)
        store.states["acct"] = LimitState.initial(limits)._replace(in_flight=1)
        rig = shared_rig(limits, store)
        log: list[tuple[str, float]] = []

        async def other_process() -> None:
            await at(0.12)
            store.elsewhere("acct", release)  # nobody here hears of it

        async def watch() -> None:
            await at(0.06)
            assert rig.limiter.snapshot().queued == 1

        await asyncio.gather(rig.hold(1.0, log, "a"), other_process(), watch())
        assert [name for name, _ in log] == ["a in", "a out"]
        assert log[0][1] == pytest.approx(0.15)  # the checks at 0.05 and 0.10 found it full
        assert store.transactions == 5  # four admission checks and the release
        assert store.states["acct"].in_flight == 0 and rig.limiter.snapshot().queued == 0

    run(scenario)


def test_an_answer_showing_slots_freed_elsewhere_wakes_the_waiters() -> None:
    async def scenario() -> None:
        store = SharedStore()
        limits = Limits(adaptive=False, max_concurrency=1)
        store.states["acct"] = LimitState.initial(limits)._replace(in_flight=1)
        rig = shared_rig(limits, store)
        log: list[tuple[str, float]] = []

        async def poll() -> None:  # holds no slot
            await at(0.01)
            store.elsewhere("acct", release)
            await at(0.02)
            await rig.limiter.after_request("ok", 0.015)

        await asyncio.gather(rig.hold(1.0, log, "a"), poll())
        assert log == [("a in", 0.02), ("a out", 1.02)]

    run(scenario)


def test_an_answer_that_frees_nothing_does_not_send_waiters_back_to_the_store() -> None:
    async def scenario() -> None:
        store = SharedStore()
        limits = Limits(adaptive=False, max_concurrency=1)
        store.states["acct"] = LimitState.initial(limits)._replace(in_flight=1)
        rig = shared_rig(limits, store)
        counts: list[int] = []

        async def waiter() -> None:
            async with rig.limiter.slot():
                pass

        async def poll() -> None:
            await at(0.01)
            await rig.limiter.after_request("ok", 0.005)
            await rig.limiter.after_request("rate", 0.005)
            await at(0.02)
            counts.append(store.transactions)  # one admission check and two answers
            store.elsewhere("acct", release)

        await asyncio.gather(waiter(), poll())
        assert counts == [3]

    run(scenario)


def test_answers_are_learned_in_the_shared_state() -> None:
    async def scenario() -> None:
        store = SharedStore()
        rig = shared_rig(Limits(initial_concurrency=2, decrease=0.5, increase=0.25), store)
        await at(3.0)
        await rig.limiter.after_request("ok", 2.5, paced=False)
        assert store.states == {
            "acct": LimitState(
                concurrency=2.0,
                successes_since_cut=1,
                first_accepted=3.0,
                window_start=3.0,
                window_count=1,
            )
        }
        await at(3.5)
        store.elsewhere("acct", lambda s: s._replace(rate=8.0, in_flight=2, accepted=2))
        await rig.limiter.after_request("rate", 3.25, paced=True)
        await rig.limiter.after_request("concurrency", 3.25)
        assert store.states["acct"] == LimitState(
            concurrency=1.0,
            in_flight=2,
            accepted=2,
            ceiling=2.0,
            cut_concurrency=True,
            last_concurrency_cut=3.5,
            rate=4.0,
            probing_rate=False,
            last_rate_cut=3.5,
            next_send=3.5,
            first_accepted=3.0,
            window_start=3.0,
            window_count=1,
            refusals=2,
        )
        assert rig.limiter.snapshot() == LimitSnapshot(
            key="acct", concurrency=1, in_flight=2, rate=4.0, queued=0, refusals=2
        )
        await rig.limiter.after_request("ok", 3.75, paced=False)
        assert store.states["acct"].rate == 4.0
        await rig.limiter.after_request("ok", 3.75)
        assert store.states["acct"].rate == 4.25

    run(scenario)


def test_shared_cuts_are_logged_against_the_last_seen_state(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        store = SharedStore()
        rig = shared_rig(Limits(initial_concurrency=6), store)
        async with rig.limiter.slot():
            async with rig.limiter.slot():
                pass
            await rig.limiter.after_request("concurrency", 0.0)

    with caplog.at_level(logging.INFO, logger="jimeng"):
        run(scenario)
    assert [m for _, _, m in messages(caplog)] == [
        "rate limit (concurrency): concurrency 6 -> 1 for acct"
    ]


def test_paced_requests_on_a_shared_store_book_their_sends_there() -> None:
    async def scenario() -> None:
        store = SharedStore()
        rig = shared_rig(Limits(adaptive=False, max_rps=4.0), store)
        sends = await asyncio.gather(*(rig.limiter.before_request() for _ in range(3)))
        assert sends == [(0.0, False), (0.25, True), (0.5, True)]
        assert store.states["acct"].next_send == 0.75
        store.elsewhere("acct", lambda s: s._replace(next_send=2.0))  # others sent meanwhile
        assert await rig.limiter.before_request() == (2.0, True)
        assert rig.sleeps[-1] == 1.5

    run(scenario)


def test_queued_counts_slot_waiters_and_paced_requests_alike() -> None:
    async def scenario() -> None:
        rig = Rig(Limits(initial_concurrency=1, max_rps=1.0))
        log: list[tuple[str, float]] = []
        counts: list[int] = []

        async def paced() -> None:
            await rig.limiter.before_request()
            await rig.limiter.before_request()  # sleeps a second

        async def watch() -> None:
            await at(0.5)
            counts.append(rig.limiter.snapshot().queued)

        await asyncio.gather(rig.hold(2.0, log, "a"), rig.hold(1.0, log, "b"), paced(), watch())
        assert counts == [2]
        assert log == [("a in", 0.0), ("a out", 2.0), ("b in", 2.0), ("b out", 3.0)]
        assert rig.limiter.snapshot().queued == 0

    run(scenario)


def test_slots_on_a_shared_store_count_their_accepted_tasks_there() -> None:
    async def scenario() -> None:
        store = SharedStore()
        rig = shared_rig(Limits(initial_concurrency=2), store)
        async with rig.limiter.slot():
            await rig.limiter.accepted()
            await rig.limiter.accepted()
            assert (store.states["acct"].in_flight, store.states["acct"].accepted) == (1, 1)
            await rig.limiter.requeue()
            assert (store.states["acct"].in_flight, store.states["acct"].accepted) == (1, 0)
            await rig.limiter.accepted()
            assert (store.states["acct"].in_flight, store.states["acct"].accepted) == (1, 1)
        assert (store.states["acct"].in_flight, store.states["acct"].accepted) == (0, 0)

    run(scenario)
