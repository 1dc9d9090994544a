"""An application's own tests, written with the fixtures the jimeng package gives pytest.

Nothing to configure: installing jimeng registers the fixtures. Run with
``pytest examples/test_my_app.py`` (async tests need pytest-asyncio).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import jimeng
from jimeng.sandbox import Stages

# -- the application under test ----------------------------------------------------------------


async def make_cover(client: jimeng.Client, title: str, folder: Path) -> Path:
    """Generate a cover image for a title and save it; the task id goes into the file name."""
    result = await client.images.generate(f"a book cover for {title!r}", size="1K")
    return await result.images[0].save(folder / f"cover-{result.task_id}.png")


def make_cover_sync(client: jimeng.SyncClient, title: str, folder: Path) -> Path:
    return client.images.generate(f"a book cover for {title!r}", size="1K").save(folder)[0]


# -- its tests ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_cover_is_saved(jimeng_client: jimeng.Client, tmp_path: Path) -> None:
    path = await make_cover(jimeng_client, "Snow Fox", tmp_path)
    assert path.read_bytes().startswith(b"\x89PNG")


@pytest.mark.asyncio
async def test_cover_survives_a_rate_limit(
    jimeng_sandbox: jimeng.Sandbox, jimeng_client: jimeng.Client, tmp_path: Path
) -> None:
    jimeng_sandbox.server.inject("submit", "http", status=429, code=50429)
    await make_cover(jimeng_client, "Snow Fox", tmp_path)
    assert jimeng_sandbox.server.requests["submit"] == 2  # refused once, then accepted


@pytest.mark.asyncio
@pytest.mark.jimeng_sandbox("gateway", stages=Stages(queue_polls=1))
async def test_on_a_gateway_with_my_own_client(
    jimeng_sandbox: jimeng.Sandbox, tmp_path: Path
) -> None:
    async with jimeng.Client(jimeng_sandbox) as client:  # polls every 10 ms in these tests
        path = await make_cover(client, "Snow Fox", tmp_path)
    (task_id,) = jimeng_sandbox.server.tasks
    assert path.name == f"cover-{task_id}.png"
    assert jimeng_sandbox.server.polls[task_id] == 2  # queued once, then done


def test_sync_code(jimeng_sync_client: jimeng.SyncClient, tmp_path: Path) -> None:
    assert make_cover_sync(jimeng_sync_client, "Snow Fox", tmp_path).suffix == ".png"
