"""Ark's pure build/parse functions and tables (protocols/volcengine.md §12), without HTTP."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

import jimeng
from jimeng._http import Response
from jimeng.backends.ark import Ark, _wire
from jimeng.backends.ark._errors import check_response, error_class
from jimeng.backends.ark._models import IMAGE_MODELS, VIDEO_MODELS
from jimeng.models import ImageRequest, TaskStatus, VideoRequest

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
ENDPOINT = _wire.Endpoint(base="https://ark.example/api/v3", headers={"Authorization": "Bearer k"})


def answer(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status=status, headers=headers or {}, body=json.dumps(payload).encode())


def test_builders_name_method_path_and_resend_rules() -> None:
    create = _wire.build_create_task(ENDPOINT, {"model": "m"}, client_request_id="abc")
    assert (create.method, create.url) == (
        "POST",
        "https://ark.example/api/v3/contents/generations/tasks",
    )
    assert create.idempotent is False and create.purpose == "submit"
    assert create.headers["Authorization"] == "Bearer k"
    assert create.headers["X-Client-Request-Id"] == "abc"
    assert json.loads(create.body or b"") == {"model": "m"}

    images = _wire.build_image_generation(ENDPOINT, {}, client_request_id="x", timeout=600)
    assert images.url.endswith("/images/generations")
    assert (images.idempotent, images.timeout) == (False, 600)

    get = _wire.build_get_task(ENDPOINT, "cgt-1/2")
    assert (get.method, get.url, get.idempotent, get.body) == (
        "GET",
        "https://ark.example/api/v3/contents/generations/tasks/cgt-1%2F2",
        True,
        None,
    )
    delete = _wire.build_delete_task(ENDPOINT, "cgt-1")
    assert (delete.method, delete.idempotent, delete.purpose) == ("DELETE", True, "cancel")

    listing = _wire.build_list_tasks(
        ENDPOINT, page_num=2, page_size=50, status="queued", task_ids=["a", "b"]
    )
    assert listing.url.endswith(
        "/contents/generations/tasks?page_num=2&page_size=50&filter.status=queued"
        "&filter.task_ids=a&filter.task_ids=b"
    )


def test_group_answer_keeps_the_successes_and_the_usage() -> None:
    payload = {
        "model": "doubao-seedream-4-0-250828",
        "created": 1767225600,
        "data": [
            {"url": "https://tos.example/1.jpeg", "size": "2048x2048"},
            {"error": {"code": "OutputImageSensitiveContentDetected", "message": "no"}},
        ],
        "usage": {"generated_images": 1, "output_tokens": 16384, "total_tokens": 16384},
    }
    task = _wire.parse_image_generation(
        answer(payload, headers={"X-Request-Id": "r1"}),
        task_id="sync-1",
        model_name="seedream-4.0",
        backend="ark",
        now=NOW,
    )
    assert task.status is TaskStatus.SUCCEEDED
    assert task.result is not None and isinstance(task.result, jimeng.ImageResult)
    [image] = task.result.images
    assert (image.url, image.width, image.height) == ("https://tos.example/1.jpeg", 2048, 2048)
    assert image.expires_at == datetime(2026, 1, 2, tzinfo=timezone.utc)
    assert task.result.usage == {
        "generated_images": 1,
        "output_tokens": 16384,
        "total_tokens": 16384,
    }
    assert task.result.request_id == "r1"
    assert task.created_at == datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_an_answer_without_images_is_a_failed_task_with_the_first_error() -> None:
    payload = {"data": [{"error": {"code": "OutputImageSensitiveContentDetected", "message": "x"}}]}
    task = _wire.parse_image_generation(
        answer(payload), task_id="sync-2", model_name="seedream-4.0", backend="ark", now=NOW
    )
    assert task.status is TaskStatus.FAILED
    assert task.failure is not None
    assert (task.failure.code, task.failure.message) == ("OutputImageSensitiveContentDetected", "x")


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("queued", TaskStatus.QUEUED),
        ("creating", TaskStatus.QUEUED),
        ("running", TaskStatus.RUNNING),
        ("cancelled", TaskStatus.CANCELLED),
        ("expired", TaskStatus.EXPIRED),
        ("paused", TaskStatus.UNKNOWN),
    ],
)
def test_task_words(word: str, status: TaskStatus) -> None:
    task = _wire.parse_task({"id": "cgt-1", "status": word}, backend="ark", now=NOW)
    assert task.status is status and task.raw_status == word


def test_succeeded_task_has_the_video_duration_fps_and_usage() -> None:
    payload = {
        "id": "cgt-1",
        "model": "doubao-seedance-1-0-pro-250528",
        "status": "succeeded",
        "content": {"video_url": "https://tos.example/v.mp4"},
        "frames": 121,
        "framespersecond": 24,
        "created_at": 1767225600,
        "updated_at": 1767225654,
        "usage": {"completion_tokens": 108900, "total_tokens": 108900},
    }
    task = _wire.parse_task(payload, backend="ark", now=NOW, model_name="seedance-1.0-pro")
    assert task.status is TaskStatus.SUCCEEDED
    assert isinstance(task.result, jimeng.VideoResult)
    assert task.result.video.duration == pytest.approx(121 / 24)
    assert task.result.usage == {"completion_tokens": 108900, "total_tokens": 108900}
    assert task.result.model == "seedance-1.0-pro"
    assert task.completed_at == datetime(2026, 1, 1, 0, 0, 54, tzinfo=timezone.utc)


def test_failed_task_keeps_code_and_message() -> None:
    payload = {"id": "cgt-1", "status": "failed", "error": {"code": "X", "message": "why"}}
    task = _wire.parse_task(payload, backend="ark", now=NOW)
    assert task.failure == jimeng.TaskFailure(code="X", message="why")


def test_a_succeeded_task_without_a_link_is_failed() -> None:
    task = _wire.parse_task({"id": "cgt-1", "status": "succeeded"}, backend="ark", now=NOW)
    assert task.status is TaskStatus.FAILED


@pytest.mark.parametrize(
    ("status", "code", "message", "cls"),
    [
        (400, "InvalidParameter", "", jimeng.InvalidRequestError),
        (
            400,
            "InputImageSensitiveContentDetected.PrivacyInformation",
            "",
            jimeng.ContentPolicyError,
        ),
        (400, "OutputVideoSensitiveContentDetected", "", jimeng.ContentPolicyError),
        (401, "AuthenticationError", "", jimeng.AuthenticationError),
        (403, "AccessDenied", "", jimeng.PermissionDeniedError),
        (403, "AccountOverdueError", "", jimeng.InsufficientCreditsError),
        (404, "ModelNotOpen", "", jimeng.NotFoundError),
        (429, "ModelAccountRpmRateLimitExceeded", "", jimeng.RateLimitError),
        (429, "QuotaExceeded", "Too many tasks in queued state", jimeng.RateLimitError),
        (429, "QuotaExceeded", "free trial quota used up", jimeng.InsufficientCreditsError),
        (429, "SetLimitExceeded", "", jimeng.InsufficientCreditsError),
        (500, "InternalServiceError", "", jimeng.ServerError),
        (502, "Whatever", "", jimeng.ServerError),
    ],
)
def test_error_table(status: int, code: str, message: str, cls: type[jimeng.APIError]) -> None:
    assert error_class(status, code, message) is cls


def test_check_response_reads_the_error_body() -> None:
    body = {"error": {"code": "InvalidParameter", "message": "bad size Request ID: 2026abc"}}
    with pytest.raises(jimeng.InvalidRequestError) as caught:
        check_response(answer(body, 400))
    assert (caught.value.code, caught.value.request_id, caught.value.status_code) == (
        "InvalidParameter",
        "2026abc",
        400,
    )
    assert caught.value.retryable is False
    check_response(answer({"id": "cgt-1", "status": "failed", "error": {"code": "X"}}))  # 200


def test_byteplus_drops_the_doubao_prefix_and_overrides_map_endpoints() -> None:
    ark = Ark("k", region="byteplus", models={"seedance-1.0-pro": "ep-123"})
    assert ark.base_url == "https://ark.ap-southeast.bytepluses.com/api/v3"
    assert ark.describe()["models"]["seedream-4.0"] == "seedream-4-0-250828"
    spec, model_id = ark._video("seedance-1.0-pro")
    assert (spec.name, model_id) == ("seedance-1.0-pro", "ep-123")
    assert ark._image("doubao-seedream-4-0-250828")[1] == "seedream-4-0-250828"
    with pytest.raises(jimeng.ConfigurationError):
        Ark("k", models={"seedance-9": "ep-1"})


def test_key_comes_from_the_environment_and_backend_selection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("VOLC_ACCESSKEY", "JIMENG_BACKEND", "ARK_API_KEY", "ARK_BASE_URL", "ARK_REGION"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(jimeng.ConfigurationError, match="ARK_API_KEY"):
        Ark()
    monkeypatch.setenv("ARK_API_KEY", "ark-env-key")
    backend = jimeng.backend_from_env()
    assert isinstance(backend, Ark) and backend.base_url.startswith("https://ark.cn-beijing")
    monkeypatch.setenv("JIMENG_BACKEND", "ark")
    assert isinstance(jimeng.backend_from_env(), Ark)


def test_bodies_for_every_model_validate_their_own_defaults() -> None:
    for spec in IMAGE_MODELS.values():
        images = ("https://e.com/a.png",) * spec.min_images
        request = ImageRequest(prompt="p", images=images or None)
        spec.validate(request)
        assert spec.body(request, spec.model_id)["model"] == spec.model_id
    for video in VIDEO_MODELS.values():
        request = VideoRequest(prompt="p", image=None if video.text else "https://e.com/a.png")
        video.validate(request)
        assert video.body(request, video.model_id)["content"][0] == {"type": "text", "text": "p"}


def test_limits_are_per_key_and_queue_quotas_cut_concurrency() -> None:
    from jimeng._limits import rate_limit_signal

    ark = Ark("ark-secret-key-123", base_url="https://ark.example/api/v3")
    key = ark.limit_key()
    assert key.startswith("ark:") and key.endswith("@https://ark.example/api/v3")
    assert "ark-secret-key-123" not in key + repr(ark) + str(ark.describe())
    assert Ark("another-key-456").limit_key() != key
    queued = error_class(429, "QuotaExceeded", "too many tasks in queued state")
    assert rate_limit_signal(queued("x", code="QuotaExceeded")) == "concurrency"
    rpm = error_class(429, "ModelAccountRpmRateLimitExceeded", "")
    assert rate_limit_signal(rpm("x", code="ModelAccountRpmRateLimitExceeded")) == "rate"
