"""Client-side rate limiting: one adaptive (AIMD) limiter per backend account.

Two gauges share one :class:`LimitState`:

* **concurrency** — generations in flight. A ``generate()`` holds a slot from its submit until
  its wait ends; a bare ``submit()`` holds one for the submit request only (what happens to the
  task afterwards is the caller's business). Polls, cancels and downloads hold no slot: they
  serve tasks that already hold one. The server's "too many concurrent tasks" answer (50430)
  cuts the gauge by ``decrease``; each success while the gauge is full grows it (by one per
  success until the first cut — slow start — then by ``1/limit``, about one per round).
* **rate** — API requests per second (submits, polls, cancels; downloads and uploads go to
  other hosts and are not counted). Every attempt passes a pacing gate. The gate is open until
  the server first answers a QPS refusal (50429, or HTTP 429 without a concurrency code). That
  first refusal ends an unpaced burst, which says little about the limit: pacing starts at
  ``decrease`` × what the server accepted over the last second and grows by one request/second
  per success (slow start: it doubles every second). The next refusal shows the limit lies
  just below the paced rate: it becomes ``decrease`` × that rate and grows by ``increase`` per
  success from then on (only while requests actually wait for it). A poll counts like a
  submit (servers count requests), but since it holds no slot it never waits behind queued
  generations.

The decisions are pure functions over :class:`LimitState` (:func:`admit`, :func:`pace`,
:func:`release`, :func:`observe`), so they are tested with an injected clock and can run
against shared state: a :class:`LimitStore` applies a change to the state of one key, and a
store shared between processes (Redis, a database) gives one account one limit across
workers. :class:`Limiter` is the asyncio side: it waits for permits and wakes waiters.

Only one cut is made per burst: a refusal for a request sent before the last cut says nothing
new (the cut already answered it), as in TCP and Netflix's concurrency-limits.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import math
import time
from collections.abc import Callable
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

import attrs

from jimeng import _logging
from jimeng.errors import RateLimitError

__all__ = [
    "LimitSnapshot",
    "LimitState",
    "LimitStore",
    "Limiter",
    "Limits",
    "LocalLimitStore",
    "Signal",
    "admit",
    "holding_slot",
    "observe",
    "pace",
    "rate_limit_signal",
    "release",
]

T = TypeVar("T")
#: What an answer said about the limits: nothing, "too fast" or "too many at once".
Signal = Literal["ok", "rate", "concurrency"]

#: "Too many at once" codes: Volcengine's API concurrent limit (protocols/volcengine.md §4.1);
#: Ark's tasks in flight and its queued-task quota (§12.4; only the rate-limit reading of
#: QuotaExceeded is a RateLimitError, the used-up free quota is not).
CONCURRENCY_CODES = frozenset({50430, "50430", "InflightBatchsizeExceeded", "QuotaExceeded"})
#: Calls to other hosts than the API (media CDNs, upload services, input fetches).
UNLIMITED_PURPOSES = frozenset({"download", "upload", "fetch", "fetch-input"})


def _positive_or_none(_: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be positive or None, got {value!r}")


@attrs.frozen(kw_only=True)
class Limits:
    """How a client paces itself against the account's limits.

    ``max_concurrency`` caps generations in flight and ``max_rps`` API requests per second
    (fixed caps, e.g. the quota in your console); the adaptive gauges stay below them.
    ``adaptive=False`` keeps only the fixed caps. ``store`` shares the state between clients or
    processes (default: each client keeps its own).
    """

    max_concurrency: int | None = attrs.field(default=None, validator=_positive_or_none)
    max_rps: float | None = attrs.field(default=None, validator=_positive_or_none)
    adaptive: bool = True
    #: Concurrency before the server said anything (slow start grows it from there).
    initial_concurrency: int = attrs.field(default=8, validator=attrs.validators.ge(1))
    #: Multiplicative decrease on a refusal (0.9 as in Netflix's AIMD limit).
    decrease: float = attrs.field(
        default=0.9, validator=[attrs.validators.gt(0), attrs.validators.lt(1)]
    )
    #: Requests/second added to the learned rate per successful request.
    increase: float = attrs.field(default=0.02, validator=attrs.validators.ge(0))
    min_rps: float = attrs.field(default=0.2, validator=attrs.validators.gt(0))
    #: Successes after a concurrency cut before growing past the proven ceiling again.
    probe_after: int = attrs.field(default=100, validator=attrs.validators.ge(0))
    store: LimitStore | None = attrs.field(default=None, eq=False, repr=False)

    @classmethod
    def off(cls) -> Limits:
        """No client-side limiting at all (refusals are still retried)."""
        return cls(adaptive=False)

    @property
    def enabled(self) -> bool:
        return self.adaptive or self.max_concurrency is not None or self.max_rps is not None


class LimitState(NamedTuple):
    """Everything the limiter knows about one account. Plain numbers, so a shared store can
    serialise it (:meth:`to_dict` / :meth:`from_dict`). Times are the limiter clock's. A named
    tuple: the limiter replaces it on every answer (with :func:`_with`)."""

    #: The adaptive concurrency limit (a float: additive increase adds fractions).
    concurrency: float
    in_flight: int = 0
    #: Slots whose task the server accepted (what it counts against its concurrency limit).
    accepted: int = 0
    #: The concurrency the server last proved it holds; growth stays at or below it until
    #: ``Limits.probe_after`` successes have passed since the cut (one probe, not a storm).
    ceiling: float | None = None
    successes_since_cut: int = 0
    #: The learned request rate; ``None`` until the server first refused for rate.
    rate: float | None = None
    #: Pacing (GCRA): the earliest time the next request may leave.
    next_send: float = 0.0
    #: False until the first concurrency cut (slow start until then).
    cut_concurrency: bool = False
    last_concurrency_cut: float = -math.inf
    last_rate_cut: float = -math.inf
    #: True while the rate is still being discovered (slow start: doubling per second).
    probing_rate: bool = True
    #: Accepted requests in the current and the previous one-second window.
    first_accepted: float | None = None
    window_start: float = 0.0
    window_count: int = 0
    previous_count: int = 0
    refusals: int = 0

    @classmethod
    def initial(cls, limits: Limits) -> LimitState:
        return cls(concurrency=float(limits.initial_concurrency))

    def to_dict(self) -> dict[str, Any]:
        return {
            name: (None if value == -math.inf else value) for name, value in self._asdict().items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LimitState:
        values = {key: value for key, value in data.items() if key in cls._fields}
        for name in ("last_concurrency_cut", "last_rate_cut"):
            if values.get(name) is None:
                values[name] = -math.inf
        return cls(**values)


_FIELD_INDEX = {name: index for index, name in enumerate(LimitState._fields)}


def _with(state: LimitState, **changes: Any) -> LimitState:
    """``state._replace(**changes)`` at a third of the cost (it runs several times a request).
    An unknown field raises ``KeyError``."""
    values = list(state)
    for name, value in changes.items():
        values[_FIELD_INDEX[name]] = value
    return tuple.__new__(LimitState, values)


def concurrency_limit(state: LimitState, limits: Limits) -> int:
    """How many generations may be in flight now."""
    limit = math.inf
    if limits.adaptive:
        limit = max(1.0, state.concurrency)
    if limits.max_concurrency is not None:
        limit = min(limit, limits.max_concurrency)
    return int(limit) if limit != math.inf else 1 << 30


def request_rate(state: LimitState, limits: Limits) -> float | None:
    """Requests per second allowed now, or ``None`` when unpaced."""
    rate = state.rate if limits.adaptive else None
    if limits.max_rps is not None:
        rate = limits.max_rps if rate is None else min(rate, limits.max_rps)
    return rate


def admit(state: LimitState, limits: Limits) -> tuple[LimitState, bool]:
    """Take a concurrency slot if one is free."""
    if state.in_flight >= concurrency_limit(state, limits):
        return state, False
    return _with(state, in_flight=state.in_flight + 1), True


def release(state: LimitState, *, accepted: bool = False) -> LimitState:
    """Give a slot back (``accepted``: its task had been accepted)."""
    return _with(
        state,
        in_flight=max(0, state.in_flight - 1),
        accepted=max(0, state.accepted - 1) if accepted else state.accepted,
    )


def mark_accepted(state: LimitState) -> LimitState:
    """The task of a held slot was accepted by the server."""
    return _with(state, accepted=state.accepted + 1)


def pace(state: LimitState, limits: Limits, now: float) -> tuple[LimitState, float]:
    """Book the next send (one interval after the previous one, or now) and return how long
    to wait for it."""
    rate = request_rate(state, limits)
    if rate is None:
        return state, 0.0
    at = max(state.next_send, now)
    return _with(state, next_send=at + 1.0 / rate), at - now


def accepted_rate(state: LimitState, now: float) -> float:
    """Requests the server accepted over the last second (sliding estimate)."""
    elapsed = now - state.window_start
    if elapsed >= 2.0:
        return 0.0
    if elapsed >= 1.0:
        return float(state.window_count) * (2.0 - elapsed)
    return state.previous_count * (1.0 - elapsed) + state.window_count


def _accepted_changes(state: LimitState, now: float) -> dict[str, Any]:
    """The window fields after one more accepted request."""
    if state.first_accepted is None:
        return {"first_accepted": now, "window_start": now, "window_count": 1}
    elapsed = now - state.window_start
    if elapsed < 1.0:
        return {"window_count": state.window_count + 1}
    previous = state.window_count if elapsed < 2.0 else 0
    return {"window_start": now, "window_count": 1, "previous_count": previous}


def observe(
    state: LimitState,
    limits: Limits,
    signal: Signal,
    *,
    sent_at: float,
    now: float,
    paced: bool = True,
) -> LimitState:
    """Learn from one answer to a request sent at ``sent_at``. ``paced``: the request had to
    wait for the rate (only then is the rate what holds the client back, worth growing)."""
    if signal == "ok":
        # One replace for the common answer: this runs for every request.
        changes: dict[str, Any] = _accepted_changes(state, now)
        if not limits.adaptive:
            return _with(state, **changes)
        if state.rate is not None and paced:
            changes["rate"] = state.rate + (1.0 if state.probing_rate else limits.increase)
        successes = state.successes_since_cut + 1
        changes["successes_since_cut"] = successes
        if state.in_flight >= concurrency_limit(state, limits) - 1:
            step = 1.0 / state.concurrency if state.cut_concurrency else 1.0
            grown = state.concurrency + step
            if state.ceiling is not None and successes < limits.probe_after:
                grown = min(grown, state.ceiling)
            if limits.max_concurrency is not None:
                grown = min(grown, float(limits.max_concurrency))
            changes["concurrency"] = max(state.concurrency, grown)
        return _with(state, **changes)
    state = _with(state, refusals=state.refusals + 1)
    if not limits.adaptive:
        return state
    if signal == "concurrency":
        if sent_at <= state.last_concurrency_cut:
            return state
        # The server holds our accepted tasks and refuses one more: that is its limit now
        # (other clients of the account may hold the rest). Cut multiplicatively, and to no
        # more than what it proved it holds.
        held = float(max(1, state.accepted))
        base = min(state.concurrency, float(max(1, state.in_flight)))
        return _with(
            state,
            concurrency=max(1.0, min(base * limits.decrease, held)),
            ceiling=held,
            successes_since_cut=0,
            cut_concurrency=True,
            last_concurrency_cut=now,
        )
    if sent_at <= state.last_rate_cut:
        return state
    if state.rate is not None:
        # The paced rate proved too high: the limit lies just below it.
        base, probing = state.rate, False
    else:
        # An unpaced burst says little about the rate: start from what got through in the
        # last second and probe upwards (slow start).
        base, probing = max(1.0, accepted_rate(state, now)), True
    return _with(
        state,
        rate=max(limits.min_rps, base * limits.decrease),
        probing_rate=probing,
        last_rate_cut=now,
        next_send=max(state.next_send, now),
    )


def rate_limit_signal(error: BaseException) -> Signal | None:
    """The retry policy's "this was a rate limit" signal, read the limiter's way: ``None``
    for anything that is not a rate limit refusal."""
    if not isinstance(error, RateLimitError):
        return None
    return "concurrency" if error.code in CONCURRENCY_CODES else "rate"


class LimitStore(Protocol):
    """Where limit states live. ``update`` applies ``change`` to the state of ``key`` (created
    from ``initial`` when absent) atomically and returns its second element. A shared store
    runs the change inside a transaction (e.g. Redis ``WATCH``/``MULTI`` over
    :meth:`LimitState.to_dict`, retrying on conflict) and should use a wall clock."""

    async def update(
        self,
        key: str,
        initial: LimitState,
        change: Callable[[LimitState], tuple[LimitState, T]],
    ) -> T: ...

    def peek(self, key: str) -> LimitState | None:
        """The last known state of ``key`` (for display; may be stale for a shared store)."""
        ...


class LocalLimitStore:
    """States in this process's memory (one event loop, so no lock is needed)."""

    def __init__(self) -> None:
        self.states: dict[str, LimitState] = {}

    def apply(
        self,
        key: str,
        initial: LimitState,
        change: Callable[[LimitState], tuple[LimitState, T]],
    ) -> T:
        state, result = change(self.states.get(key, initial))
        self.states[key] = state
        return result

    async def update(
        self,
        key: str,
        initial: LimitState,
        change: Callable[[LimitState], tuple[LimitState, T]],
    ) -> T:
        return self.apply(key, initial, change)

    def peek(self, key: str) -> LimitState | None:
        return self.states.get(key)


