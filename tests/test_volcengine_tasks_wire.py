"""Volcengine wire functions and backend flows, driven by hand with made-up responses (no HTTP):
get-result parsing for videos and relay words, CVCancelTask, the cancel refusal flow, mixed
URL/local inputs, endpoints and secrets."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import jimeng
from jimeng._http import Call, Flow, Response
from jimeng.backends.volcengine import _wire
from jimeng.backends.volcengine._errors import check_response
from jimeng.errors import (
    AuthenticationError,
    InvalidRequestError,
    TaskExpiredError,
    TaskNotCancellableError,
    ValidationError,
)
from jimeng.models import (
    AigcMeta,
    ImageRequest,
    Task,
    TaskKind,
    TaskStatus,
    VideoRequest,
    Watermark,
)
from tests._images import jpeg, png

NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)
ENDPOINT = _wire.Endpoint(base="https://visual.volcengineapi.com")


def answer(
    data: Any = None, *, code: int = 10000, status: int = 200, message: str = "Success"
) -> Response:
    payload = {"code": code, "data": data, "message": message, "request_id": "rid", "status": code}
    return Response(status=status, headers={}, body=json.dumps(payload).encode())


def video_task(**context: Any) -> Task:
    return Task(
        id="7392616336519610409",
        kind=TaskKind.VIDEO,
        status=TaskStatus.QUEUED,
        backend="volcengine",
        ref="jimeng_t2v_v30:7392616336519610409",
        model="jimeng_t2v_v30",
        context=context,
    )


def run(flow: Flow[Any], *responses: Response | Exception) -> tuple[list[Call], Any]:
    """Drive a flow by hand: feed each response (or throw each error) in turn."""
    calls: list[Call] = []
    try:
        call = next(flow)
        for item in responses:
            calls.append(call)
            call = flow.throw(item) if isinstance(item, Exception) else flow.send(item)
        calls.append(call)
        raise AssertionError(f"flow wants more: {call}")
    except StopIteration as stop:
        return calls, stop.value


# -- get-result ------------------------------------------------------------------------------


def test_video_result_expires_in_one_hour_and_knows_its_length() -> None:
    task = video_task(frames=241, model_name="jimeng-video-3.0")
    done = _wire.parse_result(
        answer({"status": "done", "video_url": "https://v/x.mp4", "aigc_meta_tagged": True}),
        task,
        now=NOW,
    )
    assert done.status is TaskStatus.SUCCEEDED
    result = done.result
    assert isinstance(result, jimeng.VideoResult)
    assert result.url == "https://v/x.mp4"
    assert result.expires_at == NOW + timedelta(hours=1)
    assert (result.video.duration, result.video.fps) == (10.0, 24)
    assert result.aigc_meta_tagged is True
    assert result.model == "jimeng-video-3.0"
    assert result.task_id == task.id


def test_video_done_without_url_is_a_failure() -> None:
    done = _wire.parse_result(answer({"status": "done"}), video_task(), now=NOW)
    assert done.status is TaskStatus.FAILED


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("in_queue", TaskStatus.QUEUED),
        ("generating", TaskStatus.RUNNING),
        ("not_found", TaskStatus.EXPIRED),
        ("expired", TaskStatus.EXPIRED),
        # relay words (gateway.md §10)
        ("submitted", TaskStatus.QUEUED),
        ("success", TaskStatus.SUCCEEDED),
        ("failed", TaskStatus.FAILED),
        ("something_new", TaskStatus.UNKNOWN),
    ],
)
def test_status_words(word: str, status: TaskStatus) -> None:
    data: dict[str, Any] = {"status": word}
    if status is TaskStatus.SUCCEEDED:
        data["video_url"] = "https://v/x.mp4"
    parsed = _wire.parse_result(answer(data), video_task(), now=NOW)
    assert parsed.status is status
    assert parsed.raw_status == word


def test_relay_submit_answer_with_uuid_and_word() -> None:
    body = (
        '{"code":10000,"data":{"task_id":"4b1f6a52-9d2e-4c1e-9f43-2c7e9b1f0a11",'
        '"status":"submitted"},"message":"Success","request_id":"r","status":10000,'
        '"time_elapsed":"35.381µs"}'
    ).encode()
    task = _wire.parse_submit(
        Response(status=200, headers={}, body=body),
        req_key="jimeng_t2i_v40",
        kind=TaskKind.IMAGE,
        backend="volcengine",
    )
    assert task.id == "4b1f6a52-9d2e-4c1e-9f43-2c7e9b1f0a11"
    assert task.status is TaskStatus.QUEUED
    assert task.ref == "jimeng_t2i_v40:4b1f6a52-9d2e-4c1e-9f43-2c7e9b1f0a11"


# -- req_json ----------------------------------------------------------------------------------


def test_req_json_for_images_and_videos() -> None:
    assert json.loads(_wire.req_json()) == {"return_url": True}
    assert json.loads(_wire.req_json(return_url=False)) == {"return_url": False}
    assert _wire.req_json(images=False) == ""
    options = json.loads(
        _wire.req_json(
            watermark=Watermark(position=3, language=1, opacity=0.5, text="made by us"),
            aigc_meta=AigcMeta(producer_id="p-1", content_producer="studio"),
            images=False,
        )
    )
    assert options == {
        "logo_info": {
            "add_logo": True,
            "position": 3,
            "language": 1,
            "opacity": 0.5,
            "logo_text_content": "made by us",
        },
        "aigc_meta": {"producer_id": "p-1", "content_producer": "studio"},
    }


def test_get_result_leaves_out_empty_req_json() -> None:
    call = _wire.build_get_result(ENDPOINT, "jimeng_t2v_v30", "1", "")
    assert json.loads(call.body or b"") == {"req_key": "jimeng_t2v_v30", "task_id": "1"}


# -- cancel ------------------------------------------------------------------------------------


def test_cancel_call() -> None:
    call = _wire.build_cancel(ENDPOINT, "jimeng_t2v_v30", "42")
    assert call.url == "https://visual.volcengineapi.com/?Action=CVCancelTask&Version=2024-06-06"
    assert json.loads(call.body or b"") == {"req_key": "jimeng_t2v_v30", "task_id": "42"}
    assert call.method == "POST"
    assert call.purpose == "cancel"


def backend(**kwargs: Any) -> jimeng.Volcengine:
    return jimeng.Volcengine("AKLTtest", "secret-test-key", **kwargs)


def test_cancel_flow_queued() -> None:
    calls, task = run(backend().cancel(video_task()), answer(None))
    assert [call.purpose for call in calls] == ["cancel"]
    assert task.status is TaskStatus.CANCELLED


def refusal() -> InvalidRequestError:
    response = answer(code=50200, status=400, message="Invalid args: task is generating")
    with pytest.raises(InvalidRequestError) as info:
        check_response(response)
    return info.value


def test_cancel_refused_for_a_running_task() -> None:
    flow = backend().cancel(video_task())
    with pytest.raises(TaskNotCancellableError) as info:
        run(flow, refusal(), answer({"status": "generating"}))
    error = info.value
    assert error.task_id == "7392616336519610409"
    assert error.task_ref == "jimeng_t2v_v30:7392616336519610409"
    assert error.status == "generating"
    assert (error.code, error.status_code, error.request_id) == (50200, 400, "rid")
    assert "running" in str(error) and "only queued tasks" in str(error)


@pytest.mark.parametrize(
    ("data", "word"),
    [
        ({"status": "done", "video_url": "https://example.com/v.mp4"}, "succeeded"),
        ({"status": "failed"}, "failed"),
    ],
)
def test_cancel_refused_for_a_finished_task_says_so_plainly(data: Any, word: str) -> None:
    status = data["status"]
    with pytest.raises(TaskNotCancellableError) as info:
        run(backend().cancel(video_task()), refusal(), answer(data))
    assert info.value.message == f"task 7392616336519610409 already {word}; nothing to cancel"
    assert info.value.status == status and info.value.task_id == "7392616336519610409"


def test_cancel_refused_for_an_unknown_task() -> None:
    with pytest.raises(TaskExpiredError) as info:
        run(backend().cancel(video_task()), refusal(), answer({"status": "not_found"}))
    assert info.value.task_id == "7392616336519610409"


def test_cancel_refused_when_the_check_fails_too() -> None:
    failed = InvalidRequestError("Post Video Risk Not Pass", code=50516)
    with pytest.raises(TaskNotCancellableError) as info:
        run(backend().cancel(video_task()), refusal(), failed)
    assert info.value.status is None


def test_cancel_refusal_for_a_queued_task_keeps_the_servers_error() -> None:
    with pytest.raises(InvalidRequestError) as info:
        run(backend().cancel(video_task()), refusal(), answer({"status": "in_queue"}))
    assert not isinstance(info.value, TaskNotCancellableError)
    assert info.value.task_id == "7392616336519610409"


def test_cancel_rate_limited_is_not_a_refusal() -> None:
    from jimeng.errors import RateLimitError

    flow = backend().cancel(video_task())
    next(flow)
    with pytest.raises(RateLimitError) as info:
        flow.throw(RateLimitError("slow down", code=50429))
    assert info.value.task_id == "7392616336519610409"


def test_relays_cannot_cancel() -> None:
    relay = jimeng.Volcengine(api_key="sk-test", endpoint="https://relay.example/jm")
    with pytest.raises(jimeng.NotSupportedError):
        next(relay.cancel(video_task()))


# -- flows: endpoints, relay, mixed inputs ---------------------------------------------------------


def test_video_endpoint_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JIMENG_API_URL", raising=False)
    monkeypatch.setenv("JIMENG_VIDEO_API_URL", "https://video.example")
    signed = backend()
    image_call = next(signed.submit_image(ImageRequest(prompt="p")))
    video_call = next(signed.submit_video(VideoRequest(prompt="p")))
    assert image_call.url.startswith("https://visual.volcengineapi.com/?")
    assert video_call.url.startswith("https://video.example/?Action=CVSync2AsyncSubmitTask")
    assert video_call.headers["Host"] == "video.example"
    poll = next(signed.poll(video_task()))
    assert poll.url.startswith("https://video.example/?Action=CVSync2AsyncGetResult")
    # an explicit endpoint (a relay, the sandbox) serves both unless video_endpoint is given
    explicit = backend(endpoint="https://other.example")
    assert next(explicit.submit_video(VideoRequest(prompt="p"))).url.startswith(
        "https://other.example/?"
    )


def test_relay_call_shape() -> None:
    relay = jimeng.Volcengine(api_key="sk-relay-secret", endpoint="https://relay.example/jm")
    call = next(relay.submit_image(ImageRequest(prompt="p", size="2K")))
    assert call.url == ("https://relay.example/jm?Action=CVSync2AsyncSubmitTask&Version=2022-08-31")
    assert call.headers["Authorization"] == "Bearer sk-relay-secret"
    assert call.sign is None
    assert json.loads(call.body or b"") == {
        "req_key": "jimeng_t2i_v40",
        "prompt": "p",
        "resolution": "2k",
        "model": "jimeng-4.0",
    }
    assert "sk-relay-secret" not in repr(relay)
    assert "sk-relay-secret" not in json.dumps(relay.describe())


def test_relay_key_rejection_is_an_authentication_error() -> None:
    body = b'{"error":{"code":"invalid_api_key","message":"Invalid API key","type":"x"}}'
    with pytest.raises(AuthenticationError) as info:
        check_response(Response(status=401, headers={}, body=body))
    assert info.value.code == "invalid_api_key"
    assert info.value.status_code == 401


def test_mixed_inputs_fetch_the_url_then_send_everything_inline() -> None:
    first = png(640, 360)
    request = VideoRequest(
        prompt="p", mode="i2v_first_tail_720p", image=first, tail_image="https://cdn.example/t.png"
    )
    flow = backend().submit_video(request)
    fetch = next(flow)
    assert (fetch.method, fetch.url, fetch.purpose) == (
        "GET",
        "https://cdn.example/t.png",
        "fetch-input",
    )
    assert "Authorization" not in fetch.headers and fetch.sign is None
    submit = flow.send(Response(status=200, headers={}, body=jpeg(1280, 720)))
    sent = json.loads(submit.body or b"")
    assert len(sent["binary_data_base64"]) == 2
    assert "image_urls" not in sent


def test_mixed_inputs_check_the_fetched_image() -> None:
    request = VideoRequest(
        prompt="p", mode="i2v_first_tail_720p", image=png(640, 360), tail_image="https://x/t.png"
    )
    flow = backend().submit_video(request)
    next(flow)
    with pytest.raises(ValidationError) as info:
        flow.send(Response(status=200, headers={}, body=jpeg(720, 1280)))
    assert info.value.field == "tail_image"


def test_fetch_failure_names_the_field() -> None:
    request = ImageRequest(prompt="p", images=[png(), "https://x/gone.png"])
    fetch = next(backend().submit_image(request))
    assert fetch.check is not None
    with pytest.raises(ValidationError) as info:
        fetch.check(Response(status=404, headers={}, body=b""))
    assert info.value.field == "images[1]"


def test_resume_knows_video_keys_and_modes() -> None:
    signed = backend()
    task = signed.resume("jimeng_i2v_first_v30_1080:123")
    assert (task.kind, task.model, task.context["model_name"]) == (
        TaskKind.VIDEO,
        "jimeng_i2v_first_v30_1080",
        "jimeng-video-3.0",
    )
    assert signed.resume("123", model="ti2v_pro").ref == "jimeng_ti2v_v30_pro:123"
    assert signed.resume("9", model="jimeng-4.6").kind is TaskKind.IMAGE
    with pytest.raises(ValidationError):
        signed.resume("123")


def test_resume_refuses_a_req_key_the_backend_does_not_have() -> None:
    # The service would answer "not found", which reads like a task that expired.
    signed = backend()
    with pytest.raises(ValidationError) as caught:
        signed.resume("bogus:123")
    error = caught.value
    assert error.field == "task"
    assert error.message.startswith(
        "task: 'bogus' in 'bogus:123' is not a model key of this backend; a ref is "
        "'req_key:task_id' as printed when the task was submitted (allowed: "
    )
    assert error.choices is not None
    assert {"jimeng_t2i_v40", "jimeng_t2v_v30", "video_translate_v2_cvtob"} <= set(error.choices)
