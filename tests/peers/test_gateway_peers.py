"""Gateway integration tests against real jimeng-api peers (``make peer-test``).

Point ``PEER_DZ`` at a running DerekZhang90/jimeng-api (the async-task fork, started with
``TASK_MAX_CONCURRENT=1``) and ``PEER_IPT`` at a running iptag/jimeng-api, both on loopback.
Without them every test here is skipped. The peers need no real session: with no upstream
reachable every generation fails upstream after some seconds, which is itself a case the client
must report as a failed task with an id. These tests wait for the real servers.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import jimeng

DZ = os.environ.get("PEER_DZ", "").rstrip("/")
IPT = os.environ.get("PEER_IPT", "").rstrip("/")
TOKEN = "peer-test-session-0000"
#: Every character the peers' body cleaner rewrites (gateway.md §21.1), in one prompt.
TRICKY = "a\u00a0b\u2003c\u200bd\ufeffe 猫 | list a,] b, } c,,d | x,\u3000] y | \u2028 | it's"
POLL = jimeng.PollPolicy(interval=1.0, max_attempts=180, backoff=1.0, max_interval=1.0)

needs_dz = pytest.mark.skipif(not DZ, reason="set PEER_DZ to a running DZ gateway URL")
needs_ipt = pytest.mark.skipif(not IPT, reason="set PEER_IPT to a running IPT gateway URL")


async def _client(url: str) -> jimeng.Client:
    return jimeng.Client(jimeng.Gateway(url, token=TOKEN), image_poll=POLL, video_poll=POLL)


@pytest.fixture
async def dz() -> AsyncIterator[jimeng.Client]:
    async with await _client(DZ) as client:
        yield client


@pytest.fixture
async def ipt() -> AsyncIterator[jimeng.Client]:
    async with await _client(IPT) as client:
        yield client


async def _raw(base: str, method: str, path: str, **kwargs: Any) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, base + path, **kwargs) as response,
    ):
        return await response.json(content_type=None)


@needs_dz
async def test_dz_submit_returns_a_task_at_once_and_queues(dz: jimeng.Client) -> None:
    started = time.monotonic()
    first = await dz.images.submit(TRICKY)
    assert time.monotonic() - started < 5.0  # the generation itself takes ~15 s to fail
    assert dz.backend.task_mode is True  # found by the probe
    assert not first.task.done and not first.id.startswith("sync-")
    second = await dz.images.submit("second")
    third = await dz.videos.submit("third", model="jimeng-video-3.0")
    queued = {task.id for task in await dz.tasks.list(status="queued")}
    assert {second.id, third.id} <= queued  # TASK_MAX_CONCURRENT=1
    # The prompt arrived byte-identical past the body cleaner.
    stored = await dz.tasks.get(first.id)
    assert stored.raw["prompt"] == TRICKY
    assert stored.queue is not None and stored.queue.max_concurrent == 1
    # Cancel by bare id: the answer says what the task was.
    cancelled = await dz.tasks.cancel(third.id)
    assert cancelled.status is jimeng.TaskStatus.CANCELLED
    assert cancelled.kind is jimeng.TaskKind.VIDEO and cancelled.model == "jimeng-video-3.0"
    await dz.tasks.cancel(second.id)
    # No upstream here: the task fails, and the error carries its id.
    with pytest.raises(jimeng.TaskFailedError) as caught:
        await first.result()
    assert caught.value.task_id == first.id
    assert "ENOTFOUND" in str(caught.value) or "getaddrinfo" in str(caught.value)


@needs_dz
async def test_dz_answers_like_the_sandbox_mount() -> None:
    json_headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    empty = await _raw(DZ, "POST", "/v1/images/generations", data=b"", headers=json_headers)
    assert empty == {
        "code": -1000,
        "message": "无效的JSON格式: Unexpected end of JSON input",
        "data": None,
    }
    for duration in (3, 16, 4.5, "7"):
        body = {"prompt": "v", "model": "jimeng-video-3.0", "duration": duration, "async": True}
        answer = await _raw(DZ, "POST", "/v1/videos/generations", json=body, headers=json_headers)
        assert answer == {"code": -2000, "message": "Params body.duration invalid", "data": None}
    listed = await _raw(DZ, "GET", "/v1/tasks/?limit=abc")
    assert isinstance(listed, dict) and isinstance(listed["tasks"], list)


@needs_ipt
async def test_ipt_failures_are_task_failures_with_unique_ids(ipt: jimeng.Client) -> None:
    async def attempt() -> jimeng.TaskFailedError:
        with pytest.raises(jimeng.TaskFailedError) as caught:
            await ipt.images.generate("the same prompt twice")
        return caught.value

    first, second = await asyncio.gather(attempt(), attempt())
    assert ipt.backend.task_mode is False  # the probe met the route error
    assert first.task_id != second.task_id
    assert all(str(error.task_id).startswith("sync-failed-") for error in (first, second))


@needs_ipt
async def test_ipt_refuses_a_duration_per_model(ipt: jimeng.Client) -> None:
    with pytest.raises(jimeng.InvalidRequestError, match="5、10"):
        await ipt.videos.generate("v", model="jimeng-video-3.0", extra_body={"duration": 7})
