"""The edge: every public entry point refuses a wrong type or range with a ValidationError that
names the field, quotes what was given and says what is allowed, before anything is sent."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import jimeng
from jimeng.backends.volcengine import _wire
from jimeng.models import ImageRequest, VideoRequest
from jimeng.sandbox import Sandbox
from tests._images import png

PNG = png(64, 64)

IMAGE_CASES: list[tuple[dict[str, Any], str, str]] = [
    # the findings: untyped exceptions before, or invalid values on the wire
    ({"model": 40}, "model", "40"),
    ({"size": 1024}, "size", "1024"),
    ({"images": 123}, "images", "123"),
    ({"min_ratio": "1"}, "min_ratio", "'1'"),
    ({"force_single": "no"}, "force_single", "'no'"),
    ({"use_pre_llm": "no"}, "use_pre_llm", "'no'"),
    ({"return_url": "yes"}, "return_url", "'yes'"),
    ({"images": ["http://"]}, "images[0]", "'http://'"),
    ({"watermark": "yes"}, "watermark", "'yes'"),
    ({"aigc_meta": "meta"}, "aigc_meta", "'meta'"),
    # no coercion: 1 is not a bool, True is not a number, NaN and infinity are not numbers
    ({"force_single": 1}, "force_single", "1"),
    ({"seed": True}, "seed", "True"),
    ({"width": 1024.0, "height": 1024}, "width", "1024.0"),
    ({"scale": math.nan}, "scale", "nan"),
    ({"sample_strength": math.inf}, "sample_strength", "inf"),
    ({"max_ratio": -1}, "max_ratio", "-1"),
    ({"seed": -2}, "seed", "-2"),
    ({"size": "0x512"}, "size", "'0x512'"),
    ({"images": ["ftp://host/a.png"]}, "images[0]", "ftp"),
    ({"images": [b"GIF"]}, "images[0]", "not an image"),
    ({"images": [PNG, 5]}, "images[1]", "5"),
    ({"images": {"a": 1}}, "images", "{'a': 1}"),
    ({"response_format": "png"}, "response_format", "'png'"),
    ({"callback_url": "localhost:5000/cb"}, "callback_url", "localhost"),
    ({"watermark": jimeng.Watermark, "size": "1K"}, "watermark", "Watermark"),
    ({"extra_body": {"x": math.nan}}, "extra_body", "JSON"),
    ({"extra_body": {1: "x"}}, "extra_body key", "1"),
    ({"poll": "fast"}, "poll", "'fast'"),
    ({"on_submit": 5}, "on_submit", "5"),
]

VIDEO_CASES: list[tuple[dict[str, Any], str, str]] = [
    ({"model": 3}, "model", "3"),
    ({"mode": 7}, "mode", "7"),
    ({"resolution": 720}, "resolution", "720"),
    ({"aspect_ratio": 169}, "aspect_ratio", "169"),
    ({"camera": 5}, "camera", "5"),
    ({"duration": math.nan}, "duration", "nan"),
    ({"duration": "5"}, "duration", "'5'"),
    ({"fps": True}, "fps", "True"),
    ({"frames": 121.0}, "frames", "121.0"),
    ({"image": 123}, "image", "123"),
    ({"tail_image": "https://"}, "tail_image", "'https://'"),
    ({"watermark": 1}, "watermark", "1"),
    ({"on_update": "print"}, "on_update", "'print'"),
    ({"ratio": 169}, "ratio", "169"),
    ({"ratio": "16:9", "aspect_ratio": "1:1"}, "ratio", "('16:9', '1:1')"),
    ({"reference_images": 5}, "reference_images", "5"),
    ({"camera_fixed": "yes"}, "camera_fixed", "'yes'"),
]


@pytest.mark.parametrize(("kwargs", "field", "given"), IMAGE_CASES)
async def test_images_refuse_before_sending(
    client: jimeng.Client, sandbox: Sandbox, kwargs: dict[str, Any], field: str, given: str
) -> None:
    for index, verb in enumerate((client.images.generate, client.images.submit)):
        call_kwargs = dict(kwargs)
        if index == 1:  # submit takes no waiting options
            for name in ("poll", "on_submit"):
                call_kwargs.pop(name, None)
            if not call_kwargs:
                continue
        with pytest.raises(jimeng.ValidationError) as caught:
            await verb("a cat", **call_kwargs)
        assert caught.value.field == field
        assert given in str(caught.value)
    assert sum(sandbox.server.requests.values()) == 0


@pytest.mark.parametrize(("kwargs", "field", "given"), VIDEO_CASES)
async def test_videos_refuse_before_sending(
    client: jimeng.Client, sandbox: Sandbox, kwargs: dict[str, Any], field: str, given: str
) -> None:
    with pytest.raises(jimeng.ValidationError) as caught:
        await client.videos.generate("a dog", **kwargs)
    assert caught.value.field == field
    assert given in str(caught.value)
    assert sum(sandbox.server.requests.values()) == 0


def test_the_message_names_field_value_and_what_is_allowed() -> None:
    with pytest.raises(jimeng.ValidationError) as caught:
        ImageRequest(prompt="p", sample_strength=1.5)
    error = caught.value
    assert str(error) == "sample_strength: must be a number in [0, 1], got 1.5"
    assert (error.field, error.value) == ("sample_strength", "1.5")
    with pytest.raises(jimeng.ValidationError) as caught:
        ImageRequest(prompt="p", watermark="yes")  # type: ignore[arg-type]
    assert str(caught.value) == "watermark: must be a Watermark or True/False, got 'yes'"


async def test_scale_is_refused_with_the_range_of_the_model(client: jimeng.Client) -> None:
    # The range is the model's, so the request checks the type only and the model the rest.
    with pytest.raises(jimeng.ValidationError) as caught:
        ImageRequest(prompt="p", scale="0.5")  # type: ignore[arg-type]
    assert str(caught.value) == "scale: must be a number (an int or a float), got '0.5'"
    for value in (math.nan, math.inf, -1):
        with pytest.raises(jimeng.ValidationError) as caught:
            await client.images.submit("a cat", scale=value)
        assert str(caught.value) == f"scale: must be in [0, 1], got {value!r} (allowed: [0, 1])"
    with pytest.raises(jimeng.ValidationError) as caught:
        await client.images.submit("a cat", model="jimeng-4.6", scale=math.nan)
    assert "an integer scale from 1 to 100" in str(caught.value)


def test_a_long_value_is_cut() -> None:
    with pytest.raises(jimeng.ValidationError) as caught:
        ImageRequest(prompt="p", model=["x" * 500])  # type: ignore[arg-type]
    assert caught.value.value is not None and len(caught.value.value) == 80
    assert caught.value.value.endswith("…")


def test_a_secret_across_the_cut_leaves_none_of_itself() -> None:
    secret = "canary-quoted-secret-8d30e5"
    jimeng.Gateway(api_key=secret)
    with pytest.raises(jimeng.ValidationError) as caught:
        ImageRequest(prompt="p", model=["x" * 68 + secret])  # type: ignore[arg-type]
    # The repr is scrubbed first, then cut; the marker is kept whole.
    assert caught.value.value == "['" + "x" * 68 + "<redacted>…"
    assert str(caught.value) == f"model: must be a string, got {caught.value.value}"


def test_watermark_and_meta_fields() -> None:
    assert ImageRequest(prompt="p", watermark=True).watermark == jimeng.Watermark()
    assert ImageRequest(prompt="p", watermark=False).watermark is None
    for kwargs, field in [
        ({"position": "top"}, "watermark.position"),
        ({"position": 7}, "watermark.position"),
        ({"position": True}, "watermark.position"),
        ({"language": True}, "watermark.language"),
        ({"language": 2}, "watermark.language"),
        ({"opacity": "0.5"}, "watermark.opacity"),
        ({"opacity": math.nan}, "watermark.opacity"),
        ({"text": 5}, "watermark.text"),
    ]:
        with pytest.raises(jimeng.ValidationError) as caught:
            jimeng.Watermark(**kwargs)
        assert caught.value.field == field
    assert jimeng.Watermark(position=2).position is jimeng.WatermarkPosition.TOP_LEFT
    with pytest.raises(jimeng.ValidationError, match="producer_id"):
        jimeng.AigcMeta(producer_id=5)  # type: ignore[arg-type]


async def test_local_files_are_checked_before_submit(
    client: jimeng.Client, sandbox: Sandbox, tmp_path: Path
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    cases = [
        (tmp_path / "missing.png", "no such file"),
        (tmp_path, "not a file"),
        (text, "not an image"),
        (empty, "empty"),
    ]
    for path, needle in cases:
        with pytest.raises(jimeng.ValidationError, match=needle) as caught:
            await client.images.submit("a cat", images=[PNG, path])
        assert caught.value.field == "images[1]"
        with pytest.raises(jimeng.ValidationError, match=needle):
            await client.videos.submit("a cat", image=str(path))
    assert sum(sandbox.server.requests.values()) == 0


async def test_volcengine_poll_options_are_built_before_the_submit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Everything the polls need exists before the billed submit leaves (issue 9: a watermark
    the poll could not encode used to fail after the task was accepted)."""
    backend = jimeng.Volcengine(access_key="AKLTtest0001", secret_key="secret-test-0001")

    def refuse(**_: Any) -> str:
        raise jimeng.ValidationError("watermark", "cannot be encoded")

    monkeypatch.setattr(_wire, "req_json", refuse)
    for flow in (
        backend.submit_image(ImageRequest(prompt="p", watermark=True)),
        backend.submit_video(VideoRequest(prompt="p", watermark=True)),
    ):
        with pytest.raises(jimeng.ValidationError, match="cannot be encoded"):
            next(flow)  # raised before the first call (the submit) is yielded
    with pytest.raises(jimeng.ValidationError):
        backend.validate_image(ImageRequest(prompt="p"))


