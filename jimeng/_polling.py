"""Waiting for tasks: a schedule, not a sleep.

Cold, the interval starts at ``interval``, grows by ``backoff`` after each unchanged poll up to
``max_interval``, and stops at ``max_attempts`` polls or the ``deadline`` (seconds since the wait
began), whichever comes first. A server's hint always wins. Updates are emitted on every status
change. Defaults follow the seeds' environment variables.

Warm, the schedule is learned: for each (backend, model, kind) the client keeps a log-normal
estimate of the generation time (:class:`DurationEstimate`), fitted from tasks it saw succeed.
A task's completion is only known to lie between the last poll that saw it unfinished and the
first that saw it done; each such bracket updates the estimate by an EWMA of the expected
log-duration inside the bracket (a stochastic EM step, so brackets that only bound the time from
above do not drag the estimate down). The next task is polled around its expected completion,
polls a tenth of the generation time apart, then with growing steps (:func:`planned_polls`).
All of this is pure functions of the estimate, tested without a clock.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import attrs

from jimeng.errors import ConfigurationError, TaskTimeoutError
from jimeng.models import Task, TaskKind, TaskStatus
from jimeng.models._checks import boolean, integer, number, required

__all__ = [
    "DurationEstimate",
    "PollLearner",
    "PollPolicy",
    "learn",
    "next_wait",
    "planned_polls",
    "poll_schedule",
    "watch",
]

Sleep = Callable[[float], Awaitable[None]]
Monotonic = Callable[[], float]


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a finite number, got {raw!r}")
    if value <= 0:
        raise ConfigurationError(f"{name} must be positive, got {raw!r}")
    return value


def _env_attempts(name: str, default: int) -> int:
    value = _env_number(name, default)
    if value < 1 or value != int(value):
        raise ConfigurationError(f"{name} must be a whole number of polls, at least 1")
    return int(value)


@attrs.frozen(kw_only=True)
class PollPolicy:
    """How often and how long to poll a task."""

    interval: float = attrs.field(default=2.0, validator=required(number(minimum=0)))
    max_attempts: int = attrs.field(default=60, validator=required(integer(minimum=1)))
    #: Factor applied to the interval after each unchanged poll (1 = constant).
    backoff: float = attrs.field(default=1.0, validator=required(number(minimum=1)))
    max_interval: float = attrs.field(default=10.0, validator=required(number(minimum=0)))
    #: Overall limit in seconds; ``None`` means ``interval * max_attempts`` (no time limit
    #: when ``interval`` is 0: then ``max_attempts`` alone bounds the wait).
    deadline: float | None = attrs.field(default=None, validator=number(positive=True))
    #: Follow the learned schedule once generation times are known; ``False`` pins this one.
    adaptive: bool = attrs.field(default=True, validator=required(boolean()))

    @classmethod
    def fixed(cls, interval: float, **options: Any) -> PollPolicy:
        """A schedule that never learns: every ``interval`` seconds (``backoff`` etc. as given)."""
        return cls(interval=interval, adaptive=False, **options)

    @classmethod
    def for_kind(cls, kind: TaskKind) -> PollPolicy:
        """Defaults for a task kind, from the environment like the seed scripts.

        Images: ``JIMENG_POLL_INTERVAL`` (2 s) and ``JIMENG_MAX_POLL_ATTEMPTS`` (60).
        Videos: ``JIMENG_VIDEO_POLL_INTERVAL`` (5 s) and ``JIMENG_VIDEO_MAX_POLL_ATTEMPTS`` (120).
        """
        if kind is TaskKind.VIDEO:
            interval = _env_number("JIMENG_VIDEO_POLL_INTERVAL", 5.0)
            attempts = _env_attempts("JIMENG_VIDEO_MAX_POLL_ATTEMPTS", 120)
            return cls(
                interval=interval,
                max_attempts=attempts,
                backoff=1.2,
                max_interval=max(interval, 20.0),
            )
        interval = _env_number("JIMENG_POLL_INTERVAL", 2.0)
        attempts = _env_attempts("JIMENG_MAX_POLL_ATTEMPTS", 60)
        return cls(
            interval=interval, max_attempts=attempts, backoff=1.2, max_interval=max(interval, 10.0)
        )

    @property
    def total(self) -> float | None:
        """Seconds the wait may take, or ``None`` when only ``max_attempts`` bounds it."""
        if self.deadline is not None:
            return self.deadline
        if self.interval > 0:
            return self.interval * self.max_attempts
        return None


def poll_schedule(policy: PollPolicy, hints: list[float | None]) -> list[float]:
    """The waits before each poll given the server hints seen so far (pure, for tests/docs)."""
    waits: list[float] = []
    current = policy.interval
    for hint in hints:
        wait = hint if hint is not None else current
        waits.append(wait)
        current = min(current * policy.backoff, policy.max_interval)
    return waits


_Z = {0.5: 0.0, 0.6: 0.2533471031357997, 0.95: 1.6448536269514722}
#: Observations before the learned schedule replaces the cold one.
WARM_AFTER = 2
#: Bounds on the spread (standard deviation of the log-duration) the estimate may claim.
MIN_SPREAD, MAX_SPREAD = 0.03, 1.5
#: The EWMA weight once warm (early observations are averaged with equal weights).
EWMA_WEIGHT = 0.2


@attrs.frozen(kw_only=True)
class DurationEstimate:
    """A task family's generation time as a log-normal: ``mu`` and ``var`` of the natural log of
    the seconds from submit to done, fitted from ``count`` observations."""

    mu: float
    var: float
    count: int = 1

    @property
    def median(self) -> float:
        return math.exp(self.mu)

    def quantile(self, p: float) -> float:
        return math.exp(self.mu + math.sqrt(self.var) * _Z[p])

    def to_dict(self) -> dict[str, float]:
        return {"mu": self.mu, "var": self.var, "count": self.count}

    @classmethod
    def from_dict(cls, data: Any) -> DurationEstimate | None:
        try:
            mu, var, count = float(data["mu"]), float(data["var"]), int(data["count"])
        except (KeyError, TypeError, ValueError):
            return None
        if not (math.isfinite(mu) and math.isfinite(var) and var > 0 and count > 0):
            return None
        return cls(mu=mu, var=var, count=count)


def _phi(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi) if math.isfinite(x) else 0.0


def _cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _inside(mu: float, var: float, low: float, high: float) -> tuple[float, float]:
    """Mean and variance of N(mu, var) restricted to [low, high] (log seconds; low may be
    -inf): where inside its bracket the completion most likely was."""
    sd = math.sqrt(var)
    a, b = (low - mu) / sd, (high - mu) / sd
    mass = _cdf(b) - _cdf(a)
    if mass < 1e-9:  # the bracket is far out in the estimate's tail: trust the bracket
        if math.isfinite(low):
            return (low + high) / 2, (high - low) ** 2 / 12
        return high, var
    ratio = (_phi(a) - _phi(b)) / mass
    a_term = a * _phi(a) if math.isfinite(a) else 0.0
    mean = mu + sd * ratio
    spread = var * (1.0 + (a_term - b * _phi(b)) / mass - ratio * ratio)
    return mean, max(spread, 0.0)


def learn(estimate: DurationEstimate | None, lower: float, upper: float) -> DurationEstimate:
    """Update ``estimate`` with a task known to have finished after ``lower`` and by ``upper``
    seconds from its submit (``lower`` 0 when the first poll already saw it done)."""
    upper = max(upper, 1e-3)
    high = math.log(upper)
    low = math.log(lower) if lower > 0 else -math.inf
    if estimate is None:
        # First sight: the bracket's geometric middle, or just under a one-sided bound.
        mu = (low + high) / 2 if math.isfinite(low) else high - 0.2
        spread = (high - low) / 4 if math.isfinite(low) else 0.3
        spread = min(max(spread, 0.15), MAX_SPREAD)
        return DurationEstimate(mu=mu, var=spread * spread, count=1)
    mean, within = _inside(estimate.mu, estimate.var, low, high)
    weight = max(EWMA_WEIGHT, 1.0 / (estimate.count + 1))
    mu = estimate.mu + weight * (mean - estimate.mu)
    var = (1 - weight) * estimate.var + weight * (within + (mean - estimate.mu) ** 2)
    var = min(max(var, MIN_SPREAD**2), MAX_SPREAD**2)
    return DurationEstimate(mu=mu, var=var, count=estimate.count + 1)


def latency_budget(estimate: DurationEstimate) -> float:
    """How late a result may be seen: a tenth of the generation time, at least a second."""
    return max(0.1 * estimate.median, 1.0)


def planned_polls(estimate: DurationEstimate, policy: PollPolicy) -> Iterator[float]:
    """Ages (seconds since submit) at which to poll. Polls sit :func:`latency_budget` apart
    around the expected completion: one just before, one at the 60th percentile (so most tasks
    need at most two), then on through the 95th percentile; after that the steps grow 1.5x up
    to ``max_interval``."""
    gap = latency_budget(estimate)
    anchor = estimate.quantile(0.6)
    last = anchor - gap
    if last > 0:
        yield last
    last = anchor
    yield last
    tail = estimate.quantile(0.95)
    while last < tail:
        last += gap
        yield last
    step = gap
    cap = max(policy.max_interval, gap)
    while True:
        step = min(step * 1.5, cap)
        last += step
        yield last


def next_wait(estimate: DurationEstimate, age: float, policy: PollPolicy) -> float:
    """Seconds to wait, at ``age`` seconds since submit, before the next planned poll."""
    for at in planned_polls(estimate, policy):
        if at > age + 1e-6:
            return at - age
    raise AssertionError("unreachable: the plan is endless")  # pragma: no cover


class PollLearner:
    """The estimates of one client (shared by its ``with_options`` copies), per task family.

    With a task journal, estimates are read from and written to its metadata
    (``poll-estimates``), so they outlive the process."""

    META_KEY = "poll-estimates"

    def __init__(self, scope: str, store: Callable[[], Any] | None = None):
        self.scope = scope
        self._store = store
        self.estimates: dict[str, DurationEstimate] = {}
        self._loaded = False

    def key(self, task: Task) -> str:
        return f"{self.scope}|{task.model or '-'}|{task.kind.value}"

    async def _load(self) -> Any:
        store = self._store() if self._store is not None else None
        if store is not None and not self._loaded:
            self._loaded = True
            try:
                saved = await store.get_meta(self.META_KEY)
            except Exception:
                saved = None
            for key, value in (saved or {}).items() if isinstance(saved, dict) else ():
                estimate = DurationEstimate.from_dict(value)
                if estimate is not None and key not in self.estimates:
                    self.estimates[key] = estimate
        return store

    async def estimate(self, task: Task) -> DurationEstimate | None:
        """The warm estimate for ``task``'s family, or ``None`` while still cold."""
        await self._load()
        estimate = self.estimates.get(self.key(task))
        return estimate if estimate is not None and estimate.count >= WARM_AFTER else None

    async def finished(self, task: Task, lower: float, upper: float) -> None:
        """Learn from a task seen done at ``upper`` seconds, last seen unfinished at ``lower``."""
        store = await self._load()
        key = self.key(task)
        self.estimates[key] = learn(self.estimates.get(key), lower, upper)
        if store is not None:
            try:
                saved = await store.get_meta(self.META_KEY)
                merged = dict(saved) if isinstance(saved, dict) else {}
                merged[key] = self.estimates[key].to_dict()
                await store.put_meta(self.META_KEY, merged)
            except Exception as error:  # estimates are an optimisation: never fail a task
                from jimeng._logging import logger

                logger.warning("could not save poll estimates: %s", error)


