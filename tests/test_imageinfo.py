"""Input image checks: format by magic bytes, bytes, base64 size, pixels, ratio."""

from __future__ import annotations

import base64

import pytest

from jimeng._imageinfo import (
    ImageLimits,
    base64_length,
    check_image,
    encode_base64,
    sniff_image,
)
from jimeng.errors import ValidationError
from tests._images import gif, jpeg, png

LIMITS = ImageLimits(
    formats=("jpeg", "png"),
    max_bytes=10_000,
    max_base64_bytes=20_000,
    max_side=4096,
    min_short_side=320,
    max_ratio=3.0,
)


def test_sandbox_reexports_the_engine_sniffer() -> None:
    from jimeng.sandbox import _media

    assert _media.sniff_image is sniff_image


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (png(640, 360), ("png", 640, 360)),
        (jpeg(1920, 1080), ("jpeg", 1920, 1080)),
        (gif(300, 200), ("gif", 300, 200)),
    ],
)
def test_sniff(data: bytes, expected: tuple[str, int, int]) -> None:
    assert sniff_image(data) == expected


def test_accepts_within_limits() -> None:
    info = check_image(jpeg(960, 320), LIMITS, field="image")
    assert (info.format, info.width, info.height) == ("jpeg", 960, 320)
    assert info.long_short_ratio == 3.0


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"not an image at all", "not a recognisable image"),
        (gif(640, 360), "GIF image"),
        (jpeg(640, 360, pad=20_000), "the limit is"),
        (jpeg(5000, 4000), "at most 4096"),
        (jpeg(640, 300), "at least 320"),
        (jpeg(1000, 320), "at most 3x"),
    ],
)
def test_refuses_outside_limits(data: bytes, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_image(data, LIMITS, field="images[0]")
    assert info.value.field == "images[0]"
    assert words in str(info.value)
    assert info.value.allowed


def test_base64_limit_counts_the_encoded_text() -> None:
    limits = ImageLimits(max_base64_bytes=base64_length(3000))
    check_image(jpeg(400, 400, pad=3000 - len(jpeg(400, 400))), limits, field="image")
    with pytest.raises(ValidationError, match="as base64"):
        check_image(jpeg(400, 400, pad=3001 - len(jpeg(400, 400))), limits, field="image")


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 6, 100, 101])
def test_base64_length_matches_the_encoder(size: int) -> None:
    data = bytes(range(256))[:size] * 1
    assert base64_length(size) == len(encode_base64(data)) == len(base64.b64encode(data))


def test_encode_is_raw_base64_without_prefix() -> None:
    text = encode_base64(png(16, 16))
    assert not text.startswith("data:")
    assert "\n" not in text
    assert base64.b64decode(text, validate=True) == png(16, 16)
