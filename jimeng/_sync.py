"""``jimeng.SyncClient``: the async client, driven from synchronous code.

No verb is implemented twice. A :class:`_Portal` runs one :class:`~jimeng.Client` on an event
loop it owns in a background thread, and each sync namespace lists the async methods it exposes
through :func:`blocking`, which keeps their parameters (``ParamSpec``) for type checkers and IDEs
and turns what they return into its sync counterpart: handles get blocking ``wait()`` /
``result()``, and results and media get blocking ``read()`` / ``save()``. A test fails when an
async namespace gains a public method that its sync namespace does not list.

Because the loop lives in its own thread, the sync client works the same in a plain script, in
worker threads, and inside a running event loop (a Jupyter cell, an async web framework).
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import threading
import weakref
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
)
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    ParamSpec,
    Protocol,
    TypeVar,
    cast,
    overload,
)

import attrs

from jimeng._client import Client
from jimeng._handle import OnUpdate, TaskHandle
from jimeng.models import Image, ImageResult, Task, TaskKind, TaskStatus, Video, VideoResult
from jimeng.models._media import PathLike, pil_image
from jimeng.resources.account import Account
from jimeng.resources.images import Images
from jimeng.resources.tasks import Tasks
from jimeng.resources.videos import Videos

if TYPE_CHECKING:
    import PIL.Image

    from jimeng._journal import JournalStore
    from jimeng._limits import LimitSnapshot
    from jimeng._polling import PollPolicy
    from jimeng._retry import RetryPolicy
    from jimeng.backends._base import Backend
    from jimeng.batch import BatchItem, BatchLine, BatchRun, BatchSummary, Ledger

__all__ = [
    "SyncBatchRun",
    "SyncClient",
    "SyncImage",
    "SyncImageResult",
    "SyncTaskHandle",
    "SyncVideo",
    "SyncVideoResult",
]

P = ParamSpec("P")
T = TypeVar("T")
R_co = TypeVar("R_co", covariant=True)
S = TypeVar("S")


class _Portal:
    """An event loop on a daemon thread; :meth:`run` executes a coroutine there and waits."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.closed = False

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(
                    target=_serve, args=(loop, ready), name="jimeng-sync", daemon=True
                )
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the portal's loop and return its result (or raise its error)."""
        if self.closed:
            return run_detached(coro)
        try:
            self.check_thread()
        except RuntimeError:
            coro.close()
            raise
        outcome: list[BaseException] = []
        settled = threading.Event()

        async def work() -> T:
            try:
                return await coro
            except BaseException as error:
                outcome.append(error)
                raise
            finally:
                settled.set()

        future = asyncio.run_coroutine_threadsafe(work(), self._start())
        try:
            return future.result()
        except BaseException as error:
            if outcome and outcome[0] is error:
                raise  # the work's own error, as it was raised
            # Ctrl-C (or another interruption) in the caller: cancel the work on the loop
            # too, and let it finish unwinding so the interruption can carry what the work's
            # cancellation learned (the id of a task the server accepted).
            future.cancel()
            settled.wait(_UNWIND_SECONDS)
            if outcome:
                _carry_task(outcome[0], error)
            raise

    def check_thread(self) -> None:
        """Refuse a call from the loop's own thread: waiting there for the loop would hang."""
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "a jimeng.SyncClient was called from its own event loop thread (from an "
                "on_update/on_submit callback?); callbacks must not call the sync client"
            )

    def close(self) -> None:
        """Stop the loop and join its thread (after the client closed)."""
        with self._lock:
            self.closed = True
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not threading.current_thread():
                thread.join()


#: How long an interrupted caller waits for the cancelled work to unwind (it takes a few loop
#: turns; the bound keeps a stuck loop from holding up Ctrl-C).
_UNWIND_SECONDS = 5.0


