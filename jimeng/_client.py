"""The client: configuration, the aiohttp session it owns or borrows, and the namespaces."""

from __future__ import annotations

import asyncio
import copy
import math
import os
import random
import time
import warnings
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import attrs

from jimeng._download import DEFAULT_MAX_BYTES, Downloader
from jimeng._handle import TaskFetcher, attach_task, task_error
from jimeng._http import Flow, Transport, drive
from jimeng._limits import Limiter, Limits, LimitSnapshot
from jimeng._logging import logger
from jimeng._polling import PollLearner, PollPolicy
from jimeng._retry import RetryPolicy
from jimeng._version import __version__
from jimeng.backends._base import Backend, Runtime
from jimeng.errors import ConfigurationError, JimengError
from jimeng.models import ImageResult, Task, TaskKind, TaskStatus, VideoResult
from jimeng.models._checks import (
    Check,
    boolean,
    callable_,
    check_argument,
    instance,
    integer,
    number,
    required,
)
from jimeng.models._media import bind_fetcher
from jimeng.models._replace import replace

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

    from jimeng._journal import JournalLike, JournalStore, Recorder
    from jimeng.batch import BatchLine, BatchRun, Ledger
    from jimeng.resources.account import Account
    from jimeng.resources.images import Images
    from jimeng.resources.tasks import Tasks
    from jimeng.resources.videos import Videos

__all__ = ["Client"]

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a finite number of seconds, got {raw!r}")
    if value <= 0:
        raise ConfigurationError(f"{name} must be positive, got {raw!r}")
    return value


def backend_from_env() -> Backend:
    """Pick a backend from the environment.

    ``JIMENG_BACKEND`` (``volcengine``, ``ark``, ``dreamina``, ``gateway`` or ``sandbox``) wins;
    otherwise the sandbox serving at ``JIMENG_SANDBOX_URL`` when that is set (never billed),
    Volcengine when ``VOLC_ACCESSKEY`` is set, Ark when ``ARK_API_KEY`` is, a gateway when
    ``JIMENG_GATEWAY_URL`` is, a Dreamina session when ``JIMENG_SESSION_ID`` is.
    """
    from jimeng.backends import create

    choice = os.environ.get("JIMENG_BACKEND", "").strip().lower()
    if not choice:
        if os.environ.get("JIMENG_SANDBOX_URL"):
            choice = "sandbox"
        elif os.environ.get("VOLC_ACCESSKEY"):
            choice = "volcengine"
        elif os.environ.get("ARK_API_KEY"):
            choice = "ark"
        elif os.environ.get("JIMENG_GATEWAY_URL"):
            choice = "gateway"
        elif os.environ.get("JIMENG_SESSION_ID"):
            choice = "dreamina"
        else:
            raise ConfigurationError(
                "no backend configured: pass one (jimeng.Client(jimeng.Volcengine(...))) or set "
                "VOLC_ACCESSKEY/VOLC_SECRETKEY, ARK_API_KEY, JIMENG_GATEWAY_URL, "
                "JIMENG_SESSION_ID, or JIMENG_BACKEND=sandbox (or JIMENG_SANDBOX_URL) for the "
                "offline sandbox"
            )
    return create(choice)


#: The type (and range) of each option of :class:`Client`; ``None`` always means "default".
_OPTION_CHECKS: dict[str, Check] = {
    "backend": instance(Backend, "a backend (jimeng.Volcengine(...), jimeng.Sandbox()…)"),
    "session": instance(aiohttp.ClientSession, "an aiohttp.ClientSession"),
    "timeout": number(positive=True),
    "video_timeout": number(positive=True),
    "retry": instance(RetryPolicy, "a RetryPolicy"),
    "image_poll": instance(PollPolicy, "a PollPolicy"),
    "video_poll": instance(PollPolicy, "a PollPolicy"),
    "max_download_bytes": required(integer(minimum=1)),
    "trust_env": required(boolean()),
    "sleep": callable_(),
    "clock": callable_(),
    "monotonic": callable_(),
    "rng": instance(random.Random, "a random.Random"),
}


def _check_options(**options: Any) -> None:
    for name, value in options.items():
        check_argument(name, value, _OPTION_CHECKS[name])


@attrs.define
class _Shared:
    """State every ``with_options`` copy of a client shares."""

    backend: Backend
    session: aiohttp.ClientSession | None
    owns_session: bool
    trust_env: bool
    lock: asyncio.Lock | None = None
    #: Separate from ``lock``: a backend's ``open()`` may need the session, which takes ``lock``.
    open_lock: asyncio.Lock | None = None
    opened: bool = False
    closed: bool = False
    loop: asyncio.AbstractEventLoop | None = None
    journal: Recorder | None = None
    #: What the client learned about generation times (for the poll schedule).
    learner: PollLearner | None = None

    def __del__(self) -> None:
        # Like aiohttp's unclosed-session warning: a hint, never an error.
        if not self.closed and (self.opened or (self.owns_session and self.session is not None)):
            warnings.warn(
                f"unclosed jimeng.Client on the {self.backend.name} backend; use 'async with' "
                "or 'await client.aclose()'",
                ResourceWarning,
                stacklevel=1,
                source=self,
            )


