"""Virtual time for the sandbox and a client: hours of polling and pacing run in milliseconds.

Give the same :class:`VirtualClock` to the sandbox server (``clock=``) and to the client
(``monotonic=``, ``sleep=``). A ``sleep`` does not wait: it queues a wake-up, and time jumps to
the earliest queued wake-up once the event loop has had a moment to run everything that was
ready (requests in flight to the in-process sandbox included). Sleepers wake in order of their
wake-up times, so pacing and schedules keep their spacing.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

__all__ = ["VirtualClock"]


class VirtualClock:
    """A monotonic clock that moves only when every task is asleep on it (as far as a few
    event-loop turns can tell)."""

    #: Event-loop turns between two wake-ups: lets in-flight loopback requests complete.
    TURNS = 40

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._driver: asyncio.Task[None] | None = None

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._order), future))
        if self._driver is None or self._driver.done():
            self._driver = asyncio.create_task(self._drive())
        await future

    async def _drive(self) -> None:
        while self._sleepers:
            for _ in range(self.TURNS):
                await asyncio.sleep(0)
            wake, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, wake)
            if not future.done():
                future.set_result(None)
