"""Callbacks the sandbox POSTs to the caller's ``callback_url`` (Ark tasks, protocols/
volcengine.md §12.3; motion imitation 2.0, §3.4.4): loopback URLs only, every attempt recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from typing import Any

import aiohttp
import attrs
from aiohttp import web
from yarl import URL

from jimeng.backends._endpoint import is_loopback
from jimeng.sandbox._server import SandboxServer

__all__ = ["Callback", "CallbackSender"]


@attrs.define(kw_only=True)
class Callback:
    """One callback POST the sandbox made (or refused to make)."""

    task_id: str
    status: str
    attempt: int
    url: str
    http_status: int | None = None
    outcome: str = "delivered"


class CallbackSender:
    """Sends callbacks in the background; ``await flush()`` waits for the ones under way."""

    def __init__(self, server: SandboxServer, *, timeout: float = 5.0):
        self.server = server
        self.timeout = timeout
        #: Every attempt, in order.
        self.sent: list[Callback] = []
        self._session: aiohttp.ClientSession | None = None
        self._background: set[asyncio.Task[None]] = set()
        server.app.on_cleanup.append(self._cleanup)

    def spawn(self, job: Coroutine[Any, Any, None]) -> None:
        """Run ``job`` in the background until it ends or the server stops."""
        task = asyncio.get_running_loop().create_task(job)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def post(
        self, task_id: str, status: str, url: str, body: Mapping[str, Any], *, retries: int = 0
    ) -> None:
        """POST ``body`` to ``url``, retrying ``retries`` times when it is not acknowledged."""
        self.spawn(self._deliver(task_id, status, url, dict(body), retries))

    async def flush(self) -> None:
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def _cleanup(self, app: web.Application) -> None:
        for job in list(self._background):
            job.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _deliver(
        self, task_id: str, status: str, url: str, body: dict[str, Any], retries: int
    ) -> None:
        if not is_loopback(URL(url).host or ""):
            self.sent.append(
                Callback(task_id=task_id, status=status, attempt=1, url=url,
                         outcome="refused: the sandbox only calls loopback URLs")
            )  # fmt: skip
            return
        if self._session is None:
            self._session = aiohttp.ClientSession()
        timeout = aiohttp.ClientTimeout(total=max(self.timeout * self.server.time_factor, 0.5))
        for attempt in range(1, retries + 2):
            self.server.requests["callback"] += 1
            record = Callback(task_id=task_id, status=status, attempt=attempt, url=url)
            self.sent.append(record)
            try:
                async with self._session.post(
                    url, json=body, timeout=timeout, allow_redirects=False
                ) as response:
                    await response.read()
                    record.http_status = response.status
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
                record.outcome = f"failed: {type(error).__name__}"
                continue
            if response.status < 300:
                return
            record.outcome = f"answered {response.status}"
