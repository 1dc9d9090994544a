"""The rest of the Jimeng family on the Volcengine visual API, end to end against the sandbox:
edit (inpaint, remove), upscale, outpaint, motion imitation, the OmniHuman two-step avatar and
video translation — what travels on the wire, real media back, polling defaults, typed
failures carrying the task id, and bad input refused before any request."""

from __future__ import annotations

import base64
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import jimeng
from jimeng.sandbox import Sandbox, Stages
from jimeng.sandbox._media import mp4_info, png_size
from tests._images import png
from tests._servers import loopback
from tests.conftest import Sleeps

IMAGE = png(640, 360, prompt="photo")
MASK = png(640, 360, prompt="mask")
PORTRAIT = "https://example.com/portrait.png"


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(stages=Stages(queue_polls=1, generate_polls=1))


@pytest.fixture
async def client(sandbox: Sandbox, sleeps: Sleeps) -> AsyncIterator[jimeng.Client]:
    async with jimeng.Client(sandbox, sleep=sleeps, rng=random.Random(0)) as client:
        yield client


def sent(sandbox: Sandbox, task_id: str | None) -> dict[str, Any]:
    return sandbox.server.tasks[task_id or ""].params


def requests(sandbox: Sandbox) -> int:
    return sum(sandbox.server.requests.values())


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- images ------------------------------------------------------------------------------------


async def test_edit_sends_image_and_mask_and_saves_the_repainted_png(
    client: jimeng.Client, sandbox: Sandbox, sleeps: Sleeps, tmp_path: Path
) -> None:
    result = await client.images.edit("a red scarf", image=IMAGE, mask=MASK, seed=7)

    assert sent(sandbox, result.task_id) == {
        "req_key": "jimeng_image2image_dream_inpaint",
        "binary_data_base64": [b64(IMAGE), b64(MASK)],
        "prompt": "a red scarf",
        "seed": 7,
    }
    assert result.model == "jimeng-inpaint"
    [path] = await result.save(tmp_path / "edit/")
    assert png_size(path.read_bytes()) == (640, 360)
    assert sleeps.calls == pytest.approx([2.0, 2.4, 2.88])  # §3.4.7: 2–3 s for image edits


async def test_remove_mode_is_the_literal_prompt(client: jimeng.Client, sandbox: Sandbox) -> None:
    result = await client.images.edit(
        jimeng.REMOVE_PROMPT,
        image="https://example.com/a.jpg",
        mask="https://example.com/a-mask.png",
    )
    body = sent(sandbox, result.task_id)
    assert body["prompt"] == "删除"
    assert body["image_urls"] == ["https://example.com/a.jpg", "https://example.com/a-mask.png"]


async def test_a_mask_of_another_size_is_refused_before_the_network(
    client: jimeng.Client, sandbox: Sandbox
) -> None:
    with pytest.raises(jimeng.ValidationError) as caught:
        await client.images.edit("x", image=IMAGE, mask=png(320, 180))
    assert caught.value.field == "mask"
    assert "640x360" in str(caught.value)
    assert requests(sandbox) == 0


async def test_upscale_to_8k_keeps_the_aspect(
    client: jimeng.Client, sandbox: Sandbox, tmp_path: Path
) -> None:
    result = await client.images.upscale(IMAGE, resolution="8K", detail=80)

    body = sent(sandbox, result.task_id)
    assert (body["resolution"], body["scale"]) == ("8k", 80)
    [path] = await result.save(tmp_path / "big.png")
    assert png_size(path.read_bytes()) == (8192, 4608)


async def test_outpaint_adds_the_fractions_on_each_side(
    client: jimeng.Client, sandbox: Sandbox
) -> None:
    result = await client.images.outpaint(IMAGE, left=0.5, right=0.5, prompt="more beach")

    body = sent(sandbox, result.task_id)
    assert {k: body[k] for k in ("left", "right", "prompt")} == {
        "left": 0.5,
        "right": 0.5,
        "prompt": "more beach",
    }
    assert "top" not in body and "bottom" not in body
    assert png_size(await result.images[0].read()) == (1280, 360)