async def test_watermark_yes_is_refused_with_nothing_billed(sleeps: Any) -> None:
    sandbox = Sandbox("volcengine")
    async with jimeng.Client(sandbox, sleep=sleeps) as client:
        with pytest.raises(jimeng.ValidationError, match="watermark"):
            await client.images.generate("a cat", watermark="yes")  # type: ignore[arg-type]
        result = await client.images.generate("a cat", watermark=True, size="1K")
    assert len(result.images) >= 1
    assert sandbox.server.requests["submit"] == 1


# -- the rest of the public surface ---------------------------------------------------------------

SANDBOX = Sandbox()

CONSTRUCTOR_CASES: list[tuple[Callable[[], Any], str, str]] = [
    (lambda: jimeng.Client("sandbox"), "backend", "'sandbox'"),
    (lambda: jimeng.Client(SANDBOX, timeout=0), "timeout", "0"),
    (lambda: jimeng.Client(SANDBOX, timeout=math.inf), "timeout", "inf"),
    (lambda: jimeng.Client(SANDBOX, video_timeout="300"), "video_timeout", "'300'"),
    (lambda: jimeng.Client(SANDBOX, retry=3), "retry", "3"),
    (lambda: jimeng.Client(SANDBOX, image_poll={"interval": 1}), "image_poll", "interval"),
    (lambda: jimeng.Client(SANDBOX, video_poll=5), "video_poll", "5"),
    (lambda: jimeng.Client(SANDBOX, max_download_bytes=-1), "max_download_bytes", "-1"),
    (lambda: jimeng.Client(SANDBOX, max_download_bytes=None), "max_download_bytes", "None"),
    (lambda: jimeng.Client(SANDBOX, trust_env="no"), "trust_env", "'no'"),
    (lambda: jimeng.Client(SANDBOX, sleep=1.0), "sleep", "1.0"),
    (lambda: jimeng.Client(SANDBOX, clock="now"), "clock", "'now'"),
    (lambda: jimeng.Client(SANDBOX, rng=42), "rng", "42"),
    (lambda: jimeng.Client(SANDBOX, session="s"), "session", "'s'"),
    (lambda: jimeng.Client(SANDBOX).with_options(timeout=-1), "timeout", "-1"),
    (lambda: jimeng.Client(SANDBOX).with_options(retry="x"), "retry", "'x'"),
    (lambda: jimeng.Client(SANDBOX).with_options(image_poll=2), "image_poll", "2"),
    (lambda: jimeng.PollPolicy(interval=-1), "interval", "-1"),
    (lambda: jimeng.PollPolicy(interval=math.nan), "interval", "nan"),
    (lambda: jimeng.PollPolicy(max_attempts=2.5), "max_attempts", "2.5"),
    (lambda: jimeng.PollPolicy(max_attempts=True), "max_attempts", "True"),
    (lambda: jimeng.PollPolicy(backoff=0.5), "backoff", "0.5"),
    (lambda: jimeng.PollPolicy(max_interval="10"), "max_interval", "'10'"),
    (lambda: jimeng.PollPolicy(deadline=0), "deadline", "0"),
    (lambda: jimeng.RetryPolicy(max_attempts=0), "max_attempts", "0"),
    (lambda: jimeng.RetryPolicy(initial_delay=-0.1), "initial_delay", "-0.1"),
    (lambda: jimeng.RetryPolicy(max_delay=math.inf), "max_delay", "inf"),
    (lambda: jimeng.RetryPolicy(jitter=1.5), "jitter", "1.5"),
    (lambda: jimeng.RetryPolicy(max_retry_after="60"), "max_retry_after", "'60'"),
    (lambda: jimeng.RetryPolicy(retry_ambiguous_submit="yes"), "retry_ambiguous_submit", "yes"),
    (lambda: jimeng.Volcengine(access_key="AK", secret_key=5), "secret_key", "a int"),
    (lambda: jimeng.Volcengine(api_key=""), "api_key", "an empty string"),
    (lambda: jimeng.Volcengine(api_key="k" * 20, endpoint=8080), "endpoint", "8080"),
    (lambda: jimeng.Volcengine(api_key="k" * 20, req_keys=["a"]), "req_keys", "['a']"),
    (lambda: jimeng.Volcengine(api_key="k" * 20, allow_http="yes"), "allow_http", "'yes'"),
    (lambda: jimeng.Volcengine(api_key="k" * 20, profile="cv"), "profile", "'cv'"),
    (lambda: jimeng.Dreamina(12345), "tokens", "a int"),
    (lambda: jimeng.Dreamina(["us-abcdef", None]), "tokens[1]", "a NoneType"),
    (lambda: jimeng.Dreamina("abcdefgh", base_urls={"cn": 1}), "base_urls['cn']", "1"),
    (lambda: jimeng.Dreamina("abcdefgh", versions="5.8"), "versions", "'5.8'"),
    (lambda: jimeng.Dreamina("abcdefgh", rng=1), "rng", "1"),
    (lambda: jimeng.Dreamina("abcdefgh", web_id=7), "web_id", "7"),
    (lambda: jimeng.Gateway("http://127.0.0.1:1", token=7), "token", "a int"),
    (lambda: jimeng.Gateway(url=5100, token="abcdefgh"), "url", "5100"),
    (lambda: jimeng.Gateway(token="abcdefgh", async_tasks="no"), "async_tasks", "'no'"),
    (lambda: jimeng.Gateway(token="abcdefgh", video_timeout=0), "video_timeout", "0"),
    (lambda: jimeng.Gateway(token="abcdefgh", image_timeout=math.nan), "image_timeout", "nan"),
    (lambda: jimeng.Gateway(token="abcdefgh", flavor=1), "flavor", "1"),
    (lambda: jimeng.Ark(api_key=12345678), "api_key", "a int"),
    (lambda: jimeng.Ark(api_key="k" * 20, region=1), "region", "1"),
    (lambda: jimeng.Ark(api_key="k" * 20, models={"m": 1}), "models['m']", "1"),
    (lambda: jimeng.Ark(api_key="k" * 20, image_timeout=-1), "image_timeout", "-1"),
    (lambda: jimeng.Ark(api_key="k" * 20, allow_http=1), "allow_http", "1"),
    (lambda: jimeng.WebhookReceiver().callback_url("hooks.test/cb"), "url", "hooks.test"),
    (lambda: jimeng.Sandbox(protocol=1), "protocol", "1"),  # type: ignore[arg-type]
    (lambda: jimeng.Sandbox(time_factor=-1), "time_factor", "-1"),
    (lambda: jimeng.Sandbox(stages={"queue_polls": 1}), "stages", "queue_polls"),
    (lambda: jimeng.Sandbox(options=[1]), "options", "[1]"),
    (lambda: jimeng.WebhookReceiver(secret=""), "secret", "an empty string"),
    (lambda: jimeng.WebhookReceiver(secret=123456789), "secret", "a int"),
    (lambda: jimeng.WebhookReceiver(secret_param=""), "secret_param", "''"),
    (lambda: jimeng.WebhookReceiver(client="c"), "client", "'c'"),
    (lambda: jimeng.WebhookReceiver(seen="memory"), "seen", "'memory'"),
]


