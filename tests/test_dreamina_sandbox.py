"""The Dreamina backend through the public API against the sandbox's web-protocol emulation."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp import web

import jimeng
from jimeng._signing import parse_authorization
from jimeng.backends.dreamina import _wire
from jimeng.backends.dreamina._plan import plan_image
from jimeng.backends.dreamina._tables import IMAGE_MODELS, REGIONS
from jimeng.sandbox import Stages, build_server, dreamina_base_urls
from jimeng.sandbox._dreamina import BANNED_WORDS, DreaminaProtocol
from jimeng.sandbox._media import mp4_info, png_size, render_png
from jimeng.sandbox._server import SandboxServer
from jimeng.sandbox._volcengine import BLOCK_INPUT, BLOCK_OUTPUT, FAIL_TASK

Sleeps = Any  # the conftest fixture that records delays

CN_TOKEN = "cnsession0001"
US_TOKEN = "us-ussession0001"
HK_TOKEN = "hk-hksession0001"
TOKENS = [CN_TOKEN, US_TOKEN]


@pytest.fixture(autouse=True)
def _default_poll_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JIMENG_POLL_INTERVAL", raising=False)
    monkeypatch.delenv("JIMENG_VIDEO_POLL_INTERVAL", raising=False)


@pytest.fixture
async def server() -> AsyncIterator[SandboxServer]:
    server = build_server(stages=Stages(queue_polls=1, generate_polls=2))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def proto(server: SandboxServer) -> DreaminaProtocol:
    protocol: DreaminaProtocol = server.protocol("dreamina")
    return protocol


def backend(server: SandboxServer, tokens: str | list[str], **kwargs: Any) -> jimeng.Dreamina:
    return jimeng.Dreamina(tokens, base_urls=dreamina_base_urls(server.url), **kwargs)


def client(
    server: SandboxServer, tokens: str | list[str], sleeps: Sleeps, **kwargs: Any
) -> jimeng.Client:
    poll = jimeng.PollPolicy(interval=1.0, max_attempts=20, backoff=1.0)
    return jimeng.Client(
        backend(server, tokens, **kwargs),
        sleep=sleeps,
        rng=random.Random(0),
        image_poll=poll,
        video_poll=poll,
    )


def reference(
    tmp_path: Path, name: str, width: int = 64, height: int = 48, text: str = "ref"
) -> Path:
    path = tmp_path / name
    path.write_bytes(render_png(text, width, height))
    return path


# -- text-to-image -------------------------------------------------------------------------------


@pytest.mark.parametrize("token", TOKENS)
async def test_text_to_image(
    server: SandboxServer, sleeps: Sleeps, token: str, tmp_path: Path
) -> None:
    async with client(server, token, sleeps) as c:
        result = await c.images.generate(
            "奔跑的狮子，竖屏", model="jimeng-4.0", intelligent_ratio=True
        )
        assert len(result.images) == 4  # §3.5: up to 4 images per record
        assert all("&x-signature=" in url for url in result.urls)  # "\u0026" cleaned
        saved = await result.save(tmp_path)
        assert png_size(saved[0].read_bytes()) == (2048, 2048)
    # 20 → 42 (1.2 × 2 s) → 45 (1.5 × 2 s) → 50: the poller followed the hints.
    assert sleeps.calls == [1.0, 1.0, 2.4, 3.0]
    host = "jimeng.jianying.com" if token == CN_TOKEN else "dreamina-api.us.capcut.com"
    assert server.protocol("dreamina").hosts[host] >= 5


async def test_ratio_resolution_and_width_height(server: SandboxServer, sleeps: Sleeps) -> None:
    async with client(server, HK_TOKEN, sleeps) as c:
        result = await c.images.generate("a cat", ratio="16:9", resolution="1k", seed=7)
        assert (result.images[0].width, result.images[0].height) == (1024, 576)
        assert png_size(await result.images[0].read()) == (1024, 576)
        result = await c.images.generate("a cat", width=1920, height=1080)  # → 16:9 at 2k
        assert (result.images[0].width, result.images[0].height) == (2560, 1440)


async def test_nanobanana_site_rules(server: SandboxServer, sleeps: Sleeps) -> None:
    async with client(server, "us-nano0001", sleeps) as c:
        result = await c.images.generate("a cat", model="nanobanana")
        assert (result.images[0].width, result.images[0].height) == (1024, 1024)
        with pytest.raises(jimeng.ValidationError, match="ignore ratio"):
            await c.images.generate("a cat", model="nanobanana", ratio="16:9")
    async with client(server, "sg-nano0002", sleeps) as c:
        result = await c.images.generate("a cat", model="nanobanana", ratio="16:9")
        assert (result.images[0].width, result.images[0].height) == (1024, 576)


# -- region-restricted models --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "model", "kind"),
    [
        (CN_TOKEN, "nanobanana", "image"),
        (CN_TOKEN, "nanobananapro", "image"),
        (US_TOKEN, "jimeng-5.0", "image"),
        (US_TOKEN, "jimeng-3.1", "image"),
        (HK_TOKEN, "jimeng-2.1", "image"),
        (CN_TOKEN, "jimeng-video-veo3", "video"),
        (US_TOKEN, "jimeng-video-3.0-fast", "video"),
    ],
)
async def test_region_restricted_models_fail_before_the_network(
    server: SandboxServer, sleeps: Sleeps, token: str, model: str, kind: str
) -> None:
    async with client(server, token, sleeps) as c:
        with pytest.raises(jimeng.ValidationError, match="not offered") as caught:
            if kind == "image":
                await c.images.generate("a cat", model=model)
            else:
                await c.videos.generate("a cat", model=model)
    assert caught.value.field == "model"
    assert sum(server.requests.values()) == 0


async def test_mixed_pool_uses_a_session_whose_site_offers_the_model(
    server: SandboxServer, sleeps: Sleeps, proto: DreaminaProtocol
) -> None:
    async with client(server, [CN_TOKEN, HK_TOKEN], sleeps) as c:
        result = await c.images.generate("a cat", model="nanobanana")  # not on CN: HK serves it
        assert len(result.images) == 4
    assert proto.session("hksession0001").total < 100
    assert proto.session("cnsession0001").total == 100


async def test_server_also_rejects_models_not_offered(
    server: SandboxServer, sleeps: Sleeps
) -> None:
    # Even when a client skips the check, the emulated site refuses, as the real one does.
    b = backend(server, CN_TOKEN)
    request = jimeng.ImageRequest(prompt="p")
    plan = attrs.evolve(plan_image(request, REGIONS["cn"]), model=IMAGE_MODELS["nanobanana"])
    b._candidates = lambda _: [(b._sessions[0], plan)]  # type: ignore[method-assign,assignment,return-value]
    async with jimeng.Client(b, sleep=sleeps) as c:
        with pytest.raises(jimeng.InvalidRequestError, match="not offered"):
            await c.images.submit("a cat")


# -- blend ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", TOKENS)
async def test_blend_with_local_files(
    server: SandboxServer, sleeps: Sleeps, proto: DreaminaProtocol, token: str, tmp_path: Path
) -> None:
    files = [reference(tmp_path, "a.png", text="one"), reference(tmp_path, "b.png", text="two")]
    async with client(server, token, sleeps) as c:
        result = await c.images.generate("anime style", images=files, sample_strength=0.6)
        assert len(result.images) == 4
    assert len(proto.store) == 2  # both uploaded, CRC and SigV4 checked by the emulation
    assert {stored.region for stored in proto.store.values()} == {
        "cn" if token == CN_TOKEN else "us"
    }


async def test_blend_with_url_and_bytes(
    server: SandboxServer, sleeps: Sleeps, proto: DreaminaProtocol
) -> None:
    async with client(server, HK_TOKEN, sleeps) as c:
        first = await c.images.generate("a sunny field")
        url = first.urls[0]
        result = await c.images.generate(
            "oil painting", images=[url, render_png("bytes", 32, 32)], model="jimeng-4.5"
        )
        assert len(result.images) == 4
    assert server.requests["download"] == 1  # the URL was fetched once, then uploaded
    assert len(proto.store) == 2


async def test_blend_reference_that_is_not_an_image(server: SandboxServer, sleeps: Sleeps) -> None:
    async with client(server, CN_TOKEN, sleeps) as c:
        with pytest.raises(jimeng.ValidationError, match="not an image"):
            await c.images.generate("p", images=[b"definitely not an image"])
        with pytest.raises(jimeng.DownloadError, match="404"):
            await c.images.generate("p", images=[f"{server.url}/media/nothing-here.png"])
    assert server.requests["submit"] == 0


async def test_cn_upload_content_check_refuses(
    server: SandboxServer, sleeps: Sleeps, tmp_path: Path
) -> None:
    risky = reference(tmp_path, "risky.png", text=BLOCK_INPUT)  # the marker sits in the PNG text
    async with client(server, CN_TOKEN, sleeps) as c:
        with pytest.raises(jimeng.ContentPolicyError) as caught:
            await c.images.generate("p", images=[risky])
    assert caught.value.code == "2003"
    assert server.requests["submit"] == 0


async def test_upload_signature_and_crc_are_verified(
    server: SandboxServer, sleeps: Sleeps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = [reference(tmp_path, "a.png")]
    real_grant, real_store = _wire.parse_upload_token, _wire.store_upload_call

    def wrong_secret(response: Any, region: Any) -> _wire.UploadGrant:
        grant = real_grant(response, region)
        return attrs.evolve(grant, credentials=attrs.evolve(grant.credentials, secret_key="x"))

    def wrong_crc(*args: Any) -> Any:
        call = real_store(*args)
        return attrs.evolve(call, headers={**call.headers, "Content-CRC32": "00000000"})

    async with client(server, HK_TOKEN, sleeps) as c:
        monkeypatch.setattr(_wire, "parse_upload_token", wrong_secret)
        with pytest.raises(jimeng.AuthenticationError, match="signature does not match"):
            await c.images.generate("p", images=files)
        monkeypatch.setattr(_wire, "parse_upload_token", real_grant)
        monkeypatch.setattr(_wire, "store_upload_call", wrong_crc)
        with pytest.raises(jimeng.APIError, match="crc32 mismatch"):
            await c.images.generate("p", images=files)
    assert server.requests["submit"] == 0


async def test_upload_credentials_are_secrets(
    server: SandboxServer, sleeps: Sleeps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ImageX may echo what it was sent (the STS token, the access key) and what it issued (the
    secret, the store's authorization): none of it reaches the error."""
    real = DreaminaProtocol._imagex

    async def echoing(
        self: DreaminaProtocol, request: web.Request, host: str, body: bytes
    ) -> web.StreamResponse:
        if request.query.get("Action") != "CommitImageUpload":
            return await real(self, request, host, body)
        access_key = parse_authorization(request.headers["Authorization"]).access_key
        grant = self._grants[access_key]
        store = self._pending[json.loads(body)["SessionKey"]].auth
        message = (
            f"x-amz-security-token:{request.headers['X-Amz-Security-Token']} key {access_key} "
            f"secret {grant.secret} store {store}"
        )
        return self._imagex_error(request, "SignatureDoesNotMatch", message, 401)

    monkeypatch.setattr(DreaminaProtocol, "_imagex", echoing)
    async with client(server, HK_TOKEN, sleeps) as c:
        with pytest.raises(jimeng.AuthenticationError) as caught:
            await c.images.generate("p", images=[reference(tmp_path, "a.png")])
    assert caught.value.message == (
        "ImageX upload refused: x-amz-security-token:<redacted> key <redacted> "
        "secret <redacted> store <redacted>"
    )
    assert "<redacted>" in repr(caught.value.body) and server.requests["submit"] == 0


