"""Dreamina payloads and parsers, with hand-made responses (no HTTP)."""

from __future__ import annotations

import itertools
import json
import zlib
from datetime import datetime, timezone
from typing import Any

import pytest

from jimeng._http import Response
from jimeng.backends.dreamina import _wire
from jimeng.backends.dreamina._errors import RET_CODES, check_imagex, check_store, check_web
from jimeng.backends.dreamina._plan import plan_image, plan_video
from jimeng.backends.dreamina._session import Session
from jimeng.backends.dreamina._tables import REGIONS
from jimeng.backends.dreamina._versions import DEFAULT_VERSIONS
from jimeng.errors import (
    AntiBotError,
    APIError,
    AuthenticationError,
    ContentPolicyError,
    InsufficientCreditsError,
    InvalidRequestError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    SessionExpiredError,
)
from jimeng.models import ImageRequest, Task, TaskKind, TaskStatus, VideoRequest

CN, US, SG = REGIONS["cn"], REGIONS["us"], REGIONS["sg"]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)


def ids() -> Any:
    counter = itertools.count(1)
    return lambda: f"id-{next(counter)}"


def response(payload: Any, status: int = 200) -> Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Response(status=status, headers={}, body=body)


def image_body(request: ImageRequest, region: Any = CN, uris: list[str] | None = None) -> Any:
    plan = plan_image(request, region)
    body = _wire.image_generate_body(
        plan,
        prompt=request.prompt,
        submit_id="submit-1",
        uris=uris or [],
        ids=ids(),
        now_ms=1771893826000,
        seed=2512345678,
        versions=DEFAULT_VERSIONS,
    )
    draft = json.loads(body["draft_content"])
    metrics = json.loads(body["metrics_extra"])
    return body, draft, metrics


# -- payload building ---------------------------------------------------------------------------


def test_text_to_image_payload() -> None:
    request = ImageRequest(prompt="a cat", model="jimeng-4.5", ratio="16:9", resolution="2k")
    body, draft, metrics = image_body(request)
    assert body["extend"] == {"root_model": "high_aes_general_v40l"}
    assert body["submit_id"] == "submit-1"
    assert body["http_common_info"] == {"aid": 513695}
    assert (draft["type"], draft["min_version"], draft["version"]) == ("draft", "3.0.2", "3.3.9")
    (component,) = draft["component_list"]
    assert component["id"] == draft["main_component_id"]
    assert component["type"] == "image_base_component"
    assert component["generate_type"] == "generate"
    assert component["aigc_mode"] == "workbench"
    assert component["metadata"]["created_time_in_ms"] == "1771893826000"
    generate = component["abilities"]["generate"]
    assert generate["gen_option"]["generate_all"] is False
    core = generate["core_param"]
    assert core["model"] == "high_aes_general_v40l"
    assert core["prompt"] == "a cat"
    assert core["negative_prompt"] == ""
    assert core["seed"] == 2512345678
    assert core["sample_strength"] == 0.5
    assert core["image_ratio"] == 3
    assert core["intelligent_ratio"] is False
    info = core["large_image_info"]
    assert (info["width"], info["height"], info["resolution_type"]) == (2560, 1440, "2k")
    assert info["min_version"] == "3.0.2"
    # Every nested object carries type "" and a fresh id (§3.1).
    assert core["type"] == "" and core["id"].startswith("id-")
    assert metrics["generateId"] == "submit-1"
    (scene,) = json.loads(metrics["sceneOptions"])
    assert scene["scene"] == "ImageBasicGenerate"
    assert scene["benefitCount"] == 4
    assert scene["modelReqKey"] == "high_aes_general_v40l"
    assert scene["reportParams"]["extraVipFunctionKey"] == "high_aes_general_v40l-2k"


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (ImageRequest(prompt="p", negative_prompt="blur", sample_strength=0.7, seed=42), None),
        (ImageRequest(prompt="p", resolution="4k", ratio="9:16"), 105),
        (ImageRequest(prompt="p", model="jimeng-3.0", ratio="3:2", resolution="1k"), 7),
    ],
)
def test_text_to_image_variants(request_: ImageRequest, expected: int | None) -> None:
    _, draft, _ = image_body(request_)
    core = draft["component_list"][0]["abilities"]["generate"]["core_param"]
    if expected is not None:
        assert core["image_ratio"] == expected
    else:
        assert (core["negative_prompt"], core["sample_strength"]) == ("blur", 0.7)


