"""Every Volcengine model and video mode through the public API against the sandbox, local
inputs, output options, cancel (remote and asyncio), relays, and the bad combinations that must
fail before any request."""

from __future__ import annotations

import asyncio
import base64
import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import jimeng
from jimeng.sandbox import SANDBOX_RELAY_KEY, Sandbox, Stages
from jimeng.sandbox._media import mp4_info, png_size
from tests._images import gif, jpeg, png
from tests.conftest import Sleeps


def sent(sandbox: Sandbox, task_id: str) -> dict[str, Any]:
    """The submit body the sandbox received for a task."""
    return sandbox.server.tasks[task_id].params


def requests(sandbox: Sandbox) -> int:
    return sum(sandbox.server.requests.values())


# -- images: every model ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "kwargs", "req_key", "size"),
    [
        ("jimeng-4.0", {"size": "1K"}, "jimeng_t2i_v40", (1024, 1024)),
        (
            "jimeng-4.6",
            {"width": 2560, "height": 1440, "scale": 60},
            "jimeng_seedream46_cvtob",
            (2560, 1440),
        ),
        ("jimeng-3.1", {"size": "1664x936", "seed": 3}, "jimeng_t2i_v31", (1664, 936)),
        ("jimeng-3.0", {"use_pre_llm": False}, "jimeng_t2i_v30", (1328, 1328)),
        (
            "jimeng-i2i-3.0",
            {"images": ["https://example.com/p.jpg"], "scale": 0.4},
            "jimeng_i2i_v30",
            (1328, 1328),
        ),
    ],
)
async def test_every_image_model(
    client: jimeng.Client,
    sandbox: Sandbox,
    tmp_path: Path,
    model: str,
    kwargs: dict[str, Any],
    req_key: str,
    size: tuple[int, int],
) -> None:
    result = await client.images.generate("a lighthouse at dusk", model=model, **kwargs)
    assert result.model == model
    assert sandbox.server.tasks[result.task_id or ""].model == req_key
    [path] = await result.save(tmp_path)
    assert png_size(path.read_bytes()) == size


async def test_default_image_model_is_4_0(client: jimeng.Client, sandbox: Sandbox) -> None:
    result = await client.images.generate("cat")
    assert result.model == "jimeng-4.0"
    assert sent(sandbox, result.task_id or "") == {"req_key": "jimeng_t2i_v40", "prompt": "cat"}


async def test_i2i_with_a_local_file(
    client: jimeng.Client, sandbox: Sandbox, tmp_path: Path
) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(png(800, 600))
    result = await client.images.generate(
        "watercolour version", model="jimeng-i2i-3.0", images=[photo]
    )
    body = sent(sandbox, result.task_id or "")
    assert "image_urls" not in body
    assert base64.b64decode(body["binary_data_base64"][0], validate=True) == photo.read_bytes()


async def test_4_0_with_bytes_and_base64_results(client: jimeng.Client, sandbox: Sandbox) -> None:
    result = await client.images.generate(
        "two versions, 2 images", images=[png(900, 600), jpeg(600, 900)], return_url=False
    )
    assert len(result.images) == 2
    assert all(image.url is None and image.data for image in result.images)
    assert png_size(result.images[0].data or b"") == (2048, 2048)


async def test_watermark_and_aigc_meta_travel_in_req_json(
    client: jimeng.Client, sandbox: Sandbox
) -> None:
    result = await client.images.generate(
        "cat",
        watermark=jimeng.Watermark(position=jimeng.WatermarkPosition.TOP_LEFT, language=1),
        aigc_meta=jimeng.AigcMeta(producer_id="studio-1"),
    )
    assert result.raw["data"]["logo_applied"] is True


# -- videos: every mode --------------------------------------------------------------------------

FIRST = png(1280, 720, prompt="first")
LAST = png(640, 360, prompt="last")