@pytest.mark.parametrize(("build", "field", "given"), CONSTRUCTOR_CASES)
def test_constructors_and_policies_check_their_arguments(
    build: Callable[[], Any], field: str, given: str
) -> None:
    with pytest.raises(jimeng.ValidationError) as caught:
        build()
    assert caught.value.field == field
    assert given in str(caught.value)


def test_a_secret_of_the_wrong_type_is_never_quoted() -> None:
    with pytest.raises(jimeng.ValidationError) as caught:
        jimeng.Volcengine(access_key="AKLTvisible", secret_key=b"s3cr3t-bytes-value")  # type: ignore[arg-type]
    assert "s3cr3t" not in repr(vars(caught.value)) + str(caught.value)
    assert "a bytes" in str(caught.value)


async def test_tasks_check_their_arguments(client: jimeng.Client, sandbox: Sandbox) -> None:
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: client.tasks.resume(123), "ref"),
        (lambda: client.tasks.resume(""), "ref"),
        (lambda: client.tasks.resume("jimeng_t2i_v40:1", model=4), "model"),
        (lambda: client.tasks.get(None), "ref"),
        (lambda: client.tasks.wait("jimeng_t2i_v40:1", poll=1.5), "poll"),
        (lambda: client.tasks.cancel(42), "task"),
        (lambda: client.tasks.list(limit=0), "limit"),
        (lambda: client.tasks.list(limit=True), "limit"),
        (lambda: client.tasks.list(kind=1), "kind"),
        (lambda: client.tasks.list(status=["queued"]), "status"),
    ]
    for call, field in cases:
        with pytest.raises(jimeng.ValidationError) as caught:
            outcome = call()
            if hasattr(outcome, "__await__"):
                await outcome
        assert caught.value.field == field, field
    handle = client.tasks.resume("jimeng_t2i_v40:1")
    with pytest.raises(jimeng.ValidationError, match="poll"):
        await handle.result(poll="fast")  # type: ignore[arg-type]
    assert sum(sandbox.server.requests.values()) == 0


