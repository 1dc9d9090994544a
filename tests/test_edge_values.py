"""The edge, for values that slip past a plain type check: a float or a bool equal to an integer
choice, ``None`` for required text, text UTF-8 cannot carry (a lone surrogate), and numbers no
float can hold. Each is a ValidationError naming the field, with nothing sent."""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Awaitable, Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jimeng
from jimeng.models import ImageRequest, TaskKind
from jimeng.models._checks import check_int, check_number, check_str, one_of
from jimeng.sandbox import PROTOCOLS, Sandbox
from tests.conftest import Sleeps

IMAGE = "https://example.com/portrait.png"
AUDIO = "https://example.com/speech.mp3"
VIDEO = "https://example.com/talk.mp4"
#: A lone surrogate: a valid ``str``, but no UTF-8 encoder (and so no wire) takes it.
LONE = "\ud800"
HUGE = 10**400

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


# -- numbers no float can hold, and reals no JSON encoder writes -----------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_huge_duration_is_refused_on_every_protocol(protocol: str, sleeps: Sleeps) -> None:
    sandbox = Sandbox(protocol)  # type: ignore[arg-type]
    async with jimeng.Client(sandbox, sleep=sleeps, rng=random.Random(0)) as client:
        for duration in (HUGE, -HUGE, Fraction(HUGE)):
            error = await refused(
                client, sandbox, lambda c, d=duration: c.videos.submit("dog", duration=d)
            )
            assert error.field == "duration"


RANGE = "within a float's range"
FINITE = "must be a finite number"
INT_OR_FLOAT = "an int or a float"
#: Seeds are at most 2**63 - 1 on every verb, the family's too.
SEED = "in [-1, 9223372036854775807]"

NUMBER_FIELDS: list[tuple[Call, str, str]] = [
    (lambda c: c.images.submit("cat", width=HUGE, height=1024), "width", RANGE),
    (lambda c: c.images.submit("cat", width=1024, height=HUGE), "height", RANGE),
    (lambda c: c.images.submit("cat", width=10**309, height=10**309), "width", RANGE),
    (lambda c: c.images.submit("cat", size=f"{HUGE}x1024"), "size", "WxH"),
    (lambda c: c.images.submit("cat", size="1" * 5000 + "x1024"), "size", "WxH"),
    (lambda c: c.images.submit("cat", max_images=HUGE), "max_images", RANGE),
    (lambda c: c.images.submit("cat", scale=HUGE), "scale", FINITE),
    (lambda c: c.images.submit("cat", min_ratio=HUGE), "min_ratio", FINITE),
    (lambda c: c.images.submit("cat", max_ratio=Fraction(HUGE)), "max_ratio", INT_OR_FLOAT),
    (lambda c: c.images.submit("cat", scale=Fraction(1, 2)), "scale", INT_OR_FLOAT),
    (
        lambda c: c.images.submit("cat", sample_strength=Fraction(1, 2)),
        "sample_strength",
        INT_OR_FLOAT,
    ),
    (lambda c: c.videos.submit("dog", fps=HUGE), "fps", RANGE),
    (lambda c: c.videos.submit("dog", frames=HUGE), "frames", RANGE),
    (lambda c: c.videos.submit("dog", duration=Fraction(5)), "duration", INT_OR_FLOAT),
    (lambda c: c.images.submit_edit("x", image=IMAGE, mask=IMAGE, seed=2**64), "seed", SEED),
    (lambda c: c.images.submit_outpaint(IMAGE, left=HUGE), "left", FINITE),
    (lambda c: c.images.submit_outpaint(IMAGE, bottom=Fraction(1, 2)), "bottom", INT_OR_FLOAT),
    (lambda c: c.images.submit_outpaint(IMAGE, left=0.5, seed=2**64), "seed", SEED),
    (
        lambda c: c.videos.submit_avatar(image=IMAGE, audio=AUDIO, seed=2**64, check=False),
        "seed",
        SEED,
    ),
]