# -- video ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", TOKENS)
async def test_text_to_video(server: SandboxServer, sleeps: Sleeps, token: str) -> None:
    async with client(server, token, sleeps) as c:
        clip = await c.videos.generate(
            "waves at dusk", model="jimeng-video-3.0", duration=10, ratio="16:9"
        )
        info = mp4_info(await clip.read())
        assert (info.width, info.height) == (1280, 720)
        assert info.duration == pytest.approx(10.0)
        assert clip.url is not None and "origin.mp4" in clip.url  # the high-bitrate copy


async def test_video_first_and_last_frames(
    server: SandboxServer, sleeps: Sleeps, tmp_path: Path
) -> None:
    first = reference(tmp_path, "first.png", width=90, height=160)
    last = reference(tmp_path, "last.png", width=90, height=160)
    async with client(server, HK_TOKEN, sleeps) as c:
        clip = await c.videos.generate(
            "walk", model="jimeng-video-3.5-pro", duration=5, image=first, tail_image=last
        )
        info = mp4_info(await clip.read())
    assert (info.width, info.height) == (720, 1280)  # the first frame decides the ratio


async def test_seedance_on_cn_meets_the_browser_check(
    server: SandboxServer, sleeps: Sleeps
) -> None:
    async with client(server, CN_TOKEN, sleeps) as c:
        with pytest.raises(jimeng.AntiBotError, match="browser check") as caught:
            await c.videos.generate("dance", model="jimeng-video-seedance-2.0")
    assert caught.value.code == "1019"