def test_intelligent_ratio_leaves_image_ratio_out() -> None:
    _, draft, _ = image_body(ImageRequest(prompt="奔跑的狮子，竖屏", intelligent_ratio=True))
    core = draft["component_list"][0]["abilities"]["generate"]["core_param"]
    assert "image_ratio" not in core
    assert core["intelligent_ratio"] is True
    assert core["large_image_info"]["resolution_type"] == "2k"


@pytest.mark.parametrize("count", [1, 2, 3])
def test_blend_payload(count: int) -> None:
    uris = [f"tos-cn-i-tb4s082cfz/{n}" for n in range(count)]
    request = ImageRequest(prompt="anime style", images=[PNG] * count, sample_strength=0.6)
    _, draft, metrics = image_body(request, uris=uris)
    assert draft["min_version"] == "3.2.9"
    (component,) = draft["component_list"]
    assert component["generate_type"] == "blend"
    abilities = component["abilities"]
    assert abilities["gen_option"]["generate_all"] is False
    blend = abilities["blend"]
    assert blend["min_features"] == []
    assert ("min_version" in blend) == (count >= 2)
    core = blend["core_param"]
    assert core["prompt"] == "#" * (2 * count) + "anime style"
    assert "seed" not in core
    assert core["image_ratio"] == 1  # always kept in a blend
    assert [a["image_uri_list"] for a in blend["ability_list"]] == [[uri] for uri in uris]
    first = blend["ability_list"][0]
    assert first["name"] == "byte_edit" and first["strength"] == 0.6
    (ref,) = first["image_list"]
    assert (ref["type"], ref["source_from"], ref["platform_type"]) == ("image", "upload", 1)
    assert ref["image_uri"] == ref["uri"] == uris[0]
    assert [p["ability_index"] for p in blend["prompt_placeholder_info_list"]] == list(range(count))
    assert blend["postedit_param"]["generate_type"] == 0
    (scene,) = json.loads(metrics["sceneOptions"])
    assert len(scene["abilityList"]) == count
    assert scene["abilityList"][0]["source"]["imageUrl"].startswith(
        "blob:https://jimeng.jianying.com/"
    )


def test_blend_keeps_image_ratio_with_intelligent_ratio() -> None:
    request = ImageRequest(prompt="p", images=[PNG], intelligent_ratio=True)
    _, draft, _ = image_body(request, uris=["u"])
    core = draft["component_list"][0]["abilities"]["blend"]["core_param"]
    assert core["image_ratio"] == 1 and core["intelligent_ratio"] is True


def test_international_site_payload() -> None:
    body, _, _ = image_body(ImageRequest(prompt="p", model="nanobanana"), US)
    assert body["http_common_info"] == {"aid": 513641}
    assert body["extend"]["root_model"] == "external_model_gemini_flash_image_v25"


def video_body(request: VideoRequest, region: Any = CN, uris: list[str] | None = None) -> Any:
    plan = plan_video(request, region)
    body = _wire.video_generate_body(
        plan,
        prompt=request.prompt,
        submit_id="submit-v",
        uris=uris or [],
        ids=ids(),
        now_ms=1,
        seed=123,
        versions=DEFAULT_VERSIONS,
    )
    draft = json.loads(body["draft_content"])
    params = draft["component_list"][0]["abilities"]["gen_video"]["text_to_video_params"]
    return body, draft, params


