"""Seedream images and Seedance videos through the Ark backend, end to end against the sandbox:
bodies on the wire, real media, usage, pagination, cancel rules, typed failures carrying the
task id, bad input refused before any request, and no resent create after an ambiguous failure."""

from __future__ import annotations

import base64
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import jimeng
from jimeng.sandbox import SANDBOX_ARK_KEY, Sandbox, Stages
from jimeng.sandbox._media import mp4_info, png_size
from tests._images import png
from tests._servers import loopback
from tests.conftest import Sleeps


@pytest.fixture
def ark() -> Sandbox:
    return Sandbox("ark", stages=Stages(queue_polls=1, generate_polls=1))


@pytest.fixture
async def client(ark: Sandbox, sleeps: Sleeps) -> AsyncIterator[jimeng.Client]:
    async with jimeng.Client(ark, sleep=sleeps, rng=random.Random(0)) as client:
        yield client


def image_bodies(ark: Sandbox) -> list[dict[str, Any]]:
    return ark.server.protocol("ark").image_bodies  # type: ignore[no-any-return]


def requests(ark: Sandbox) -> int:
    return sum(ark.server.requests.values())


# -- images ------------------------------------------------------------------------------------


async def test_image_preset_sends_model_id_and_saves_a_png(
    client: jimeng.Client, ark: Sandbox, tmp_path: Path
) -> None:
    result = await client.images.generate("a lighthouse at dusk", model="seedream-4.5", size="2K")

    assert image_bodies(ark) == [
        {
            "model": "doubao-seedream-4-5-251128",
            "prompt": "a lighthouse at dusk",
            "size": "2K",
            "watermark": False,  # Ark marks by default; the library's default is no mark
        }
    ]
    assert result.model == "seedream-4.5" and result.backend == "ark"
    assert result.task_id is not None and result.task_id.startswith("sync-")
    assert result.usage == {"generated_images": 1, "output_tokens": 16384, "total_tokens": 16384}
    [path] = await result.save(tmp_path / "out/")
    assert png_size(path.read_bytes()) == (2048, 2048)
    assert ark.server.requests["submit"] == 1


async def test_ratio_and_resolution_become_an_exact_size(
    client: jimeng.Client, ark: Sandbox
) -> None:
    result = await client.images.generate("a dune", ratio="16:9", resolution="1K")

    assert image_bodies(ark)[-1]["size"] == "1366x768"  # the recommended 1K 16:9 size
    assert image_bodies(ark)[-1]["model"] == "doubao-seedream-4-0-250828"  # the default model
    assert (result.images[0].width, result.images[0].height) == (1366, 768)
    assert result.notes == ()


@pytest.mark.parametrize(
    ("kwargs", "sent", "note"),
    [
        (
            {"model": "seedream-4.5", "size": "1K"},
            "2K",
            "size 1K is not offered by seedream-4.5: asked for 2K",
        ),
        (
            {"model": "seedream-4.5", "size": "1280x720"},
            "2560x1440",
            "size 1280x720 scaled to 2560x1440: seedream-4.5 takes 3686400 to 16777216 pixels",
        ),
        ({"model": "seedream-3.0", "size": "2K"}, "2048x2048", None),
        (
            {"model": "seedream-3.0", "size": "4K"},
            "2048x2048",
            "size 4K (4096x4096) scaled to 2048x2048: seedream-3.0 takes each side within "
            "[512, 2048]",
        ),
    ],
)
async def test_sizes_a_model_lacks_are_approximated_with_a_note(
    client: jimeng.Client, ark: Sandbox, kwargs: dict[str, Any], sent: str, note: str | None
) -> None:
    result = await client.images.generate("a dune", **kwargs)

    assert image_bodies(ark)[-1]["size"] == sent
    assert result.notes == ((note,) if note else ())


async def test_group_generation_caps_the_count_at_max_images(
    client: jimeng.Client, ark: Sandbox
) -> None:
    result = await client.images.generate(
        "5 images of a lighthouse through the seasons",
        size="1280x720",
        max_images=3,
        response_format="b64_json",
    )

    body = image_bodies(ark)[-1]
    assert body["sequential_image_generation"] == "auto"
    assert body["sequential_image_generation_options"] == {"max_images": 3}
    assert body["response_format"] == "b64_json"
    assert len(result.images) == 3
    assert all(image.url is None and image.data for image in result.images)
    assert [png_size(image.data or b"") for image in result.images] == [(1280, 720)] * 3
    assert result.usage == {
        "generated_images": 3,
        "output_tokens": 3 * 1280 * 720 // 256,
        "total_tokens": 3 * 1280 * 720 // 256,
    }


