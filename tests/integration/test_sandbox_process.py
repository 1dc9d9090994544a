"""``python -m jimeng.sandbox`` serves other processes over loopback."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest

import jimeng
from tests.conftest import Sleeps

# Runs the library in another process, which mutation runs cannot reach.
pytestmark = pytest.mark.subprocess


@pytest.fixture
async def served() -> AsyncIterator[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jimeng.sandbox",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert line.startswith("jimeng sandbox serving on http://127.0.0.1:")
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        process.terminate()
        await process.wait()


async def test_generate_against_a_separate_process(served: str, sleeps: Sleeps) -> None:
    backend = jimeng.Volcengine(
        access_key=jimeng.sandbox.SANDBOX_ACCESS_KEY,
        secret_key=jimeng.sandbox.SANDBOX_SECRET_KEY,
        endpoint=served,
    )
    async with jimeng.Client(backend, sleep=sleeps) as client:
        result = await client.images.generate("a cat", size="1K")
        assert (await result.images[0].read()).startswith(b"\x89PNG")
    async with jimeng.Client(jimeng.Sandbox(url=served), sleep=sleeps) as client:
        assert (await client.images.generate("a dog", size="1K")).images


def test_refuses_non_loopback_hosts(capsys: pytest.CaptureFixture[str]) -> None:
    from jimeng.sandbox.__main__ import main

    with pytest.raises(SystemExit) as caught:
        main(["--host", "0.0.0.0"])
    assert caught.value.code == 2
    assert "loopback" in capsys.readouterr().err