def _carry_task(cancelled: BaseException, interruption: BaseException) -> None:
    """Give ``interruption`` the task id and the notes the cancelled work's error carries, so
    a Ctrl-C after the server accepted a task still names it."""
    task_id = getattr(cancelled, "task_id", None)
    err: Any = interruption
    if task_id is not None and getattr(err, "task_id", None) is None:
        try:
            err.task_id = task_id
            err.task_ref = getattr(cancelled, "task_ref", None)
        except AttributeError:  # an exception type with __slots__: the note still tells
            pass
    if hasattr(interruption, "add_note"):
        for note in getattr(cancelled, "__notes__", ()):
            if note.startswith("jimeng:") and note not in getattr(interruption, "__notes__", ()):
                interruption.add_note(note)


def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    try:
        loop.run_forever()
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def run_detached(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a fresh loop: here when no loop runs in this thread, else in a helper
    thread (inside Jupyter). Media of a closed sync client read and save this way."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jimeng-sync") as pool:
        return pool.submit(asyncio.run, coro).result()


def _blocking_iter(stream: AsyncIterator[T], portal: _Portal) -> Iterator[T]:
    """Iterate an async iterator of the portal's loop from this thread, one item per call;
    closed on the loop however the iteration ends."""

    async def step() -> tuple[bool, T | None]:
        try:
            return True, await stream.__anext__()
        except StopAsyncIteration:
            return False, None

    try:
        while True:
            more, item = portal.run(step())
            if not more or item is None:
                return
            yield item
    finally:
        portal.run(stream.aclose())  # type: ignore[attr-defined]


# -- the sync world's results and media ------------------------------------------------------


def _fields(instance: Any) -> dict[str, Any]:
    return {a.alias: getattr(instance, a.name) for a in attrs.fields(type(instance)) if a.init}


@attrs.frozen(kw_only=True, repr=False)
class SyncImage(Image):
    """An :class:`~jimeng.Image` whose ``read()``, ``save()`` and ``to_pil()`` block."""

    _portal: _Portal = attrs.field(repr=False, eq=False, alias="portal")

    def read(self) -> bytes:  # type: ignore[override]  # the sync world blocks
        return self._portal.run(Image.read(self))

    def save(self, path: PathLike) -> Path:  # type: ignore[override]
        return self._portal.run(Image.save(self, path))

    def to_pil(self) -> PIL.Image.Image:  # type: ignore[override]
        return pil_image(self.read())


@attrs.frozen(kw_only=True, repr=False)
class SyncVideo(Video):
    """A :class:`~jimeng.Video` whose ``read()`` and ``save()`` block."""

    _portal: _Portal = attrs.field(repr=False, eq=False, alias="portal")

    def read(self) -> bytes:  # type: ignore[override]
        return self._portal.run(Video.read(self))

    def save(self, path: PathLike) -> Path:  # type: ignore[override]
        return self._portal.run(Video.save(self, path))


@attrs.frozen(kw_only=True, repr=False)
class SyncImageResult(ImageResult):
    """An :class:`~jimeng.ImageResult` whose ``save()`` blocks."""

    images: tuple[SyncImage, ...]
    _portal: _Portal = attrs.field(repr=False, eq=False, alias="portal")

    def save(self, path: PathLike = "pic/") -> builtins.list[Path]:  # type: ignore[override]
        return self._portal.run(ImageResult.save(self, path))


@attrs.frozen(kw_only=True, repr=False)
class SyncVideoResult(VideoResult):
    """A :class:`~jimeng.VideoResult` whose ``read()`` and ``save()`` block."""

    video: SyncVideo
    _portal: _Portal = attrs.field(repr=False, eq=False, alias="portal")

    def read(self) -> bytes:  # type: ignore[override]
        return self.video.read()

    def save(self, path: PathLike = "pic/") -> Path:  # type: ignore[override]
        return self.video.save(path)


def _sync_value(value: Any, portal: _Portal) -> Any:
    """The sync world's counterpart of what an async method returned."""
    if isinstance(value, SyncImageResult | SyncVideoResult | SyncTaskHandle):
        return value
    if isinstance(value, ImageResult):
        fields = _fields(value)
        fields["images"] = tuple(
            SyncImage(**_fields(image), portal=portal) for image in value.images
        )
        return SyncImageResult(**fields, portal=portal)
    if isinstance(value, VideoResult):
        fields = _fields(value)
        fields["video"] = SyncVideo(**_fields(value.video), portal=portal)
        return SyncVideoResult(**fields, portal=portal)
    if isinstance(value, TaskHandle):
        return SyncTaskHandle(value, portal)
    if isinstance(value, Task) and value.result is not None:
        return attrs.evolve(value, result=_sync_value(value.result, portal))
    if isinstance(value, builtins.list | tuple):
        return type(value)(_sync_value(item, portal) for item in value)
    return value