@attrs.frozen(kw_only=True)
class LimitSnapshot:
    """What ``client.limits`` shows: the current limits and who is waiting."""

    key: str
    concurrency: int | None
    in_flight: int
    rate: float | None
    queued: int
    refusals: int


@attrs.define
class _Slot:
    accepted: bool = False


_holding: contextvars.ContextVar[_Slot | None] = contextvars.ContextVar("jimeng_slot", default=None)


def holding_slot() -> bool:
    """True inside :meth:`Limiter.slot` (a submit made there uses the held slot)."""
    return _holding.get() is not None


class _SlotHold:
    """``async with limiter.slot():`` (a class: cheaper than a generator-based manager, and
    this runs for every generation)."""

    __slots__ = ("_held", "_limiter", "_token")

    def __init__(self, limiter: Limiter):
        self._limiter = limiter
        self._held: _Slot | None = None
        self._token: contextvars.Token[_Slot | None] | None = None

    async def __aenter__(self) -> None:
        limiter = self._limiter
        if not limiter.enabled or _holding.get() is not None:
            return
        if not limiter._take_local_slot():
            await limiter._take_slot()
        self._held = _Slot()
        self._token = _holding.set(self._held)

    async def __aexit__(self, *exc: object) -> None:
        if self._held is None or self._token is None:
            return
        _holding.reset(self._token)
        if not self._limiter._give_local_slot(self._held):
            await self._limiter._give_slot(self._held)