# -- rotation and credits --------------------------------------------------------------------------

POOL = ["us-poolsession0001", "us-poolsession0002", "us-poolsession0003"]


async def test_rotation_across_three_sessions(
    server: SandboxServer, sleeps: Sleeps, proto: DreaminaProtocol, caplog: pytest.LogCaptureFixture
) -> None:
    proto.session("poolsession0001").gift = 0
    proto.session("poolsession0002").gift = 0
    b = backend(server, POOL, auto_claim=False)
    with caplog.at_level(logging.DEBUG, logger="jimeng"):
        async with jimeng.Client(b, sleep=sleeps) as c:
            result = await c.images.generate("a cat")
            assert len(result.images) == 4
            # Three submits, each with a NEW submit_id; the first two answered 1006.
            assert server.requests["submit"] == 3
            assert len(set(proto.submit_ids)) == 3
            assert len(b.exhausted) == 2
            assert proto.session("poolsession0003").total == 99
            # The exhausted sessions are skipped from now on.
            await c.images.generate("a dog")
            assert server.requests["submit"] == 4
            balances = await c.account.credits()
    assert [balance.total for balance in balances] == [0, 0, 98]
    assert [balance.session for balance in balances] == [s.split()[1] for s in b.sessions]
    assert "poolsession000" not in caplog.text
    assert "poolsession000" not in repr(balances)