# -- wrapping async methods ------------------------------------------------------------------


class _Wrapper(Protocol):
    """What :func:`blocking` descriptors need from the object they sit on."""

    _async: Any
    _portal: _Portal


class _Blocking(Generic[P, R_co]):
    """A descriptor: the async method ``name`` of ``owner._async``, run to completion."""

    def __init__(self, method: Callable[..., Any]):
        self._method = method
        self._name = method.__name__
        self.__doc__ = method.__doc__
        self.__wrapped__ = method

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, instance: None, owner: type) -> _Blocking[P, R_co]: ...
    @overload
    def __get__(self, instance: _Wrapper, owner: type) -> Callable[P, R_co]: ...
    def __get__(self, instance: _Wrapper | None, owner: type) -> Any:
        if instance is None:
            return self
        method = getattr(instance._async, self._name)
        portal = instance._portal

        def call(*args: Any, **kwargs: Any) -> Any:
            portal.check_thread()
            outcome = method(*args, **kwargs)
            if isinstance(outcome, Awaitable):
                outcome = portal.run(_awaited(outcome))
            return _sync_value(outcome, portal)

        call.__name__ = self._name
        call.__doc__ = self.__doc__
        call.__wrapped__ = method  # type: ignore[attr-defined]  # inspect.signature follows it
        return call


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


# The overloads map each async return type onto what the sync world returns; a method's
# parameters (P) are carried over unchanged, so IDEs and mypy see the real signature.
@overload
def blocking(
    method: Callable[Concatenate[Any, P], Coroutine[Any, Any, TaskHandle[ImageResult]]],
) -> _Blocking[P, SyncTaskHandle[SyncImageResult]]: ...
@overload
def blocking(
    method: Callable[Concatenate[Any, P], Coroutine[Any, Any, TaskHandle[VideoResult]]],
) -> _Blocking[P, SyncTaskHandle[SyncVideoResult]]: ...
@overload
def blocking(
    method: Callable[Concatenate[Any, P], Coroutine[Any, Any, builtins.list[TaskHandle[Any]]]],
) -> _Blocking[P, builtins.list[SyncTaskHandle[Any]]]: ...
@overload
def blocking(
    method: Callable[Concatenate[Any, P], Coroutine[Any, Any, ImageResult]],
) -> _Blocking[P, SyncImageResult]: ...
@overload
def blocking(
    method: Callable[Concatenate[Any, P], Coroutine[Any, Any, VideoResult]],
) -> _Blocking[P, SyncVideoResult]: ...
@overload
def blocking(method: Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]) -> _Blocking[P, T]: ...
@overload
def blocking(
    method: Callable[Concatenate[Any, P], TaskHandle[Any]],
) -> _Blocking[P, SyncTaskHandle[Any]]: ...
def blocking(method: Callable[..., Any]) -> _Blocking[Any, Any]:
    """Expose ``method`` (an async namespace's bound-at-call-time method) synchronously.

    ``method`` is read off the class (``Images.generate``); mypy then sees ``self`` as the first
    parameter, which :class:`_Blocking` drops through ``__get__``.
    """
    return _Blocking(method)


