"""Dreamina behaviours the peers have (dreamina-web.md §11–§19), against the sandbox."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import jimeng
from jimeng._signing import parse_authorization
from jimeng.backends.dreamina import _wire
from jimeng.backends.dreamina._tables import VIDEO_MODELS
from jimeng.sandbox import Stages, build_server, dreamina_base_urls
from jimeng.sandbox._dreamina import DAILY_QUOTA, DreaminaProtocol
from jimeng.sandbox._media import render_png
from jimeng.sandbox._server import SandboxServer

POOL = ["us-paritysession01", "us-paritysession02", "us-paritysession03"]
CN = "cnparitysession01"
BROWSER = {"ms_token": "browser-ms-token-value", "a_bogus": "browser-a-bogus-value"}


@pytest.fixture
async def server() -> AsyncIterator[SandboxServer]:
    server = build_server(stages=Stages(queue_polls=1, generate_polls=1))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def proto(server: SandboxServer) -> DreaminaProtocol:
    protocol: DreaminaProtocol = server.protocol("dreamina")
    return protocol


async def _no_sleep(seconds: float) -> None:
    return None


def make(
    server: SandboxServer, tokens: str | list[str], **options: Any
) -> tuple[jimeng.Dreamina, jimeng.Client]:
    backend = jimeng.Dreamina(tokens, base_urls=dreamina_base_urls(server.url), **options)
    poll = jimeng.PollPolicy(interval=1.0, max_attempts=20, backoff=1.0)
    client = jimeng.Client(
        backend, sleep=_no_sleep, rng=random.Random(0), image_poll=poll, video_poll=poll
    )
    return backend, client


def sid(token: str) -> str:
    return token.split("-", 1)[1] if token[:3] in ("us-", "hk-", "jp-", "sg-") else token


# -- §13 claim before submit ------------------------------------------------------------------


async def test_a_session_at_zero_claims_before_submitting(
    server: SandboxServer, proto: DreaminaProtocol, caplog: pytest.LogCaptureFixture
) -> None:
    proto.session(sid(POOL[0])).gift = 0
    backend, client = make(server, POOL[:1])
    with caplog.at_level(logging.INFO, logger="jimeng"):
        async with client:
            result = await client.images.generate("a cat")
            # Balance read, claim, submit: the session was refilled, not marked exhausted.
            assert server.requests["credits"] == 2
            assert server.requests["submit"] == 1
            assert len(result.images) == 4
            assert backend.exhausted == []
            # Once a day: the next submit does not read the balance again.
            await client.images.generate("a dog")
            assert server.requests["credits"] == 2
    assert proto.session(sid(POOL[0])).total == DAILY_QUOTA - 2
    claims = [r.getMessage() for r in caplog.records if "claimed the daily credits" in r.message]
    assert claims == [f"dreamina: session {backend.sessions[0].split()[1]} had 0 credits; "
                      f"claimed the daily credits (+{DAILY_QUOTA})"]  # fmt: skip
    assert "paritysession" not in caplog.text


async def test_claim_is_daily_and_can_be_turned_off(
    server: SandboxServer, proto: DreaminaProtocol
) -> None:
    proto.session(sid(POOL[0])).gift = 0
    _, client = make(server, POOL[:1], auto_claim=False)
    async with client:
        with pytest.raises(jimeng.InsufficientCreditsError):
            await client.images.generate("a cat")
    assert server.requests["credits"] == 0
    # The day changes (Asia/Shanghai): a session that ran dry yesterday is tried again.
    now = [1_800_000_000.0]
    backend, client = make(server, POOL[:1], clock=lambda: now[0])
    proto.session(sid(POOL[0])).claimed = True  # today's claim is spent: it grants 0
    async with client:
        with pytest.raises(jimeng.InsufficientCreditsError):
            await client.images.generate("a cat")
        assert len(backend.exhausted) == 1
        submits = server.requests["submit"]
        with pytest.raises(jimeng.InsufficientCreditsError):
            await client.images.generate("a cat")
        assert server.requests["submit"] == submits  # marked for the day: no call
        now[0] += 86_400
        proto.session(sid(POOL[0])).claimed = False
        await client.images.generate("a cat")  # next day: balance read, claim, submit
        assert backend.exhausted == []


async def test_a_failed_claim_moves_on_to_the_next_session(
    server: SandboxServer, proto: DreaminaProtocol
) -> None:
    proto.session(sid(POOL[0])).gift = 0
    proto.session(sid(POOL[0])).claim_error = "-4"
    backend, client = make(server, POOL[:2])
    async with client:
        await client.images.generate("a cat")
    assert len(backend.exhausted) == 1
    assert proto.session(sid(POOL[1])).total == 99


# -- 1015: logged out, the pool moves on --------------------------------------------------------


async def test_pool_moves_past_a_logged_out_session(
    server: SandboxServer, proto: DreaminaProtocol
) -> None:
    proto.session(sid(POOL[0])).expired = True
    backend, client = make(server, POOL[:2])
    async with client:
        result = await client.images.generate("a cat")
        assert len(result.images) == 4
        assert backend.logged_out == [backend.sessions[0].split()[1]]
        # Marked: the next request does not try it again.
        calls = server.requests["credits"]
        await client.images.generate("a dog")
        assert server.requests["credits"] == calls


async def test_all_unusable_names_each_session_and_why(
    server: SandboxServer, proto: DreaminaProtocol
) -> None:
    proto.session(sid(POOL[0])).expired = True
    proto.session(sid(POOL[1])).gift = 0
    proto.session(sid(POOL[1])).claimed = True  # the claim grants nothing today
    backend, client = make(server, POOL[:2])
    names = [entry.split()[1] for entry in backend.sessions]
    async with client:
        with pytest.raises(jimeng.InsufficientCreditsError) as caught:
            await client.images.generate("a cat")
    message = str(caught.value)
    assert f"{names[0]}: not logged in (ret 1015)" in message
    assert f"{names[1]}: out of credits (ret 1006)" in message
    assert caught.value.sessions == (names[1],)
    assert "paritysession" not in message


async def test_every_session_logged_out_is_a_session_error(
    server: SandboxServer, proto: DreaminaProtocol
) -> None:
    for token in POOL[:2]:
        proto.session(sid(token)).expired = True
    _, client = make(server, POOL[:2])
    async with client:
        with pytest.raises(jimeng.SessionExpiredError) as caught:
            await client.images.generate("a cat")
    assert caught.value.code == "1015"
    assert str(caught.value).count("not logged in (ret 1015)") == 2


# -- §14 benefit_type fallback --------------------------------------------------------------------


async def test_seedance_falls_back_to_the_next_benefit_type(
    server: SandboxServer, proto: DreaminaProtocol
) -> None:
    session = proto.session(CN)
    session.refused_benefits = {
        "dreamina_video_seedance_20_pro",
        "dreamina_video_seedance_20_pro_with_video",
    }
    _, client = make(server, CN)
    async with client:
        clip = await client.videos.generate(
            "a dancer", model="jimeng-video-seedance-2.0", duration=5, **BROWSER
        )
    assert clip.url
    offered = [
        call["body"]["extend"]["m_video_commerce_info"]["benefit_type"] for call in proto.generated
    ]
    assert offered == [
        "dreamina_video_seedance_20_pro",
        "dreamina_video_seedance_20_pro_with_video",
        "dreamina_seedance_20_pro",
    ]
    # The same submit_id and the same draft each time; only the benefit type changes.
    assert len({call["body"]["submit_id"] for call in proto.generated}) == 1
    assert len({call["body"]["draft_content"] for call in proto.generated}) == 1


def test_short_videos_skip_the_with_video_benefits() -> None:
    assert VIDEO_MODELS["jimeng-video-seedance-2.0-fast"].benefit_types(4) == (
        "dreamina_seedance_20_fast",
        "dreamina_video_seedance_20_fast",
    )
    assert VIDEO_MODELS["jimeng-video-3.0"].benefit_types(10) == (
        "basic_video_operation_vgfm_v_three",
    )


async def test_the_last_refusal_is_raised(server: SandboxServer, proto: DreaminaProtocol) -> None:
    proto.session(CN).refused_benefits = set(
        VIDEO_MODELS["jimeng-video-seedance-2.0"].benefit_types(5)
    )
    _, client = make(server, CN)
    async with client:
        with pytest.raises(jimeng.PermissionDeniedError) as caught:
            await client.videos.generate(
                "a dancer", model="jimeng-video-seedance-2.0", duration=5, **BROWSER
            )
    assert caught.value.code == "5001"
    assert len(proto.generated) == 4


# -- §15 browser tokens ---------------------------------------------------------------------------


async def test_browser_tokens_go_to_the_generate_query_only(
    server: SandboxServer, proto: DreaminaProtocol
) -> None:
    _, client = make(server, CN)
    async with client:
        await client.videos.generate("a dancer", model="jimeng-video-seedance-2.0", **BROWSER)
    (call,) = proto.generated
    assert call["query"]["msToken"] == BROWSER["ms_token"]
    assert call["query"]["a_bogus"] == BROWSER["a_bogus"]
    assert list(call["query"])[-2:] == ["msToken", "a_bogus"]


def test_browser_tokens_are_refused_where_they_would_be_ignored() -> None:
    backend = jimeng.Dreamina("us-paritysession09")
    request = jimeng.VideoRequest(prompt="p", model="jimeng-video-3.0", a_bogus="bogus-secret")
    with pytest.raises(jimeng.ValidationError) as caught:
        backend.validate_video(request)
    assert caught.value.field == "a_bogus"
    assert "bogus-secret" not in repr(request)


# -- §11 omni reference, §12 multi-image -----------------------------------------------------------


async def test_omni_reference_payload(
    server: SandboxServer, proto: DreaminaProtocol, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    first.write_bytes(render_png("a", 64, 48))
    second.write_bytes(render_png("b", 48, 64))
    _, client = make(server, CN)
    async with client:
        clip = await client.videos.generate(
            "@image_file_1 walks toward @image_file_2, @someone waves",
            model="jimeng-video-seedance-2.0-fast",
            function_mode="omni_reference",
            reference_images=[first, second],
            aspect_ratio="16:9",
            duration=6,
            **BROWSER,
        )
    assert clip.url
    (call,) = proto.generated
    assert call["query"]["da_version"] == "3.3.9"
    draft = json.loads(call["body"]["draft_content"])
    assert (draft["version"], draft["min_features"]) == ("3.3.9", ["AIGC_Video_UnifiedEdit"])
    params = draft["component_list"][0]["abilities"]["gen_video"]["text_to_video_params"]
    (gen_input,) = params["video_gen_inputs"]
    assert gen_input["prompt"] == ""
    assert "first_frame_image" not in gen_input and "resolution" not in gen_input
    unified = gen_input["unified_edit_input"]
    assert [m["image_info"]["width"] for m in unified["material_list"]] == [64, 48]
    assert [m["image_info"]["format"] for m in unified["material_list"]] == ["png", "png"]
    assert unified["meta_list"] == [
        {"meta_type": "image", "text": "", "material_ref": {"material_idx": 0}},
        {"meta_type": "text", "text": " walks toward "},
        {"meta_type": "image", "text": "", "material_ref": {"material_idx": 1}},
        {"meta_type": "text", "text": ", @someone waves"},
    ]
    assert params["video_aspect_ratio"] == "16:9"
    metrics = json.loads(call["body"]["metrics_extra"])
    assert metrics["functionMode"] == "omni_reference" and "promptSource" not in metrics
    scene = json.loads(metrics["sceneOptions"])[0]
    assert (scene["materialTypes"], scene["videoDuration"]) == ([1, 1], 6)
    assert call["body"]["extend"]["m_video_commerce_info"]["benefit_type"] == (
        "dreamina_seedance_20_fast"
    )


def test_omni_is_checked_before_the_network() -> None:
    backend = jimeng.Dreamina(CN)
    png = render_png("x", 8, 8)
    for kwargs, field in (
        ({"model": "jimeng-video-3.0", "reference_images": [png]}, "function_mode"),
        ({"model": "jimeng-video-seedance-2.0"}, "reference_images"),
        (
            {"model": "jimeng-video-seedance-2.0", "reference_images": [png] * 10},
            "reference_images",
        ),
    ):
        request = jimeng.VideoRequest(prompt="p", function_mode="omni_reference", **kwargs)
        with pytest.raises(jimeng.ValidationError) as caught:
            backend.validate_video(request)
        assert caught.value.field == field
    with pytest.raises(jimeng.ValidationError) as caught:
        backend.validate_video(jimeng.VideoRequest(prompt="p", reference_images=[png]))
    assert caught.value.field == "reference_images"


def test_meta_list_keeps_unknown_references_as_text() -> None:
    assert _wire.omni_meta_list("no references", 2) == [
        {"meta_type": "text", "text": "no references"}
    ]
    assert _wire.omni_meta_list("@image_file_3 is not there", 2) == [
        {"meta_type": "text", "text": "@image_file_3 is not there"}
    ]


async def test_multi_image_payload(server: SandboxServer, proto: DreaminaProtocol) -> None:
    _, client = make(server, CN)
    async with client:
        result = await client.images.generate(
            "一个小猫的故事，6张", model="jimeng-4.5", multi_image=True
        )
        plain = await client.images.generate("a cat", model="jimeng-4.5")
    assert len(result.images) == 6 and len(plain.images) == 4
    multi, single = (json.loads(call["body"]["metrics_extra"]) for call in proto.generated)
    assert (multi["templateId"], multi["templateSource"]) == ("", "")
    assert (multi["lastRequestId"], multi["originRequestId"]) == ("", "")
    scene = json.loads(multi["sceneOptions"])[0]
    assert scene["scene"] == "ImageMultiGenerate" and "benefitCount" not in scene
    assert "templateId" not in single
    assert json.loads(single["sceneOptions"])[0]["benefitCount"] == 4
    # The count is not sent: the prompt carries it.
    assert json.loads(proto.generated[0]["body"]["draft_content"]).get("count") is None


def test_multi_image_is_refused_where_it_does_not_exist() -> None:
    backend = jimeng.Dreamina(CN)
    with pytest.raises(jimeng.ValidationError) as caught:
        backend.validate_image(
            jimeng.ImageRequest(prompt="p", model="jimeng-5.0", multi_image=True)
        )
    assert caught.value.field == "multi_image"


# -- §17 liveness, §19 ret codes, §18 poll limits --------------------------------------------------


async def test_account_check_asks_the_passport(
    server: SandboxServer, proto: DreaminaProtocol
) -> None:
    proto.session("paritysession05").expired = True
    tokens = [CN, "us-paritysession05", "hk-paritysession06"]
    backend, client = make(server, tokens)
    async with client:
        statuses = await client.account.check()
    assert [(s.region, s.live) for s in statuses] == [("cn", True), ("us", False), ("hk", None)]
    assert "1015" in (statuses[1].note or "")
    assert "404" in (statuses[2].note or "")
    assert backend.logged_out == [statuses[1].session]
    assert server.requests["check"] == 2  # the HK host answered 404 before counting


async def test_region_not_allowed_says_why(server: SandboxServer) -> None:
    _, client = make(server, CN)
    async with client:
        with pytest.raises(jimeng.PermissionDeniedError, match="region not allowed") as caught:
            await client.images.generate("a cat sandbox:region")
    assert caught.value.code == "3000"


def test_web_poll_limits_follow_the_peers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JIMENG_MAX_POLL_ATTEMPTS", raising=False)
    monkeypatch.delenv("JIMENG_VIDEO_MAX_POLL_ATTEMPTS", raising=False)
    backend = jimeng.Dreamina(CN)

    def task(kind: jimeng.TaskKind) -> jimeng.Task:
        return jimeng.Task(
            id="1", kind=kind, status=jimeng.TaskStatus.QUEUED, backend="dreamina", ref="1"
        )

    image = backend.poll_policy(task(jimeng.TaskKind.IMAGE))
    video = backend.poll_policy(task(jimeng.TaskKind.VIDEO))
    assert image is not None and video is not None
    assert (image.deadline, image.max_attempts) == (1800.0, 900)
    assert (video.deadline, video.max_attempts) == (3600.0, 900)
    monkeypatch.setenv("JIMENG_MAX_POLL_ATTEMPTS", "7")
    assert backend.poll_policy(task(jimeng.TaskKind.IMAGE)) == jimeng.PollPolicy.for_kind(
        jimeng.TaskKind.IMAGE
    )


async def test_the_web_deadline_raises_with_the_task_id(server: SandboxServer) -> None:
    slow = build_server(stages=Stages(queue_polls=10_000))
    await slow.start()
    clock = [0.0]

    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    backend = jimeng.Dreamina(CN, base_urls=dreamina_base_urls(slow.url))
    try:
        async with jimeng.Client(backend, sleep=sleep, monotonic=lambda: clock[0]) as client:
            with pytest.raises(jimeng.TaskTimeoutError) as caught:
                await client.images.generate("a cat")
    finally:
        await slow.stop()
    assert caught.value.task_id
    assert 1800.0 <= clock[0] <= 1800.0 + 60.0


async def test_omni_video_materials_go_through_vod(
    server: SandboxServer, proto: DreaminaProtocol, tmp_path: Path
) -> None:
    from jimeng.sandbox._media import render_mp4

    clip_file = tmp_path / "move.mp4"
    clip_file.write_bytes(render_mp4("move", width=64, height=36, frames=48))
    _, client = make(server, CN)
    async with client:
        clip = await client.videos.generate(
            "@image_file_1 does what @video_file_1 shows",
            model="jimeng-video-seedance-2.0",
            function_mode="omni_reference",
            reference_images=[render_png("a", 64, 48)],
            reference_videos=[clip_file],
            duration=5,
            **BROWSER,
        )
    assert clip.url
    (call,) = proto.generated
    draft = json.loads(call["body"]["draft_content"])
    params = draft["component_list"][0]["abilities"]["gen_video"]["text_to_video_params"]
    unified = params["video_gen_inputs"][0]["unified_edit_input"]
    image, video = unified["material_list"]
    assert image["material_type"] == "image"
    assert video["material_type"] == "video"
    info = video["video_info"]
    assert info["vid"] in proto.videos
    assert (info["width"], info["height"], info["duration"], info["fps"]) == (64, 36, 2000, 0)
    assert unified["meta_list"] == [
        {"meta_type": "image", "text": "", "material_ref": {"material_idx": 0}},
        {"meta_type": "text", "text": " does what "},
        {"meta_type": "video", "text": "", "material_ref": {"material_idx": 1}},
        {"meta_type": "text", "text": " shows"},
    ]
    scene = json.loads(json.loads(call["body"]["metrics_extra"])["sceneOptions"])[0]
    assert scene["materialTypes"] == [1, 2]


async def test_vod_upload_credentials_are_secrets(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VOD may echo the STS token and access key it was sent, and what it issued."""
    from jimeng.sandbox._media import render_mp4

    real = DreaminaProtocol._vod

    async def echoing(
        self: DreaminaProtocol, request: web.Request, body: bytes
    ) -> web.StreamResponse:
        if request.query.get("Action") != "CommitUploadInner":
            return await real(self, request, body)
        access_key = parse_authorization(request.headers["Authorization"]).access_key
        grant = self._grants[access_key]
        store = self._pending[json.loads(body)["SessionKey"]].auth
        message = (
            f"token {request.headers['X-Amz-Security-Token']} key {access_key} "
            f"secret {grant.secret} store {store}"
        )
        return self._imagex_error(request, "SignatureDoesNotMatch", message, 401)

    monkeypatch.setattr(DreaminaProtocol, "_vod", echoing)
    clip = tmp_path / "move.mp4"
    clip.write_bytes(render_mp4("move", width=64, height=36, frames=48))
    _, client = make(server, CN)
    async with client:
        with pytest.raises(jimeng.AuthenticationError) as caught:
            await client.videos.generate(
                "@video_file_1 again",
                model="jimeng-video-seedance-2.0",
                function_mode="omni_reference",
                reference_videos=[clip],
                duration=5,
                **BROWSER,
            )
    assert caught.value.message == (
        "ImageX upload refused: token <redacted> key <redacted> secret <redacted> store <redacted>"
    )


async def test_omni_videos_longer_than_15_s_in_all_are_refused(
    server: SandboxServer, proto: DreaminaProtocol
) -> None:
    from jimeng.sandbox._media import render_mp4

    long_clip = render_mp4("long", width=32, height=32, frames=24 * 8)
    _, client = make(server, CN)
    async with client:
        with pytest.raises(jimeng.ValidationError, match="16 s together") as caught:
            await client.videos.generate(
                "p",
                model="jimeng-video-seedance-2.0",
                function_mode="omni_reference",
                reference_videos=[long_clip, long_clip],
                **BROWSER,
            )
    assert caught.value.field == "reference_videos"
    assert proto.generated == []  # nothing was submitted