async def test_all_sessions_exhausted(
    server: SandboxServer, sleeps: Sleeps, proto: DreaminaProtocol
) -> None:
    for token in POOL:
        proto.session(token.removeprefix("us-")).gift = 0
    b = backend(server, POOL, auto_claim=False)
    async with jimeng.Client(b, sleep=sleeps) as c:
        with pytest.raises(jimeng.InsufficientCreditsError) as caught:
            await c.images.generate("a cat")
        error = caught.value
        assert error.code == "1006"
        assert len(error.sessions) == 3
        assert all(name.startswith("…") for name in error.sessions)
        assert "poolsession" not in str(error)
        assert server.requests["submit"] == 3
        # Marked: the next request fails at once, without a network call.
        with pytest.raises(jimeng.InsufficientCreditsError):
            await c.images.generate("a cat")
        assert server.requests["submit"] == 3
        # The daily claim refills them and clears the marks.
        balances = await c.account.claim()
        assert [balance.total for balance in balances] == [60, 60, 60]
        assert b.exhausted == []
        await c.images.generate("a cat")
        assert server.requests["submit"] == 4


async def test_5000_rotates_without_marking(
    server: SandboxServer, sleeps: Sleeps, proto: DreaminaProtocol
) -> None:
    proto.session("poolsession0001").gift = 2  # enough for 2k (1 credit), not for 4k (4)
    b = backend(server, POOL[:2], auto_claim=False)
    async with jimeng.Client(b, sleep=sleeps) as c:
        await c.images.generate("a cat", resolution="4k")
        assert server.requests["submit"] == 2  # 5000 on the first, accepted by the second
        assert b.exhausted == []  # the first session can still pay for cheaper requests
        proto.session("poolsession0002").gift = 0
        await c.images.generate("a cat", resolution="2k")
        assert server.requests["submit"] == 4  # 1006 on the second, accepted by the first
        assert len(b.exhausted) == 1
    assert proto.session("poolsession0001").total == 1


