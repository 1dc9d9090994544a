"""The Volcengine translation: request building, validation and both error envelopes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import jimeng
from jimeng._http import Call, Response, drive
from jimeng.backends.volcengine import Volcengine, _wire
from jimeng.backends.volcengine._errors import check_response
from jimeng.models import ImageRequest, Task, TaskKind, TaskStatus

NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)


def backend() -> Volcengine:
    return Volcengine(access_key="AKLTunit", secret_key="unit-secret")


def submit_call(**kwargs: Any) -> Call:
    flow = backend().submit_image(ImageRequest(prompt="a red fox in snow", **kwargs))
    return next(flow)


def body_of(call: Call) -> dict[str, Any]:
    assert call.body is not None
    result: dict[str, Any] = json.loads(call.body)
    return result


def response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Response(status=status, headers=headers or {}, body=body)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, {}),
        ({"size": "1K"}, {"size": 1024 * 1024}),
        ({"size": "4k"}, {"size": 4096 * 4096}),
        ({"size": "2560x1440"}, {"width": 2560, "height": 1440}),
        ({"width": 2304, "height": 1728}, {"width": 2304, "height": 1728}),
        ({"scale": 0.333}, {"scale": 0.33}),
        ({"force_single": True}, {"force_single": True}),
        ({"images": ["https://a.test/x.jpg"]}, {"image_urls": ["https://a.test/x.jpg"]}),
        ({"min_ratio": 0.25, "max_ratio": 4.0}, {"min_ratio": 0.25, "max_ratio": 4.0}),
    ],
)
def test_submit_body_sends_only_what_was_given(
    kwargs: dict[str, Any], expected: dict[str, Any]
) -> None:
    call = submit_call(**kwargs)
    assert body_of(call) == {"req_key": "jimeng_t2i_v40", "prompt": "a red fox in snow", **expected}
    assert call.method == "POST"
    assert call.url == (
        "https://visual.volcengineapi.com/?Action=CVSync2AsyncSubmitTask&Version=2022-08-31"
    )
    assert call.idempotent is False and call.purpose == "submit"


def test_signed_headers_per_attempt() -> None:
    call = submit_call()
    assert call.sign is not None
    first = call.sign(call, NOW)
    later = call.sign(call, datetime(2025, 1, 1, 0, 0, 5, tzinfo=timezone.utc))
    assert first["X-Date"] == "20250101T000000Z" and later["X-Date"] == "20250101T000005Z"
    assert first["Authorization"] != later["Authorization"]
    assert first["Authorization"].startswith(
        "HMAC-SHA256 Credential=AKLTunit/20250101/cn-north-1/cv/request, "
        "SignedHeaders=content-type;host;x-content-sha256;x-date, Signature="
    )


def test_sts_token_is_signed() -> None:
    backend = Volcengine(access_key="AKLTunit", secret_key="s", session_token="STS-token-1")
    call = next(backend.submit_image(ImageRequest(prompt="x")))
    assert call.sign is not None
    headers = call.sign(call, NOW)
    assert headers["X-Security-Token"] == "STS-token-1"
    assert "x-security-token" in headers["Authorization"]


def test_req_json_is_a_string_with_options() -> None:
    text = _wire.req_json(
        return_url=None,
        watermark=jimeng.Watermark(position=2, language=1, opacity=0.5, text="demo"),
        aigc_meta=jimeng.AigcMeta(producer_id="p-1"),
    )
    assert json.loads(text) == {
        "return_url": True,
        "logo_info": {
            "add_logo": True,
            "position": 2,
            "language": 1,
            "opacity": 0.5,
            "logo_text_content": "demo",
        },
        "aigc_meta": {"producer_id": "p-1"},
    }


BAD_INPUTS: list[tuple[dict[str, Any], str]] = [
    ({"prompt": "x" * 801}, "prompt"),
    ({"size": "8K"}, "size"),
    ({"size": "2K", "width": 2048, "height": 2048}, "size"),
    ({"width": 2048}, "height"),
    ({"width": 4096, "height": 1024}, "width"),  # ratio 4: outside [1/3, 3]
    ({"min_ratio": 0.01}, "min_ratio"),
    ({"max_ratio": 20}, "max_ratio"),
    ({"min_ratio": 2, "max_ratio": 1}, "min_ratio"),
    ({"scale": 1.5}, "scale"),
    ({"images": [f"https://a.test/{i}.jpg" for i in range(11)]}, "images"),
    ({"seed": 1}, "seed"),
    ({"ratio": "5:4"}, "ratio"),
    ({"negative_prompt": "blur"}, "negative_prompt"),
    ({"model": "jimeng-9.9"}, "model"),
    ({"sample_strength": 2.0}, "sample_strength"),
    ({"width": -5, "height": 5}, "width"),
    ({"prompt": "   "}, "prompt"),
]


@pytest.mark.parametrize(("kwargs", "field"), BAD_INPUTS)
def test_bad_inputs_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    kwargs = {"prompt": "a cat", **kwargs}
    with pytest.raises(jimeng.ValidationError) as caught:
        backend().validate_image(ImageRequest(**kwargs))
    assert caught.value.field == field
    assert field in str(caught.value)


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(jimeng.ValidationError) as caught:
        backend().validate_image(ImageRequest(prompt="x", model="sdxl"))
    assert "jimeng-4.0" in str(caught.value)


def test_parse_submit_keeps_large_ids_as_strings() -> None:
    raw = b'{"code":10000,"data":{"task_id":7392616336519610409},"request_id":"r"}'
    task = _wire.parse_submit(
        response(raw), req_key="jimeng_t2i_v40", kind=TaskKind.IMAGE, backend="volcengine"
    )
    assert task.id == "7392616336519610409"
    assert task.ref == "jimeng_t2i_v40:7392616336519610409"


def _task() -> Task:
    return Task(
        id="1", kind=TaskKind.IMAGE, status=TaskStatus.QUEUED, backend="v", ref="k:1", model="k"
    )


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("in_queue", TaskStatus.QUEUED),
        ("generating", TaskStatus.RUNNING),
        ("not_found", TaskStatus.EXPIRED),
        ("expired", TaskStatus.EXPIRED),
        ("submitted", TaskStatus.QUEUED),
        ("something_new", TaskStatus.UNKNOWN),
    ],
)
def test_status_words(word: str, status: TaskStatus) -> None:
    payload = {"code": 10000, "data": {"status": word}, "extra_field": {"ignored": True}}
    assert _wire.parse_result(response(payload), _task(), now=NOW).status is status


def test_done_with_urls_and_base64() -> None:
    payload = {
        "code": 10000,
        "data": {
            "status": "done",
            "image_urls": ["https://cdn/x.jpeg"],
            "binary_data_base64": None,
        },
        "request_id": "rid",
    }
    task = _wire.parse_result(response(payload), _task(), now=NOW)
    assert task.status is TaskStatus.SUCCEEDED
    assert task.result is not None and isinstance(task.result, jimeng.ImageResult)
    assert task.result.images[0].url == "https://cdn/x.jpeg"
    assert task.result.images[0].expires_at == datetime(2025, 1, 2, tzinfo=timezone.utc)
    payload["data"] = {"status": "done", "binary_data_base64": ["aGVsbG8="], "image_urls": None}
    task = _wire.parse_result(response(payload), _task(), now=NOW)
    assert isinstance(task.result, jimeng.ImageResult)
    assert task.result.images[0].data == b"hello"


def test_done_without_output_is_a_failure() -> None:
    payload = {"code": 10000, "data": {"status": "done", "image_urls": []}}
    task = _wire.parse_result(response(payload), _task(), now=NOW)
    assert task.status is TaskStatus.FAILED


@pytest.mark.parametrize(
    ("status", "payload", "cls", "code"),
    [
        (400, {"code": 50412, "message": "Text Risk Not Pass"}, jimeng.ContentPolicyError, 50412),
        (400, {"code": 50511, "message": "Post"}, jimeng.ContentPolicyError, 50511),
        (429, {"code": 50429, "message": "limit"}, jimeng.RateLimitError, 50429),
        (429, {"code": 50430, "message": "conc"}, jimeng.RateLimitError, 50430),
        (500, {"code": 50500, "message": "Internal"}, jimeng.ServerError, 50500),
        (500, {"code": 50501, "message": "RPC"}, jimeng.ServerError, 50501),
        (400, {"code": 50200, "message": "args"}, jimeng.InvalidRequestError, 50200),
        (400, {"code": 50400, "message": "denied"}, jimeng.PermissionDeniedError, 50400),
        (200, {"code": 50412, "message": "200 but failed"}, jimeng.ContentPolicyError, 50412),
        (
            401,
            {
                "ResponseMetadata": {
                    "RequestId": "r",
                    "Error": {"CodeN": 100010, "Code": "SignatureDoesNotMatch", "Message": "bad"},
                }
            },
            jimeng.AuthenticationError,
            "SignatureDoesNotMatch",
        ),
        (
            # The gateway's error wins over a success code next to it.
            401,
            {"code": 10000, "ResponseMetadata": {"Error": {"Code": "SignatureDoesNotMatch"}}},
            jimeng.AuthenticationError,
            "SignatureDoesNotMatch",
        ),
        (
            403,
            {"ResponseMetadata": {"Error": {"Code": "AccessDenied", "Message": "no"}}},
            jimeng.PermissionDeniedError,
            "AccessDenied",
        ),
        (
            500,
            {"ResponseMetadata": {"Error": {"Code": "InternalError", "Message": "x"}}},
            jimeng.ServerError,
            "InternalError",
        ),
        (
            429,
            {"ResponseMetadata": {"Error": {"Code": "FlowLimitExceeded", "Message": "x"}}},
            jimeng.RateLimitError,
            "FlowLimitExceeded",
        ),
        (502, b"<html>bad gateway</html>", jimeng.ServerError, None),
        (429, b"slow down", jimeng.RateLimitError, None),
    ],
)
def test_error_envelopes(status: int, payload: Any, cls: type, code: Any) -> None:
    with pytest.raises(cls) as caught:
        check_response(response(payload, status=status, headers={"Retry-After": "3"}))
    error = caught.value
    assert error.code == code and error.status_code == status
    assert error.backend == "volcengine"
    assert error.retry_after == 3.0


@pytest.mark.parametrize(
    "payload",
    [
        {"code": 10000, "data": {"task_id": "1"}},
        {"code": 10000, "message": "Success", "data": {"task_id": "1"}, "status": 10000},
    ],
)
def test_success_envelope_passes(payload: dict[str, Any]) -> None:
    answer = response(payload)
    assert check_response(answer) is None
    task = _wire.parse_submit(
        answer, req_key="jimeng_t2i_v40", kind=TaskKind.IMAGE, backend="volcengine"
    )
    assert (task.id, task.ref) == ("1", "jimeng_t2i_v40:1")


async def test_drive_throws_engine_errors_into_the_flow() -> None:
    seen: list[BaseException] = []

    def flow() -> Any:
        try:
            yield Call(method="GET", url="http://x.test/")
        except jimeng.RateLimitError as error:
            seen.append(error)
            return "recovered"
        return "unexpected"

    class FailingTransport:
        async def execute(self, call: Call) -> Response:
            raise jimeng.RateLimitError("busy", code=50429)

    assert await drive(flow(), FailingTransport()) == "recovered"  # type: ignore[arg-type]
    assert len(seen) == 1


def test_plain_http_refused_except_loopback() -> None:
    with pytest.raises(jimeng.ConfigurationError, match="plain http"):
        Volcengine(access_key="a", secret_key="b", endpoint="http://visual.example.com")
    Volcengine(access_key="a", secret_key="b", endpoint="http://127.0.0.1:8787")
    Volcengine(access_key="a", secret_key="b", endpoint="http://[::1]:8787")
    Volcengine(access_key="a", secret_key="b", endpoint="http://x.example", allow_http=True)


def test_credentials_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOLC_ACCESSKEY", "AKLTenv")
    monkeypatch.setenv("VOLC_SECRETKEY", "env-secret")
    monkeypatch.setenv("JIMENG_API_URL", "https://relay.example/v")
    backend = Volcengine()
    assert backend.base_url == "https://relay.example" and backend.path == "/v"
    monkeypatch.delenv("VOLC_SECRETKEY")
    with pytest.raises(jimeng.ConfigurationError, match="VOLC_SECRETKEY"):
        Volcengine()


def test_a_call_is_signed_over_its_own_host_and_path() -> None:
    from jimeng._signing import VOLCENGINE_CV, verify

    backend = Volcengine(
        access_key="AKLTunit",
        secret_key="unit-secret",
        endpoint="https://visual.volcengineapi.com",
        video_endpoint="https://proxy.example:8443/volc",
    )
    call = next(backend.submit_video(jimeng.VideoRequest(prompt="waves")))
    assert call.url.startswith("https://proxy.example:8443/volc?")
    assert call.sign is not None
    headers = {**call.headers, **call.sign(call, datetime.now(timezone.utc))}
    parsed = verify(
        method="POST",
        path="/volc",
        query=call.url.partition("?")[2],
        headers=headers,
        body=call.body or b"",
        secret_key_for={"AKLTunit": "unit-secret"}.get,
        profile=VOLCENGINE_CV,
    )
    assert parsed.access_key == "AKLTunit"
    assert headers["Host"] == "proxy.example:8443"


@pytest.mark.parametrize(
    ("status", "payload", "safe"),
    [
        (500, {"code": 50500, "message": "Internal"}, True),
        (429, {"code": 50430, "message": "conc"}, True),
        (500, {"ResponseMetadata": {"Error": {"Code": "FailToConnect", "Message": "x"}}}, True),
        (500, {"ResponseMetadata": {"Error": {"Code": "InternalServiceTimeout"}}}, False),
        (500, {"ResponseMetadata": {"Error": {"Code": "InternalError", "Message": "x"}}}, False),
        (502, b"<html>bad gateway</html>", False),
    ],
)
def test_only_refusals_make_a_submit_safe_to_resend(status: int, payload: Any, safe: bool) -> None:
    with pytest.raises(jimeng.APIError) as caught:
        check_response(response(payload, status=status))
    assert caught.value.resend_safe is safe


def test_retry_after_as_an_http_date() -> None:
    from email.utils import format_datetime

    later = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=30)
    with pytest.raises(jimeng.RateLimitError) as caught:
        check_response(
            response({"code": 50429}, status=429, headers={"Retry-After": format_datetime(later)})
        )
    assert caught.value.retry_after is not None and 25 <= caught.value.retry_after <= 30
