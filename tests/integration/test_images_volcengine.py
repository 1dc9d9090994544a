"""Images end to end through the public API against the sandbox (Volcengine protocol)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import jimeng
from jimeng.sandbox import BLOCK_INPUT, BLOCK_OUTPUT, Sandbox, Stages
from jimeng.sandbox._media import png_size
from tests.conftest import Sleeps


async def test_generate_saves_real_pngs(client: jimeng.Client, tmp_path: Path) -> None:
    result = await client.images.generate("a white Siamese cat on a windowsill", size="1K")
    assert len(result.images) == 1
    image = result.images[0]
    assert image.url and image.url.startswith("http://127.0.0.1:")
    assert image.expires_at is not None
    paths = await result.save(tmp_path)
    assert [p.parent for p in paths] == [tmp_path]
    assert paths[0].name.startswith("jimeng_") and paths[0].suffix == ".png"
    assert png_size(paths[0].read_bytes()) == (1024, 1024)
    assert list(tmp_path.glob(".jimeng-*")) == []


async def test_exact_size_and_several_images(client: jimeng.Client, tmp_path: Path) -> None:
    result = await client.images.generate("3 images of a mountain sunset", width=2560, height=1440)
    assert len(result) == 3
    paths = await result.save(tmp_path / "sunset.png")
    assert [p.name for p in paths] == ["sunset_1.png", "sunset_2.png", "sunset_3.png"]
    assert all(png_size(p.read_bytes()) == (2560, 1440) for p in paths)


async def test_base64_results_are_decoded(client: jimeng.Client) -> None:
    result = await client.images.generate("a lighthouse", size="1K", return_url=False)
    image = result.images[0]
    assert image.url is None and image.data is not None
    assert png_size(await image.read()) == (1024, 1024)


async def test_submit_updates_and_result(client: jimeng.Client, sandbox: Sandbox) -> None:
    task = await client.images.submit("mountain sunset", width=2560, height=1440)
    assert task.id and task.status is jimeng.TaskStatus.QUEUED
    assert task.ref == f"jimeng_t2i_v40:{task.id}"
    seen = [update.status async for update in task.updates()]
    assert seen == [
        jimeng.TaskStatus.QUEUED,
        jimeng.TaskStatus.RUNNING,
        jimeng.TaskStatus.SUCCEEDED,
    ]
    result = await task.result()
    assert result.task_id == task.id
    assert sandbox.server.polls[task.id] == 3


async def test_poll_waits_follow_the_schedule(client: jimeng.Client, sleeps: Sleeps) -> None:
    policy = jimeng.PollPolicy(interval=2.0, backoff=2.0, max_interval=3.0, max_attempts=10)
    await client.images.generate("a cat", size="1K", poll=policy)
    assert sleeps.calls == [2.0, 3.0, 3.0]


async def test_resume_from_ref_in_a_new_client(sandbox: Sandbox, sleeps: Sleeps) -> None:
    async with jimeng.Client(sandbox, sleep=sleeps) as first:
        task = await first.images.submit("a koi pond", size="1K")
        ref = task.ref
        other = jimeng.Client(jimeng.Sandbox(url=sandbox.url), sleep=sleeps)
        async with other:
            result = await other.tasks.wait(ref)
            assert result.task_id == task.id
            again = await other.tasks.get(task.id, model="jimeng-4.0")
            assert again.status is jimeng.TaskStatus.SUCCEEDED


async def test_on_update_callback_and_on_submit(client: jimeng.Client) -> None:
    submitted: list[str] = []
    statuses: list[str] = []

    async def on_update(task: jimeng.Task) -> None:
        statuses.append(task.status.value)

    await client.images.generate(
        "a cat", size="1K", on_submit=lambda t: submitted.append(t.id), on_update=on_update
    )
    assert len(submitted) == 1
    assert statuses == ["queued", "running", "succeeded"]


async def test_timeout_keeps_the_task_id(sandbox: Sandbox, sleeps: Sleeps) -> None:
    slow = Sandbox(url=None, stages=Stages(queue_polls=50))
    async with jimeng.Client(slow, sleep=sleeps) as client:
        with pytest.raises(jimeng.TaskTimeoutError) as caught:
            await client.images.generate(
                "a cat", size="1K", poll=jimeng.PollPolicy(interval=1, max_attempts=3)
            )
        error = caught.value
        assert error.task_id and error.task_ref
        assert error.task_id in str(error)
        # the task was not lost: it can be resumed and finished later
        slow.server.tasks[error.task_id].stages = Stages()
        result = await client.tasks.wait(error.task_ref)
        assert result.task_id == error.task_id


async def test_input_moderation_is_a_content_policy_error(client: jimeng.Client) -> None:
    with pytest.raises(jimeng.ContentPolicyError) as caught:
        await client.images.generate(f"a cat {BLOCK_INPUT}", size="1K")
    error = caught.value
    assert error.code == 50412 and error.status_code == 400 and error.request_id
    assert error.task_id is None  # refused at submit: nothing was accepted or billed


async def test_output_moderation_carries_the_task_id(client: jimeng.Client) -> None:
    task = await client.images.submit(f"a cat {BLOCK_OUTPUT}", size="1K")
    with pytest.raises(jimeng.ContentPolicyError) as caught:
        await task.result()
    assert caught.value.code == 50511
    assert caught.value.task_id == task.id


async def test_cancelling_the_waiting_coroutine_keeps_the_task_id(sandbox: Sandbox) -> None:
    gate = asyncio.Event()

    async def blocking_sleep(seconds: float) -> None:
        gate.set()
        await asyncio.Event().wait()

    async with jimeng.Client(sandbox, sleep=blocking_sleep) as client:
        submitted: list[jimeng.Task] = []
        job = asyncio.create_task(
            client.images.generate("a cat", size="1K", on_submit=submitted.append)
        )
        await gate.wait()
        job.cancel()
        with pytest.raises(asyncio.CancelledError) as caught:
            await job
        assert submitted and getattr(caught.value, "task_id", None) == submitted[0].id


async def test_validation_happens_before_any_request(
    client: jimeng.Client, sandbox: Sandbox
) -> None:
    with pytest.raises(jimeng.ValidationError) as caught:
        await client.images.generate("a cat", width=4000, height=100)
    assert caught.value.field == "width"
    with pytest.raises(jimeng.ValidationError) as caught:
        await client.images.generate("a cat", seed=3)
    assert caught.value.field == "seed"
    assert sum(sandbox.server.requests.values()) == 0


async def test_saved_files_follow_the_umask(client: jimeng.Client, tmp_path: Path) -> None:
    import os

    mask = os.umask(0o022)
    try:
        paths = await (await client.images.generate("a cat", size="1K")).save(tmp_path)
    finally:
        os.umask(mask)
    assert paths[0].stat().st_mode & 0o777 == 0o644


async def test_sizes_are_known_where_they_can_be(client: jimeng.Client) -> None:
    exact = await client.images.generate("a cat", width=2560, height=1440)
    assert [(i.width, i.height) for i in exact.images] == [(2560, 1440)]
    preset = await client.images.generate("a cat", size="1K")
    assert (preset.images[0].width, preset.images[0].height) == (None, None)  # the model decides
    inline = await client.images.generate("a cat", size="1K", return_url=False)
    image = inline.images[0]
    assert (image.width, image.height, image.content_type) == (1024, 1024, "image/png")


async def test_a_failed_task_is_a_task_failure_not_a_busy_service(
    client: jimeng.Client, sandbox: Sandbox
) -> None:
    from jimeng.sandbox import FAIL_TASK

    task = await client.images.submit(f"a cat {FAIL_TASK}", size="1K")
    with pytest.raises(jimeng.TaskFailedError) as caught:
        await task.result()
    assert caught.value.task_id == task.id and caught.value.code == 50500
    # queued, running, done-with-failure: the failure itself is not polled again
    assert sandbox.server.polls[task.id] == 3