async def test_outpaint_with_a_canvas_and_mask(client: jimeng.Client, sandbox: Sandbox) -> None:
    result = await client.images.outpaint(IMAGE, mask=MASK)
    assert sent(sandbox, result.task_id)["binary_data_base64"] == [b64(IMAGE), b64(MASK)]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.images.upscale(IMAGE, resolution="16k"), "resolution"),
        (lambda c: c.images.upscale(IMAGE, detail=101), "detail"),
        (lambda c: c.images.upscale(png(1500, 400)), "image"),  # beyond 3:1
        (lambda c: c.images.outpaint(IMAGE), "left"),  # nothing to extend
        (lambda c: c.images.outpaint(IMAGE, left=1.5), "left"),
        (lambda c: c.images.outpaint(IMAGE, left=0.2, mask=MASK), "mask"),
        (lambda c: c.images.edit("x" * 801, image=IMAGE, mask=MASK), "prompt"),
        (
            lambda c: c.images.edit("x", image=png(640, 360, pad=5 * 1024 * 1024), mask=MASK),
            "image",
        ),
    ],
)
async def test_bad_image_edits_fail_before_the_network(
    client: jimeng.Client, sandbox: Sandbox, call: Any, field: str
) -> None:
    with pytest.raises(jimeng.ValidationError) as caught:
        await call(client)
    assert caught.value.field == field
    assert requests(sandbox) == 0


async def test_failed_edits_raise_with_the_task_id(client: jimeng.Client) -> None:
    with pytest.raises(jimeng.ContentPolicyError) as caught:
        await client.images.edit("sandbox:block-output", image=IMAGE, mask=MASK)
    assert caught.value.task_id is not None and caught.value.code == 50511

    with pytest.raises(jimeng.TaskFailedError) as failed:
        await client.images.upscale("https://example.com/sandbox:fail.png")
    assert failed.value.task_id is not None and failed.value.code == 50500


# -- motion imitation --------------------------------------------------------------------------


async def test_motion_2_sends_the_image_inline_and_returns_the_driving_length(
    client: jimeng.Client, sandbox: Sandbox, sleeps: Sleeps, tmp_path: Path
) -> None:
    portrait = png(720, 960, prompt="me")
    clip = await client.videos.imitate_motion(
        image=portrait, video="https://example.com/dance_8s.mp4", trim_start=False
    )

    assert sent(sandbox, clip.task_id) == {
        "req_key": "jimeng_dreamactor_m20_gen_video",
        "binary_data_base64": [b64(portrait)],
        "video_url": "https://example.com/dance_8s.mp4",
        "cut_result_first_second_switch": False,
    }
    assert clip.model == "motion-2.0"
    info = mp4_info((await clip.save(tmp_path / "dance.mp4")).read_bytes())
    assert info.duration == pytest.approx(8.0)
    assert info.width < info.height  # follows the portrait
    assert sleeps.calls == pytest.approx([5.0, 6.0, 7.2])  # §3.4.7: 5–10 s for motion


async def test_motion_1_takes_urls_only(client: jimeng.Client, sandbox: Sandbox) -> None:
    clip = await client.videos.imitate_motion(
        image=PORTRAIT, video="https://example.com/walk.mp4", model="motion-1.0"
    )
    assert sent(sandbox, clip.task_id) == {
        "req_key": "jimeng_dream_actor_m1_gen_video_cv",
        "image_url": PORTRAIT,
        "video_url": "https://example.com/walk.mp4",
    }

    with pytest.raises(jimeng.ValidationError) as caught:
        await client.videos.imitate_motion(
            image=png(720, 960), video="https://example.com/walk.mp4", model="1.0"
        )
    assert caught.value.field == "image" and "URL" in caught.value.message


async def test_a_local_driving_video_is_refused_naming_the_url_rule(
    client: jimeng.Client, sandbox: Sandbox, tmp_path: Path
) -> None:
    local = tmp_path / "dance.mp4"
    local.write_bytes(b"not sent")
    with pytest.raises(jimeng.ValidationError) as caught:
        await client.videos.imitate_motion(image=png(720, 960), video=local)
    assert caught.value.field == "video"
    assert "public http(s) URL" in caught.value.message
    assert requests(sandbox) == 0


async def test_motion_tasks_can_be_cancelled_while_queued(
    client: jimeng.Client, sandbox: Sandbox
) -> None:
    handle = await client.videos.submit_imitate_motion(
        image=PORTRAIT, video="https://example.com/d.mp4"
    )
    cancelled = await handle.cancel()
    assert cancelled.status is jimeng.TaskStatus.CANCELLED
    assert sandbox.server.requests["cancel"] == 1


# -- OmniHuman ---------------------------------------------------------------------------------