class Client:
    """The entry point::

        async with jimeng.Client(jimeng.Volcengine(access_key=..., secret_key=...)) as client:
            result = await client.images.generate("a white Siamese cat", size="2K")

    Without a backend, one is chosen from the environment (see :func:`backend_from_env`).
    ``session`` borrows the caller's aiohttp session (never closed by the client); otherwise the
    client creates one inside the running loop and closes it on exit. The client's own session
    keeps no cookies: each request carries only the cookies its backend puts in it (a borrowed
    session keeps its own cookie jar).

    ``limits`` sets the client-side rate limiter (:class:`~jimeng.Limits`: adaptive by
    default, optional ``max_concurrency`` / ``max_rps`` caps); ``client.limits`` shows it.

    ``journal`` keeps a durable record of every accepted task (the Reliability guide):
    ``True`` for ``$JIMENG_HOME/journal.sqlite3``, a path for another SQLite file, or a
    :class:`~jimeng.JournalStore`; by default ``JIMENG_JOURNAL`` decides (``1`` or a path).

    ``timeout`` is the per-request HTTP timeout (``JIMENG_API_TIMEOUT``, default 120 s; video
    calls use ``JIMENG_VIDEO_API_TIMEOUT``, default 300 s). ``retry`` and ``image_poll`` /
    ``video_poll`` set the policies. ``sleep``, ``clock``, ``monotonic`` and ``rng`` are seams
    for tests (no real waiting).
    """

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float | None = None,
        video_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        image_poll: PollPolicy | None = None,
        video_poll: PollPolicy | None = None,
        max_download_bytes: int = DEFAULT_MAX_BYTES,
        trust_env: bool = False,
        journal: JournalLike = None,
        sleep: Sleep | None = None,
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] | None = None,
        rng: random.Random | None = None,
        limits: Limits | None = None,
    ):
        _check_options(
            backend=backend,
            session=session,
            timeout=timeout,
            video_timeout=video_timeout,
            retry=retry,
            image_poll=image_poll,
            video_poll=video_poll,
            max_download_bytes=max_download_bytes,
            trust_env=trust_env,
            sleep=sleep,
            clock=clock,
            monotonic=monotonic,
            rng=rng,
        )
        self._shared = _Shared(
            backend=backend if backend is not None else backend_from_env(),
            session=session,
            owns_session=session is None,
            trust_env=trust_env,
        )
        self._sleep: Sleep = sleep or asyncio.sleep
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        if journal is not False:
            self._shared.journal = _open_journal(journal, self._shared.backend, self._clock)
        self._monotonic = monotonic or time.monotonic
        self._image_poll = image_poll
        self._video_poll = video_poll
        # The default policies read the environment: a bad value is refused here, not at the
        # first wait, after a billed submit.
        if image_poll is None:
            PollPolicy.for_kind(TaskKind.IMAGE)
        if video_poll is None:
            PollPolicy.for_kind(TaskKind.VIDEO)
        self._video_timeout = video_timeout or _env_seconds("JIMENG_VIDEO_API_TIMEOUT", 300.0)
        shared = self._shared
        self._shared.learner = PollLearner(
            self._shared.backend.limit_key(),
            lambda: shared.journal.store if shared.journal is not None else None,
        )
        self._limiter = Limiter(
            limits or Limits(),
            self._shared.backend.limit_key(),
            clock=self._monotonic,
            sleep=self._sleep,
        )
        self._transport = Transport(
            session=self._get_session,
            timeout=timeout or _env_seconds("JIMENG_API_TIMEOUT", 120.0),
            retry=retry or RetryPolicy(),
            sleep=self._sleep,
            clock=self._clock,
            rng=rng,
            user_agent=f"jimeng-python/{__version__}",
            limiter=self._limiter,
        )
        self._downloader = Downloader(
            self._transport,
            max_bytes=max_download_bytes,
            now=lambda: self._clock().astimezone(),
            detached=self._detached,
            trust_env=trust_env,
        )

    def __repr__(self) -> str:
        return f"<jimeng.Client backend={self._shared.backend!r}>"

    @property
    def backend(self) -> Backend:
        return self._shared.backend

    @property
    def limits(self) -> LimitSnapshot:
        """The rate limiter now: concurrency limit, generations in flight, paced request rate,
        calls queued and refusals seen (shared with every ``with_options`` copy)."""
        return self._limiter.snapshot()

    @property
    def journal(self) -> JournalStore | None:
        """The task journal's store, or ``None`` when this client keeps no journal."""
        recorder = self._shared.journal
        return recorder.store if recorder is not None else None

    # -- lifecycle -----------------------------------------------------------------------------

    def _detached(self) -> bool:
        """True once the client is closed: its media then download with a session of their own."""
        return self._shared.closed

    async def _get_session(self) -> aiohttp.ClientSession:
        shared = self._shared
        if shared.closed:
            raise ConfigurationError("the client is closed")
        loop = asyncio.get_running_loop()
        if shared.session is not None:
            if shared.owns_session and shared.loop is not None and shared.loop is not loop:
                raise ConfigurationError(
                    "this client was first used on another event loop; create one client per loop"
                )
            return shared.session
        if shared.lock is None:
            shared.lock = asyncio.Lock()
        async with shared.lock:
            if shared.session is None:
                # No cookie jar: a request carries the cookies its backend puts in it and
                # nothing a server set for another call (or another session of a pool).
                shared.session = aiohttp.ClientSession(
                    trust_env=shared.trust_env, cookie_jar=aiohttp.DummyCookieJar()
                )
                shared.loop = loop
        return shared.session

    async def _ensure_open(self) -> None:
        shared = self._shared
        if shared.opened:
            return
        if shared.closed:
            raise ConfigurationError("the client is closed")
        if shared.open_lock is None:
            shared.open_lock = asyncio.Lock()
        async with shared.open_lock:
            if not shared.opened:
                await shared.backend.open(Runtime(transport=self._transport))
                shared.opened = True

    async def aclose(self) -> None:
        """Close the backend and the session if the client created it. Safe to call twice."""
        shared = self._shared
        if shared.closed:
            return
        shared.closed = True
        try:
            if shared.opened:
                await shared.backend.aclose()
        finally:
            if shared.owns_session and shared.session is not None:
                await shared.session.close()
            shared.session = None
            if shared.journal is not None:
                await shared.journal.aclose()

    async def __aenter__(self) -> Client:
        await self._ensure_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def with_options(
        self,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        image_poll: PollPolicy | None = None,
        video_poll: PollPolicy | None = None,
    ) -> Client:
        """A copy with other settings that shares the backend and the session."""
        _check_options(timeout=timeout, retry=retry, image_poll=image_poll, video_poll=video_poll)
        clone = copy.copy(self)
        clone.__dict__.pop("images", None)
        clone.__dict__.pop("videos", None)
        clone.__dict__.pop("tasks", None)
        clone.__dict__.pop("account", None)
        changes: dict[str, Any] = {}
        if timeout is not None:
            changes["timeout"] = timeout
        if retry is not None:
            changes["retry"] = retry
        clone._transport = self._transport.evolve(**changes)
        clone._downloader = Downloader(
            clone._transport,
            max_bytes=self._downloader.max_bytes,
            now=self._downloader._now,
            detached=clone._detached,
            trust_env=self._shared.trust_env,
        )
        if image_poll is not None:
            clone._image_poll = image_poll
        if video_poll is not None:
            clone._video_poll = video_poll
        return clone

    # -- namespaces ----------------------------------------------------------------------------

    @cached_property
    def images(self) -> Images:
        from jimeng.resources.images import Images

        return Images(self)

    @cached_property
    def videos(self) -> Videos:
        from jimeng.resources.videos import Videos

        return Videos(self)

    @cached_property
    def tasks(self) -> Tasks:
        from jimeng.resources.tasks import Tasks

        return Tasks(self)

    @cached_property
    def account(self) -> Account:
        from jimeng.resources.account import Account

        return Account(self)

    def batch(
        self,
        requests: Iterable[BatchLine | Mapping[str, Any]],
        *,
        max_concurrency: int | None = None,
        out: str | Path = "pic/",
        name: str | None = None,
        store: Ledger | None = None,
        retry_failed: bool = False,
        skip_invalid: bool = False,
        kind: TaskKind | str = TaskKind.IMAGE,
        lease: float = 30.0,
    ) -> BatchRun:
        """Generate many requests; iterate the returned run for each line's
        :class:`~jimeng.batch.BatchItem` as it finishes::

            async for item in client.batch(requests, out="shots/"):
                print(item.id, item.status, item.paths or item.error)

        ``requests`` are mappings of ``images.generate`` / ``videos.generate`` parameters (an
        optional ``id`` and ``kind`` per line) or :class:`~jimeng.batch.BatchLine` objects.
        Every line is validated before anything is submitted. ``max_concurrency`` caps the
        lines in flight (``None``: the rate limiter decides). ``store`` keeps the line states
        (:class:`~jimeng.batch.SQLiteLedger` to resume after a crash, a
        :class:`~jimeng.batch.RedisLedger` to share the batch between workers; default: this
        process only) under the batch ``name``, which belongs to the backend (endpoint and
        account) of its first run: another backend gets a ``ValidationError`` naming ``name``.
        See docs/batch.md.
        """
        from jimeng.batch import BatchRun, default_ledger

        if store is None:
            store = default_ledger(self.journal)
        limiter = getattr(self, "_limiter", None)
        return BatchRun(
            self,
            requests,
            out=out,
            name=name,
            ledger=store,
            max_concurrency=max_concurrency,
            retry_failed=retry_failed,
            skip_invalid=skip_invalid,
            kind=kind,
            lease=lease,
            slot=limiter.slot if limiter is not None else None,
        )

    # -- engine glue used by resources and handles ---------------------------------------------

    async def _run(self, flow: Flow[T], *, kind: TaskKind | None = None) -> T:
        shared = self._shared
        if shared.closed or not shared.opened:
            await self._ensure_open()
        transport = self._transport
        if kind is TaskKind.VIDEO:
            transport = transport.evolve(timeout=max(self._video_timeout, transport.timeout))
        return await drive(flow, transport)

    async def _submit(self, flow: Flow[Task], *, kind: TaskKind) -> Task:
        """Run a submit flow; log and journal the accepted task before anyone else sees it."""
        try:
            task = await self._run(flow, kind=kind)
        except asyncio.CancelledError as error:
            if hasattr(error, "add_note"):
                error.add_note(
                    "jimeng: cancelled while submitting; the server may have accepted the task"
                )
            raise
        try:
            now = self._clock()
            task = replace(task, created_at=task.created_at or now, updated_at=now)
            logger.info(
                "accepted %s task %s (ref %s) on %s", task.kind, task.id, task.ref, task.backend
            )
            if self._shared.journal is not None:
                await self._shared.journal.accepted(task)
        except BaseException as error:
            attach_task(error, task)
            raise
        return task

    async def _poll_once(self, task: Task) -> Task:
        shared = self._shared
        if shared.closed or not shared.opened:
            await self._ensure_open()  # before the backend builds the request
        journal = shared.journal
        if journal is not None:
            task = await journal.restore(task)
        latest = await self._run(self._shared.backend.poll(task), kind=task.kind)
        now = self._clock()
        latest = replace(
            latest,
            created_at=latest.created_at or task.created_at,
            updated_at=latest.updated_at or now,
            completed_at=latest.completed_at
            or (now if latest.done and not task.done else task.completed_at),
        )
        if journal is not None:
            if latest.status is TaskStatus.EXPIRED:
                latest = await _cancelled_before(journal, latest)
            await journal.observed(task, latest)
        return latest

    async def _saved_file_replaced(self, task: Task, old: Path, new: Path) -> None:
        """Tell the journal that a file saved from ``task`` was converted into ``new``."""
        if self._shared.journal is not None:
            await self._shared.journal.replaced(task.ref, old, new)

    def _poll_policy(self, task: Task) -> PollPolicy:
        """The client's policy for the task's kind when one was set, else the backend's advice
        for this task (e.g. a verb's typical latency), else the kind's defaults."""
        configured = self._video_poll if task.kind is TaskKind.VIDEO else self._image_poll
        return (
            configured or self._shared.backend.poll_policy(task) or PollPolicy.for_kind(task.kind)
        )

    def _bind(
        self, result: ImageResult | VideoResult, task: Task | None = None
    ) -> ImageResult | VideoResult:
        media = result.images if isinstance(result, ImageResult) else (result.video,)
        fetcher: Any = self._downloader
        if task is not None:
            if self._shared.journal is not None:
                from jimeng._journal import JournallingFetcher

                fetcher = JournallingFetcher(fetcher, self._shared.journal, task.ref)
            fetcher = TaskFetcher(fetcher, task)
        bind_fetcher(media, fetcher)
        return result

    def _task_error(self, task: Task) -> JimengError:
        return task_error(task, self._shared.backend.failure_error)


async def _cancelled_before(journal: Recorder, task: Task) -> Task:
    """A task the journal saw cancelled is reported cancelled, not expired, once the server has
    forgotten it (Volcengine answers "not found" for a cancelled task)."""
    try:
        entry = await journal.store.get(task.ref, backend=journal.backend_name)
    except Exception as error:
        logger.warning("journal: could not read task %s: %s", task.ref, error)
        return task
    if entry is None or entry.status is not TaskStatus.CANCELLED:
        return task
    return replace(task, status=TaskStatus.CANCELLED)


def _open_journal(
    journal: JournalLike, backend: Backend, clock: Callable[[], datetime]
) -> Recorder | None:
    from jimeng._journal import Recorder, open_store

    store, owned = open_store(journal)
    if store is None:
        return None
    return Recorder(store, owned=owned, backend=backend, clock=clock)
