"""A client kept across notebook cells: lazy open, unclosed warnings, media that outlive it."""

from __future__ import annotations

import asyncio
import gc
import random
import warnings
from pathlib import Path
from typing import Any

import pytest

import jimeng
from jimeng.sandbox import PROTOCOLS, Sandbox, build_server
from tests.conftest import Sleeps

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_the_sandbox_knows_its_url_before_it_serves() -> None:
    sandbox = Sandbox()
    assert sandbox.url is not None and sandbox.url.startswith("http://127.0.0.1:")
    assert not sandbox.url.endswith(":9")
    assert not sandbox.server.running


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_first_call_without_async_with(protocol: Any, sleeps: Sleeps) -> None:
    client = jimeng.Client(Sandbox(protocol), sleep=sleeps)
    try:
        result = await client.images.generate("a red fox in snow")
        assert result.images
        assert (await result.images[0].read()).startswith(PNG_MAGIC)
    finally:
        await client.aclose()


async def test_first_call_is_tasks_get(sleeps: Sleeps) -> None:
    sandbox = Sandbox()
    first = jimeng.Client(sandbox, sleep=sleeps)
    handle = await first.images.submit("a cat", size="1K")
    await first.aclose()

    second = jimeng.Client(sandbox, sleep=sleeps)  # same server, restarted on the same port
    try:
        task = await second.tasks.get(handle.ref)
        assert task.id == handle.id
        assert task.status is jimeng.TaskStatus.SUCCEEDED
    finally:
        await second.aclose()


async def test_unclosed_client_warns_like_aiohttp(sleeps: Sleeps) -> None:
    sandbox = Sandbox()
    with pytest.warns(ResourceWarning) as caught:
        client = jimeng.Client(sandbox, sleep=sleeps)
        await client.images.generate("a cat", size="1K")
        del client
        gc.collect()
    ours = [str(w.message) for w in caught if "jimeng.Client" in str(w.message)]
    assert ours == [
        "unclosed jimeng.Client on the sandbox backend; use 'async with' or 'await client.aclose()'"
    ]
    await sandbox.aclose()


async def test_closed_or_unused_clients_do_not_warn(sleeps: Sleeps) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unused = jimeng.Client(Sandbox(), sleep=sleeps)
        del unused
        client = jimeng.Client(Sandbox(), sleep=sleeps)
        await client.images.generate("a cat", size="1K")
        await client.aclose()
        del client
        gc.collect()


@pytest.fixture
async def server() -> Any:
    """A sandbox server that outlives the clients using it."""
    server = build_server()
    await server.start()
    yield server
    await server.stop()


async def test_media_outlive_their_client(server: Any, sleeps: Sleeps, tmp_path: Path) -> None:
    client = jimeng.Client(Sandbox(server=server), sleep=sleeps, rng=random.Random(0))
    video = await client.videos.generate("a golden retriever", mode="t2v_720p")
    images = await client.images.generate("a cat", size="1K")
    await client.aclose()
    assert images.images[0].data is None and images.images[0].url  # needs a download

    sleeps.calls.clear()
    server.inject("download", "http", status=503, times=1)
    data = await video.read()
    assert data[4:8] == b"ftyp"
    # The client's retry policy, after it closed: one retry, the first backoff step (0.5 s
    # initial delay less up to 25 % jitter).
    assert len(sleeps.calls) == 1 and 0.375 <= sleeps.calls[0] <= 0.5
    saved = await video.save(tmp_path / "dog.mp4")
    assert saved.read_bytes() == data
    paths = await images.save(tmp_path / "pics/")
    assert [p.read_bytes()[:8] for p in paths] == [PNG_MAGIC] * len(images)
    assert server.requests["download"] == 2 + 1 + len(images)


async def test_media_after_close_keep_the_size_cap(
    server: Any, sleeps: Sleeps, tmp_path: Path
) -> None:
    client = jimeng.Client(Sandbox(server=server), sleep=sleeps, max_download_bytes=100)
    video = await client.videos.generate("a dog", mode="t2v_720p")
    await client.aclose()
    with pytest.raises(jimeng.DownloadError, match="100-byte limit"):
        await video.save(tmp_path / "dog.mp4")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


async def test_media_after_close_on_another_loop(server: Any, sleeps: Sleeps) -> None:
    client = jimeng.Client(Sandbox(server=server), sleep=sleeps)
    video = await client.videos.generate("a dog", mode="t2v_720p")
    await client.aclose()
    expected = await video.read()

    # A fresh loop in a thread (a second notebook kernel loop, a sync caller): still works.
    data = await asyncio.to_thread(asyncio.run, video.read())
    assert data == expected


async def test_one_client_on_two_loops_is_a_clear_error(sleeps: Sleeps) -> None:
    client = jimeng.Client(Sandbox(), sleep=sleeps)
    try:
        await client.images.generate("a cat", size="1K")
        with pytest.raises(jimeng.ConfigurationError, match="another event loop"):
            await asyncio.to_thread(asyncio.run, client.images.generate("a cat", size="1K"))
    finally:
        await client.aclose()