@pytest.mark.parametrize(
    ("mode", "kwargs", "req_key", "frame"),
    [
        ("ti2v_pro", {"aspect_ratio": "9:16"}, "jimeng_ti2v_v30_pro", (180, 320)),
        ("ti2v_pro", {"image": FIRST}, "jimeng_ti2v_v30_pro", (320, 180)),
        ("t2v_1080p", {"aspect_ratio": "1:1"}, "jimeng_t2v_v30_1080p", (320, 320)),
        ("i2v_first_1080p", {"image": FIRST}, "jimeng_i2v_first_v30_1080", (320, 180)),
        (
            "i2v_first_tail_1080p",
            {"image": FIRST, "tail_image": LAST},
            "jimeng_i2v_first_tail_v30_1080",
            (320, 180),
        ),
        ("t2v_720p", {}, "jimeng_t2v_v30", (320, 180)),
        ("i2v_first_720p", {"image": jpeg(720, 960)}, "jimeng_i2v_first_v30", (240, 320)),
        (
            "i2v_first_tail_720p",
            {"image": FIRST, "tail_image": LAST},
            "jimeng_i2v_first_tail_v30",
            (320, 180),
        ),
        (
            "i2v_recamera_720p",
            {"image": FIRST, "camera": "dynamic_orbit", "camera_strength": "medium"},
            "jimeng_i2v_recamera_v30",
            (320, 180),
        ),
    ],
)
async def test_every_video_mode(
    client: jimeng.Client,
    sandbox: Sandbox,
    tmp_path: Path,
    mode: str,
    kwargs: dict[str, Any],
    req_key: str,
    frame: tuple[int, int],
) -> None:
    clip = await client.videos.generate("slow push in", mode=mode, duration=10, **kwargs)
    assert sandbox.server.tasks[clip.task_id or ""].model == req_key
    assert sent(sandbox, clip.task_id or "")["frames"] == 241
    assert clip.video.duration == 10.0 and clip.video.fps == 24
    assert clip.expires_at is not None
    path = await clip.save(tmp_path / "clip.mp4")
    info = mp4_info(path.read_bytes())
    assert (info.width, info.height, info.frames) == (*frame, 241)


async def test_default_video(client: jimeng.Client, sandbox: Sandbox, tmp_path: Path) -> None:
    clip = await client.videos.generate("a golden retriever running through sunflowers")
    assert sent(sandbox, clip.task_id or "") == {
        "req_key": "jimeng_t2v_v30",
        "prompt": "a golden retriever running through sunflowers",
    }
    assert clip.model == "jimeng-video-3.0"
    assert clip.video.duration == 5.0  # the API's default: 121 frames
    saved = await clip.save(tmp_path)
    assert saved.suffix == ".mp4" and saved.name.startswith("jimeng_")
    assert mp4_info(saved.read_bytes()).frames == 121


async def test_first_frame_from_a_path_and_tail_from_a_url(
    client: jimeng.Client, sandbox: Sandbox, tmp_path: Path
) -> None:
    first = tmp_path / "first.png"
    first.write_bytes(FIRST)
    tail_url = sandbox.server.add_media("refs/last.png", "image/png", lambda: LAST)
    clip = await client.videos.generate(
        "slow push in", mode="i2v_first_tail_1080p", image=first, tail_image=tail_url
    )
    body = sent(sandbox, clip.task_id or "")
    decoded = [base64.b64decode(text, validate=True) for text in body["binary_data_base64"]]
    assert decoded == [FIRST, LAST]
    assert sandbox.server.requests["download"] == 1  # the tail frame, fetched to go inline


async def test_video_aigc_meta_and_watermark(client: jimeng.Client, sandbox: Sandbox) -> None:
    clip = await client.videos.generate(
        "a kite", watermark=True, aigc_meta=jimeng.AigcMeta(producer_id="studio-1")
    )
    assert clip.aigc_meta_tagged is True