async def watch(
    first: Task,
    poll: Callable[[Task], Awaitable[Task]],
    *,
    policy: PollPolicy,
    sleep: Sleep,
    monotonic: Monotonic = time.monotonic,
    learner: PollLearner | None = None,
    age: float = 0.0,
) -> AsyncIterator[Task]:
    """Yield ``first``, then every changed observation until the task is terminal.

    ``age`` is how long ago the task was submitted. With a ``learner`` (and an adaptive
    policy) polls follow the learned schedule once warm, and every success teaches it.
    Raises :class:`TaskTimeoutError` (with the task id) when attempts or the deadline run out.
    Errors from ``poll`` propagate with the task id attached.
    """
    yield first
    task = first
    if task.done:
        return
    started = monotonic()
    if not policy.adaptive:
        learner = None
    estimate = await learner.estimate(task) if learner is not None else None
    interval = policy.interval
    total = policy.total
    polls = 0
    slept = 0.0
    unfinished_at = max(age, 0.0)  # the submit itself saw the task unfinished
    for _ in range(policy.max_attempts):
        elapsed = monotonic() - started
        if task.poll_after is not None:
            wait = task.poll_after
        elif estimate is not None:
            wait = next_wait(estimate, age + elapsed, policy)
        else:
            wait = interval
        if total is not None:
            remaining = total - elapsed
            if remaining <= 0:
                break
            wait = min(wait, remaining)
        await sleep(wait)
        slept += wait
        polls += 1
        try:
            latest = await poll(task)
        except Exception as error:
            attach = getattr(error, "attach_task", None)
            if attach is not None:
                attach(task.id, task.ref)
            raise
        waited = monotonic() - started
        seen_at = age + waited
        # A clock that did not move while we slept (a test's sleep) cannot time anything.
        timed = seen_at > 0 and waited >= 0.5 * slept
        if latest.status is TaskStatus.SUCCEEDED and learner is not None and timed:
            await learner.finished(latest, unfinished_at, seen_at)
        elif not latest.done:
            unfinished_at = seen_at
        if latest.status != task.status or latest.done:
            yield latest
        task = latest
        if task.done:
            return
        interval = min(interval * policy.backoff, policy.max_interval)
    limit = f"{policy.total:g}s" if policy.total is not None else "no time limit"
    raise TaskTimeoutError(
        f"task still {task.status.value} after {polls} polls "
        f"(limits: {policy.max_attempts} polls, {limit}); "
        f"resume it later with client.tasks.wait({task.ref!r})",
        task_id=task.id,
        task_ref=task.ref,
        status=task.status.value,
    )