async def test_reference_images_travel_as_data_uris_and_urls(
    client: jimeng.Client, ark: Sandbox, tmp_path: Path
) -> None:
    local = tmp_path / "ref.png"
    local.write_bytes(png(640, 360))

    await client.images.generate(
        "the same cat in winter", images=[local, "https://example.com/cat.jpg"], watermark=True
    )

    body = image_bodies(ark)[-1]
    first, second = body["image"]
    assert first == "data:image/png;base64," + base64.b64encode(png(640, 360)).decode()
    assert second == "https://example.com/cat.jpg"
    assert body["watermark"] is True


async def test_output_moderation_is_a_content_policy_error_with_the_id(
    client: jimeng.Client,
) -> None:
    with pytest.raises(jimeng.ContentPolicyError) as caught:
        await client.images.generate("sandbox:block-output a street")

    assert caught.value.code == "OutputImageSensitiveContentDetected"
    assert caught.value.task_id is not None and caught.value.task_id.startswith("sync-")


async def test_input_moderation_refuses_the_request(client: jimeng.Client, ark: Sandbox) -> None:
    with pytest.raises(jimeng.ContentPolicyError) as caught:
        await client.images.generate("sandbox:block-input a street")

    assert caught.value.status_code == 400
    assert caught.value.code == "InputTextSensitiveContentDetected"
    assert caught.value.request_id  # parsed from the header
    assert caught.value.task_id is None  # nothing was accepted


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"size": "4096x200"}, "size"),  # ratio beyond 16
        ({"ratio": "5:4"}, "ratio"),
        ({"model": "seededit-3.0", "images": ["https://e.com/a.png"], "size": "2K"}, "size"),
        ({"max_images": 16}, "max_images"),
        ({"negative_prompt": "blur"}, "negative_prompt"),
        ({"seed": 3}, "seed"),  # 4.x ignores seeds: refused rather than dropped
        ({"model": "seededit-3.0"}, "images"),  # needs exactly one image
        ({"model": "ep-20250101-abc"}, "model"),
        ({"callback_url": "https://example.com/hook"}, "callback_url"),
        ({"watermark": jimeng.Watermark(text="mine")}, "watermark"),
    ],
)
async def test_bad_image_input_fails_before_any_request(
    client: jimeng.Client, ark: Sandbox, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(jimeng.ValidationError) as caught:
        await client.images.generate("a cat", **kwargs)

    assert caught.value.field == field
    assert requests(ark) == 0


# -- videos ------------------------------------------------------------------------------------


async def test_text_to_video_task_runs_to_an_mp4_of_the_duration(
    client: jimeng.Client, ark: Sandbox, tmp_path: Path
) -> None:
    seen: list[str] = []
    clip = await client.videos.generate(
        "a fox running in snow",
        model="seedance-1.0-pro",
        duration=5,
        ratio="16:9",
        seed=7,
        camera_fixed=True,
        on_update=lambda task: seen.append(task.status.value),
    )

    task = ark.server.tasks[clip.task_id or ""]
    assert task.params == {
        "model": "doubao-seedance-1-0-pro-250528",
        "content": [{"type": "text", "text": "a fox running in snow"}],
        "duration": 5,
        "ratio": "16:9",
        "seed": 7,
        "camera_fixed": True,
    }
    assert seen == ["queued", "running", "succeeded"]
    assert clip.model == "seedance-1.0-pro"
    assert clip.usage is not None and clip.usage["total_tokens"] > 0
    path = await clip.save(tmp_path / "fox.mp4")
    info = mp4_info(path.read_bytes())
    assert info.duration == pytest.approx(5.0)
    assert (info.width, info.height) == (320, 180)


async def test_frames_and_references_use_the_content_roles(
    client: jimeng.Client, ark: Sandbox
) -> None:
    first, last = png(640, 360, prompt="a"), png(640, 360, prompt="b")
    clip = await client.videos.generate(
        "the flower opens", image=first, tail_image=last, resolution="720p"
    )
    roles = [item.get("role") for item in ark.server.tasks[clip.task_id or ""].params["content"]]
    assert roles == [None, "first_frame", "last_frame"]

    clip = await client.videos.generate(
        "the dog from these photos surfs",
        model="seedance-1.0-lite-i2v",
        reference_images=["https://example.com/d1.png", "https://example.com/d2.png"],
    )
    content = ark.server.tasks[clip.task_id or ""].params["content"]
    assert [item.get("role") for item in content] == [None, "reference_image", "reference_image"]
    assert content[1]["image_url"] == {"url": "https://example.com/d1.png"}


async def test_failed_video_task_raises_with_its_id(client: jimeng.Client) -> None:
    with pytest.raises(jimeng.ContentPolicyError) as caught:
        await client.videos.generate("sandbox:block-output a street")
    assert caught.value.task_id is not None and caught.value.task_id.startswith("cgt-")
    assert caught.value.code == "OutputVideoSensitiveContentDetected"

    with pytest.raises(jimeng.TaskFailedError) as failed:
        await client.videos.generate("sandbox:fail a street")
    assert failed.value.task_id is not None and failed.value.task_id.startswith("cgt-")
    assert failed.value.code == "InternalServiceError"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"duration": 20}, "duration"),
        ({"duration": 5.5}, "duration"),
        (
            {"model": "seedance-1.0-pro", "reference_images": ["https://e.com/a.png"]},
            "reference_images",
        ),
        ({"model": "seedance-2.0-fast", "resolution": "1080p"}, "resolution"),
        ({"model": "seedance-1.0-lite-i2v"}, "image"),
        ({"mode": "t2v_720p"}, "mode"),
        ({"frames": 30}, "frames"),
        ({"fps": 30}, "fps"),
        ({"model": "seedance-1.0-pro", "generate_audio": True}, "generate_audio"),
        ({"tail_image": "https://e.com/b.png"}, "image"),
        ({"image": png(200, 200)}, "image"),  # short side below 300 px
    ],
)
async def test_bad_video_input_fails_before_any_request(
    client: jimeng.Client, ark: Sandbox, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(jimeng.ValidationError) as caught:
        await client.videos.generate("a fox", **kwargs)

    assert caught.value.field == field
    assert requests(ark) == 0


async def test_list_pages_until_the_limit(client: jimeng.Client, ark: Sandbox) -> None:
    ids = [(await client.videos.submit(f"clip {n}", duration=2)).id for n in range(5)]

    listed = await client.tasks.list(limit=3)
    assert [task.id for task in listed] == ids[::-1][:3]
    assert ark.server.requests["list"] == 1  # one page of 3

    everything = await client.tasks.list()
    assert {task.id for task in everything} == set(ids)
    assert all(task.status is jimeng.TaskStatus.QUEUED for task in everything)
    assert await client.tasks.list(kind="image") == []


async def test_list_walks_pages_when_the_server_caps_them(
    client: jimeng.Client, ark: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jimeng.backends.ark import _wire

    monkeypatch.setattr(_wire, "MAX_PAGE_SIZE", 2)
    ids = [(await client.videos.submit(f"clip {n}", duration=2)).id for n in range(5)]

    listed = await client.tasks.list()
    assert [task.id for task in listed] == ids[::-1]
    assert ark.server.requests["list"] == 3  # pages of 2, 2 and 1


async def test_cancel_follows_the_delete_rules(client: jimeng.Client, ark: Sandbox) -> None:
    queued = await client.videos.submit("a queued clip")
    cancelled = await queued.cancel()
    assert cancelled.status is jimeng.TaskStatus.CANCELLED
    assert ark.server.requests["cancel"] == 1
    with pytest.raises(jimeng.TaskCancelledError):
        await client.tasks.wait(queued.ref)

    done = await client.videos.generate("a finished clip")
    with pytest.raises(jimeng.TaskNotCancellableError) as caught:
        await client.tasks.cancel(done.task_id or "")
    assert caught.value.status == "succeeded"
    assert ark.server.requests["cancel"] == 1  # no DELETE: it would delete the record
    assert (await client.tasks.get(done.task_id or "")).status is jimeng.TaskStatus.SUCCEEDED


async def test_cancel_of_a_running_task_is_refused_without_a_delete(
    client: jimeng.Client, ark: Sandbox
) -> None:
    handle = await client.videos.submit("a running clip")
    await handle.refresh()  # queued (poll 1)
    await handle.refresh()  # running (poll 2)
    assert handle.status is jimeng.TaskStatus.RUNNING

    with pytest.raises(jimeng.TaskNotCancellableError) as caught:
        await handle.cancel()
    assert caught.value.task_id == handle.id
    assert ark.server.requests["cancel"] == 0


async def test_resume_in_another_client(sleeps: Sleeps) -> None:
    from jimeng.sandbox import build_server

    async with build_server(stages=Stages(queue_polls=1)) as server:
        async with jimeng.Client(Sandbox("ark", url=server.url), sleep=sleeps) as first:
            handle = await first.videos.submit("resumable", duration=3)
        async with jimeng.Client(Sandbox("ark", url=server.url), sleep=sleeps) as second:
            clip = await second.tasks.wait(handle.ref)
    assert clip.task_id == handle.id
    assert clip.video.duration == 3.0


# -- transport rules -----------------------------------------------------------------------------


async def test_a_create_is_not_resent_after_an_ambiguous_failure(
    client: jimeng.Client, ark: Sandbox
) -> None:
    ark.server.inject("submit", "reset")
    with pytest.raises(jimeng.APIConnectionError):
        await client.videos.submit("a fox")
    assert ark.server.requests["submit"] == 1

    ark.server.inject("submit", status=500)
    with pytest.raises(jimeng.ServerError) as caught:
        await client.videos.submit("a fox")
    assert caught.value.code == "InternalServiceError"
    assert ark.server.requests["submit"] == 2


async def test_a_refused_create_is_resent_after_the_wait(
    client: jimeng.Client, ark: Sandbox, sleeps: Sleeps
) -> None:
    ark.server.inject("submit", status=429, retry_after=3)

    handle = await client.videos.submit("a fox")

    assert handle.id.startswith("cgt-")
    assert ark.server.requests["submit"] == 2
    assert sleeps.calls == [3.0]


async def test_polls_retry_server_errors(client: jimeng.Client, ark: Sandbox) -> None:
    ark.server.inject("poll", status=500, times=2)
    clip = await client.videos.generate("a fox")
    assert clip.task_id is not None
    assert ark.server.requests["poll"] == 3 + 2


async def test_a_wrong_key_is_an_authentication_error_without_the_key(ark: Sandbox) -> None:
    async with ark.server:
        backend = jimeng.Ark(
            "ark-wrong-key-123456", base_url=ark.server.url + "/ark/api/v3", allow_http=True
        )
        async with jimeng.Client(backend) as client:
            with pytest.raises(jimeng.AuthenticationError) as caught:
                await client.images.generate("a cat")
    assert caught.value.status_code == 401
    assert "ark-wrong-key-123456" not in str(caught.value)
    assert "ark-wrong-key-123456" not in repr(backend)
    assert SANDBOX_ARK_KEY not in repr(Sandbox("ark"))


async def test_callbacks_post_the_task_on_each_status_change(
    client: jimeng.Client, ark: Sandbox
) -> None:
    from aiohttp import web

    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with loopback(app) as base:
        clip = await client.videos.generate(
            "a fox", duration=2, callback_url=f"{base}/hook?secret=s3"
        )
        protocol = ark.server.protocol("ark")
        await protocol.callbacks.flush()

    assert ark.server.tasks[clip.task_id or ""].params["callback_url"].endswith("?secret=s3")
    assert [body["status"] for body in received] == ["queued", "running", "succeeded"]
    assert received[-1]["content"]["video_url"] == clip.url
    assert [c.outcome for c in protocol.callbacks.sent] == ["delivered"] * 3


async def test_a_non_json_poll_answer_is_retried(client: jimeng.Client, ark: Sandbox) -> None:
    ark.server.inject("poll", "non_json", status=200)
    clip = await client.videos.generate("a fox", duration=2)
    assert clip.task_id is not None
    assert ark.server.requests["poll"] == 3 + 1