#: Waiters of a shared store re-check at least this often (other processes release slots).
SHARED_RECHECK = 0.05


class Limiter:
    """Waits for permits under one :class:`Limits` for one account ``key``."""

    def __init__(
        self,
        limits: Limits,
        key: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ):
        self.limits = limits
        self.key = key
        self.clock = clock
        self.sleep = sleep
        #: ``limits.enabled``, read on every request (``Limits`` is frozen).
        self.enabled = limits.enabled
        self.store: LimitStore = limits.store if limits.store is not None else LocalLimitStore()
        self._local = self.store if isinstance(self.store, LocalLimitStore) else None
        self._initial = LimitState.initial(limits)
        self._waiters: list[asyncio.Future[None]] = []
        self._pacers: collections.deque[asyncio.Future[None]] = collections.deque()
        self.queued = 0

    async def _update(self, change: Callable[[LimitState], tuple[LimitState, T]]) -> T:
        if self._local is not None:
            return self._local.apply(self.key, self._initial, change)
        return await self.store.update(self.key, self._initial, change)

    def state(self) -> LimitState:
        return self.store.peek(self.key) or self._initial

    def snapshot(self) -> LimitSnapshot:
        state = self.state()
        limit = concurrency_limit(state, self.limits)
        return LimitSnapshot(
            key=self.key,
            concurrency=None if limit == 1 << 30 else limit,
            in_flight=state.in_flight,
            rate=request_rate(state, self.limits),
            queued=self.queued,
            refusals=state.refusals,
        )

    # -- concurrency slots -----------------------------------------------------------------------

    def slot(self) -> _SlotHold:
        """An async context manager holding a concurrency slot for its block."""
        return _SlotHold(self)

    def _take_local_slot(self) -> bool:
        """Take a free slot of a local store without suspending: the common case."""
        local = self._local
        if local is None:
            return False
        state, granted = admit(local.states.get(self.key, self._initial), self.limits)
        if granted:
            local.states[self.key] = state
        return granted

    def _give_local_slot(self, held: _Slot) -> bool:
        """Give a slot back to a local store without suspending (``False``: a shared store)."""
        local = self._local
        if local is None:
            return False
        state = local.states.get(self.key, self._initial)
        local.states[self.key] = release(state, accepted=held.accepted)
        if self._waiters:
            self._wake()
        return True

    async def _take_slot(self) -> None:
        """Take a slot, waiting for one when none is free."""
        limits = self.limits
        granted = await self._update(lambda state: admit(state, limits))
        if not granted:
            self.queued += 1
            try:
                while not granted:
                    await self._wait()
                    granted = await self._update(lambda state: admit(state, limits))
            finally:
                self.queued -= 1

    async def _give_slot(self, held: _Slot) -> None:
        await self._update(lambda state: (release(state, accepted=held.accepted), None))
        if self._waiters:
            self._wake()

    async def accepted(self) -> None:
        """The submit made under the current slot was accepted (the server now counts it)."""
        held = _holding.get()
        if held is not None and not held.accepted and self.enabled:
            held.accepted = True
            await self._update(lambda state: (mark_accepted(state), None))

    async def requeue(self) -> None:
        """After a concurrency refusal: give the current slot back and queue for another, so
        the retry goes out only when the (cut) limit has room."""
        held = _holding.get()
        if held is None or not self.enabled:
            return
        await self._update(lambda state: (release(state, accepted=held.accepted), None))
        held.accepted = False
        self._wake()
        await self._take_slot()

    async def _wait(self) -> None:
        """Until a slot may have been freed: a wake-up here, or (a shared store, where other
        processes free slots too) at most ``SHARED_RECHECK`` seconds."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            if self._local is not None:
                await future
            else:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(future, SHARED_RECHECK)
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(future)

    def _wake(self) -> None:
        # Wake everyone waiting: each re-checks; the ones that lose wait again.
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)

    # -- request pacing and feedback -------------------------------------------------------------

    def unpaced_now(self) -> float | None:
        """The send time of a request that needs no turn (nobody queued for the rate, no rate
        in force, a local store), else ``None``: then await :meth:`before_request`."""
        local = self._local
        if self._pacers or local is None:
            return None
        if request_rate(local.states.get(self.key, self._initial), self.limits) is not None:
            return None
        return self.clock()

    def answered_ok(self, sent_at: float, *, paced: bool, submit: bool) -> bool:
        """Feed back an ``"ok"`` answer (and a submit's acceptance) to a local store without
        suspending; ``False`` for a shared store (then await :meth:`after_request` and
        :meth:`accepted`)."""
        local = self._local
        if local is None:
            return False
        key = self.key
        before = local.states.get(key, self._initial)
        after = observe(before, self.limits, "ok", sent_at=sent_at, now=self.clock(), paced=paced)
        if submit:
            held = _holding.get()
            if held is not None and not held.accepted:
                held.accepted = True
                after = mark_accepted(after)
        local.states[key] = after
        if self._waiters and after.concurrency > before.concurrency:
            self._wake()
        return True

    async def before_request(self) -> tuple[float, bool]:
        """Wait for this request's turn under the rate; returns the send time and whether it
        had to wait. Waiters queue in order; only the head books a send time (at the rate in
        force then) and sleeps until it, so nothing is booked far ahead at a stale rate."""
        if not self.enabled:
            return self.clock(), False
        if not self._pacers and self._local is not None:
            state = self._local.states.get(self.key, self._initial)
            if request_rate(state, self.limits) is None:
                return self.clock(), False  # nothing to pace: no booking needed
        turn: asyncio.Future[None] | None = None
        if self._pacers:
            turn = asyncio.get_running_loop().create_future()
            self._pacers.append(turn)
            self.queued += 1
        try:
            if turn is not None:
                await turn
            now = self.clock()
            wait = await self._update(self._pace(now))
            if wait == 0.0:
                return now, turn is not None
            if turn is None:
                turn = asyncio.get_running_loop().create_future()
                self._pacers.appendleft(turn)
                self.queued += 1
            await self.sleep(wait)
            return self.clock(), True
        finally:
            if turn is not None:
                self.queued -= 1
                with contextlib.suppress(ValueError):
                    self._pacers.remove(turn)
                if self._pacers and not self._pacers[0].done():
                    self._pacers[0].set_result(None)  # the next in line books its turn

    def _pace(self, now: float) -> Callable[[LimitState], tuple[LimitState, float]]:
        limits = self.limits
        return lambda state: pace(state, limits, now)

    async def after_request(self, signal: Signal, sent_at: float, *, paced: bool = True) -> None:
        """Feed an answer back (``"ok"`` or a refusal signal)."""
        if not self.enabled:
            return
        now = self.clock()
        limits = self.limits
        local = self._local
        if local is not None:
            before = local.states.get(self.key, self._initial)
            after = observe(before, limits, signal, sent_at=sent_at, now=now, paced=paced)
            local.states[self.key] = after
        else:
            before = self.state()
            after = await self.store.update(
                self.key,
                self._initial,
                lambda state: _same(
                    observe(state, limits, signal, sent_at=sent_at, now=now, paced=paced)
                ),
            )
        if signal != "ok":
            _log_cut(self.key, before, after, signal, limits)
        if self._waiters and (
            after.concurrency > before.concurrency or after.in_flight < before.in_flight
        ):
            self._wake()


def _same(state: LimitState) -> tuple[LimitState, LimitState]:
    return state, state


def _log_cut(
    key: str, before: LimitState, after: LimitState, signal: Signal, limits: Limits
) -> None:
    if signal == "concurrency" and after.concurrency != before.concurrency:
        _logging.logger.info(
            "rate limit (%s): concurrency %d -> %d for %s",
            signal,
            concurrency_limit(before, limits),
            concurrency_limit(after, limits),
            key,
        )
    elif signal == "rate" and after.rate != before.rate:
        _logging.logger.info(
            "rate limit (%s): pacing at %.2f requests/s for %s",
            signal,
            after.rate or 0.0,
            key,
        )