class SyncTaskHandle(Generic[S]):
    """A :class:`~jimeng.TaskHandle` whose ``refresh()``, ``wait()``, ``result()`` and
    ``cancel()`` block and whose ``updates()`` is a plain iterator. Callbacks given to it run on
    the sync client's loop thread: they must not call the sync client."""

    def __init__(self, handle: TaskHandle[Any], portal: _Portal):
        self._async = handle
        self._portal = portal

    def __repr__(self) -> str:
        return repr(self._async)

    @property
    def id(self) -> str:
        return self._async.id

    @property
    def ref(self) -> str:
        """What ``client.tasks.resume()`` needs."""
        return self._async.ref

    @property
    def kind(self) -> TaskKind:
        return self._async.kind

    @property
    def status(self) -> TaskStatus:
        """The last status seen (no network call)."""
        return self._async.status

    @property
    def notes(self) -> tuple[str, ...]:
        """What the backend changed to serve the request (e.g. an approximated size)."""
        return self._async.notes

    @property
    def task(self) -> Task:
        """The last observation (no network call)."""
        return cast(Task, _sync_value(self._async.task, self._portal))

    def updates(self, *, poll: PollPolicy | None = None) -> Iterator[Task]:
        """The current observation, then one per status change, until a terminal state."""
        for task in _blocking_iter(self._async.updates(poll=poll), self._portal):
            yield cast(Task, _sync_value(task, self._portal))

    refresh = blocking(TaskHandle.refresh)
    wait = blocking(TaskHandle.wait)
    cancel = blocking(TaskHandle.cancel)

    def result(
        self,
        *,
        poll: PollPolicy | None = None,
        on_update: OnUpdate | None = None,
    ) -> S:
        """Wait, then return the result or raise the task's error (carrying its id)."""
        outcome = self._portal.run(self._async.result(poll=poll, on_update=on_update))
        return cast(S, _sync_value(outcome, self._portal))


class SyncBatchRun:
    """:class:`~jimeng.batch.BatchRun` for the sync world: a plain iterator of
    :class:`~jimeng.batch.BatchItem` (``for`` and ``next()``), with ``summary`` set once it
    is exhausted."""

    def __init__(self, run: BatchRun, portal: _Portal):
        self._run = run
        self._portal = portal
        self._items: Iterator[BatchItem] | None = None

    def __next__(self) -> BatchItem:
        if self._items is None:
            self._items = self._stream()
        return next(self._items)

    def __repr__(self) -> str:
        return f"<SyncBatchRun {self._run.name!r}>"

    @property
    def summary(self) -> BatchSummary | None:
        """The counts and time of the run, once every line is through (else ``None``)."""
        return self._run.summary

    def validate(self) -> None:
        """Check every line without sending anything (see :meth:`BatchRun.validate`)."""
        self._run.validate()

    def __iter__(self) -> SyncBatchRun:
        return self

    def _stream(self) -> Iterator[BatchItem]:
        return _blocking_iter(self._run.__aiter__(), self._portal)


# -- namespaces and the client ---------------------------------------------------------------


class _Namespace:
    def __init__(self, namespace: Any, portal: _Portal):
        self._async = namespace
        self._portal = portal

    def __repr__(self) -> str:
        return f"<jimeng sync {type(self._async).__name__.lower()}>"


class SyncImages(_Namespace):
    """``client.images`` of a :class:`SyncClient` (see :class:`~jimeng.resources.images.Images`)."""

    generate = blocking(Images.generate)
    submit = blocking(Images.submit)
    submit_request = blocking(Images.submit_request)
    edit = blocking(Images.edit)
    submit_edit = blocking(Images.submit_edit)
    upscale = blocking(Images.upscale)
    submit_upscale = blocking(Images.submit_upscale)
    outpaint = blocking(Images.outpaint)
    submit_outpaint = blocking(Images.submit_outpaint)


class SyncVideos(_Namespace):
    """``client.videos`` of a :class:`SyncClient` (see :class:`~jimeng.resources.videos.Videos`)."""

    generate = blocking(Videos.generate)
    submit = blocking(Videos.submit)
    submit_request = blocking(Videos.submit_request)
    imitate_motion = blocking(Videos.imitate_motion)
    submit_imitate_motion = blocking(Videos.submit_imitate_motion)
    avatar = blocking(Videos.avatar)
    submit_avatar = blocking(Videos.submit_avatar)
    translate = blocking(Videos.translate)
    submit_translate = blocking(Videos.submit_translate)


class SyncTasks(_Namespace):
    """``client.tasks`` of a :class:`SyncClient` (see :class:`~jimeng.resources.tasks.Tasks`)."""

    resume = blocking(Tasks.resume)
    unfinished = blocking(Tasks.unfinished)
    history = blocking(Tasks.history)
    get = blocking(Tasks.get)
    wait = blocking(Tasks.wait)
    cancel = blocking(Tasks.cancel)
    list = blocking(Tasks.list)