@pytest.mark.parametrize(("call", "field", "reason"), NUMBER_FIELDS)
async def test_numbers_a_float_cannot_hold_are_refused_naming_the_field(
    client: jimeng.Client, sandbox: Sandbox, call: Call, field: str, reason: str
) -> None:
    error = await refused(client, sandbox, call)
    assert error.field == field
    assert reason in str(error)  # refused at the edge for what the number is


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: jimeng.Watermark(opacity=Fraction(1, 2)), "watermark.opacity"),
        (lambda: jimeng.PollPolicy(interval=HUGE), "interval"),
        (lambda: jimeng.PollPolicy(max_attempts=HUGE), "max_attempts"),
        (lambda: jimeng.RetryPolicy(max_delay=HUGE), "max_delay"),
        (lambda: jimeng.Client(Sandbox(), timeout=HUGE), "timeout"),
        (lambda: jimeng.Sandbox(time_factor=HUGE), "time_factor"),
    ],
)
def test_policies_and_constructors_refuse_them_too(build: Callable[[], Any], field: str) -> None:
    with pytest.raises(jimeng.ValidationError) as caught:
        build()
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("name", "value"), [("JIMENG_API_TIMEOUT", "nan"), ("JIMENG_VIDEO_API_TIMEOUT", "inf")]
)
def test_environment_timeouts_must_be_finite(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(jimeng.ConfigurationError) as caught:
        jimeng.Client(Sandbox())
    assert str(caught.value) == f"{name} must be a finite number of seconds, got {value!r}"


@pytest.mark.parametrize(
    ("name", "value", "kind"),
    [
        ("JIMENG_POLL_INTERVAL", "nan", TaskKind.IMAGE),
        ("JIMENG_MAX_POLL_ATTEMPTS", "inf", TaskKind.IMAGE),
        ("JIMENG_VIDEO_MAX_POLL_ATTEMPTS", "1e400", TaskKind.VIDEO),
    ],
)
def test_environment_poll_numbers_must_be_finite(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, kind: TaskKind
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(jimeng.ConfigurationError) as caught:
        jimeng.PollPolicy.for_kind(kind)
    assert str(caught.value) == f"{name} must be a positive number, got {value!r}"


def test_the_largest_values_that_fit_still_pass(tmp_path: Path) -> None:
    request = ImageRequest(prompt="p", scale=1e308, min_ratio=10**300, seed=2**63 - 1)
    assert request.scale == 1e308 and request.min_ratio == 10**300
    assert ImageRequest(prompt="p", size=f"{10**300}x1").size_pixels() == (10**300, 1)
    assert ImageRequest(prompt="p", negative_prompt="").negative_prompt == ""
    # Text outside ASCII that UTF-8 does encode, and a path with an undecodable byte
    # (surrogateescape), are fine.
    assert ImageRequest(prompt="一只猫 🐱 \u00e9").prompt == "一只猫 🐱 \u00e9"
    name = str(tmp_path / "caf\udce9.png")
    assert ImageRequest(prompt="p", images=[name]).images is not None


#: Integers around the largest a float holds, either side of it, and of either sign.
HUGE_INTS = st.integers(min_value=2**1023, max_value=2**1100).flatmap(
    lambda n: st.sampled_from([n, -n])
)
NUMBERS = st.one_of(
    st.integers(),
    HUGE_INTS,
    st.floats(allow_nan=True, allow_infinity=True),
    st.fractions(),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(value=NUMBERS)
def test_numbers_pass_exactly_when_a_finite_float_holds_them(value: Any) -> None:
    plain = isinstance(value, int | float) and not isinstance(value, bool)
    # int and float compare exactly: no conversion, so no overflow in the oracle either.
    fits = plain and abs(value) <= sys.float_info.max
    if fits:
        assert check_number("field", value) == value
        float(value)  # what every backend does with it next
    else:
        with pytest.raises(jimeng.ValidationError) as caught:
            check_number("field", value)
        assert caught.value.field == "field"
    if fits and isinstance(value, int):
        assert check_int("field", value) == value
    else:
        with pytest.raises(jimeng.ValidationError):
            check_int("field", value)


# -- Watermark and AigcMeta over their whole parameter space ---------------------------------------

WATERMARK_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "position": (
        st.sampled_from([*jimeng.WatermarkPosition, 0, 1, 2, 3]),
        st.one_of(st.sampled_from([0.0, 1.0, True, False, 4, -1, "0"]), HUGE_INTS),
    ),
    "language": (
        st.sampled_from([0, 1]),
        st.one_of(st.sampled_from([0.0, 1.0, True, False, 2, "1"]), st.floats(), HUGE_INTS),
    ),
    "opacity": (
        st.floats(0, 1) | st.sampled_from([0, 1]),
        st.one_of(
            st.floats(min_value=1.0001),
            st.sampled_from([math.nan, -0.5, True, "0.5"]),
            st.fractions(0, 1),
            HUGE_INTS,
        ),
    ),
    "text": (
        st.none() | st.text(min_size=1).filter(str.strip),
        st.one_of(st.integers(), LONE_TEXT),
    ),
}
AIGC_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    name: (st.text(min_size=1).filter(str.strip), st.one_of(st.integers(), st.just(""), LONE_TEXT))
    for name in ("producer_id", "content_producer", "content_propagator", "propagate_id")
}


@st.composite
def constructor_arguments(
    draw: st.DrawFn, fields: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]]
) -> tuple[dict[str, Any], set[str]]:
    kwargs: dict[str, Any] = {}
    bad: set[str] = set()
    for name, (valid, invalid) in fields.items():
        choice = draw(st.sampled_from(["omit", "valid", "valid", "invalid"]))
        if choice == "valid":
            kwargs[name] = draw(valid)
        elif choice == "invalid":
            kwargs[name] = draw(invalid)
            bad.add(name)
    return kwargs, bad


@settings(max_examples=200, deadline=None)
@given(drawn=constructor_arguments(WATERMARK_FIELDS))
def test_watermark_fields_over_their_space(drawn: tuple[dict[str, Any], set[str]]) -> None:
    kwargs, bad = drawn
    if not bad:
        jimeng.Watermark(**kwargs)
        return
    with pytest.raises(jimeng.ValidationError) as caught:
        jimeng.Watermark(**kwargs)
    assert caught.value.field.removeprefix("watermark.") in bad


@settings(max_examples=200, deadline=None)
@given(drawn=constructor_arguments(AIGC_FIELDS))
def test_aigc_meta_fields_over_their_space(drawn: tuple[dict[str, Any], set[str]]) -> None:
    kwargs, bad = drawn
    if "producer_id" not in kwargs:
        bad.add("producer_id")  # required
    if not bad:
        jimeng.AigcMeta(**kwargs)
        return
    with pytest.raises((jimeng.ValidationError, TypeError)) as caught:
        jimeng.AigcMeta(**kwargs)
    if isinstance(caught.value, jimeng.ValidationError):
        assert caught.value.field.removeprefix("aigc_meta.") in bad
    else:
        assert "producer_id" not in kwargs  # attrs: a required argument left out