async def test_avatar_checks_the_subject_then_makes_the_video(
    client: jimeng.Client, sandbox: Sandbox, tmp_path: Path
) -> None:
    handle = await client.videos.submit_avatar(
        image=PORTRAIT,
        audio="https://example.com/hello_7s.mp3",
        resolution=720,
        fast=True,
        prompt="smiling",
    )
    seen = [handle.task.raw_status]
    while not handle.task.done:
        seen.append((await handle.refresh()).raw_status)
    clip = await handle.result()

    check, video = sandbox.server.tasks.values()
    assert (check.model, check.params) == (
        "jimeng_realman_avatar_picture_create_role_omni_v15",
        {"req_key": "jimeng_realman_avatar_picture_create_role_omni_v15", "image_url": PORTRAIT},
    )
    assert video.id == clip.task_id
    assert video.params == {
        "req_key": "jimeng_realman_avatar_picture_omni_v15",
        "image_url": PORTRAIT,
        "audio_url": "https://example.com/hello_7s.mp3",
        "prompt": "smiling",
        "output_resolution": 720,
        "pe_fast_mode": True,
    }
    assert video.extra["family"] == check.extra["family"] == "cv"  # CVSubmitTask / CVGetResult
    # §3.4.5: the CVGetResult family reports pre-processing before the usual words.
    assert seen == ["in_queue", "processing", "generating", "done"]
    assert handle.task.status is jimeng.TaskStatus.SUCCEEDED
    info = mp4_info((await clip.save(tmp_path / "talk.mp4")).read_bytes())
    assert info.duration == pytest.approx(7.0)
    assert sandbox.server.requests["submit"] == 2


async def test_avatar_without_a_subject_stops_before_the_paid_step(
    client: jimeng.Client, sandbox: Sandbox
) -> None:
    with pytest.raises(jimeng.InvalidRequestError) as caught:
        await client.videos.avatar(
            image="https://example.com/no-person.png", audio="https://example.com/a.mp3"
        )
    [check] = sandbox.server.tasks.values()
    assert caught.value.task_id == check.id
    assert sandbox.server.requests["submit"] == 1

    handle = await client.videos.submit_avatar(
        image="https://example.com/no-person.png", audio="https://example.com/a.mp3", check=False
    )
    assert sandbox.server.tasks[handle.id].model == "jimeng_realman_avatar_picture_omni_v15"


async def test_long_audio_fails_at_get_result_with_the_task_id(client: jimeng.Client) -> None:
    with pytest.raises(jimeng.TaskFailedError) as caught:
        await client.videos.avatar(image=PORTRAIT, audio="https://example.com/speech_75s.mp3")
    assert caught.value.code == 50215
    assert "60 s" in str(caught.value)
    assert caught.value.task_id is not None


async def test_avatar_inputs_must_be_urls(
    client: jimeng.Client, sandbox: Sandbox, tmp_path: Path
) -> None:
    audio = tmp_path / "hello.mp3"
    audio.write_bytes(b"ID3")
    with pytest.raises(jimeng.ValidationError) as caught:
        await client.videos.avatar(image=PORTRAIT, audio=audio)
    assert caught.value.field == "audio"
    with pytest.raises(jimeng.ValidationError) as caught:
        await client.videos.avatar(image=png(720, 960), audio="https://example.com/a.mp3")
    assert caught.value.field == "image"
    with pytest.raises(jimeng.ValidationError) as caught:
        await client.videos.avatar(image=PORTRAIT, audio="https://e.com/a.mp3", resolution=480)
    assert caught.value.field == "resolution"
    assert requests(sandbox) == 0


async def test_avatar_task_resumes_elsewhere_and_is_not_cancellable(sleeps: Sleeps) -> None:
    from jimeng.sandbox import build_server

    async with build_server(stages=Stages(queue_polls=1, generate_polls=1)) as server:
        async with jimeng.Client(Sandbox(url=server.url), sleep=sleeps) as first:
            handle = await first.videos.submit_avatar(
                image=PORTRAIT, audio="https://example.com/hi_4s.mp3", check=False
            )
            with pytest.raises(jimeng.NotSupportedError):
                await handle.cancel()
        assert server.requests["cancel"] == 0
        sleeps.calls.clear()
        async with jimeng.Client(Sandbox(url=server.url), sleep=sleeps) as second:
            clip = await second.tasks.wait(handle.ref)
    assert clip.task_id == handle.id and clip.model == "omnihuman-1.5"
    assert sleeps.calls[0] == 5.0  # the avatar's polling, known from the ref alone


# -- translation -------------------------------------------------------------------------------