def test_video_payload() -> None:
    request = VideoRequest(
        prompt="waves at dusk", model="jimeng-video-3.0", duration=10, aspect_ratio="16:9"
    )
    body, draft, params = video_body(request)
    commerce = {
        "benefit_type": "basic_video_operation_vgfm_v_three",
        "resource_id": "generate_video",
        "resource_id_type": "str",
        "resource_sub_type": "aigc",
    }
    assert body["extend"] == {
        "root_model": "dreamina_ic_generate_video_model_vgfm_3.0",
        "m_video_commerce_info": commerce,
        "m_video_commerce_info_list": [commerce],
    }
    assert (draft["min_version"], draft["version"]) == ("3.0.5", "3.3.9")
    component = draft["component_list"][0]
    assert (component["type"], component["min_version"]) == ("video_base_component", "1.0.0")
    assert (component["generate_type"], component["process_type"]) == ("gen_video", 1)
    assert params["video_aspect_ratio"] == "16:9"
    assert params["seed"] == 123
    assert params["model_req_key"] == "dreamina_ic_generate_video_model_vgfm_3.0"
    assert params["priority"] == 0
    (gen,) = params["video_gen_inputs"]
    assert (gen["prompt"], gen["video_mode"], gen["fps"]) == ("waves at dusk", 2, 24)
    assert (gen["duration_ms"], gen["resolution"]) == (10000, "720p")
    assert "first_frame_image" not in gen and gen["idip_meta_list"] == []
    metrics = json.loads(body["metrics_extra"])
    gen_video = component["abilities"]["gen_video"]
    assert gen_video["video_task_extra"] == body["metrics_extra"]
    assert (metrics["functionMode"], metrics["originSubmitId"]) == ("first_last_frames", "submit-v")
    (scene,) = json.loads(metrics["sceneOptions"])
    assert (scene["resolution"], scene["videoDuration"]) == ("720p", 10)
    assert scene["reportParams"]["extraVipFunctionKey"].endswith("-720p")


def test_video_payload_with_frames_and_without_resolution() -> None:
    request = VideoRequest(prompt="p", model="jimeng-video-3.5-pro", image=PNG, tail_image=PNG)
    _, _, params = video_body(request, uris=["first-uri", "last-uri"])
    (gen,) = params["video_gen_inputs"]
    assert "resolution" not in gen
    assert gen["first_frame_image"]["image_uri"] == "first-uri"
    assert gen["end_frame_image"]["uri"] == "last-uri"
    assert gen["first_frame_image"]["width"] == 0


# -- result parsing -----------------------------------------------------------------------------


def task(kind: TaskKind = TaskKind.IMAGE, status: TaskStatus = TaskStatus.QUEUED) -> Task:
    return Task(id="4242", kind=kind, status=status, backend="dreamina", ref=f"{kind}:ab:4242")


def history(record: Any) -> Response:
    return response({"ret": "0", "errmsg": "success", "data": {"4242": record}})


@pytest.mark.parametrize(
    ("status", "state", "hint"),
    [
        (20, TaskStatus.RUNNING, None),
        (42, TaskStatus.RUNNING, 2.4),
        (45, TaskStatus.RUNNING, 3.0),
        (30, TaskStatus.FAILED, None),
        (99, TaskStatus.UNKNOWN, None),
    ],
)
def test_history_statuses(status: int, state: TaskStatus, hint: float | None) -> None:
    parsed = _wire.parse_history(history({"status": status}), task(), base_interval=2.0)
    assert parsed.status is state
    assert parsed.raw_status == str(status)
    assert parsed.poll_after == (pytest.approx(hint) if hint else None)


IMAGE_ITEMS = [
    {
        "image": {
            "large_images": [
                {
                    "image_url": "https://p26-dreamina-sign.byteimg.com/a.webp"
                    "?lk3s=1\\u0026x-expires=1771900000\\u0026x-signature=s",
                    "width": 2048,
                    "height": 2048,
                }
            ]
        }
    },
    {"common_attr": {"cover_url": "https://p3.byteimg.com/b.webp"}},
    {"common_attr": {}},
]


@pytest.mark.parametrize("status", [10, 50])
def test_images_extracted_on_success(status: int) -> None:
    parsed = _wire.parse_history(
        history({"status": status, "item_list": IMAGE_ITEMS, "task": {"finish_time": 1771900000}}),
        task(),
        base_interval=2.0,
    )
    assert parsed.status is TaskStatus.SUCCEEDED
    assert parsed.result is not None
    first, second = parsed.result.images  # type: ignore[union-attr]
    assert first.url == (
        "https://p26-dreamina-sign.byteimg.com/a.webp?lk3s=1&x-expires=1771900000&x-signature=s"
    )
    assert (first.width, first.height) == (2048, 2048)
    assert first.expires_at is not None and int(first.expires_at.timestamp()) == 1771900000
    assert second.url == "https://p3.byteimg.com/b.webp"
    assert parsed.completed_at is not None