async def test_video_polling_follows_the_seed_variables(
    sandbox: Sandbox, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JIMENG_VIDEO_POLL_INTERVAL", "7")
    monkeypatch.setenv("JIMENG_VIDEO_MAX_POLL_ATTEMPTS", "2")
    slow = Sandbox(stages=Stages(queue_polls=1, generate_polls=10))
    async with jimeng.Client(slow, sleep=sleeps) as client:
        with pytest.raises(jimeng.TaskTimeoutError) as info:
            await client.videos.generate("a slow one")
    assert sleeps.calls[0] == 7
    assert len(sleeps.calls) == 2
    assert info.value.task_id in slow.server.tasks


async def test_video_endpoint_override(
    sandbox: Sandbox, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jimeng.sandbox import SANDBOX_ACCESS_KEY, SANDBOX_SECRET_KEY

    async with jimeng.Client(sandbox, sleep=sleeps):  # starts the server
        monkeypatch.setenv("JIMENG_API_URL", "http://127.0.0.1:9")  # nothing listens there
        monkeypatch.setenv("JIMENG_VIDEO_API_URL", sandbox.server.url)
        backend = jimeng.Volcengine(SANDBOX_ACCESS_KEY, SANDBOX_SECRET_KEY)
        async with jimeng.Client(backend, sleep=sleeps) as client:
            clip = await client.videos.generate("video goes to the video endpoint")
            assert clip.task_id in sandbox.server.tasks
            with pytest.raises(jimeng.APIConnectionError):
                await client.images.submit("images do not", extra_body=None)


# -- cancel ------------------------------------------------------------------------------------


async def test_cancel_a_queued_task(client: jimeng.Client, sandbox: Sandbox) -> None:
    handle = await client.videos.submit("never mind")
    task = await handle.cancel()
    assert task.status is jimeng.TaskStatus.CANCELLED
    assert sandbox.server.requests["cancel"] == 1
    assert sandbox.server.tasks[handle.id].cancelled
    with pytest.raises(jimeng.TaskCancelledError) as info:
        await handle.result()
    assert info.value.task_id == handle.id
    assert sandbox.server.requests["poll"] == 0


async def test_cancel_by_ref(client: jimeng.Client, sandbox: Sandbox) -> None:
    handle = await client.videos.submit("never mind", mode="ti2v_pro")
    task = await client.tasks.cancel(handle.ref)
    assert (task.status, task.id, task.kind) == (
        jimeng.TaskStatus.CANCELLED,
        handle.id,
        jimeng.TaskKind.VIDEO,
    )
    # a cancelled task is no longer known to get-result (§2.3 has no "cancelled" state)
    assert (await client.tasks.get(handle.ref)).status is jimeng.TaskStatus.EXPIRED


async def test_cancel_by_bare_id_and_model(client: jimeng.Client, sandbox: Sandbox) -> None:
    handle = await client.images.submit("never mind", model="jimeng-3.1")
    task = await client.tasks.cancel(handle.id, model="jimeng-3.1")
    assert task.status is jimeng.TaskStatus.CANCELLED


async def test_cancel_a_running_task_is_refused_with_its_id(sleeps: Sleeps) -> None:
    slow = Sandbox(stages=Stages(queue_polls=0, generate_polls=5))
    async with jimeng.Client(slow, sleep=sleeps) as client:
        handle = await client.videos.submit("too late")
        await handle.refresh()
        assert handle.status is jimeng.TaskStatus.RUNNING
        with pytest.raises(jimeng.TaskNotCancellableError) as info:
            await handle.cancel()
        error = info.value
        assert error.task_id == handle.id and error.task_ref == handle.ref
        assert error.status == "generating"
        assert error.code == 50200 and error.status_code == 400
        assert not slow.server.tasks[handle.id].cancelled
        # it keeps running and can still be waited for
        clip = await client.tasks.wait(handle.ref)
        assert clip.url


async def test_asyncio_cancellation_keeps_the_task_id(sandbox: Sandbox) -> None:
    waiting = asyncio.Event()

    async def stuck(seconds: float) -> None:
        waiting.set()
        await asyncio.Event().wait()

    async with jimeng.Client(sandbox, sleep=stuck, rng=random.Random(0)) as client:
        job = asyncio.create_task(client.videos.generate("a long one"))
        await waiting.wait()
        job.cancel()
        with pytest.raises(asyncio.CancelledError) as info:
            await job
        error: Any = info.value
        assert error.task_id in sandbox.server.tasks
        assert error.task_ref == f"jimeng_t2v_v30:{error.task_id}"
        # the paid task is still there: resume it
        resumed = client.tasks.resume(error.task_ref)
        assert (await resumed.refresh()).kind is jimeng.TaskKind.VIDEO


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is 3.11+")
async def test_timeout_wrapper_keeps_the_task_id_on_the_cause(sandbox: Sandbox) -> None:
    async def stuck(seconds: float) -> None:
        deadline.reschedule(asyncio.get_running_loop().time())  # time is up right now
        await asyncio.Event().wait()

    async with jimeng.Client(sandbox, sleep=stuck) as client:
        with pytest.raises(TimeoutError) as info:
            async with asyncio.timeout(None) as deadline:
                await client.images.generate("a slow cat")
    cause: Any = info.value.__cause__
    assert isinstance(cause, asyncio.CancelledError)
    assert cause.task_id in sandbox.server.tasks


async def test_on_submit_sees_the_task_first(client: jimeng.Client) -> None:
    seen: list[str] = []
    clip = await client.videos.generate("a kite", on_submit=lambda task: seen.append(task.id))
    assert seen == [clip.task_id]


# -- bad combinations: typed errors before any request ---------------------------------------------

BIG = png(640, 360, pad=3_800_000)  # 4.8 MiB of base64 once encoded


@pytest.mark.parametrize(
    ("call", "kwargs", "field"),
    [
        ("videos", {"mode": "i2v_first_720p"}, "image"),
        ("videos", {"mode": "t2v_720p", "image": FIRST}, "image"),
        ("videos", {"mode": "i2v_first_tail_720p", "image": FIRST}, "tail_image"),
        ("videos", {"mode": "i2v_first_1080p", "image": FIRST, "tail_image": LAST}, "tail_image"),
        (
            "videos",
            {"mode": "i2v_first_720p", "image": FIRST, "aspect_ratio": "16:9"},
            "aspect_ratio",
        ),
        ("videos", {"mode": "ti2v_pro", "image": FIRST, "ratio": "1:1"}, "aspect_ratio"),
        ("videos", {"duration": 4}, "duration"),
        ("videos", {"duration": 8}, "duration"),
        ("videos", {"fps": 30}, "fps"),
        ("videos", {"frames": 100}, "frames"),
        ("videos", {"mode": "i2v_first_720p", "image": BIG}, "image"),
        ("videos", {"mode": "i2v_first_720p", "image": gif()}, "image"),
        ("videos", {"mode": "i2v_first_720p", "image": png(400, 300)}, "image"),
        (
            "videos",
            {"mode": "i2v_first_tail_720p", "image": FIRST, "tail_image": png(360, 640)},
            "tail_image",
        ),
        (
            "videos",
            {
                "mode": "i2v_recamera_720p",
                "image": FIRST,
                "camera": "spin",
                "camera_strength": "weak",
            },
            "camera",
        ),
        (
            "videos",
            {"mode": "i2v_recamera_720p", "image": FIRST, "camera": "robo_arm"},
            "camera_strength",
        ),
        ("videos", {"mode": "hd"}, "mode"),
        ("videos", {"return_url": False}, "return_url"),
        ("images", {"model": "jimeng-i2i-3.0"}, "images"),
        ("images", {"model": "jimeng-i2i-3.0", "images": [FIRST, LAST]}, "images"),
        ("images", {"model": "jimeng-3.1", "images": [FIRST]}, "images"),
        ("images", {"model": "jimeng-4.0", "seed": 5}, "seed"),
        ("images", {"model": "jimeng-4.6", "scale": 0.5}, "scale"),
        ("images", {"model": "jimeng-3.0", "ratio": "5:4"}, "ratio"),
        ("images", {"model": "jimeng-4.0", "images": [gif()]}, "images[0]"),
        ("images", {"model": "jimeng-4.0", "images": [jpeg(pad=16 * 1024 * 1024)]}, "images[0]"),
        ("images", {"model": "jimeng-i2i-3.0", "images": [BIG]}, "images[0]"),
        ("images", {"model": "midjourney"}, "model"),
    ],
)
async def test_bad_combinations_fail_before_any_request(
    client: jimeng.Client, sandbox: Sandbox, call: str, kwargs: dict[str, Any], field: str
) -> None:
    resource = client.videos if call == "videos" else client.images
    with pytest.raises(jimeng.ValidationError) as info:
        await resource.generate("p", **kwargs)
    assert info.value.field == field
    assert requests(sandbox) == 0


async def test_oversized_local_file_fails_before_any_request(
    client: jimeng.Client, sandbox: Sandbox, tmp_path: Path
) -> None:
    frame = tmp_path / "huge.png"
    frame.write_bytes(BIG)
    with pytest.raises(jimeng.ValidationError) as info:
        await client.videos.generate("p", image=frame)
    assert info.value.field == "image"
    assert "4.7 MB" in str(info.value)
    with pytest.raises(jimeng.ValidationError, match="no such file"):
        await client.videos.generate("p", image=tmp_path / "missing.png")
    assert requests(sandbox) == 0


# -- the sandbox checks what the server checks -------------------------------------------------


@pytest.mark.parametrize(
    ("call", "kwargs", "words"),
    [
        ("videos", {"extra_body": {"frames": 100}}, "frames"),
        (
            "videos",
            {"mode": "i2v_first_720p", "image": FIRST, "extra_body": {"aspect_ratio": "1:1"}},
            "aspect_ratio",
        ),
        (
            "videos",
            {"extra_body": {"binary_data_base64": ["data:image/png;base64,AAAA"]}},
            "images",
        ),
        (
            "videos",
            {
                "mode": "i2v_first_720p",
                "image": FIRST,
                "extra_body": {"binary_data_base64": ["data:x"]},
            },
            "Decode",
        ),
        ("images", {"model": "jimeng-4.0", "extra_body": {"seed": 1}}, "unknown field"),
        ("images", {"model": "jimeng-4.6", "extra_body": {"scale": 0.5}}, "scale"),
        ("images", {"model": "jimeng-3.0", "extra_body": {"width": 4096, "height": 4096}}, "512"),
        ("images", {"model": "jimeng-4.0", "extra_body": {"req_key": "jimeng_t2i_v99"}}, "req_key"),
    ],
)
async def test_sandbox_rejects_what_the_server_rejects(
    client: jimeng.Client, call: str, kwargs: dict[str, Any], words: str
) -> None:
    resource = client.videos if call == "videos" else client.images
    with pytest.raises(jimeng.InvalidRequestError) as info:
        await resource.generate("p", **kwargs)
    assert words in str(info.value)
    assert info.value.code in (50200, 50207)


async def test_moderated_video_output(client: jimeng.Client) -> None:
    with pytest.raises(jimeng.ContentPolicyError) as info:
        await client.videos.generate("sandbox:block-output")
    assert info.value.code == 50516
    assert info.value.task_id


# -- relays of the official format ---------------------------------------------------------------


@pytest.fixture
async def relay(sleeps: Sleeps) -> AsyncIterator[tuple[jimeng.Client, Sandbox]]:
    sandbox = Sandbox(protocol="volcengine-relay", stages=Stages(queue_polls=1, generate_polls=1))
    async with jimeng.Client(sandbox, sleep=sleeps) as client:
        yield client, sandbox


async def test_relay_image_round_trip(relay: tuple[jimeng.Client, Sandbox], tmp_path: Path) -> None:
    client, sandbox = relay
    words: list[str | None] = []
    result = await client.images.generate(
        "a white Siamese cat", size="2K", on_update=lambda task: words.append(task.raw_status)
    )
    assert words == ["submitted", "generating", "success"]
    assert sent(sandbox, result.task_id or "") == {
        "req_key": "jimeng_t2i_v40",
        "prompt": "a white Siamese cat",
        "resolution": "2k",
        "model": "jimeng-4.0",
    }
    assert len(result.task_id or "") == 36  # relays hand out UUIDs
    [path] = await result.save(tmp_path)
    assert png_size(path.read_bytes()) == (2048, 2048)


async def test_relay_video_and_other_models(relay: tuple[jimeng.Client, Sandbox]) -> None:
    client, sandbox = relay
    clip = await client.videos.generate("a kite", mode="t2v_1080p", duration=5)
    assert clip.url and sent(sandbox, clip.task_id or "")["frames"] == 121
    result = await client.images.generate("cat", model="jimeng-3.1", seed=1)
    assert "model" not in sent(sandbox, result.task_id or "")  # extras only where documented


async def test_relay_failures(relay: tuple[jimeng.Client, Sandbox]) -> None:
    client, sandbox = relay
    with pytest.raises(jimeng.ContentPolicyError) as info:
        await client.images.generate("sandbox:block-output")
    assert info.value.task_id and info.value.code == 50511
    before = requests(sandbox)
    handle = await client.images.submit("cat")
    with pytest.raises(jimeng.NotSupportedError):
        await handle.cancel()
    assert requests(sandbox) == before + 1  # the submit only


async def test_relay_rejects_a_wrong_key(relay: tuple[jimeng.Client, Sandbox]) -> None:
    _, sandbox = relay
    wrong = jimeng.Volcengine(api_key="sk-wrong", endpoint=sandbox.server.url + "/jm")
    async with jimeng.Client(wrong) as client:
        with pytest.raises(jimeng.AuthenticationError) as info:
            await client.images.submit("cat")
    assert info.value.status_code == 401
    assert "sk-wrong" not in str(info.value)
    assert SANDBOX_RELAY_KEY not in repr(sandbox)


async def test_relay_tasks_are_not_the_official_apis(relay: tuple[jimeng.Client, Sandbox]) -> None:
    from jimeng.sandbox import SANDBOX_ACCESS_KEY, SANDBOX_SECRET_KEY

    client, sandbox = relay
    handle = await client.images.submit("cat")
    assert (await client.tasks.get(handle.ref)).raw_status == "submitted"
    official = jimeng.Volcengine(
        SANDBOX_ACCESS_KEY, SANDBOX_SECRET_KEY, endpoint=sandbox.server.url
    )
    async with jimeng.Client(official) as other:
        assert (await other.tasks.get(handle.ref)).status is jimeng.TaskStatus.EXPIRED
