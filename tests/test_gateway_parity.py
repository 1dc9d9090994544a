"""The gateway as the real peers behave (gateway.md §21), against the sandbox's DZ and IPT
mounts."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import jimeng
from jimeng.backends.gateway import _params, _wire
from jimeng.sandbox import SANDBOX_GATEWAY_TOKEN, Sandbox, Stages
from jimeng.sandbox._gateway import GATEWAY_PREFIX, GatewayProtocol, clean_json
from jimeng.sandbox._volcengine import FAIL_TASK

#: Every character the DZ cleaner rewrites or trips over (§21.1), inside one prompt.
TRICKY = "a\u00a0b\u2003c\u200bd\ufeffe 猫 | list a,] b, } c,,d | x,\u3000] y | \u2028 | it's"


async def _no_sleep(seconds: float) -> None:
    return None


@pytest.fixture
async def dz() -> AsyncIterator[jimeng.Client]:
    """A DZ gateway (task mode) left for the backend to detect; one task runs at a time."""
    sandbox = Sandbox(
        "gateway", stages=Stages(queue_polls=1, generate_polls=1), options={"async_tasks": None}
    )
    async with jimeng.Client(sandbox, sleep=_no_sleep, rng=random.Random(0)) as client:
        mount(client).max_concurrent = 1
        yield client


def mount(client: jimeng.Client, label: str = "gateway") -> GatewayProtocol:
    backend = client.backend
    assert isinstance(backend, Sandbox)
    protocol: GatewayProtocol = backend.server.protocol(label)
    return protocol


def requests(client: jimeng.Client) -> Any:
    backend = client.backend
    assert isinstance(backend, Sandbox)
    return backend.server.requests


# -- §21.7 the probe ----------------------------------------------------------------------------


async def test_a_task_capable_gateway_is_detected_once(dz: jimeng.Client) -> None:
    first = await dz.images.submit("one")
    second = await dz.videos.submit("two")
    # Returned at once with server ids, not finished: the probe found the task store.
    assert not first.task.done and not second.task.done
    assert not first.id.startswith("sync-") and not second.id.startswith("sync-")
    assert requests(dz)["list"] == 1  # one probe for both submits
    assert dz.backend.capabilities().supports("cancel")


async def test_a_gateway_without_tasks_answers_synchronously() -> None:
    async with jimeng.Client(Sandbox("gateway-sync"), sleep=_no_sleep) as client:
        handle = await client.images.submit("one")
        assert handle.task.done and handle.id.startswith("sync-")
        await client.images.submit("two")
        assert requests(client)["no_route"] == 1  # one probe: the -1000 route error
        assert not client.backend.capabilities().supports("cancel")


async def test_an_explicit_choice_skips_the_probe() -> None:
    sandbox = Sandbox("gateway", options={"async_tasks": False})
    async with jimeng.Client(sandbox, sleep=_no_sleep) as client:
        handle = await client.images.submit("one")
        assert handle.task.done
        assert requests(client)["list"] == 0


def test_probe_answers_are_read_by_shape() -> None:
    from jimeng._http import Response

    def answer(payload: Any) -> Response:
        return Response(status=200, headers={}, body=json.dumps(payload).encode())

    dz_answer = {"tasks": [], "total": 0, "queue_stats": {}, "storage_mode": "memory"}
    ipt_answer = {"code": -1000, "message": "[请求有误]: … GET -> /v1/tasks/?limit=1", "data": None}
    assert _wire.parse_probe(answer(dz_answer)) is True
    assert _wire.parse_probe(answer(ipt_answer)) is False


# -- sync failures are task failures with unique ids --------------------------------------------


async def test_sync_failures_are_task_failures_with_unique_ids() -> None:
    async with jimeng.Client(Sandbox("gateway-sync"), sleep=_no_sleep) as client:
        ids = []
        for _ in range(2):
            with pytest.raises(jimeng.TaskFailedError) as caught:
                await client.images.generate(f"the same prompt {FAIL_TASK}")
            assert caught.value.code == -2007
            ids.append(caught.value.task_id)
    assert ids[0] != ids[1] and all(str(i).startswith("sync-failed-") for i in ids)


async def test_upstream_unreachable_in_sync_mode_is_a_task_failure() -> None:
    sandbox = Sandbox("gateway-sync")
    async with jimeng.Client(sandbox, sleep=_no_sleep) as client:
        sandbox.server.inject("submit", code=-1000, message="getaddrinfo ENOTFOUND x.invalid")
        with pytest.raises(jimeng.TaskFailedError, match="ENOTFOUND") as caught:
            await client.videos.generate("v")
    assert str(caught.value.task_id).startswith("sync-failed-")
    assert requests(client)["submit"] == 1  # never resent: it may have been billed


# -- §21.1 prompts arrive byte-identical ---------------------------------------------------------


async def test_prompts_arrive_byte_identical(dz: jimeng.Client) -> None:
    handle = await dz.images.submit(TRICKY)
    stored = mount(dz).tasks[handle.id].prompt
    assert stored == TRICKY
    task = await dz.tasks.get(handle.id)
    assert task.raw["prompt"] == TRICKY


def test_raw_utf8_would_have_been_rewritten() -> None:
    raw = json.dumps({"prompt": TRICKY}, ensure_ascii=False)
    assert clean_json(raw)["prompt"] != TRICKY  # what the SDK used to send
    sent = _wire.dumps({"prompt": TRICKY, "n": 1, "ok": True, "list": ["a,]"]})
    assert sent.isascii()
    assert clean_json(sent.decode()) == {"prompt": TRICKY, "n": 1, "ok": True, "list": ["a,]"]}


def test_the_cleaner_matches_the_verified_table() -> None:
    # gateway.md §21.1, rows verified on DZ.
    assert clean_json('{"p":"a\u00a0b\u2003c\u200bd\ufeffe 猫"}')["p"] == "a b c de 猫"
    assert clean_json('{"p":"list a,] b, } c,,d"}')["p"] == "list a] b } c,,d"
    assert clean_json('{"p":"list a\\u002c] b\\u002c } c"}')["p"] == "list a,] b, } c"
    assert clean_json('{"p":"x,\u3000] y"}')["p"] == "x\u3000] y"
    assert clean_json("{'prompt':'hello, world it is','async':true}")["prompt"] == (
        "hello, world it is"
    )
    with pytest.raises(ValueError, match="Unexpected end of JSON input"):
        clean_json("  ")


# -- cancel by id, queue stats, video extras, list order -------------------------------------


async def test_cancel_by_id_reports_the_task_as_it_is(dz: jimeng.Client) -> None:
    await dz.videos.submit("running one", model="jimeng-video-3.0")
    queued = await dz.videos.submit("waiting one", model="jimeng-video-3.0")
    third = await dz.videos.submit("waiting two", model="jimeng-video-3.0")
    listed = await dz.tasks.list(status="queued")
    assert {task.id for task in listed} >= {queued.id, third.id}
    cancelled = await dz.tasks.cancel(queued.id)  # a bare id: kind and model unknown locally
    assert cancelled.status is jimeng.TaskStatus.CANCELLED
    assert cancelled.kind is jimeng.TaskKind.VIDEO
    assert cancelled.model == "jimeng-video-3.0"
    assert cancelled.created_at is not None


async def test_queue_stats_and_video_extras_are_parsed(dz: jimeng.Client) -> None:
    handle = await dz.videos.submit("a clip")
    task = await handle.refresh()
    assert task.queue is not None and task.queue.max_concurrent == 1
    assert task.queue.running + task.queue.queued >= 1
    clip = await handle.result()
    video = clip.video
    assert video.history_id and video.item_id
    assert video.preview_url and video.hq_url == video.url


async def test_list_order_is_the_gateways(
    dz: jimeng.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DZ sorts by whole seconds, newest first; tasks of the same second stay oldest first
    # (memory mode). The client keeps that order (documented), it does not re-sort.
    seconds = iter([1000, 1000, 1000, 1001, 1001, 1001])
    monkeypatch.setattr("jimeng.sandbox._gateway._unix", lambda: next(seconds, 1001))
    names = ["a", "b", "c"]
    handles = [await dz.images.submit(name) for name in names]
    listed = await dz.tasks.list()
    assert [task.id for task in listed] == [handle.id for handle in handles]


# -- the sandbox's DZ mount behaves like DZ --------------------------------------------------------


async def _raw(client: jimeng.Client, method: str, path: str, **kwargs: Any) -> Any:
    backend = client.backend
    assert isinstance(backend, Sandbox)
    async with aiohttp.ClientSession() as session:
        url = f"{backend.server.url}{GATEWAY_PREFIX}{path}"
        async with session.request(method, url, **kwargs) as response:
            return await response.json(content_type=None)


@pytest.mark.parametrize(
    ("limit", "count"), [("0", 5), ("abc", 5), ("", 5), ("2", 2), ("1.9", 1), ("-2", 3), ("-9", 0)]
)
async def test_dz_list_limit(dz: jimeng.Client, limit: str, count: int) -> None:
    for index in range(5):
        await dz.images.submit(f"task {index}")
    answer = await _raw(dz, "GET", f"/v1/tasks/?limit={limit}")
    assert len(answer["tasks"]) == count == answer["total"]


async def test_dz_refuses_an_empty_json_post(dz: jimeng.Client) -> None:
    handle = await dz.images.submit("x")
    headers = {"Content-Type": "application/json", "Authorization": "Bearer x"}
    for path in ("/v1/images/generations", f"/v1/tasks/{handle.id}/cancel"):
        answer = await _raw(dz, "POST", path, data=b"", headers=headers)
        assert answer == {
            "code": -1000,
            "message": "无效的JSON格式: Unexpected end of JSON input",
            "data": None,
        }
    answer = await _raw(dz, "POST", f"/v1/tasks/{handle.id}/cancel")  # no Content-Type: fine
    assert answer["status"] == "cancelled"


async def test_dz_video_durations(dz: jimeng.Client) -> None:
    body = {"prompt": "v", "async": True, "model": "jimeng-video-3.5-pro"}
    headers = {"Authorization": f"Bearer {SANDBOX_GATEWAY_TOKEN}"}
    for duration in (3, 16, 4.5, "7"):
        answer = await _raw(
            dz, "POST", "/v1/videos/generations", json={**body, "duration": duration},
            headers=headers,
        )  # fmt: skip
        assert answer["code"] == -2000 and answer["message"] == "Params body.duration invalid"
    answer = await _raw(
        dz, "POST", "/v1/videos/generations", json={**body, "duration": 15}, headers=headers
    )
    assert mount(dz).tasks[answer["task_id"]].job["duration"] == 5  # 3.5-pro: 12 or 10, else 5


# -- omni materials and browser tokens on the fork (dreamina-web.md §11, §15) ---------------------


async def test_omni_reference_images_and_browser_tokens_reach_the_fork() -> None:
    from jimeng.sandbox._media import render_png

    sandbox = Sandbox("gateway", options={"async_tasks": False})
    async with jimeng.Client(sandbox, sleep=_no_sleep) as client:
        clip = await client.videos.generate(
            "@image_file_1 dances with @image_file_2",
            model="jimeng-video-seedance-2.0",
            function_mode="omni_reference",
            reference_images=[render_png("a", 32, 32), render_png("b", 32, 32)],
            ms_token="browser-ms-token",
            a_bogus="browser-a-bogus",
        )
    assert clip.url
    request = jimeng.VideoRequest(
        prompt="p",
        model="jimeng-video-seedance-2.0",
        function_mode="omni_reference",
        reference_images=[render_png("a", 32, 32)],
        ms_token="m",
        a_bogus="b",
    )
    fields = _params.video_fields(request)
    assert (fields["functionMode"], fields["msToken"], fields["a_bogus"]) == (
        "omni_reference",
        "m",
        "b",
    )
    call = _wire.build_video_submit(
        _wire.Endpoint(base="http://127.0.0.1:1"),
        fields,
        list(request.reference_images or ()),
        async_mode=False,
    )
    assert b'name="image_file_1"' in (call.body or b"")


def test_reference_images_need_omni_mode_on_the_gateway() -> None:
    gateway = jimeng.Gateway("http://127.0.0.1:5100", token="session")
    request = jimeng.VideoRequest(prompt="p", reference_images=[b"\x89PNG\r\n\x1a\n" + bytes(40)])
    with pytest.raises(jimeng.ValidationError) as caught:
        gateway.validate_video(request)
    assert caught.value.field == "reference_images"