@pytest.mark.parametrize(
    "item",
    [
        {"common_attr": {"transcoded_video": {"origin": {"video_url": "https://v/1.mp4"}}}},
        {"video": {"transcoded_video": {"origin": {"video_url": "https://v/1.mp4"}}}},
        {"video": {"play_url": "https://v/1.mp4"}},
        {"video": {"download_url": "https://v/1.mp4"}},
        {"video": {"url": "https://v/1.mp4"}},
    ],
)
def test_video_url_shapes(item: Any) -> None:
    parsed = _wire.parse_history(
        history({"status": 10, "item_list": [item]}), task(TaskKind.VIDEO), base_interval=5.0
    )
    assert parsed.status is TaskStatus.SUCCEEDED
    assert parsed.result.url == "https://v/1.mp4"  # type: ignore[union-attr]


def test_video_shapes_are_tried_in_order() -> None:
    item = {
        "common_attr": {"transcoded_video": {"origin": {"video_url": "https://asia"}}},
        "video": {"play_url": "https://play"},
    }
    assert _wire.extract_video_url(item) == "https://asia"
    assert _wire.item_id({"common_attr": {"id": "c1"}}) == "c1"
    assert _wire.item_id({"item_id": "i1", "id": "x"}) == "i1"


@pytest.mark.parametrize(
    ("fail_code", "message"),
    [("2038", "content filtered"), ("2047", "banned words"), ("1017", "1017"), ("", "failed")],
)
def test_failed_records(fail_code: str, message: str) -> None:
    parsed = _wire.parse_history(
        history({"status": 30, "fail_code": fail_code, "item_list": []}), task(), base_interval=2
    )
    assert parsed.status is TaskStatus.FAILED
    assert parsed.failure is not None
    assert parsed.failure.code == (fail_code or None)
    assert message in parsed.failure.message


def test_failed_record_keeps_partial_results() -> None:
    parsed = _wire.parse_history(
        history({"status": 30, "fail_code": "1017", "item_list": IMAGE_ITEMS[:1]}),
        task(),
        base_interval=2,
    )
    assert parsed.status is TaskStatus.FAILED
    assert parsed.result is not None and len(parsed.result.images) == 1  # type: ignore[union-attr]


def test_success_without_output_is_a_failure() -> None:
    parsed = _wire.parse_history(history({"status": 50, "item_list": []}), task(), base_interval=2)
    assert parsed.status is TaskStatus.FAILED
    assert parsed.failure is not None and "without output" in parsed.failure.message


def test_missing_record_keeps_waiting() -> None:
    empty = response({"ret": "0", "data": {}})
    parsed = _wire.parse_history(empty, task(status=TaskStatus.UNKNOWN), base_interval=2)
    assert (parsed.status, parsed.raw_status) == (TaskStatus.QUEUED, "missing")
    parsed = _wire.parse_history(empty, task(status=TaskStatus.RUNNING), base_interval=2)
    assert parsed.status is TaskStatus.RUNNING


def test_submit_answer() -> None:
    ok = response({"ret": "0", "data": {"aigc_data": {"history_record_id": 123456789}}})
    assert _wire.parse_submit(ok) == "123456789"
    with pytest.raises(APIError, match="history_record_id"):
        _wire.parse_submit(response({"ret": "0", "data": {"aigc_data": {}}}))


def test_local_items() -> None:
    reply = response(
        {"ret": "0", "data": {"local_item_list": [{"video": {"url": "https://hq/1.mp4"}}]}}
    )
    assert _wire.parse_local_items(reply) == "https://hq/1.mp4"
    assert _wire.parse_local_items(response({"ret": "0", "data": {}})) is None


def test_credit_answers() -> None:
    reply = response(
        {
            "ret": "0",
            "data": {"credit": {"gift_credit": 60, "purchase_credit": 5, "vip_credit": "2"}},
        }
    )
    assert _wire.parse_credit(reply) == (60, 5, 2)
    claim = response({"ret": "0", "data": {"receive_quota": 60, "cur_total_credits": 67}})
    assert _wire.parse_receive(claim) == 60


# -- uploads ----------------------------------------------------------------------------------


