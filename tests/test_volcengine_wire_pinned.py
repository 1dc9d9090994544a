"""The Volcengine translator by value: the exact bytes it sends and every field it parses.

Complements ``test_volcengine_wire.py`` with table-driven checks of the pure build/parse
functions, so a changed encoding, header, purpose flag or parsed field is a failing test.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import jimeng
from jimeng._http import Call, Response
from jimeng.backends.volcengine import _wire
from jimeng.backends.volcengine._errors import check_response, check_result_response
from jimeng.models import Task, TaskKind, TaskStatus

NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)
ENDPOINT = _wire.Endpoint(base="https://visual.volcengineapi.com")
PNG_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\nfirst").decode()
JPEG_B64 = base64.b64encode(b"\xff\xd8\xffsecond").decode()


def answer(payload: Any, status: int = 200) -> Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Response(status=status, headers={}, body=body)


def image_task(**context: Any) -> Task:
    return Task(
        id="42",
        kind=TaskKind.IMAGE,
        status=TaskStatus.QUEUED,
        backend="volcengine",
        ref="jimeng_t2i_v40:42",
        model="jimeng_t2i_v40",
        context=context,
    )


def video_task(**context: Any) -> Task:
    return Task(
        id="43",
        kind=TaskKind.VIDEO,
        status=TaskStatus.QUEUED,
        backend="volcengine",
        ref="jimeng_t2v_v30:43",
        model="jimeng_t2v_v30",
        context=context,
    )


# -- what is sent ------------------------------------------------------------------------------


def test_bodies_are_compact_utf8_json() -> None:
    assert _wire.dumps({"prompt": "雪中的狐狸 é", "n": [1, 2]}) == (
        '{"prompt":"雪中的狐狸 é","n":[1,2]}'.encode()
    )


@pytest.mark.parametrize(
    ("build", "action", "idempotent", "purpose", "body"),
    [
        (
            lambda: _wire.build_submit(ENDPOINT, {"req_key": "k", "prompt": "猫"}),
            "Action=CVSync2AsyncSubmitTask&Version=2022-08-31",
            False,
            "submit",
            '{"req_key":"k","prompt":"猫"}',
        ),
        (
            lambda: _wire.build_get_result(ENDPOINT, "k", "42", '{"return_url":true}'),
            "Action=CVSync2AsyncGetResult&Version=2022-08-31",
            True,
            "poll",
            '{"req_key":"k","task_id":"42","req_json":"{\\"return_url\\":true}"}',
        ),
        (
            lambda: _wire.build_get_result(ENDPOINT, "k", "42", ""),
            "Action=CVSync2AsyncGetResult&Version=2022-08-31",
            True,
            "poll",
            '{"req_key":"k","task_id":"42"}',
        ),
        (
            lambda: _wire.build_cancel(ENDPOINT, "k", "42"),
            "Action=CVCancelTask&Version=2024-06-06",
            True,
            "cancel",
            '{"req_key":"k","task_id":"42"}',
        ),
    ],
    ids=["submit", "poll", "poll-without-options", "cancel"],
)
def test_each_call_by_value(
    build: Callable[[], Call], action: str, idempotent: bool, purpose: str, body: str
) -> None:
    # Built inside the test, not at collection: the call is what the code builds now.
    call = build()
    assert call.method == "POST"
    assert call.url == f"https://visual.volcengineapi.com/?{action}"
    assert dict(call.headers) == {"Content-Type": "application/json"}
    assert call.idempotent is idempotent
    assert call.purpose == purpose
    assert call.body == body.encode()
    assert call.expects_json is True
    # A poll leaves a finished task's own failure to the parser; the others raise on any error.
    assert call.check is (check_result_response if purpose == "poll" else check_response)


def test_a_relay_host_header_and_extra_headers_are_kept() -> None:
    endpoint = _wire.Endpoint(
        base="https://relay.test", path="/jm", headers={"Authorization": "Bearer x"}, host="h.test"
    )
    call = _wire.build_submit(endpoint, {"req_key": "k"})
    assert call.url == "https://relay.test/jm?Action=CVSync2AsyncSubmitTask&Version=2022-08-31"
    assert dict(call.headers) == {
        "Content-Type": "application/json",
        "Authorization": "Bearer x",
        "Host": "h.test",
    }


def test_req_json_is_compact_and_keeps_non_ascii() -> None:
    options = _wire.req_json(
        watermark=jimeng.Watermark(text="即梦 AI", position=3, language=1, opacity=0.5),
        aigc_meta=jimeng.AigcMeta(producer_id="p-1", content_producer="制作者"),
    )
    assert options == (
        '{"return_url":true,"logo_info":{"add_logo":true,"position":3,"language":1,'
        '"opacity":0.5,"logo_text_content":"即梦 AI"},'
        '"aigc_meta":{"producer_id":"p-1","content_producer":"制作者"}}'
    )
    assert _wire.req_json(images=False) == ""
    assert _wire.req_json(return_url=False) == '{"return_url":false}'


# -- what is parsed ----------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"<html>busy</html>", b"null"])
def test_answers_that_are_not_json_objects_are_api_errors(body: bytes) -> None:
    with pytest.raises(jimeng.APIError) as caught:
        _wire.parse_submit(answer(body, 502), req_key="k", kind=TaskKind.IMAGE, backend="v")
    assert caught.value.message == "answer is not a JSON object"
    assert caught.value.status_code == 502


@pytest.mark.parametrize(
    "data", [{}, {"task_id": ""}, {"task_id": None}, ["42"], "42", None], ids=repr
)
def test_a_submit_answer_without_an_id_is_an_error_with_its_context(data: Any) -> None:
    payload = {"code": 10000, "data": data, "request_id": "rid-1"}
    with pytest.raises(jimeng.APIError) as caught:
        _wire.parse_submit(answer(payload), req_key="k", kind=TaskKind.IMAGE, backend="volc")
    error = caught.value
    assert error.message == "submit answer carries no task_id"
    assert (error.status_code, error.request_id, error.backend) == (200, "rid-1", "volc")
    assert error.body == payload


@pytest.mark.parametrize(
    ("data", "status", "raw_status"),
    [
        ({"task_id": 42}, TaskStatus.QUEUED, "in_queue"),
        ({"task_id": "42", "status": "generating"}, TaskStatus.RUNNING, "generating"),
        ({"task_id": "42", "status": "submitted"}, TaskStatus.QUEUED, "submitted"),
        ({"task_id": "42", "status": 3}, TaskStatus.QUEUED, "in_queue"),
        ({"task_id": "42", "status": "mystery"}, TaskStatus.QUEUED, "mystery"),
    ],
)
def test_a_submit_answer_by_value(data: Any, status: TaskStatus, raw_status: str) -> None:
    payload = {"code": 10000, "data": data, "request_id": "rid"}
    task = _wire.parse_submit(
        answer(payload), req_key="jimeng_t2v_v30", kind=TaskKind.VIDEO, backend="volcengine"
    )
    assert task == Task(
        id="42",
        kind=TaskKind.VIDEO,
        status=status,
        backend="volcengine",
        ref="jimeng_t2v_v30:42",
        model="jimeng_t2v_v30",
        raw_status=raw_status,
    )
    assert task.raw == payload


def test_an_accepted_cancel_by_value() -> None:
    payload = {"code": 10000, "data": None, "request_id": "rid"}
    task = _wire.parse_cancel(answer(payload), image_task())
    assert (task.status, task.raw_status, task.raw) == (
        TaskStatus.CANCELLED,
        "cancelled",
        payload,
    )
    assert task.id == "42"


@pytest.mark.parametrize(
    ("word", "status"),
    [("in_queue", TaskStatus.QUEUED), ("", TaskStatus.UNKNOWN), (None, TaskStatus.UNKNOWN)],
)
def test_status_of(word: str | None, status: TaskStatus) -> None:
    assert _wire.status_of(word) is status


def test_urls_with_their_base64_copies_pair_in_order() -> None:
    payload = {
        "code": 10000,
        "data": {
            "status": "done",
            "image_urls": ["https://cdn.test/1.png", "https://cdn.test/2.jpeg"],
            "binary_data_base64": [PNG_B64, JPEG_B64],
        },
        "request_id": "rid-7",
    }
    task = _wire.parse_result(
        answer(payload), image_task(pixels=(2048, 1536), model_name="jimeng-4.0"), now=NOW
    )

    assert task.status is TaskStatus.SUCCEEDED and task.failure is None
    result = task.result
    assert isinstance(result, jimeng.ImageResult)
    assert [(i.url, i.data, i.width, i.height) for i in result.images] == [
        ("https://cdn.test/1.png", b"\x89PNG\r\n\x1a\nfirst", 2048, 1536),
        ("https://cdn.test/2.jpeg", b"\xff\xd8\xffsecond", 2048, 1536),
    ]
    assert all(i.expires_at == NOW + timedelta(hours=24) for i in result.images)
    assert (result.task_id, result.model, result.backend, result.request_id) == (
        "42",
        "jimeng-4.0",
        "volcengine",
        "rid-7",
    )
    assert result.raw == payload
    assert task.raw == payload and task.raw_status == "done"


def test_urls_and_a_different_number_of_base64_copies_keep_the_urls_only() -> None:
    payload = {
        "code": 10000,
        "data": {
            "status": "done",
            "image_urls": ["https://cdn.test/1.png", "https://cdn.test/2.png"],
            "binary_data_base64": [PNG_B64],
        },
    }
    result = _wire.parse_result(answer(payload), image_task(), now=NOW).result
    assert isinstance(result, jimeng.ImageResult)
    assert [(i.url, i.data) for i in result.images] == [
        ("https://cdn.test/1.png", None),
        ("https://cdn.test/2.png", None),
    ]
    assert result.model == "jimeng_t2i_v40"  # no public name known: the req_key


def test_base64_only_results_skip_empty_items() -> None:
    payload = {
        "code": 10000,
        "data": {"status": "done", "image_urls": None, "binary_data_base64": [PNG_B64, ""]},
    }
    result = _wire.parse_result(answer(payload), image_task(pixels=(1024, 1024)), now=NOW).result
    assert isinstance(result, jimeng.ImageResult)
    assert [(i.url, i.data, i.width, i.height, i.expires_at) for i in result.images] == [
        (None, b"\x89PNG\r\n\x1a\nfirst", 1024, 1024, None)
    ]


@pytest.mark.parametrize(
    ("task", "data"),
    [
        (image_task(), {"status": "done", "image_urls": [], "binary_data_base64": []}),
        (image_task(), {"status": "done", "image_urls": [""], "binary_data_base64": None}),
        (video_task(), {"status": "done", "video_url": ""}),
    ],
    ids=["no-images", "empty-url", "no-video-url"],
)
def test_done_without_output_is_a_failure_with_the_code(task: Task, data: Any) -> None:
    done = _wire.parse_result(answer({"code": 10000, "data": data}), task, now=NOW)
    assert done.status is TaskStatus.FAILED
    assert done.failure == jimeng.models.TaskFailure(
        code=10000, message="task finished without output"
    )
    assert done.raw_status == "done"


@pytest.mark.parametrize(
    ("payload", "failure"),
    [
        (
            {"code": 50412, "message": "Text Risk Not Pass", "data": {"status": "done"}},
            (50412, "Text Risk Not Pass"),
        ),
        ({"code": 10000, "data": {"status": "failed"}}, (10000, "generation failed")),
        ({"code": 50500, "message": "", "data": {"status": "done"}}, (50500, "generation failed")),
    ],
)
def test_failures_carry_the_code_and_message(payload: Any, failure: tuple[Any, str]) -> None:
    done = _wire.parse_result(answer(payload), image_task(), now=NOW)
    assert done.status is TaskStatus.FAILED
    assert done.result is None
    assert done.failure == jimeng.models.TaskFailure(code=failure[0], message=failure[1])


@pytest.mark.parametrize(
    ("data", "status", "raw_status"),
    [
        ({"status": "generating"}, TaskStatus.RUNNING, "generating"),
        ({"status": 7}, TaskStatus.UNKNOWN, None),
        (["done"], TaskStatus.UNKNOWN, None),
        (None, TaskStatus.UNKNOWN, None),
    ],
)
def test_unfinished_or_odd_answers(data: Any, status: TaskStatus, raw_status: str | None) -> None:
    payload = {"code": 10000, "data": data}
    task = _wire.parse_result(answer(payload), image_task(), now=NOW)
    assert (task.status, task.raw_status, task.result, task.failure) == (
        status,
        raw_status,
        None,
        None,
    )
    assert task.raw == payload


def test_a_video_result_by_value() -> None:
    payload = {
        "code": 10000,
        "data": {"status": "done", "video_url": "https://v.test/x.mp4", "aigc_meta_tagged": 1},
        "request_id": "rid-v",
    }
    task = _wire.parse_result(answer(payload), video_task(model_name="jimeng-video-3.0"), now=NOW)
    result = task.result
    assert isinstance(result, jimeng.VideoResult)
    video = result.video
    assert (video.url, video.content_type, video.expires_at) == (
        "https://v.test/x.mp4",
        "video/mp4",
        NOW + timedelta(hours=1),
    )
    # No frame count known: neither a length nor a frame rate is made up.
    assert (video.duration, video.fps) == (None, None)
    assert result.aigc_meta_tagged is None  # only a real boolean counts
    assert (result.task_id, result.model, result.backend, result.request_id) == (
        "43",
        "jimeng-video-3.0",
        "volcengine",
        "rid-v",
    )
    assert result.raw == payload


@pytest.mark.parametrize(
    ("data", "status"),
    [({"status": ["done"]}, TaskStatus.UNKNOWN), ({"status": {"a": 1}}, TaskStatus.UNKNOWN)],
    ids=["list", "object"],
)
def test_a_status_that_is_not_a_word_is_unknown(data: Any, status: TaskStatus) -> None:
    task = _wire.parse_result(answer({"code": 10000, "data": data}), image_task(), now=NOW)
    assert (task.status, task.raw_status, task.failure) == (status, None, None)


def test_an_outer_error_code_wins_over_the_inner_reason() -> None:
    inner = json.dumps({"message": "no face found"})
    payload = {
        "code": 50412,
        "message": "Text Risk Not Pass",
        "data": {"status": "failed", "resp_data": inner},
    }
    task = _wire.parse_result(answer(payload), video_task(), now=NOW)
    assert task.failure == jimeng.models.TaskFailure(code=50412, message="Text Risk Not Pass")


def test_a_submit_answer_carries_the_context_and_notes_given() -> None:
    payload = {"code": 10000, "data": {"task_id": "42"}}
    context = {"pixels": (1024, 1024)}
    given = _wire.parse_submit(
        answer(payload),
        req_key="k",
        kind=TaskKind.IMAGE,
        backend="volcengine",
        context=context,
        notes=("size approximated",),
    )
    bare = _wire.parse_submit(answer(payload), req_key="k", kind=TaskKind.IMAGE, backend="v")

    assert given.context is context
    assert given.notes == ("size approximated",)
    assert (bare.context, bare.notes) == ({}, ())


# -- the JSON inside a string (§3.4.5) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "decoded"),
    [
        ('{"status": 1, "message": "ok"}', {"status": 1, "message": "ok"}),
        ({"status": 0}, {"status": 0}),  # a relay that already decoded it
        ("[1, 2]", {}),
        ('"text"', {}),
        ("null", {}),
        ("{not json", {}),
        ("   ", {}),
        ("", {}),
        (None, {}),
        (7, {}),
    ],
    ids=repr,
)
def test_resp_data_decoded(value: Any, decoded: Any) -> None:
    assert _wire.resp_data({"resp_data": value}) == decoded
    assert _wire.resp_data({}) == {}


def avatar_task() -> Task:
    return Task(
        id="7",
        kind=TaskKind.VIDEO,
        status=TaskStatus.QUEUED,
        backend="volcengine",
        ref="realman_avatar_picture_create_role_omni_v15:7",
        model="realman_avatar_picture_create_role_omni_v15",
        context={"image": "https://in.test/a.png"},
    )


@pytest.mark.parametrize(
    ("inner", "subject"),
    [
        ({"status": 1}, True),
        ({"status": "1"}, True),
        ({"status": True}, True),
        ({"status": 0}, False),
        ({"status": 2}, False),
        ({"status": "0"}, False),
        ({}, False),
    ],
    ids=repr,
)
def test_the_subject_check_by_value(inner: Any, subject: bool) -> None:
    payload = {"code": 10000, "data": {"status": "done", "resp_data": json.dumps(inner)}}
    before = avatar_task()

    checked = _wire.parse_subject_check(answer(payload), before)

    assert (checked.status, checked.raw_status, checked.failure) == (
        TaskStatus.SUCCEEDED,
        "done",
        None,
    )
    assert checked.context == {"image": "https://in.test/a.png", "subject": subject}
    assert before.context == {"image": "https://in.test/a.png"}  # the old observation unchanged
    assert checked.raw == payload
    assert checked.id == "7"


@pytest.mark.parametrize(
    ("payload", "failure"),
    [
        (
            # "done" with an error code: the code decides (§2.3), the inner reason first.
            {
                "code": 50412,
                "message": "Text Risk Not Pass",
                "data": {"status": "done", "resp_data": '{"message": "no person"}'},
            },
            (50412, "no person"),
        ),
        (
            {"code": 50412, "message": "Text Risk Not Pass", "data": {"status": "done"}},
            (50412, "Text Risk Not Pass"),
        ),
        ({"code": 50500, "message": "", "data": {"status": "done"}}, (50500, "failed")),
        ({"code": 10000, "data": {"status": "failed"}}, (10000, "failed")),
        ({"data": {"status": "failed"}}, (None, "failed")),
    ],
    ids=["inner-reason", "outer-message", "no-message", "failed", "no-code"],
)
def test_a_failed_subject_check_by_value(payload: Any, failure: tuple[Any, str]) -> None:
    checked = _wire.parse_subject_check(answer(payload), avatar_task())

    assert checked.status is TaskStatus.FAILED
    assert checked.failure == jimeng.models.TaskFailure(code=failure[0], message=failure[1])
    assert checked.raw_status == payload["data"]["status"]
    assert "subject" not in checked.context
    assert checked.raw == payload


@pytest.mark.parametrize(
    ("payload", "status", "raw_status"),
    [
        ({"code": 10000, "data": {"status": "in_queue"}}, TaskStatus.QUEUED, "in_queue"),
        # Unfinished: an odd outer code does not make it a failure yet.
        ({"code": 50412, "data": {"status": "generating"}}, TaskStatus.RUNNING, "generating"),
        ({"code": 10000, "data": {"status": 3}}, TaskStatus.UNKNOWN, None),
        ({"code": 10000, "data": ["done"]}, TaskStatus.UNKNOWN, None),
        ({"code": 10000, "data": None}, TaskStatus.UNKNOWN, None),
    ],
    ids=["queued", "running-odd-code", "number", "list", "none"],
)
def test_an_unfinished_subject_check(
    payload: Any, status: TaskStatus, raw_status: str | None
) -> None:
    checked = _wire.parse_subject_check(answer(payload), avatar_task())

    assert (checked.status, checked.raw_status, checked.failure) == (status, raw_status, None)
    assert checked.context == {"image": "https://in.test/a.png"}
    assert checked.raw == payload
