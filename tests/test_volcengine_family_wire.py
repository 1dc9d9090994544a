"""Pure translation of the §3.4 family (protocols/volcengine.md): bodies per verb, the other
Action pair, ``processing`` and the JSON-in-JSON ``resp_data``, without HTTP."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

import jimeng
from jimeng._http import Response
from jimeng.backends.volcengine import Volcengine, _wire
from jimeng.backends.volcengine._family import AVATAR_CHECK, TRANSFORMS, transform_spec
from jimeng.models import Task, TaskKind, TaskStatus

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
ENDPOINT = _wire.Endpoint(base="https://visual.example", host="visual.example")


def answer(payload: Any) -> Response:
    return Response(status=200, headers={}, body=json.dumps(payload).encode())


def task(req_key: str) -> Task:
    return Task(
        id="7", kind=TaskKind.VIDEO, status=TaskStatus.QUEUED, backend="volcengine", ref="r",
        model=req_key,
    )  # fmt: skip


def test_the_cv_family_uses_its_own_actions() -> None:
    submit = _wire.build_submit(ENDPOINT, {"req_key": "k"}, action=_wire.CV_SUBMIT)
    assert submit.url == "https://visual.example/?Action=CVSubmitTask&Version=2022-08-31"
    assert submit.idempotent is False
    poll = _wire.build_get_result(ENDPOINT, "k", "7", "", action=_wire.CV_GET_RESULT)
    assert poll.url.endswith("?Action=CVGetResult&Version=2022-08-31")
    assert json.loads(poll.body or b"") == {"req_key": "k", "task_id": "7"}


def test_processing_is_queued_with_its_own_word() -> None:
    parsed = _wire.parse_result(
        answer({"code": 10000, "data": {"status": "processing"}}), task("k"), now=NOW
    )
    assert (parsed.status, parsed.raw_status) == (TaskStatus.QUEUED, "processing")


@pytest.mark.parametrize(("inner", "subject"), [({"status": 1}, True), ({"status": 0}, False)])
def test_subject_check_reads_json_inside_a_string(inner: dict[str, int], subject: bool) -> None:
    payload = {"code": 10000, "data": {"status": "done", "resp_data": json.dumps(inner)}}
    parsed = _wire.parse_subject_check(answer(payload), task(AVATAR_CHECK.req_key))
    assert parsed.status is TaskStatus.SUCCEEDED
    assert parsed.context["subject"] is subject


def test_a_cv_failure_carries_the_reason_from_resp_data() -> None:
    payload = {
        "code": 10000,
        "data": {"status": "failed", "resp_data": json.dumps({"message": "no face"})},
    }
    parsed = _wire.parse_result(answer(payload), task("k"), now=NOW)
    assert parsed.status is TaskStatus.FAILED
    assert parsed.failure is not None and parsed.failure.message == "no face"
    assert _wire.resp_data({"resp_data": "not json"}) == {}


@pytest.mark.parametrize(
    ("request_", "fields"),
    [
        (
            jimeng.UpscaleRequest(image="https://e.com/a.png", resolution="4K", detail=0),
            {"req_key": "jimeng_i2i_seed3_tilesr_cvtob", "resolution": "4k", "scale": 0},
        ),
        (
            jimeng.OutpaintRequest(image="https://e.com/a.png", top=0.25, seed=3),
            {"req_key": "jimeng_img2img_seed3_painting_edit", "top": 0.25, "seed": 3},
        ),
        (
            jimeng.TranslateRequest(
                video="https://e.com/v.mp4", target_language="ja", source_language="en"
            ),
            {
                "req_key": "video_translate_v2_cvtob",
                "video_url": "https://e.com/v.mp4",
                "src_language": "en",
                "target_language": "ja",
            },
        ),
        (
            jimeng.AvatarRequest(
                image="https://e.com/p.png",
                audio="https://e.com/a.mp3",
                masks=["https://e.com/m1"],
                seed=-1,
            ),
            {
                "req_key": "jimeng_realman_avatar_picture_omni_v15",
                "image_url": "https://e.com/p.png",
                "audio_url": "https://e.com/a.mp3",
                "mask_url": ["https://e.com/m1"],
                "seed": -1,
            },
        ),
    ],
)
def test_fields_per_verb(request_: Any, fields: dict[str, Any]) -> None:
    assert transform_spec(request_).fields(request_) == fields


def test_outpaint_field_names_can_be_replaced() -> None:
    backend = Volcengine("ak", "sk", outpaint_fields={"left": "left_ratio"})
    request = jimeng.OutpaintRequest(image="https://e.com/a.png", left=0.5)
    spec = transform_spec(request, backend._transforms)
    assert spec.fields(request, backend._outpaint_fields) == {
        "req_key": "jimeng_img2img_seed3_painting_edit",
        "left_ratio": 0.5,
    }
    with pytest.raises(jimeng.ConfigurationError):
        Volcengine("ak", "sk", outpaint_fields={"middle": "x"})


def test_req_keys_override_the_family_keys_and_polling_follows_the_key() -> None:
    backend = Volcengine("ak", "sk", req_keys={"jimeng-upscale": "jimeng_i2i_other"})
    resumed = backend.resume("jimeng_i2i_other:7")
    assert resumed.kind is TaskKind.IMAGE
    assert resumed.context["model_name"] == "jimeng-upscale"
    avatar = backend.resume(f"{TRANSFORMS['omnihuman-1.5'].req_key}:8")
    assert avatar.kind is TaskKind.VIDEO
    policy = backend.poll_policy(avatar)
    assert policy is not None and (policy.interval, policy.deadline) == (5.0, 1200.0)
    assert backend.poll_policy(backend.resume("jimeng_t2i_v40:9")) is None


def test_requests_refuse_contradictions_when_built() -> None:
    with pytest.raises(jimeng.ValidationError):
        jimeng.InpaintRequest(prompt="", image="https://e.com/a.png", mask="https://e.com/m.png")
    with pytest.raises(jimeng.ValidationError):
        jimeng.AvatarRequest(image="https://e.com/p.png", audio=None)  # type: ignore[arg-type]
    with pytest.raises(jimeng.ValidationError):
        jimeng.OutpaintRequest(image="https://e.com/a.png", bottom=-0.1)
