"""The edge, for values that slip past a plain type check: a float or a bool equal to an integer
choice, ``None`` for required text, and text UTF-8 cannot carry (a lone surrogate). Each is a
ValidationError naming the field, with nothing sent."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jimeng
from jimeng.models import ImageRequest
from jimeng.models._checks import check_str, one_of
from jimeng.sandbox import PROTOCOLS, Sandbox
from tests.conftest import Sleeps

IMAGE = "https://example.com/portrait.png"
AUDIO = "https://example.com/speech.mp3"
VIDEO = "https://example.com/talk.mp4"
#: A lone surrogate: a valid ``str``, but no UTF-8 encoder (and so no wire) takes it.
LONE = "\ud800"

Call = Callable[[jimeng.Client], Awaitable[Any]]


def requests(sandbox: Sandbox) -> int:
    return sum(sandbox.server.requests.values())


async def refused(client: jimeng.Client, sandbox: Sandbox, call: Call) -> jimeng.ValidationError:
    with pytest.raises(jimeng.ValidationError) as caught:
        await call(client)
    assert requests(sandbox) == 0
    return caught.value


# -- a float or a bool is not an integer choice ----------------------------------------------------


@pytest.mark.parametrize("resolution", [1080.0, 720.0, True, False, 1080.5, "1080"])
async def test_an_integer_choice_is_never_a_float_or_a_bool(
    client: jimeng.Client, sandbox: Sandbox, resolution: Any
) -> None:
    error = await refused(
        client,
        sandbox,
        lambda c: c.videos.submit_avatar(
            image=IMAGE, audio=AUDIO, resolution=resolution, check=False
        ),
    )
    assert error.field == "resolution"
    assert f"got {resolution!r}" in str(error)
    assert error.allowed == "720, 1080"


@pytest.mark.parametrize("language", [1.0, 0.0, True, False, 2])
def test_the_watermark_language_is_the_integer_0_or_1(language: Any) -> None:
    with pytest.raises(jimeng.ValidationError) as caught:
        jimeng.Watermark(language=language)
    assert caught.value.field == "watermark.language"
    assert f"got {language!r}" in str(caught.value)


def test_the_choices_themselves_still_pass() -> None:
    assert jimeng.Watermark(language=1).language == 1
    assert ImageRequest(prompt="p", response_format="b64_json").response_format == "b64_json"
    check = one_of((0.5, 1.0, "x", True))
    for value in (0.5, 1.0, "x", True):
        check(None, _Named("f"), value)
    for value in (1, False, b"x"):
        with pytest.raises(jimeng.ValidationError):
            check(None, _Named("f"), value)


class _Named:
    def __init__(self, name: str):
        self.name = name


SCALARS = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([720, 1080, 2**1024]),
    st.floats(allow_nan=True),
    st.sampled_from([720.0, 1080.0, 0.0, 1.0]),
    st.booleans(),
    st.text(max_size=3),
    st.fractions(),
)


@settings(max_examples=300, deadline=None)
@given(choices=st.lists(SCALARS, min_size=1, max_size=4), value=SCALARS)
def test_one_of_takes_a_choice_of_its_own_type_only(choices: list[Any], value: Any) -> None:
    check = one_of(tuple(choices), "field")
    same = any(type(value) is type(choice) and value == choice for choice in choices)
    if same:
        check(None, _Named("ignored"), value)
    else:
        with pytest.raises(jimeng.ValidationError) as caught:
            check(None, _Named("ignored"), value)
        assert caught.value.field == "field"


# -- None for required text ------------------------------------------------------------------------

REQUIRED_TEXT: list[tuple[Call, str]] = [
    (lambda c: c.videos.submit_translate(VIDEO, target_language=None), "target_language"),
    (lambda c: c.images.submit_edit(None, image=IMAGE, mask=IMAGE), "prompt"),
    (lambda c: c.images.submit(None), "prompt"),
    (lambda c: c.videos.submit(None), "prompt"),
]


@pytest.mark.parametrize(("call", "field"), REQUIRED_TEXT)
async def test_required_text_refuses_none(
    client: jimeng.Client, sandbox: Sandbox, call: Call, field: str
) -> None:
    error = await refused(client, sandbox, call)
    assert error.field == field
    assert "got None" in str(error)


# -- text that UTF-8 cannot encode -----------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_lone_surrogate_in_a_prompt_is_refused_on_every_protocol(
    protocol: str, sleeps: Sleeps
) -> None:
    sandbox = Sandbox(protocol)  # type: ignore[arg-type]
    async with jimeng.Client(sandbox, sleep=sleeps, rng=random.Random(0)) as client:
        for call in (
            lambda c: c.images.submit(f"{LONE} cat"),
            lambda c: c.videos.submit(f"a dog {LONE}"),
        ):
            error = await refused(client, sandbox, call)
            assert error.field == "prompt"
            assert "UTF-8" in str(error)


TEXT_FIELDS: list[tuple[Call, str]] = [
    (lambda c: c.images.submit("cat", negative_prompt=f"blur{LONE}"), "negative_prompt"),
    (lambda c: c.images.submit("cat", model=LONE), "model"),
    (lambda c: c.images.submit("cat", size=f"1K{LONE}"), "size"),
    (lambda c: c.images.submit("cat", ratio=f"1:1{LONE}"), "ratio"),
    (lambda c: c.images.submit("cat", resolution=LONE), "resolution"),
    (lambda c: c.images.submit("cat", callback_url=f"https://h.test/{LONE}"), "callback_url"),
    (lambda c: c.images.submit("cat", images=[f"https://cdn.test/{LONE}.png"]), "images[0]"),
    (lambda c: c.images.submit("cat", images=[f"/tmp/{LONE}.png"]), "images[0]"),
    (lambda c: c.images.submit("cat", images=["/tmp/a\x00.png"]), "images[0]"),
    (lambda c: c.images.submit("cat", extra_body={"note": LONE}), "extra_body"),
    (lambda c: c.images.submit("cat", extra_body={LONE: 1}), "extra_body"),
    (lambda c: c.videos.submit("dog", model=LONE), "model"),
    (lambda c: c.videos.submit("dog", mode=LONE), "mode"),
    (lambda c: c.videos.submit("dog", aspect_ratio=LONE), "aspect_ratio"),
    (lambda c: c.videos.submit("dog", ratio=LONE), "ratio"),
    (lambda c: c.videos.submit("dog", camera=LONE), "camera"),
    (lambda c: c.videos.submit("dog", camera_strength=LONE), "camera_strength"),
    (lambda c: c.videos.submit("dog", function_mode=LONE), "function_mode"),
    (lambda c: c.videos.submit("dog", ms_token=LONE), "ms_token"),
    (lambda c: c.videos.submit("dog", a_bogus=LONE), "a_bogus"),
    (lambda c: c.videos.submit("dog", image=f"/tmp/{LONE}.png"), "image"),
    (
        lambda c: c.videos.submit("dog", reference_videos=[f"https://v.test/{LONE}.mp4"]),
        "reference_videos[0]",
    ),
    (lambda c: c.videos.submit("dog", reference_videos=[f"/tmp/{LONE}"]), "reference_videos[0]"),
    (lambda c: c.images.submit_edit(LONE, image=IMAGE, mask=IMAGE), "prompt"),
    (lambda c: c.images.submit_upscale(IMAGE, resolution=LONE), "resolution"),
    (lambda c: c.images.submit_outpaint(IMAGE, left=0.5, prompt=LONE), "prompt"),
    (lambda c: c.videos.submit_imitate_motion(image=IMAGE, video=VIDEO, model=LONE), "model"),
    (
        lambda c: c.videos.submit_imitate_motion(image=IMAGE, video=f"https://v.test/{LONE}"),
        "video",
    ),
    (
        lambda c: c.videos.submit_avatar(image=IMAGE, audio=AUDIO, prompt=LONE, check=False),
        "prompt",
    ),
    (
        lambda c: c.videos.submit_avatar(image=IMAGE, audio=f"https://a.test/{LONE}", check=False),
        "audio",
    ),
    (
        lambda c: c.videos.submit_avatar(
            image=IMAGE, audio=AUDIO, masks=[f"https://m.test/{LONE}"], check=False
        ),
        "masks[0]",
    ),
    (lambda c: c.videos.submit_translate(VIDEO, target_language=LONE), "target_language"),
    (
        lambda c: c.videos.submit_translate(VIDEO, target_language="en", source_language=LONE),
        "source_language",
    ),
    (lambda c: c.videos.submit_translate(f"/tmp/{LONE}.mp4", target_language="en"), "video"),
    (lambda c: c.images.submit_upscale(IMAGE, extra_body={"x": LONE}), "extra_body"),
    (lambda c: c.tasks.get(f"jimeng_t2i_v40:{LONE}"), "ref"),
]


@pytest.mark.parametrize(("call", "field"), TEXT_FIELDS)
async def test_text_utf8_cannot_encode_is_refused_naming_the_field(
    client: jimeng.Client, sandbox: Sandbox, call: Call, field: str
) -> None:
    error = await refused(client, sandbox, call)
    assert error.field == field
    assert "encode" in str(error)  # refused for the text itself, not by a backend's table


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: jimeng.Watermark(text=f"AI{LONE}"), "watermark.text"),
        (lambda: jimeng.AigcMeta(producer_id=LONE), "aigc_meta.producer_id"),
        (lambda: jimeng.AigcMeta(producer_id="p", propagate_id=LONE), "aigc_meta.propagate_id"),
        (lambda: jimeng.Gateway(f"http://127.0.0.1:1/{LONE}", token="abcdefgh"), "url"),
    ],
)
def test_models_and_constructors_refuse_such_text(build: Callable[[], Any], field: str) -> None:
    with pytest.raises(jimeng.ValidationError) as caught:
        build()
    assert caught.value.field == field
    assert "UTF-8" in str(caught.value)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: jimeng.Ark(api_key=f"ark-key-{LONE}-0123"), "api_key"),
        (lambda: jimeng.Volcengine(access_key="AKLTok", secret_key=f"s{LONE}cret"), "secret_key"),
        (lambda: jimeng.Volcengine(access_key=f"AK{LONE}", secret_key="secret"), "access_key"),
        (lambda: jimeng.Gateway("http://127.0.0.1:1", token=f"us-{LONE}abcdef"), "token"),
        (lambda: jimeng.Dreamina(["us-abcdefgh", f"{LONE}abcdefgh"]), "tokens[1]"),
    ],
)
def test_a_secret_utf8_cannot_encode_is_refused_unquoted_and_registers_nothing(
    build: Callable[[], Any], field: str
) -> None:
    with pytest.raises(jimeng.ValidationError) as caught:
        build()
    assert caught.value.field == field
    assert LONE not in str(caught.value) and "\\ud800" not in str(caught.value)
    assert "not shown" in str(caught.value)
    # The refused secret never reached the redaction registry, which would fail every later
    # backend (and every log line) trying to encode it.
    jimeng.Ark(api_key="ark-after-the-refusal-0123")


#: Any text at all, lone surrogates included (Hypothesis leaves them out unless asked).
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=12)


@settings(max_examples=300, deadline=None)
@given(value=ANY_TEXT, empty=st.booleans())
def test_text_is_refused_exactly_when_blank_or_not_utf8(value: str, empty: bool) -> None:
    try:
        value.encode("utf-8")
        encodable = True
    except UnicodeEncodeError:
        encodable = False
    if encodable and (empty or value.strip()):
        assert check_str("field", value, empty=empty) == value
        return
    with pytest.raises(jimeng.ValidationError) as caught:
        check_str("field", value, empty=empty)
    assert caught.value.field == "field"


#: Text with a lone surrogate in it.
LONE_TEXT = st.builds("{}{}".format, st.text(max_size=3), st.characters(categories=["Cs"]))
