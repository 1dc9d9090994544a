"""The gateway's protocol translation, without HTTP: builders, parsers, errors, validation."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import pytest

import jimeng
from jimeng._http import Response
from jimeng.backends._multipart import FilePart, encode_multipart
from jimeng.backends.gateway import _params, _wire
from jimeng.backends.gateway._errors import error_for, failure_class, refused_cancel_status
from jimeng.backends.gateway._models import IMAGE_MODELS, IMAGE_SIZES, VIDEO_MODELS
from jimeng.backends.gateway._params import region_of
from jimeng.errors import (
    APIError,
    AuthenticationError,
    ContentPolicyError,
    InsufficientCreditsError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    SessionExpiredError,
    ValidationError,
)
from jimeng.models import ImageInput, ImageRequest, Task, TaskKind, TaskStatus, VideoRequest
from jimeng.sandbox._media import render_png

PNG = render_png("reference", 64, 64)
ENDPOINT = _wire.Endpoint(
    base="http://gw.test/prefix", headers={"Authorization": "Bearer tok"}, sessions=("…abc",)
)


def answer(payload: Any, status: int = 200, **headers: str) -> Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Response(status=status, headers=headers, body=body)


def multipart_parts(body: bytes, content_type: str) -> list[tuple[str, str | None, bytes]]:
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    return [
        (part.get_param("name", header="content-disposition"), part.get_filename(),
         part.get_payload(decode=True))
        for part in message.iter_parts()
    ]  # fmt: skip


# -- multipart --------------------------------------------------------------------------------


def test_multipart_is_deterministic_and_parses_back() -> None:
    fields = [("prompt", "融合 a scene"), ("async", "true")]
    files = [FilePart(name="images", filename="a.png", data=PNG, content_type="image/png")]
    first, content_type = encode_multipart(fields, files)
    second, again = encode_multipart(fields, files)
    assert (first, content_type) == (second, again)
    assert content_type.startswith("multipart/form-data; boundary=jimeng-")
    parts = multipart_parts(first, content_type)
    assert parts == [
        ("prompt", None, "融合 a scene".encode()),
        ("async", None, b"true"),
        ("images", "a.png", PNG),
    ]
    _, other_type = encode_multipart([("prompt", "other")], files)
    assert other_type != content_type


def test_multipart_refuses_a_boundary_inside_a_file() -> None:
    with pytest.raises(ValueError, match="boundary"):
        encode_multipart([], [FilePart(name="f", filename="f", data=b"--b\r\n")], boundary="b")


# -- builders ---------------------------------------------------------------------------------


def test_generation_is_json_with_only_the_given_fields() -> None:
    call = _wire.build_image_submit(
        ENDPOINT, {"prompt": "cat", "ratio": "16:9"}, (), async_mode=False
    )
    assert (call.method, call.url) == ("POST", "http://gw.test/prefix/v1/images/generations")
    assert json.loads(call.body or b"") == {"prompt": "cat", "ratio": "16:9"}
    assert call.headers["Authorization"] == "Bearer tok"
    assert call.idempotent is False and call.purpose == "submit"


def test_async_submit_adds_async_and_callback() -> None:
    call = _wire.build_image_submit(
        ENDPOINT, {"prompt": "cat"}, (), async_mode=True, callback_url="http://127.0.0.1:9/h"
    )
    assert json.loads(call.body or b"") == {
        "prompt": "cat",
        "async": True,
        "callback_url": "http://127.0.0.1:9/h",
    }


def test_composition_urls_go_as_json_and_files_as_multipart() -> None:
    urls = [ImageInput(url="https://x.test/a.png"), ImageInput(url="https://x.test/b.png")]
    call = _wire.build_image_submit(ENDPOINT, {"prompt": "merge"}, urls, async_mode=False)
    assert call.url.endswith("/v1/images/compositions")
    assert json.loads(call.body or b"")["images"] == [
        "https://x.test/a.png",
        "https://x.test/b.png",
    ]

    files = [ImageInput(data=PNG), ImageInput(path=None, data=PNG)]
    call = _wire.build_image_submit(
        ENDPOINT, {"prompt": "merge", "sample_strength": 0.7}, files, async_mode=True
    )
    assert call.url.endswith("/v1/images/compositions")
    parts = multipart_parts(call.body or b"", call.headers["Content-Type"])
    assert [(name, filename) for name, filename, _ in parts] == [
        ("prompt", None),
        ("sample_strength", None),
        ("async", None),
        ("images", "image_1.png"),
        ("images", "image_2.png"),
    ]
    assert parts[1][2] == b"0.7" and parts[2][2] == b"true"


def test_video_frames_as_urls_or_named_files() -> None:
    call = _wire.build_video_submit(
        ENDPOINT,
        {"prompt": "p", "duration": 5},
        [ImageInput(url="https://x.test/first.png"), ImageInput(url="https://x.test/last.png")],
        async_mode=False,
        timeout=1260.0,
    )
    body = json.loads(call.body or b"")
    assert body["file_paths"] == ["https://x.test/first.png", "https://x.test/last.png"]
    assert call.timeout == 1260.0
    call = _wire.build_video_submit(
        ENDPOINT, {"prompt": "p"}, [ImageInput(data=PNG)], async_mode=False
    )
    names = [name for name, _, _ in multipart_parts(call.body or b"", call.headers["Content-Type"])]
    assert names == ["prompt", "image_file_1"]


def test_task_list_keeps_the_trailing_slash_quirk() -> None:
    [call] = _wire.build_list_tasks(ENDPOINT, status="running", kind="image", limit=20)
    assert call.url == "http://gw.test/prefix/v1/tasks/?status=processing&type=image&limit=20"
    [bare] = _wire.build_list_tasks(ENDPOINT, status=None, kind=None, limit=None)
    assert bare.url.endswith("/v1/tasks/")
    with pytest.raises(ValidationError, match="status"):
        _wire.build_list_tasks(ENDPOINT, status="exploded", kind=None, limit=None)
    with pytest.raises(ValidationError, match="limit"):
        _wire.build_list_tasks(ENDPOINT, status=None, kind=None, limit=0)


def test_library_queued_covers_the_gateways_pending_and_queued() -> None:
    calls = _wire.build_list_tasks(ENDPOINT, status="queued", kind=None, limit=2)
    assert [call.url.split("?", 1)[1] for call in calls] == [
        "status=pending&limit=2",
        "status=queued&limit=2",
    ]
    [pending] = _wire.build_list_tasks(ENDPOINT, status="pending", kind=None, limit=None)
    assert pending.url.endswith("?status=pending")


def test_merged_lists_are_newest_first_and_cut_to_the_limit() -> None:
    def task(task_id: str, minute: int) -> Task:
        return Task(
            id=task_id,
            kind=TaskKind.IMAGE,
            status=TaskStatus.QUEUED,
            backend="gateway",
            ref=task_id,
            created_at=datetime(2026, 1, 1, 0, minute, tzinfo=timezone.utc),
        )

    merged = _wire.merge_task_lists([[task("a", 5), task("b", 1)], [task("c", 3)]], limit=2)
    assert [t.id for t in merged] == ["a", "c"]


def test_relay_urls_go_to_generations_and_files_to_edits() -> None:
    call = _wire.build_openai_image(ENDPOINT, {"prompt": "p"}, [ImageInput(url="https://x/a")])
    assert call.url.endswith("/v1/images/generations")
    assert json.loads(call.body or b"")["image"] == "https://x/a"
    call = _wire.build_openai_image(ENDPOINT, {"prompt": "p"}, [ImageInput(data=PNG)])
    assert call.url.endswith("/v1/images/edits")
    names = [name for name, _, _ in multipart_parts(call.body or b"", call.headers["Content-Type"])]
    assert names == ["prompt", "image"]


# -- parsers ----------------------------------------------------------------------------------


def test_sync_answer_is_a_finished_task() -> None:
    urls = [{"url": "https://a/1.png"}, {"url": "https://a/2.png"}]
    response = answer({"created": 1763260188, "data": urls})
    task = _wire.parse_submit(response, kind=TaskKind.IMAGE, model="jimeng-4.5")
    assert task.status is TaskStatus.SUCCEEDED and task.done
    assert task.id.startswith("sync-") and len(task.id) == len("sync-") + 16
    assert task.result is not None and [str(i) for i in task.result.images] == [
        "https://a/1.png",
        "https://a/2.png",
    ]


def test_b64_video_answer() -> None:
    payload = {"created": 1, "data": [{"b64_json": "AAAAIGZ0eXA=", "revised_prompt": "p"}]}
    task = _wire.parse_submit(answer(payload), kind=TaskKind.VIDEO, model=None)
    assert isinstance(task.result, jimeng.VideoResult)
    assert task.result.video.data == b"\x00\x00\x00 ftyp"


def test_async_answer_is_a_pending_task() -> None:
    task = _wire.parse_submit(
        answer({"task_id": "97149680-e596-11f1-8730-29b15e3f778b", "status": "pending"}),
        kind=TaskKind.IMAGE,
        model="jimeng-4.5",
    )
    assert (task.id, task.status, task.raw_status) == (
        "97149680-e596-11f1-8730-29b15e3f778b",
        TaskStatus.QUEUED,
        "pending",
    )


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("pending", TaskStatus.QUEUED),
        ("queued", TaskStatus.QUEUED),
        ("processing", TaskStatus.RUNNING),
        ("completed", TaskStatus.FAILED),  # completed without a result: nothing to return
        ("failed", TaskStatus.FAILED),
        ("cancelled", TaskStatus.CANCELLED),
        ("exploded", TaskStatus.UNKNOWN),
    ],
)
def test_task_statuses(word: str, status: TaskStatus) -> None:
    task = _wire.parse_task({"task_id": "t", "type": "video", "status": word, "created_at": 1})
    assert task.status is status and task.raw_status == word and task.kind is TaskKind.VIDEO


def test_completed_task_result_is_read_like_the_sync_answer() -> None:
    record = {
        "task_id": "t1",
        "type": "composition",
        "status": "completed",
        "model": "jimeng-4.5",
        "created_at": 1763260100,
        "completed_at": 1763260188,
        "result": {"created": 1763260188, "data": [{"url": "https://a/1.png"}],
                   "input_images": 2, "composition_type": "multi_image_synthesis"},
    }  # fmt: skip
    task = _wire.parse_task(record)
    assert task.kind is TaskKind.IMAGE and task.context["type"] == "composition"
    assert task.result is not None and task.result.urls == ["https://a/1.png"]
    assert task.completed_at is not None and task.completed_at.year == 2025


def test_failed_task_keeps_the_message() -> None:
    task = _wire.parse_task(
        {"task_id": "t", "status": "failed", "error": "getaddrinfo ENOTFOUND jimeng.jianying.com"}
    )
    assert task.failure is not None and "ENOTFOUND" in task.failure.message


def test_balances_name_sessions_by_fingerprint_only() -> None:
    secret = "us-0123456789abcdef"
    payload = [{"token": secret, "points": {"giftCredit": 10, "purchaseCredit": 2,
                                            "vipCredit": 1, "totalCredit": 13}}]  # fmt: skip
    [balance] = _wire.parse_balances(answer(payload))
    assert (balance.total, balance.region) == (13, "us")
    assert secret not in repr(balance) and balance.session.startswith("…")


def test_international_liveness_is_unknown() -> None:
    status = _wire.parse_check(answer({"live": False}), "sg-abc")
    assert status.live is None and status.note
    assert _wire.parse_check(answer({"live": False}), "abc").live is False


@pytest.mark.parametrize(
    ("token", "region"),
    [("abc", "cn"), ("US-abc", "us"), ("hk-x", "hk"), ("http://u:p@proxy:8080@jp-x", "jp")],
)
def test_region_from_token(token: str, region: str) -> None:
    assert region_of(token) == region


# -- errors -----------------------------------------------------------------------------------

CODE_TABLE = [
    (-2000, "Params body.prompt invalid", InvalidRequestError),
    (-2000, "Params headers.authorization invalid", AuthenticationError),
    (-2001, "请求失败", ServerError),
    (-2001, "[生成失败]: Not enough credits left", InsufficientCreditsError),
    (-2002, "Token已失效", SessionExpiredError),
    (-2003, "远程文件URL非法", InvalidRequestError),
    (-2004, "远程文件超出大小", InvalidRequestError),
    (-2005, "已有对话流正在输出", APIError),
    (-2006, "内容由于合规问题已被阻止生成", ContentPolicyError),
    (-2007, "图像生成失败", APIError),
    (-2008, "视频生成失败", APIError),
    (-2009, "即梦积分不足", InsufficientCreditsError),
    (-1000, "任务不存在: abc", NotFoundError),
    (-1000, "[请求有误]: 请检查API文档… 当前请求为 GET -> /v1/tasks/abc 请纠正", NotFoundError),
    (-1000, "任务 t 当前状态为 processing，无法取消。仅 pending/queued 状态可取消。",
     InvalidRequestError),
    (-1000, "不支持的参数: size。请使用 ratio 和 resolution 参数控制图像尺寸。",
     InvalidRequestError),
    (-1000, "该模型仅支持 5、10 秒时长，当前值: 7", InvalidRequestError),
    (-1000, "getaddrinfo ENOTFOUND jimeng.jianying.com", ServerError),
    (-1000, "系统异常", APIError),
    (-1001, "请求参数校验错误", InvalidRequestError),
    (-1002, "无匹配的路由", NotFoundError),
]  # fmt: skip


@pytest.mark.parametrize(("code", "message", "cls"), CODE_TABLE)
@pytest.mark.parametrize("status", [200, 500])  # v1.9.6 answers 200; other versions set a status
def test_every_code_maps_to_its_class(code: int, message: str, cls: type, status: int) -> None:
    error = error_for(
        answer({"code": code, "message": message, "data": None}, status=status),
        {"code": code, "message": message, "data": None},
        backend="gateway",
        sessions=("…abc",),
    )
    assert type(error) is cls
    assert error is not None and error.code == code and error.backend == "gateway"
    if isinstance(error, InsufficientCreditsError):
        assert error.sessions == ("…abc",)


def test_upstream_failures_are_not_resent() -> None:
    for message in ("请求失败", "getaddrinfo ENOTFOUND jimeng.jianying.com"):
        code = -2001 if message == "请求失败" else -1000
        error = error_for(answer({}), {"code": code, "message": message}, backend="gateway")
        assert isinstance(error, ServerError) and error.retryable is False


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (502, b"<html>Bad Gateway</html>", ServerError),
        (429, b"slow down", RateLimitError),
        (401, b"no", AuthenticationError),
        (200, b"<html>login</html>", APIError),
        (401, {"error": {"message": "Incorrect API key", "code": "invalid_api_key"}},
         AuthenticationError),
        (400, {"error": {"message": "rejected", "code": "content_policy_violation"}},
         ContentPolicyError),
        (403, {"error": {"message": "nope"}}, PermissionDeniedError),
        (500, {"error": {"message": "Token已失效", "code": -2002}}, SessionExpiredError),
        (404, {"anything": 1}, NotFoundError),
    ],
)  # fmt: skip
def test_http_errors_and_foreign_bodies(status: int, body: Any, cls: type) -> None:
    response = answer(body, status=status)
    payload = json.loads(response.body) if not isinstance(body, bytes) else None
    assert type(error_for(response, payload, backend="gateway")) is cls


def test_success_bodies_are_not_errors() -> None:
    for payload in ({"created": 1, "data": []}, [{"token": "x"}], {"live": True}):
        assert error_for(answer(payload), payload, backend="gateway") is None


def test_failure_words() -> None:
    assert failure_class("内容被过滤") is ContentPolicyError
    assert failure_class("[积分不足]: credit prededuct not enough") is InsufficientCreditsError
    assert failure_class("[登录失效]: check login error") is SessionExpiredError
    assert failure_class("getaddrinfo ENOTFOUND") is None
    assert refused_cancel_status("任务 x 当前状态为 completed，无法取消。") == "completed"


# -- validation before the network ------------------------------------------------------------


def gateway(**options: Any) -> jimeng.Gateway:
    return jimeng.Gateway("http://127.0.0.1:5100", options.pop("token", "session"), **options)


@pytest.mark.parametrize(
    ("request_", "fields", "note"),
    [
        (ImageRequest(prompt="p", size="2K"), {"resolution": "2k"}, None),
        (ImageRequest(prompt="p", size="2560x1440"), {"ratio": "16:9", "resolution": "2k"}, None),
        (
            ImageRequest(prompt="p", width=1920, height=1080),
            {"ratio": "16:9", "resolution": "2k"},
            "width 1920x1080 approximated as 16:9 at 2k (2560x1440): the gateway takes ratio "
            "and resolution only",
        ),
        # dreamina-web.md §20: the gateway's own 1k 4:3 row is portrait, so a landscape
        # 1024x768 goes to 4:3 at 2k rather than to a portrait image.
        (
            ImageRequest(prompt="p", width=1024, height=768),
            {"ratio": "4:3", "resolution": "2k"},
            "width 1024x768 approximated as 4:3 at 2k (2304x1728): the gateway takes ratio and "
            "resolution only",
        ),
        (ImageRequest(prompt="p", ratio="3:4"), {"ratio": "3:4"}, None),
    ],
)
def test_sizes_become_ratio_and_resolution(
    request_: ImageRequest, fields: dict[str, str], note: str | None
) -> None:
    gateway().validate_image(request_)
    assert _params.image_size_fields(request_, regions=frozenset({"cn"})) == (fields, note)


@pytest.mark.parametrize(
    ("token", "request_", "field", "needle"),
    [
        ("session", ImageRequest(prompt="p", model="jimeng-9"), "model", "unknown"),
        ("session", ImageRequest(prompt="p", model="jimeng-2.1"), "model", "dropped"),
        ("session", ImageRequest(prompt="p", model="nanobanana"), "model", "CN"),
        ("us-s", ImageRequest(prompt="p", model="jimeng-5.0"), "model", "US"),
        ("us-s", ImageRequest(prompt="p", model="nanobanana", ratio="16:9"), "ratio", "fixed"),
        ("hk-s", ImageRequest(prompt="p", model="nanobanana", resolution="2k"), "resolution",
         "1k"),
        ("session", ImageRequest(prompt="p", ratio="5:4"), "ratio", "unknown"),
        ("session", ImageRequest(prompt="p", resolution="8k"), "resolution", "unknown"),
        ("session", ImageRequest(prompt="p", model="jimeng-3.0", intelligent_ratio=True),
         "intelligent_ratio", "ignores"),
        ("session", ImageRequest(prompt="p", intelligent_ratio=True, ratio="1:1"),
         "intelligent_ratio", "one or the other"),
        ("session", ImageRequest(prompt="p", seed=3), "seed", "not a parameter"),
        ("session", ImageRequest(prompt="p", images=["https://a/x.png", PNG]), "images", "mixes"),
        ("session", ImageRequest(prompt="p", images=[b"GIF89a....."]), "images[0]", "PNG"),
        ("session", ImageRequest(prompt="p", images=[PNG] * 11), "images", "1–10"),
    ],
)  # fmt: skip
def test_image_rules(token: str, request_: ImageRequest, field: str, needle: str) -> None:
    with pytest.raises(ValidationError) as caught:
        gateway(token=token).validate_image(request_)
    assert caught.value.field == field
    assert needle in str(caught.value)


@pytest.mark.parametrize(
    ("request_", "field", "needle"),
    [
        (VideoRequest(prompt="p", model="jimeng-video-3.0", duration=7), "duration", "5, 10"),
        (VideoRequest(prompt="p", duration=5.5), "duration", "whole"),
        (VideoRequest(prompt="p", resolution="1080p"), "resolution", "no resolution"),
        (VideoRequest(prompt="p", model="jimeng-video-3.0", resolution="4k"), "resolution",
         "unknown"),
        (VideoRequest(prompt="p", tail_image=PNG), "tail_image", "first frame"),
        (VideoRequest(prompt="p", image=PNG, aspect_ratio="16:9"), "aspect_ratio", "image"),
        (VideoRequest(prompt="p", function_mode="omni_reference", image=PNG), "function_mode",
         "Seedance"),
        (VideoRequest(prompt="p", model="jimeng-video-seedance-2.0",
                      function_mode="omni_reference", image="https://a/x.png"), "image", "files"),
        (VideoRequest(prompt="p", model="jimeng-video-veo3"), "model", "CN"),
        (VideoRequest(prompt="p", fps=24), "fps", "not a parameter"),
    ],
)  # fmt: skip
def test_video_rules(request_: VideoRequest, field: str, needle: str) -> None:
    with pytest.raises(ValidationError) as caught:
        gateway().validate_video(request_)
    assert caught.value.field == field
    assert needle in str(caught.value)


def test_valid_requests_pass() -> None:
    backend = gateway()
    backend.validate_image(
        ImageRequest(
            prompt="p",
            model="jimeng-4.5",
            ratio="16:9",
            resolution="2K",
            negative_prompt="x",
            sample_strength=0.3,
            response_format="b64_json",
        )
    )
    backend.validate_image(ImageRequest(prompt="p", images=[PNG, PNG]))
    backend.validate_video(
        VideoRequest(
            prompt="p",
            model="jimeng-video-3.0",
            duration=10,
            resolution="1080p",
            aspect_ratio="16:9",
        )
    )
    backend.validate_video(
        VideoRequest(
            prompt="p",
            model="jimeng-video-seedance-2.0",
            duration=13,
            function_mode="omni_reference",
            image=PNG,
        )
    )
    gateway(token="sg-x").validate_image(ImageRequest(prompt="p", model="nanobanana", ratio="4:3"))


def test_tables_agree_with_the_protocol_reference() -> None:
    assert IMAGE_SIZES[("2k", "16:9")] == (3, 2560, 1440)  # CAP capture, dreamina-web.md §3.3
    assert IMAGE_SIZES[("4k", "21:9")] == (108, 6048, 2592)
    assert IMAGE_SIZES[("1k", "4:3")] == (4, 768, 1024)  # IPT's turned row (dreamina-web.md §20)
    assert VIDEO_MODELS["jimeng-video-3.0"].durations == (5, 10)
    assert {m.name for m in IMAGE_MODELS.values() if m.intelligent_ratio} == {
        "jimeng-4.0", "jimeng-4.1", "jimeng-4.5", "jimeng-4.6", "jimeng-5.0"
    }  # fmt: skip


# -- configuration ----------------------------------------------------------------------------


def test_configuration_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "JIMENG_GATEWAY_URL",
        "JIMENG_GATEWAY_TOKEN",
        "JIMENG_SESSION_ID",
        "JIMENG_GATEWAY_API_KEY",
        "JIMENG_GATEWAY_ASYNC",
        "JIMENG_GATEWAY_FLAVOR",
    ):
        monkeypatch.delenv(name, raising=False)  # fmt: skip
    with pytest.raises(jimeng.ConfigurationError, match="session id"):
        jimeng.Gateway()
    monkeypatch.setenv("JIMENG_SESSION_ID", "us-one, hk-two")
    backend = jimeng.Gateway()
    assert backend.url == "http://localhost:5100" and backend.regions == {"us", "hk"}
    monkeypatch.setenv("JIMENG_GATEWAY_TOKEN", "three")
    monkeypatch.setenv("JIMENG_GATEWAY_URL", "https://gw.example/jimeng/")
    monkeypatch.setenv("JIMENG_GATEWAY_ASYNC", "1")
    backend = jimeng.Gateway()
    assert (backend.url, backend.regions, backend.async_tasks) == (
        "https://gw.example/jimeng",
        {"cn"},
        True,
    )
    relay = jimeng.Gateway("https://relay.example", api_key="sk-live-1234567890")
    assert relay.flavor == "openai"
    with pytest.raises(jimeng.ConfigurationError, match="plain http"):
        jimeng.Gateway("http://gw.example", token="t")
    assert (
        jimeng.Gateway("http://gw.example", token="t", allow_http=True).url == "http://gw.example"
    )
    with pytest.raises(jimeng.ConfigurationError, match="api_key"):
        jimeng.Gateway("http://localhost", token="t", api_key="k", flavor="jimeng-api")


def test_secrets_stay_out_of_repr() -> None:
    token = "us-SECRETSESSION0001"
    key = "sk-SECRETRELAYKEY0001"
    text = repr(jimeng.Gateway(token=token)) + repr(jimeng.Gateway(api_key=key))
    assert token not in text and key not in text and "…" in text
    assert str(jimeng.Gateway(token=token).describe()).find(token) == -1


@pytest.mark.parametrize(
    ("token", "secrets"),
    [
        ("us-canarysid0001", ["us-canarysid0001", "canarysid0001"]),
        ("canarysid0002", ["canarysid0002"]),
        (
            "http://u:p@proxy:3128@HK-canarysid0003",
            [
                "http://u:p@proxy:3128@HK-canarysid0003",
                "HK-canarysid0003",
                "http://u:p@proxy:3128",
                "canarysid0003",
            ],
        ),
        (
            " jp-canarysid0004 ,canarysid0005",
            ["jp-canarysid0004", "canarysid0004", "canarysid0005"],
        ),
    ],
)
def test_every_form_of_a_session_token_is_a_secret(token: str, secrets: list[str]) -> None:
    assert _params.token_secrets(token) == secrets


def test_an_echoed_bare_session_id_is_redacted() -> None:
    """The gateway drops the region prefix and sends the bare id upstream, which may echo it."""
    bare, proxied = "canaryGatewaySid0a1b2c3d", "canaryGatewaySid4e5f6a7b"
    jimeng.Gateway(token=[f"us-{bare}", f"http://user:pw@proxy.test:3128@hk-{proxied}"])
    payload = {
        "code": -2000,
        "message": f"upstream refused sessionid={bare}; {proxied} via http://user:pw@proxy.test:3128",
    }
    response = Response(status=200, headers={}, body=json.dumps(payload).encode())
    error = error_for(response, payload, backend="gateway")
    assert error is not None
    assert error.message == "upstream refused sessionid=<redacted>; <redacted> via <redacted>"
    assert error.body == {"code": -2000, "message": error.message}


@pytest.mark.parametrize(
    "payload",
    [
        {"tasks": {"not": "a list"}},
        {"tasks": ["text", 5, None]},
    ],
)
def test_odd_task_lists_are_tolerated(payload: dict[str, Any]) -> None:
    response = Response(status=200, headers={}, body=json.dumps(payload).encode())
    assert _wire.parse_task_list(response) == []


def test_odd_shapes_in_a_task_record_are_tolerated() -> None:
    task = _wire.parse_task(
        {
            "task_id": "t1",
            "status": "completed",
            "created_at": 1e20,
            "result": {"data": 5},
        },
        backend="gateway",
    )
    assert task.created_at is None
    assert task.status is TaskStatus.FAILED  # finished without usable output


def test_one_broken_b64_item_keeps_the_rest_of_the_result() -> None:
    good = base64.b64encode(render_png("ok", 8, 8)).decode()
    result = _wire.parse_result(
        {"data": [{"b64_json": "%%%not base64%%%"}, {"b64_json": good}]},
        kind=TaskKind.IMAGE,
        task_id="t1",
        model=None,
        backend="gateway",
    )
    assert isinstance(result, jimeng.ImageResult) and len(result.images) == 1