class SyncAccount(_Namespace):
    """``client.account`` of a :class:`SyncClient`."""

    credits = blocking(Account.credits)
    claim = blocking(Account.claim)
    check = blocking(Account.check)


def _client_parameters(
    _: Callable[Concatenate[Any, P], None],
) -> Callable[[Callable[..., None]], Callable[Concatenate[Any, P], None]]:
    """Give the decorated ``__init__`` the parameters of ``Client.__init__`` (for IDEs)."""

    def apply(init: Callable[..., None]) -> Callable[Concatenate[Any, P], None]:
        init.__wrapped__ = Client.__init__  # type: ignore[attr-defined]
        return init

    return apply


class SyncClient:
    """The client for synchronous code: scripts, threads, Flask/Django views, sync tools::

        with jimeng.SyncClient(jimeng.Sandbox()) as client:
            client.images.generate("a cat").save("pic/")

    Same parameters, namespaces and methods as :class:`~jimeng.Client`, and the same models;
    results' and media's ``read()``/``save()`` block. It runs a :class:`~jimeng.Client` on an
    event loop of its own in a background thread, so it also works inside a running loop
    (Jupyter). ``session=`` is not accepted: an aiohttp session belongs to the caller's loop.
    """

    _async: Client

    @_client_parameters(Client.__init__)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("session") is not None:
            from jimeng.errors import ConfigurationError

            raise ConfigurationError(
                "SyncClient runs its own event loop; it cannot borrow an aiohttp session "
                "(use jimeng.Client for that)"
            )
        self._portal = _Portal()
        self._async = Client(*args, **kwargs)
        self._owner = True
        weakref.finalize(self, self._portal.close)

    @classmethod
    def _sharing(cls, client: Client, portal: _Portal) -> SyncClient:
        clone = cls.__new__(cls)
        clone._async = client
        clone._portal = portal
        clone._owner = False
        return clone

    def __repr__(self) -> str:
        return f"<jimeng.SyncClient backend={self.backend!r}>"

    @property
    def backend(self) -> Backend:
        return self._async.backend

    @property
    def journal(self) -> JournalStore | None:
        """The task journal's store, or ``None`` (see :attr:`jimeng.Client.journal`)."""
        return self._async.journal

    @property
    def limits(self) -> LimitSnapshot:
        """The rate limiter now (see :attr:`jimeng.Client.limits`)."""
        return self._async.limits

    @cached_property
    def images(self) -> SyncImages:
        return SyncImages(self._async.images, self._portal)

    @cached_property
    def videos(self) -> SyncVideos:
        return SyncVideos(self._async.videos, self._portal)

    @cached_property
    def tasks(self) -> SyncTasks:
        return SyncTasks(self._async.tasks, self._portal)

    @cached_property
    def account(self) -> SyncAccount:
        return SyncAccount(self._async.account, self._portal)

    def with_options(
        self,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        image_poll: PollPolicy | None = None,
        video_poll: PollPolicy | None = None,
    ) -> SyncClient:
        """A copy with other settings sharing the backend, the session and the loop."""
        copy = self._async.with_options(
            timeout=timeout, retry=retry, image_poll=image_poll, video_poll=video_poll
        )
        return SyncClient._sharing(copy, self._portal)

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
    ) -> SyncBatchRun:
        """A batch run: iterate it for each line's :class:`~jimeng.batch.BatchItem` as it
        finishes; ``summary`` is set at the end (see :meth:`jimeng.Client.batch`)."""
        run = self._async.batch(
            requests,
            max_concurrency=max_concurrency,
            out=out,
            name=name,
            store=store,
            retry_failed=retry_failed,
            skip_invalid=skip_invalid,
            kind=kind,
            lease=lease,
        )
        return SyncBatchRun(run, self._portal)

    def close(self) -> None:
        """Close the client, then stop its loop. Safe to call twice; media keep working."""
        if self._portal.closed:
            return
        try:
            self._portal.run(self._async.aclose())
        finally:
            self._portal.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
