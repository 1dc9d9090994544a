"""The edge, for values that slip past a plain type check: a float or a bool equal to an integer
choice, and ``None`` for required text. Each is a ValidationError naming the field, with nothing
sent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jimeng
from jimeng.models import ImageRequest
from jimeng.models._checks import one_of
from jimeng.sandbox import Sandbox

IMAGE = "https://example.com/portrait.png"
AUDIO = "https://example.com/speech.mp3"
VIDEO = "https://example.com/talk.mp4"

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