async def test_claim_errors(server: SandboxServer, sleeps: Sleeps, proto: DreaminaProtocol) -> None:
    proto.session("claim0001").claim_error = "-4"
    proto.session("claim0002").claim_error = "34010100"
    async with client(server, "claim0001", sleeps) as c:
        with pytest.raises(jimeng.AntiBotError) as caught:
            await c.account.claim()
        assert caught.value.code == "-4"
    async with client(server, "claim0002", sleeps) as c:
        with pytest.raises(jimeng.InvalidRequestError):
            await c.account.claim()


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("marker", "cls", "code"),
    [
        (BLOCK_INPUT, jimeng.ContentPolicyError, "4001"),
        ("sandbox:param-error", jimeng.InvalidRequestError, "4002"),
        ("sandbox:compliance", jimeng.PermissionDeniedError, "4010"),
        ("sandbox:risk", jimeng.AntiBotError, "4013"),
        ("sandbox:shark", jimeng.AntiBotError, "1019"),
        ("sandbox:entitlement", jimeng.PermissionDeniedError, "5001"),
        ("sandbox:video-failed", jimeng.ServerError, "5002"),
    ],
)
async def test_generate_ret_codes(
    server: SandboxServer, sleeps: Sleeps, marker: str, cls: type[jimeng.APIError], code: str
) -> None:
    async with client(
        server,
        US_TOKEN,
        sleeps,
    ) as c:
        c = c.with_options(retry=jimeng.RetryPolicy.disabled())
        with pytest.raises(cls) as caught:
            await c.images.generate(f"a cat {marker}")
    assert type(caught.value) is cls
    assert caught.value.code == code
    assert caught.value.backend == "dreamina"
    assert caught.value.request_id


@pytest.mark.parametrize(
    ("marker", "cls", "code"),
    [
        (BLOCK_OUTPUT, jimeng.ContentPolicyError, "2038"),
        (BANNED_WORDS, jimeng.ContentPolicyError, "2047"),
        (FAIL_TASK, jimeng.TaskFailedError, "1017"),
    ],
)
async def test_fail_codes(
    server: SandboxServer, sleeps: Sleeps, marker: str, cls: type[jimeng.JimengError], code: str
) -> None:
    async with client(server, CN_TOKEN, sleeps) as c:
        handle = await c.images.submit(f"a cat {marker}")
        with pytest.raises(cls) as caught:
            await handle.result()
    error: Any = caught.value
    assert type(error) is cls
    assert error.code == code
    assert error.task_id == handle.id  # nothing paid for is lost