def test_upload_token_fields_per_site() -> None:
    data = {"access_key_id": "AK", "secret_access_key": "SK", "session_token": "TOKEN"}
    cn = _wire.parse_upload_token(response({"ret": "0", "data": {**data, "service_id": "svc"}}), CN)
    assert cn.service == "svc"
    intl = _wire.parse_upload_token(response({"ret": "0", "data": data}), SG)
    assert intl.service == "wopfjsm1ax"  # §4.1 default space_name
    assert "SK" not in repr(intl) and "TOKEN" not in repr(intl)
    with pytest.raises(APIError, match="logged out"):
        _wire.parse_upload_token(response({"ret": "0", "data": {}}), CN)


def test_apply_store_commit() -> None:
    apply = response(
        {
            "Result": {
                "UploadAddress": {
                    "StoreInfos": [{"StoreUri": "tos-cn-i-x/abc", "Auth": "SpaceKey/1"}],
                    "UploadHosts": ["tos-hl-x.snssdk.com"],
                    "SessionKey": "key",
                }
            }
        }
    )
    target = _wire.parse_apply(apply)
    assert (target.store_uri, target.host, target.session_key) == (
        "tos-cn-i-x/abc",
        "tos-hl-x.snssdk.com",
        "key",
    )
    from jimeng.backends.dreamina._session import parse_tokens

    session = parse_tokens("sid0001")[0]
    context = _wire.Context(versions=DEFAULT_VERSIONS, web_id="7", user_id="u")
    call = _wire.store_upload_call(context, session, target, b"hello")
    assert call.url == "https://tos-hl-x.snssdk.com/upload/v1/tos-cn-i-x/abc"
    assert call.headers["Content-CRC32"] == f"{zlib.crc32(b'hello'):08x}"
    assert call.headers["Authorization"] == "SpaceKey/1"
    commit = response(
        {
            "Result": {
                "Results": [{"Uri": "tos-cn-i-x/abc", "UriStatus": 2000}],
                "PluginResult": [{"ImageWidth": 64, "ImageHeight": 32, "ImageFormat": "png"}],
            }
        }
    )
    uploaded = _wire.parse_commit(commit)
    assert (uploaded.uri, uploaded.width, uploaded.height) == ("tos-cn-i-x/abc", 64, 32)
    with pytest.raises(APIError, match="UriStatus 2001"):
        _wire.parse_commit(response({"Result": {"Results": [{"Uri": "u", "UriStatus": 2001}]}}))


def test_imagex_calls_are_sigv4_signed() -> None:
    from datetime import datetime, timezone

    from jimeng._signing import Credentials

    session = Session(sid="sid0001", region=SG)
    context = _wire.Context(versions=DEFAULT_VERSIONS, web_id="7", user_id="u")
    grant = _wire.UploadGrant(
        credentials=Credentials(access_key="AKTP1", secret_key="secret", session_token="tok"),
        service="wopfjsm1ax",
    )
    call = _wire.apply_upload_call(context, session, grant, size=10, nonce="abcdefghij")
    assert call.url.startswith("https://imagex-normal-sg.capcutapi.com/?Action=ApplyImageUpload")
    assert "device_platform=web" in call.url  # international only (§4.2)
    assert call.sign is not None
    headers = call.sign(call, datetime(2026, 2, 24, 1, 2, 3, tzinfo=timezone.utc))
    assert headers["x-amz-date"] == "20260224T010203Z"
    assert headers["x-amz-security-token"] == "tok"
    assert headers["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKTP1/20260224/ap-southeast-1/imagex/aws4_request, "
        "SignedHeaders=x-amz-date;x-amz-security-token, "
    )
    commit = _wire.commit_upload_call(context, session, grant, "key")
    signed = commit.sign(commit, datetime(2026, 2, 24, tzinfo=timezone.utc))  # type: ignore[misc]
    assert "x-amz-content-sha256" in signed["Authorization"]


# -- error mapping ------------------------------------------------------------------------------

SESSION = Session(sid="secretsession0001", region=REGIONS["us"])

