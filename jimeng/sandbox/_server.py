"""The sandbox server: one aiohttp application on loopback that speaks the backends' protocols.

Protocol modules add their routes to it (``_volcengine.py``…). The server owns what they share:
task records, the media they serve, fault injection, counters and the clock.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import socket
import time
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any, Literal

import attrs
from aiohttp import web

__all__ = ["Fault", "FaultKind", "SandboxServer", "Stages"]

FaultKind = Literal["http", "reset", "non_json", "truncate", "delay"]


@attrs.define(kw_only=True)
class Fault:
    """A failure the sandbox injects into the next ``times`` requests labelled ``action``.

    ``action`` is a route label (``"submit"``, ``"poll"``, ``"cancel"``, ``"download"``…) or
    ``"*"``. ``kind``: ``"http"`` answers ``status`` with the protocol's error envelope for
    ``code``; ``"reset"`` drops the connection without answering; ``"non_json"`` answers an HTML
    page with ``status``; ``"truncate"`` sends half a download then drops it, and on API routes
    answers ``status`` with a JSON body cut in half (a proxy that lost the rest); ``"delay"`` waits
    ``seconds`` (scaled by the time factor) before answering normally (a download sends half
    its bytes first).
    """

    action: str
    kind: FaultKind = "http"
    status: int = 429
    code: int | str | None = None
    message: str | None = None
    retry_after: float | None = None
    seconds: float = 0.0
    times: int = 1


@attrs.frozen(kw_only=True)
class Stages:
    """How a task moves: queued → running → done.

    A stage ends when *both* its delay (seconds, scaled by the server's ``time_factor``) and its
    number of polls have passed. All zero: the first poll sees the task finished.

    ``distribution`` draws each task's generation time around ``generate_delay``: ``"fixed"``
    (exactly it), ``"uniform"`` (within ± ``spread`` × it) or ``"lognormal"`` (median
    ``generate_delay``, log-space standard deviation ``spread``), from the server's seeded
    random source.
    """

    queue_delay: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))
    generate_delay: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))
    queue_polls: int = 0
    generate_polls: int = 0
    distribution: Literal["fixed", "uniform", "lognormal"] = attrs.field(
        default="fixed", validator=attrs.validators.in_(("fixed", "uniform", "lognormal"))
    )
    spread: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))

    def draw(self, rng: random.Random) -> Stages:
        """These stages with the generation time drawn for one task."""
        if self.distribution == "fixed" or self.generate_delay == 0:
            return self
        if self.distribution == "uniform":
            low = max(0.0, self.generate_delay * (1 - self.spread))
            delay = rng.uniform(low, self.generate_delay * (1 + self.spread))
        else:
            delay = self.generate_delay * math.exp(rng.gauss(0.0, self.spread))
        return attrs.evolve(self, generate_delay=delay, distribution="fixed", spread=0.0)


@attrs.define(kw_only=True)
class SandboxTask:
    """A task record, shared by every protocol module."""

    id: str
    kind: str
    model: str
    prompt: str
    params: dict[str, Any]
    created: float
    stages: Stages
    polls: int = 0
    cancelled: bool = False
    outcome: str = "succeeded"  # or "failed:<code>:<message>"
    media: list[str] = attrs.field(factory=list)
    extra: dict[str, Any] = attrs.field(factory=dict)

    def busy(self, now: float, time_factor: float) -> bool:
        """Whether the task still occupies a generation slot (by time: polls do not matter)."""
        if self.cancelled:
            return False
        elapsed = (now - self.created) / time_factor if time_factor > 0 else float("inf")
        return elapsed < self.stages.queue_delay + self.stages.generate_delay

    def stage(self, now: float, time_factor: float) -> str:
        """``queued``, ``running``, ``done`` or ``cancelled`` for the current poll count."""
        if self.cancelled:
            return "cancelled"
        elapsed = (now - self.created) / time_factor if time_factor > 0 else float("inf")
        stages = self.stages
        if elapsed < stages.queue_delay or self.polls <= stages.queue_polls:
            return "queued"
        if (
            elapsed < stages.queue_delay + stages.generate_delay
            or self.polls <= stages.queue_polls + stages.generate_polls
        ):
            return "running"
        return "done"


@attrs.define(kw_only=True)
class MediaItem:
    content_type: str
    render: Callable[[], bytes]


class SandboxServer:
    """Hosts the emulation on ``127.0.0.1`` (port 0 = any free port)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        stages: Stages | None = None,
        time_factor: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
        max_rps: float | None = None,
        max_concurrent_tasks: int | None = None,
    ):
        if max_rps is not None and not max_rps > 0:
            raise ValueError(f"max_rps must be positive, got {max_rps!r}")
        if max_concurrent_tasks is not None and max_concurrent_tasks < 1:
            raise ValueError(
                f"max_concurrent_tasks must be at least 1, got {max_concurrent_tasks!r}"
            )
        self.host = host
        self.port = port
        self.stages = stages or Stages()
        self.time_factor = time_factor
        self.clock = clock
        self.random = random.Random(seed)
        #: Account limits as the real service enforces them (protocols/volcengine.md §5):
        #: API requests per second (a token bucket holding a tenth of a second's burst) and
        #: unfinished tasks at once. ``None``: unlimited.
        self.max_rps = max_rps
        self.max_concurrent_tasks = max_concurrent_tasks
        self._tokens = 0.0
        self._refilled: float | None = None
        self._unfinished: set[str] = set()
        #: Requests refused per limit (``"rate"``, ``"concurrency"``).
        self.refused: Counter[str] = Counter()
        #: The most tasks that were unfinished at once (generating, by time).
        self.peak_unfinished = 0
        self.tasks: dict[str, SandboxTask] = {}
        self.media: dict[str, MediaItem] = {}
        self.faults: list[Fault] = []
        #: Requests seen per action label (``"submit"``, ``"poll"``…), auth failures included.
        self.requests: Counter[str] = Counter()
        #: Polls seen per task id.
        self.polls: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self.app = web.Application(client_max_size=200 * 1024 * 1024)
        self.app.router.add_get("/media/{name:.+}", self._serve_media)
        self.app.router.add_get("/_sandbox/health", self._health)
        self.app.router.add_get("/_sandbox/stats", self._stats)
        self._runner: web.AppRunner | None = None
        self._socket: socket.socket | None = None
        self._protocols: list[Any] = []

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (after :meth:`reserve` or :meth:`start`)."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._runner is not None

    def reserve(self) -> int:
        """Bind the listening socket now, without an event loop, and return the port.

        The URL is then known before :meth:`start` (which serves on this very socket), so
        requests built before the server runs already name the right port.
        """
        if self._socket is None and self._runner is None:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((self.host, self.port))
            except OSError:
                sock.close()
                raise
            self.port = sock.getsockname()[1]
            self._socket = sock
            # A sandbox that is never started must not leak its socket.
            weakref.finalize(self, sock.close)
        return self.port

    def mount(self, protocol: Any) -> None:
        """Add a protocol module's routes (called before :meth:`start`)."""
        protocol.install(self)
        self._protocols.append(protocol)

    def protocol(self, label: str) -> Any:
        """The mounted protocol module with this ``label`` (to tune or inspect it in tests)."""
        for protocol in self._protocols:
            if getattr(protocol, "label", None) == label:
                return protocol
        raise KeyError(f"no protocol {label!r} is mounted")

    async def start(self) -> SandboxServer:
        if self._runner is not None:
            return self
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site: web.BaseSite
        if self._socket is not None:
            site = web.SockSite(self._runner, self._socket)
            self._socket = None  # the server closes it when it stops
        else:
            site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            # A failed bind (port taken) must not leave a runner that makes start() a no-op.
            await self._runner.cleanup()
            self._runner = None
            raise
        server = site._server
        if self.port == 0 and server is not None:
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SandboxServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- shared services for protocol modules --------------------------------------------------

    def new_id(self, style: Literal["numeric", "uuid"] = "numeric") -> str:
        serial = next(self._ids)
        if style == "uuid":
            value = self.random.getrandbits(96)
            return (
                f"{serial:08x}-{value >> 80 & 0xFFFF:04x}-1{value >> 68 & 0xFFF:03x}-"
                f"{value >> 52 & 0xFFFF:04x}-{value & 0xFFFFFFFFFFFF:012x}"
            )
        # Volcengine task ids are decimal strings above 2**53 (protocols/volcengine.md §2.2).
        return str(7_390_000_000_000_000_000 + serial * 7919 + self.random.randrange(7919))

    def add_task(self, task: SandboxTask) -> SandboxTask:
        task.stages = task.stages.draw(self.random)
        self.tasks[task.id] = task
        self._prune_unfinished()
        self._unfinished.add(task.id)
        self.peak_unfinished = max(self.peak_unfinished, len(self._unfinished))
        return task

    def _prune_unfinished(self) -> None:
        now = self.now()
        self._unfinished = {
            task_id
            for task_id in self._unfinished
            if self.tasks[task_id].busy(now, self.time_factor)
        }

    def take_request_token(self) -> bool:
        """Count one API request against ``max_rps``; False when it must be refused."""
        if self.max_rps is None:
            return True
        now = self.now()
        burst = max(1.0, self.max_rps / 10)
        if self._refilled is None:
            self._tokens = burst
        else:
            self._tokens = min(burst, self._tokens + (now - self._refilled) * self.max_rps)
        self._refilled = now
        if self._tokens < 1.0:
            self.refused["rate"] += 1
            return False
        self._tokens -= 1.0
        return True

    def has_task_room(self) -> bool:
        """Whether a new task fits under ``max_concurrent_tasks`` (unfinished tasks count,
        whether or not anyone polls them)."""
        if self.max_concurrent_tasks is None:
            return True
        self._prune_unfinished()
        if len(self._unfinished) >= self.max_concurrent_tasks:
            self.refused["concurrency"] += 1
            return False
        return True

    def add_media(self, name: str, content_type: str, render: Callable[[], bytes]) -> str:
        """Register a file served at ``/media/<name>`` (rendered lazily) and return its URL."""
        self.media[name] = MediaItem(content_type=content_type, render=render)
        return f"{self.url}/media/{name}"

    def inject(self, action: str, kind: FaultKind = "http", **options: Any) -> Fault:
        """Queue a fault; see :class:`Fault`."""
        fault = Fault(action=action, kind=kind, **options)
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self.faults.clear()

    def take_fault(self, action: str) -> Fault | None:
        """The next fault for ``action`` (consuming one of its ``times``)."""
        for fault in self.faults:
            if fault.action in (action, "*") and fault.times > 0:
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        return None

    async def delay(self, seconds: float) -> None:
        if seconds > 0 and self.time_factor > 0:
            await asyncio.sleep(seconds * self.time_factor)

    def now(self) -> float:
        return self.clock()

    # -- routes shared by all protocols ----------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        # Counters included: a test in another process checks what reached the server.
        return web.json_response(
            {"status": "ok", "tasks": len(self.tasks), "requests": dict(self.requests)}
        )

    def stats(self) -> dict[str, Any]:
        """The counters, for programs in other processes (``GET /_sandbox/stats``)."""
        return {
            "requests": dict(self.requests),
            "refused": dict(self.refused),
            "tasks": len(self.tasks),
            "peak_unfinished": self.peak_unfinished,
            "max_concurrent_tasks": self.max_concurrent_tasks,
            "max_rps": self.max_rps,
        }

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _serve_media(self, request: web.Request) -> web.StreamResponse:
        self.requests["download"] += 1
        item = self.media.get(request.match_info["name"])
        if item is None:
            return web.Response(status=404, text="expired or unknown media")
        data = await asyncio.to_thread(item.render)  # big media: drawn off the event loop
        fault = self.take_fault("download")
        if fault is not None and fault.kind == "truncate":
            response = web.StreamResponse(headers={"Content-Type": item.content_type})
            response.content_length = len(data)
            await response.prepare(request)
            await response.write(data[: max(1, len(data) // 2)])
            abort(request)
            return response
        if fault is not None and fault.kind == "reset":
            abort(request)
            return web.Response(status=500)
        if fault is not None and fault.kind == "http":
            return web.Response(status=fault.status, text="injected failure")
        if fault is not None and fault.kind == "delay":
            # A download that stalls half-way (a slow CDN): the client holds a partial file.
            response = web.StreamResponse(headers={"Content-Type": item.content_type})
            response.content_length = len(data)
            await response.prepare(request)
            await response.write(data[: len(data) // 2])
            await self.delay(fault.seconds)
            await response.write(data[len(data) // 2 :])
            return response
        return web.Response(body=data, content_type=item.content_type.split(";")[0])


def abort(request: web.Request) -> None:
    """Drop the connection without an answer (a reset, as seen by the client)."""
    transport = request.transport
    if transport is not None:
        transport.abort()


def truncated_json(status: int) -> web.Response:
    """An answer that starts like the protocol's JSON and stops half-way."""
    body = b'{"code": 10000, "message": "Success", "data": {"status": "do'
    return web.Response(status=status, body=body, content_type="application/json")


def non_json_page(status: int) -> web.Response:
    return web.Response(
        status=status,
        text="<html><body><h1>502 Bad Gateway</h1></body></html>",
        content_type="text/html",
    )
