"""The Gateway backend through the public API, against the sandbox's gateway emulation."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import jimeng
from jimeng.sandbox import BLOCK_INPUT, BLOCK_OUTPUT, FAIL_TASK, Sandbox, Stages
from jimeng.sandbox._gateway import GatewayProtocol
from jimeng.sandbox._media import mp4_info, png_size, render_png
from tests.conftest import Sleeps

PNG = render_png("reference", 64, 48)


def make_client(sandbox: Sandbox, sleeps: Sleeps) -> jimeng.Client:
    return jimeng.Client(sandbox, sleep=sleeps, rng=random.Random(0))


@pytest.fixture
async def sync_client(sleeps: Sleeps) -> AsyncIterator[jimeng.Client]:
    """A task-mode gateway used without async (plain synchronous calls)."""
    async with make_client(Sandbox("gateway", options={"async_tasks": False}), sleeps) as client:
        yield client


@pytest.fixture
async def async_client(sleeps: Sleeps) -> AsyncIterator[jimeng.Client]:
    """Async-task mode; tasks wait one poll, then run for one poll."""
    sandbox = Sandbox("gateway", stages=Stages(queue_polls=1, generate_polls=1))
    async with make_client(sandbox, sleeps) as client:
        yield client


def server_of(client: jimeng.Client) -> Any:
    backend = client.backend
    assert isinstance(backend, Sandbox)
    return backend.server


def protocol_of(client: jimeng.Client, label: str = "gateway") -> GatewayProtocol:
    protocol: GatewayProtocol = server_of(client).protocol(label)
    return protocol


# -- synchronous mode --------------------------------------------------------------------------


async def test_sync_images_come_back_with_the_submit(sync_client: jimeng.Client) -> None:
    result = await sync_client.images.generate(
        "futuristic city", model="jimeng-4.5", ratio="16:9", resolution="2k"
    )
    assert len(result.images) == 4  # one history record holds four images
    assert png_size(await result.images[0].read()) == (2560, 1440)
    server = server_of(sync_client)
    assert server.requests["submit"] == 1 and not server.polls


async def test_sync_handle_needs_no_polling(sync_client: jimeng.Client) -> None:
    handle = await sync_client.images.submit("a lighthouse")
    assert handle.status is jimeng.TaskStatus.SUCCEEDED and handle.id.startswith("sync-")
    result = await handle.result()
    assert result.task_id == handle.id and not server_of(sync_client).polls
    with pytest.raises(jimeng.NotFoundError, match="synchronously"):
        await sync_client.tasks.get(handle.id)


async def test_b64_results_are_decoded(sync_client: jimeng.Client) -> None:
    result = await sync_client.images.generate(
        "cat", resolution="1k", ratio="21:9", response_format="b64_json"
    )
    assert result.images[0].url is None
    assert png_size(result.images[0].data or b"") == (1195, 512)


async def test_compositions_by_url_and_by_file(sync_client: jimeng.Client, tmp_path: Path) -> None:
    result = await sync_client.images.generate(
        "merge into one scene", images=["https://img.example/a.jpg", "https://img.example/b.png"]
    )
    assert result.raw["input_images"] == 2
    assert result.raw["composition_type"] == "multi_image_synthesis"
    picture = tmp_path / "b.png"
    picture.write_bytes(PNG)
    result = await sync_client.images.generate("merge", images=[picture, PNG], ratio="4:3")
    assert result.raw["input_images"] == 2


async def test_videos_with_and_without_frames(sync_client: jimeng.Client, tmp_path: Path) -> None:
    clip = await sync_client.videos.generate(
        "a cat playing piano", model="jimeng-video-3.0", duration=5, ratio="16:9"
    )
    info = mp4_info(await clip.read())
    assert (info.width, info.height, round(info.duration)) == (1280, 720, 5)
    first = tmp_path / "first.png"
    first.write_bytes(PNG)
    clip = await sync_client.videos.generate("it moves", image=first, tail_image=PNG, duration=10)
    assert round(mp4_info(await clip.read()).duration) == 10
    clip = await sync_client.videos.generate("from urls", image="https://img.example/f.png")
    assert clip.url


async def test_the_gateway_itself_checks_what_the_client_would(sleeps: Sleeps) -> None:
    # extra_body bypasses client validation: the sandbox answers like the real gateway (§8c).
    async with make_client(Sandbox("gateway-sync"), sleeps) as ipt:
        with pytest.raises(
            jimeng.InvalidRequestError, match="该模型仅支持 5、10 秒时长，当前值: 7"
        ):
            await ipt.videos.generate("p", model="jimeng-video-3.0", extra_body={"duration": 7})
        with pytest.raises(jimeng.InvalidRequestError, match="不支持的参数: size"):
            await ipt.images.generate("p", extra_body={"size": "1024x1024"})


async def test_dz_maps_durations_inside_4_to_15_and_refuses_the_rest(
    sync_client: jimeng.Client,
) -> None:
    # §21.5: DZ checks 4–15 for every model, then maps silently per model (3.0: 10 or else 5).
    clip = await sync_client.videos.generate(
        "p", model="jimeng-video-3.0", extra_body={"duration": 7}
    )
    assert round(mp4_info(await clip.read()).duration) == 5
    for duration in (3, 16, 4.5, "7"):
        with pytest.raises(jimeng.InvalidRequestError, match=r"Params body\.duration invalid"):
            await sync_client.videos.generate("p", extra_body={"duration": duration})


async def test_parameters_the_gateway_rejects_never_reach_it(sync_client: jimeng.Client) -> None:
    with pytest.raises(jimeng.ValidationError, match="5, 10"):
        await sync_client.videos.generate("p", model="jimeng-video-3.0", duration=7)
    assert server_of(sync_client).requests["submit"] == 0


# -- async-task mode ---------------------------------------------------------------------------


async def test_async_submit_returns_at_once_then_polls(async_client: jimeng.Client) -> None:
    handle = await async_client.images.submit("mountain sunset", model="jimeng-4.5")
    assert handle.status is jimeng.TaskStatus.QUEUED and handle.task.raw_status == "pending"
    assert not server_of(async_client).polls
    seen = [(task.status, task.raw_status) async for task in handle.updates()]
    assert seen == [
        (jimeng.TaskStatus.QUEUED, "pending"),
        (jimeng.TaskStatus.RUNNING, "processing"),
        (jimeng.TaskStatus.SUCCEEDED, "completed"),
    ]
    result = await handle.result()
    assert len(result.images) == 4 and result.task_id == handle.id
    assert png_size(await result.images[0].read()) == (2048, 2048)


async def test_tasks_get_resume_and_wait(async_client: jimeng.Client) -> None:
    handle = await async_client.videos.submit("a dog", model="jimeng-video-3.5-pro", duration=10)
    task = await async_client.tasks.get(handle.id)
    assert task.kind is jimeng.TaskKind.VIDEO and task.model == "jimeng-video-3.5-pro"
    assert task.raw["queue_stats"]["maxConcurrent"] == 50
    clip = await async_client.tasks.wait(handle.ref)  # as another process would, by id
    assert isinstance(clip, jimeng.VideoResult)
    assert round(mp4_info(await clip.read()).duration) == 10


async def test_callback_url_alone_selects_async_mode(sync_client: jimeng.Client) -> None:
    handle = await sync_client.images.submit("p", callback_url="https://my.app/hooks/jimeng")
    assert not handle.task.done and handle.task.raw == {"task_id": handle.id, "status": "pending"}
    deliveries = protocol_of(sync_client).deliveries
    assert deliveries and deliveries[0].outcome.startswith("refused")  # never leaves loopback


async def test_list_filters_and_limit(async_client: jimeng.Client) -> None:
    first = await async_client.images.submit("one")
    await async_client.images.submit("two", images=["https://img.example/a.png"])
    await async_client.videos.submit("three")
    assert len(await async_client.tasks.list()) == 3
    [video] = await async_client.tasks.list(kind="video")
    assert video.kind is jimeng.TaskKind.VIDEO
    [composition] = await async_client.tasks.list(kind="composition")
    assert composition.context["type"] == "composition"
    await first.result()
    [done] = await async_client.tasks.list(status="succeeded")
    assert done.id == first.id and done.status is jimeng.TaskStatus.SUCCEEDED
    assert len(await async_client.tasks.list(status="pending", limit=1)) == 1
    assert server_of(async_client).requests["list"] == 5


async def test_the_list_route_needs_its_trailing_slash(async_client: jimeng.Client) -> None:
    base = async_client.backend.url  # type: ignore[attr-defined]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/gateway/v1/tasks?limit=1") as response:
            body = await response.json()
        async with session.get(f"{base}/gateway/v1/tasks/?limit=1") as response:
            listed = await response.json()
    assert response.status == 200
    assert body["code"] == -1000 and "GET -> /v1/tasks?limit=1" in body["message"]
    assert listed["tasks"] == [] and listed["storage_mode"] == "memory"


async def test_queue_limit_and_cancel_rules(sleeps: Sleeps) -> None:
    sandbox = Sandbox("gateway", stages=Stages(generate_polls=2))
    async with make_client(sandbox, sleeps) as client:
        protocol_of(client).max_concurrent = 1
        running = await client.images.submit("first")
        waiting = await client.images.submit("second")
        last = await client.images.submit("third")
        assert [t.raw_status for t in await client.tasks.list(status="queued")] == [
            "queued",
            "queued",
        ]
        cancelled = await waiting.cancel()
        assert cancelled.status is jimeng.TaskStatus.CANCELLED
        assert (await client.tasks.cancel(waiting.id)).status is jimeng.TaskStatus.CANCELLED
        with pytest.raises(jimeng.TaskCancelledError) as stopped:
            await waiting.result()
        assert stopped.value.task_id == waiting.id

        with pytest.raises(jimeng.InvalidRequestError) as refused:
            await client.tasks.cancel(running.id)
        assert refused.value.task_id == running.id
        assert "processing" in str(refused.value) and "pending or queued" in str(refused.value)

        assert len(await running.result()) == 4
        with pytest.raises(jimeng.TaskNotCancellableError) as finished:
            await running.cancel()
        assert finished.value.message == f"task {running.id} already succeeded; nothing to cancel"
        assert len(await last.result()) == 4  # started once the slot was free
        with pytest.raises(jimeng.NotFoundError, match="任务不存在"):
            await client.tasks.cancel("no-such-task")


async def test_cancel_loses_the_race_against_a_start(sleeps: Sleeps) -> None:
    sandbox = Sandbox("gateway", stages=Stages(generate_polls=1))
    async with make_client(sandbox, sleeps) as client:
        protocol_of(client).max_concurrent = 1
        first = await client.images.submit("first")
        second = await client.images.submit("second")
        assert (await second.refresh()).raw_status == "queued"
        await first.result()  # the slot frees up and the second task starts server-side
        assert second.status is jimeng.TaskStatus.QUEUED  # the handle has not looked since
        with pytest.raises(jimeng.InvalidRequestError, match="it is processing") as late:
            await second.cancel()
        assert late.value.task_id == second.id and late.value.code == -1000
        assert len(await second.result()) == 4


async def test_a_synchronous_result_cannot_be_cancelled(sync_client: jimeng.Client) -> None:
    handle = await sync_client.images.submit("p")
    with pytest.raises(jimeng.InvalidRequestError, match="nothing to cancel") as caught:
        await handle.cancel()
    assert caught.value.task_id == handle.id
    assert server_of(sync_client).requests["cancel"] == 0


async def test_a_gateway_without_task_mode_answers_through_the_same_handle(
    sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_client(Sandbox("gateway-sync"), sleeps) as client:
        backend = client.backend._inner  # type: ignore[attr-defined]
        assert backend.async_tasks is None and backend.task_mode is None
        with caplog.at_level(logging.INFO, logger="jimeng"):
            handle = await client.images.submit("p", callback_url="http://127.0.0.1:1/hook")
        # The probe (§21.7) said "no task mode": the submit waited, and the caller is told
        # that the webhook will not come.
        assert handle.task.done and backend.task_mode is False
        assert "has no task mode: submits wait for the result" in caplog.text
        assert "callback_url will never be called" in caplog.text
        assert len(await handle.result()) == 4
        clip = await client.videos.generate("v")
        assert clip.url and not server_of(client).polls
        with pytest.raises(jimeng.NotSupportedError, match="no task mode"):
            await client.tasks.list()
        with pytest.raises(jimeng.NotFoundError, match="no such route"):
            await client.tasks.get("97149680-e596-11f1-8730-29b15e3f778b")


# -- failures ----------------------------------------------------------------------------------

ENVELOPES = [
    (-2000, "Params body.prompt invalid", jimeng.InvalidRequestError),
    (-2000, "Params headers.authorization invalid", jimeng.AuthenticationError),
    (-2001, "请求失败", jimeng.ServerError),
    (-2002, "Token已失效", jimeng.SessionExpiredError),
    (-2003, "远程文件URL非法", jimeng.InvalidRequestError),
    (-2004, "远程文件超出大小", jimeng.InvalidRequestError),
    (-2005, "已有对话流正在输出", jimeng.APIError),
    (-2006, "内容由于合规问题已被阻止生成", jimeng.ContentPolicyError),
    (-2007, "图像生成失败", jimeng.TaskFailedError),
    (-2008, "视频生成失败", jimeng.TaskFailedError),
    (-2009, "即梦积分不足", jimeng.InsufficientCreditsError),
    (-1000, "getaddrinfo ENOTFOUND jimeng.jianying.com", jimeng.ServerError),
    (-1000, "不支持的参数: size。请使用 ratio 和 resolution 参数控制图像尺寸。",
     jimeng.InvalidRequestError),
]  # fmt: skip


@pytest.mark.parametrize(("code", "message", "cls"), ENVELOPES)
@pytest.mark.parametrize("async_tasks", [False, True])
async def test_every_envelope_becomes_its_typed_error(
    sleeps: Sleeps, code: int, message: str, cls: type, async_tasks: bool
) -> None:
    sandbox = Sandbox("gateway", options={"async_tasks": async_tasks})
    if cls is jimeng.ServerError and not async_tasks:
        # Upstream failing under a synchronous call is a generation that ran and failed: a
        # failed task with a local id, as in async mode (TaskFailedError with the id).
        cls = jimeng.TaskFailedError
    async with make_client(sandbox, sleeps) as client:
        sandbox.server.inject("submit", code=code, message=message)
        with pytest.raises(cls) as caught:
            await client.images.generate("p")
        assert caught.value.code == code
        if cls is jimeng.TaskFailedError:
            assert str(caught.value.task_id).startswith("sync-failed-")
            assert message in str(caught.value) and "may have reached" not in str(caught.value)
        assert sandbox.server.requests["submit"] == 1  # an error envelope is never resent
        if isinstance(caught.value, jimeng.APIError):
            assert caught.value.status_code == 200 and caught.value.backend == "gateway"


async def test_generation_failures_are_task_failures_in_both_modes(sleeps: Sleeps) -> None:
    async with make_client(Sandbox("gateway", options={"async_tasks": False}), sleeps) as client:
        handle = await client.videos.submit(f"p {FAIL_TASK}")
        assert handle.status is jimeng.TaskStatus.FAILED
        with pytest.raises(jimeng.TaskFailedError) as sync_failure:
            await handle.result()
        assert sync_failure.value.code == -2008 and sync_failure.value.task_id == handle.id
        with pytest.raises(jimeng.ContentPolicyError):
            await client.images.submit(f"p {BLOCK_INPUT}")
    async with make_client(Sandbox("gateway"), sleeps) as client:
        handle = await client.images.submit(f"p {FAIL_TASK}")
        with pytest.raises(jimeng.TaskFailedError, match="图像生成失败") as async_failure:
            await handle.result()
        assert async_failure.value.task_id == handle.id
        blocked = await client.images.submit(f"p {BLOCK_OUTPUT}")
        with pytest.raises(jimeng.ContentPolicyError) as policy:
            await blocked.result()
        assert policy.value.task_id == blocked.id


async def test_http_failures_and_retries(sleeps: Sleeps) -> None:
    sandbox = Sandbox("gateway", stages=Stages(queue_polls=1))
    async with make_client(sandbox, sleeps) as client:
        server = sandbox.server
        server.inject("submit", kind="non_json", status=502)
        with pytest.raises(jimeng.ServerError, match="non-JSON"):
            await client.images.submit("p")
        assert server.requests["submit"] == 1  # a submit is not resent after an unclear 502
        handle = await client.images.submit("p")
        server.inject("poll", kind="non_json", status=502)
        server.inject("poll", kind="reset")
        assert len(await handle.result()) == 4  # polls are retried
        server.inject("submit", kind="http", status=200, message="<html>maintenance</html>")
        with pytest.raises(jimeng.APIError, match="non-JSON"):
            await client.images.submit("p")


# -- sessions and credits ----------------------------------------------------------------------


async def test_credits_claim_and_liveness(sleeps: Sleeps) -> None:
    sandbox = Sandbox("gateway", options={"token": "empty-session-1,us-session-2"})
    async with make_client(sandbox, sleeps) as client:
        empty, us = await client.account.credits()
        assert (empty.total, empty.region, us.total, us.region) == (0, "cn", 66, "us")
        claimed, not_needed = await client.account.claim()
        assert (claimed.claimed, claimed.total, not_needed.claimed) == (True, 66, False)
        cn, international = await client.account.check()
        assert cn.live is True and international.live is None and international.note


@pytest.mark.parametrize("async_tasks", [False, True])
async def test_session_errors(
    sleeps: Sleeps, caplog: pytest.LogCaptureFixture, async_tasks: bool
) -> None:
    # Synchronously the submit is refused; in async-task mode the task fails with the same text
    # and the same error class comes out of result(), carrying the task id.
    expired = "expired-SECRET-session-0001"
    options = {"token": expired, "async_tasks": async_tasks}
    async with make_client(Sandbox("gateway", options=options), sleeps) as client:
        with caplog.at_level(logging.DEBUG, logger="jimeng"):
            with pytest.raises(jimeng.SessionExpiredError) as caught:
                await client.images.generate("p")
            with pytest.raises(jimeng.SessionExpiredError):
                await client.account.credits()
        assert (caught.value.task_id is not None) is async_tasks
        [status] = await client.account.check()
        assert status.live is False
        assert expired not in str(caught.value) and expired not in caplog.text
        assert expired not in repr(client) and expired not in repr(status)
    broke = "broke-session-0002"
    options = {"token": broke, "async_tasks": async_tasks}
    async with make_client(Sandbox("gateway", options=options), sleeps) as client:
        with pytest.raises(jimeng.InsufficientCreditsError) as poor:
            await client.images.generate("p")
        assert poor.value.sessions == (jimeng._logging.fingerprint(broke),)
        [balance] = await client.account.claim()
        assert balance.claimed is False and balance.total == 0


async def test_bearer_is_required_by_the_gateway(async_client: jimeng.Client) -> None:
    base = async_client.backend.url  # type: ignore[attr-defined]
    url = f"{base}/gateway/v1/images/generations"
    async with aiohttp.ClientSession() as session, session.post(url, json={"prompt": "p"}) as r:
        assert r.status == 200
        assert await r.json() == {
            "code": -2000,
            "message": "Params headers.authorization invalid",
            "data": None,
        }


# -- OpenAI-compatible relays ------------------------------------------------------------------


async def test_relay_generations_and_edits(sleeps: Sleeps, tmp_path: Path) -> None:
    async with make_client(Sandbox("gateway-openai"), sleeps) as client:
        result = await client.images.generate("a fox", size="1024x768", model="jimeng-4.0")
        assert png_size(await result.images[0].read()) == (1024, 768)
        reference = tmp_path / "ref.png"
        reference.write_bytes(PNG)
        edited = await client.images.generate("make it night", images=[reference])
        assert len(edited.images) == 1
        by_url = await client.images.generate("p", images="https://img.example/x.png", ratio="16:9")
        assert png_size(await by_url.images[0].read()) == (2560, 1440)
        with pytest.raises(jimeng.ContentPolicyError):
            await client.images.generate(f"p {BLOCK_INPUT}")
        with pytest.raises(jimeng.NotSupportedError):
            await client.videos.generate("p")
        with pytest.raises(jimeng.NotSupportedError):
            await client.tasks.list()
    wrong = Sandbox("gateway-openai", options={"api_key": "sk-wrong-key-000000"})
    async with make_client(wrong, sleeps) as client:
        with pytest.raises(jimeng.AuthenticationError) as caught:
            await client.images.generate("p")
        assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"


async def test_backend_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VOLC_ACCESSKEY", "JIMENG_BACKEND", "JIMENG_GATEWAY_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JIMENG_GATEWAY_URL", "http://127.0.0.1:5100")
    monkeypatch.setenv("JIMENG_GATEWAY_TOKEN", "session")
    client = jimeng.Client()
    assert isinstance(client.backend, jimeng.Gateway)
    assert json.dumps(client.backend.describe())  # printable, no secrets
    await client.aclose()