async def test_translate_dubs_into_the_target_language(
    client: jimeng.Client, sandbox: Sandbox, sleeps: Sleeps
) -> None:
    clip = await client.videos.translate("https://example.com/talk_12s.mp4", target_language="en")

    assert sent(sandbox, clip.task_id) == {
        "req_key": "video_translate_v2_cvtob",
        "video_url": "https://example.com/talk_12s.mp4",
        "src_language": "zh",
        "target_language": "en",
    }
    assert mp4_info(await clip.read()).duration == pytest.approx(12.0)
    assert sleeps.calls[0] == 10.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"target_language": "English"}, "target_language"),
        ({"target_language": "zh"}, "target_language"),  # the source language
        ({"target_language": "en", "source_language": "??"}, "source_language"),
    ],
)
async def test_bad_languages_fail_before_the_network(
    client: jimeng.Client, sandbox: Sandbox, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(jimeng.ValidationError) as caught:
        await client.videos.translate("https://example.com/t.mp4", **kwargs)
    assert caught.value.field == field
    assert requests(sandbox) == 0


# -- other backends ----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["ark", "dreamina", "gateway", "volcengine-relay"])
async def test_backends_without_the_verbs_refuse_before_the_network(
    protocol: str, sleeps: Sleeps
) -> None:
    sandbox = Sandbox(protocol)  # type: ignore[arg-type]
    async with jimeng.Client(sandbox, sleep=sleeps) as client:
        with pytest.raises(jimeng.NotSupportedError):
            await client.images.upscale("https://example.com/a.png")
        with pytest.raises(jimeng.NotSupportedError):
            await client.videos.translate("https://example.com/t.mp4", target_language="en")
    assert requests(sandbox) == 0


async def test_motion_2_calls_back_with_the_get_result_envelope(
    client: jimeng.Client, sandbox: Sandbox
) -> None:
    from aiohttp import web

    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/done", hook)
    async with loopback(app) as base:
        clip = await client.videos.imitate_motion(
            image=PORTRAIT,
            video="https://example.com/d_3s.mp4",
            callback_url=f"{base}/done",
        )
        protocol = sandbox.server.protocol("volcengine")
        await protocol.callbacks.flush()

    assert sent(sandbox, clip.task_id)["callback_url"] == f"{base}/done"
    [body] = received
    assert (body["task_id"], body["code"]) == (clip.task_id, 10000)
    assert body["data"]["status"] == "done" and body["data"]["resp_data"] == ""
    assert body["data"]["video_url"] == clip.url


async def test_transforms_are_journalled_and_restored_after_a_crash(
    sleeps: Sleeps, tmp_path: Path
) -> None:
    from jimeng.sandbox import build_server

    path = tmp_path / "journal.sqlite3"
    async with build_server(stages=Stages(queue_polls=1, generate_polls=1)) as server:
        async with jimeng.Client(Sandbox(url=server.url), journal=path, sleep=sleeps) as first:
            upscale = await first.images.submit_upscale(IMAGE, resolution="4k")
            avatar = await first.videos.submit_avatar(
                image=PORTRAIT, audio="https://example.com/hi_2s.mp3"
            )
        # A new process: only the paid tasks were journalled (not the subject check).
        async with jimeng.Client(Sandbox(url=server.url), journal=path, sleep=sleeps) as second:
            handles = await second.tasks.unfinished()
            assert [h.ref for h in handles] == [upscale.ref, avatar.ref]
            image = await handles[0].result()
            clip = await handles[1].result()
            history = await second.tasks.history()
            assert png_size(await image.images[0].read()) == (4096, 2304)
    assert image.model == "jimeng-upscale" and clip.model == "omnihuman-1.5"
    assert {entry.ref: entry.status for entry in history} == {
        upscale.ref: jimeng.TaskStatus.SUCCEEDED,
        avatar.ref: jimeng.TaskStatus.SUCCEEDED,
    }


async def test_a_paid_step_is_not_resent_after_an_ambiguous_failure(
    client: jimeng.Client, sandbox: Sandbox, sleeps: Sleeps
) -> None:
    sandbox.server.inject("submit", "reset")
    with pytest.raises(jimeng.APIConnectionError):
        await client.videos.submit_avatar(
            image=PORTRAIT, audio="https://example.com/a.mp3", check=False
        )
    assert sandbox.server.requests["submit"] == 1

    # A concurrency refusal proves nothing was accepted: resent after the wait.
    sandbox.server.inject("submit", status=429, code=50430, retry_after=2)
    handle = await client.images.submit_upscale(IMAGE)
    assert sandbox.server.requests["submit"] == 3
    assert sandbox.server.tasks[handle.id].model == "jimeng_i2i_seed3_tilesr_cvtob"
    assert sleeps.calls[-1] == 2.0