async def test_expired_session(
    server: SandboxServer, sleeps: Sleeps, proto: DreaminaProtocol
) -> None:
    proto.session("stalesession0001").expired = True
    async with client(server, "stalesession0001", sleeps) as c:
        with pytest.raises(jimeng.SessionExpiredError) as caught:
            await c.images.generate("a cat")
    assert caught.value.code == "1015"
    assert "stalesession0001" not in str(caught.value)
    assert c.backend._sessions[0].fingerprint in str(caught.value)  # type: ignore[attr-defined]


async def test_wrong_region_prefix_is_a_login_error(
    server: SandboxServer, sleeps: Sleeps, proto: DreaminaProtocol
) -> None:
    proto.session("cnonly0001").region = "cn"
    async with client(server, "us-cnonly0001", sleeps) as c:
        with pytest.raises(jimeng.SessionExpiredError, match="region prefix"):
            await c.account.credits()


async def test_outdated_version_constants(
    server: SandboxServer, sleeps: Sleeps, proto: DreaminaProtocol
) -> None:
    proto.min_app_version = "8.5.0"  # upstream raised its minimum
    async with client(server, CN_TOKEN, sleeps) as c:
        with pytest.raises(jimeng.PermissionDeniedError, match="outdated") as caught:
            await c.images.generate("a cat")
    assert caught.value.code == "3018"
    assert "versions=" in str(caught.value)
    async with client(server, CN_TOKEN, sleeps, versions={"app_version": "8.5.0"}) as c:
        assert len(await c.images.generate("a cat")) == 4


async def test_device_time_comes_from_the_engine_clock(
    server: SandboxServer, sleeps: Sleeps
) -> None:
    stale = lambda: datetime.now(timezone.utc) - timedelta(hours=2)  # noqa: E731
    async with jimeng.Client(backend(server, CN_TOKEN), sleep=sleeps, clock=stale) as c:
        with pytest.raises(jimeng.InvalidRequestError, match="Device-Time"):
            await c.account.credits()


async def test_retried_submit_is_signed_again(
    server: SandboxServer, sleeps: Sleeps, proto: DreaminaProtocol
) -> None:
    server.inject("submit", status=503, code="-1", message="busy")
    start = datetime.now(timezone.utc)
    ticks = iter(range(1000))
    clock = lambda: start + timedelta(seconds=10 * next(ticks))  # noqa: E731
    async with jimeng.Client(backend(server, CN_TOKEN), sleep=sleeps, clock=clock) as c:
        handle = await c.images.submit("a cat")
    assert server.requests["submit"] == 2  # refused with 503, sent again
    first, second = proto.device_times["submit"]
    assert second - first >= 10  # the retry carried its own Device-Time (and Sign)
    assert handle.id


async def test_resume_by_ref(server: SandboxServer, sleeps: Sleeps) -> None:
    async with client(server, [CN_TOKEN, HK_TOKEN], sleeps) as c:
        handle = await c.images.submit("a cat", model="nanobanana")  # served by the HK session
        ref = handle.ref
    async with client(server, [CN_TOKEN, HK_TOKEN], sleeps) as c:
        result = await c.tasks.wait(ref)
        assert len(result.images) == 4
    async with client(server, CN_TOKEN, sleeps) as c:
        with pytest.raises(jimeng.ConfigurationError, match="does not hold"):
            await c.tasks.get(ref)


async def test_sandbox_protocol_dreamina(sleeps: Sleeps) -> None:
    sandbox = jimeng.Sandbox(protocol="dreamina", tokens="us-aaaa0001,bbbb0002")
    async with jimeng.Client(sandbox, sleep=sleeps) as c:
        result = await c.images.generate("a cat", model="jimeng-4.0")
        assert len(result.images) == 4
        credits = await c.account.credits()
    assert [(b.region, b.total) for b in credits] == [("us", 99), ("cn", 100)]
    async with jimeng.Client(jimeng.Sandbox(protocol="dreamina"), sleep=sleeps) as c:
        clip = await c.videos.generate("waves", duration=5)
        assert mp4_info(await clip.read()).duration == pytest.approx(5.0)