def test_valid_values_still_pass() -> None:
    jimeng.Client(SANDBOX, timeout=30, video_timeout=60.5, rng=random.Random(1))
    jimeng.PollPolicy(interval=0, max_attempts=1, backoff=1.5, deadline=0.5)
    jimeng.RetryPolicy(max_attempts=1, jitter=0, retry_ambiguous_submit=True)
    request = ImageRequest(
        prompt="p",
        images=("https://cdn.test/a.png", PNG, Path("x.png")),
        seed=-1,
        scale=0.5,
        watermark=jimeng.Watermark(position=jimeng.WatermarkPosition.TOP_RIGHT, opacity=1),
        callback_url="https://hooks.test/cb?token=x",
    )
    assert request.images is not None and len(request.images) == 3
    assert ImageRequest(prompt="p", images=[]).images is None
    assert VideoRequest(prompt="p", duration=5, fps=24, frames=121).duration == 5


async def test_saving_checks_the_path(client: jimeng.Client) -> None:
    result = await client.images.generate("a cat")
    for path in (123, None, "", b"pic/"):
        with pytest.raises(jimeng.ValidationError) as caught:
            await result.save(path)  # type: ignore[arg-type]
        assert caught.value.field == "path"


def test_a_listed_allowed_keeps_its_items() -> None:
    error = jimeng.ValidationError("model", "unknown", allowed=["a", 1])
    assert (error.allowed, error.choices) == ("a, 1", ("a", "1"))
    described = jimeng.ValidationError("size", "bad", allowed="1K, 2K or WxH")
    assert (described.allowed, described.choices) == ("1K, 2K or WxH", None)