RET_TABLE = [
    ("1006", InsufficientCreditsError),
    ("5000", InsufficientCreditsError),
    ("1015", SessionExpiredError),
    ("1019", AntiBotError),
    ("4013", AntiBotError),
    ("-4", AntiBotError),
    ("3018", PermissionDeniedError),
    ("4001", ContentPolicyError),
    ("4002", InvalidRequestError),
    ("4010", PermissionDeniedError),
    ("5001", PermissionDeniedError),
    ("5002", ServerError),
    ("34010100", InvalidRequestError),
    ("2003", ContentPolicyError),
    ("3000", PermissionDeniedError),  # §19 "region not allow"
    ("1000", InvalidRequestError),  # §19 "invalid parameter"
]


def test_every_protocol_ret_code_is_in_the_table() -> None:
    assert {code for code, _ in RET_TABLE} == set(RET_CODES)


@pytest.mark.parametrize(("ret", "cls"), RET_TABLE)
def test_ret_codes_map_to_typed_errors(ret: str, cls: type[APIError]) -> None:
    payload = {"ret": ret, "errmsg": "upstream says no", "logid": "LOG1", "data": None}
    with pytest.raises(cls) as caught:
        check_web(response(payload), session=SESSION, versions=DEFAULT_VERSIONS)
    error = caught.value
    assert type(error) is cls
    assert (error.code, error.request_id, error.backend) == (ret, "LOG1", "dreamina")
    assert "upstream says no" in str(error)
    assert "secretsession0001" not in str(error)
    if cls is InsufficientCreditsError:
        assert error.sessions == (SESSION.fingerprint,)  # type: ignore[attr-defined]


def test_specific_messages() -> None:
    def message(ret: str) -> str:
        try:
            check_web(response({"ret": ret}), session=SESSION, versions=DEFAULT_VERSIONS)
        except APIError as error:
            return str(error)
        raise AssertionError("no error")

    assert "version constants are outdated" in message("3018")
    assert "versions={'app_version'" in message("3018")
    assert "8.4.0" in message("3018")
    assert "browser check" in message("1019")
    assert "browser check" in message("4013")
    assert SESSION.fingerprint in message("1015") and "expired" in message("1015")


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (200, {"ret": "0", "data": {}}, None),
        (200, {"ret": "777", "errmsg": "new"}, APIError),
        (502, b"<html>bad gateway</html>", ServerError),
        (429, b"slow down", RateLimitError),
        (500, {"ret": "1006"}, InsufficientCreditsError),
    ],
)
def test_envelopes(status: int, body: Any, cls: type[APIError] | None) -> None:
    reply = response(body, status)
    if cls is None:
        check_web(reply, session=SESSION, versions=DEFAULT_VERSIONS)
        return
    with pytest.raises(cls):
        check_web(reply, session=SESSION, versions=DEFAULT_VERSIONS)


def test_imagex_and_store_envelopes() -> None:
    check_imagex(response({"ResponseMetadata": {"RequestId": "r"}, "Result": {}}))
    with pytest.raises(AuthenticationError):
        check_imagex(
            response(
                {"ResponseMetadata": {"Error": {"Code": "SignatureDoesNotMatch", "Message": "x"}}},
                401,
            )
        )
    check_store(response({"code": 2000}))
    with pytest.raises(APIError, match="crc32"):
        check_store(response({"code": 4002, "message": "crc32 mismatch"}, 400))


@pytest.mark.parametrize(
    ("finish_time", "expected"),
    [
        (1771893831, datetime(2026, 2, 24, 0, 43, 51, tzinfo=timezone.utc)),
        (1771893831000, datetime(2026, 2, 24, 0, 43, 51, tzinfo=timezone.utc)),
        (1e30, None),
        ("soon", None),
    ],
)
def test_finish_time_in_seconds_or_milliseconds(finish_time: Any, expected: Any) -> None:
    record = {"status": 30, "fail_code": "1017", "task": {"finish_time": finish_time}}
    parsed = _wire.parse_history(history(record), task(), base_interval=2.0)
    assert parsed.completed_at == expected


def test_a_busy_answer_carries_its_retry_after() -> None:
    busy = Response(
        status=503,
        headers={"Retry-After": "4"},
        body=json.dumps({"ret": "-1", "errmsg": "busy"}).encode(),
    )
    with pytest.raises(ServerError) as caught:
        check_web(busy, session=SESSION, versions=DEFAULT_VERSIONS)
    assert caught.value.retry_after == 4.0 and caught.value.resend_safe
