"""Volcengine image models: request-building tables per model (pure, no HTTP) and the
parameters each model refuses (protocols/volcengine.md §3.1; relays: gateway.md §10)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

import jimeng
from jimeng.backends.volcengine._models import IMAGE_MODELS, image_spec, with_req_keys
from jimeng.errors import ConfigurationError, ValidationError
from jimeng.models import ImageRequest
from tests._images import gif, jpeg, png

URL = "https://example.com/in.jpg"
PNG = png(640, 480)
PNG_B64 = base64.b64encode(PNG).decode()


def body(model: str, relay: bool = False, **kwargs: Any) -> dict[str, Any]:
    request = ImageRequest(prompt="p", model=model, **kwargs)
    spec = image_spec(model)
    spec.validate(request, relay=relay)
    return spec.body(request, relay=relay)


BODIES: list[tuple[str, bool, dict[str, Any], dict[str, Any]]] = [
    # jimeng-4.0 (jimeng_t2i_v40)
    ("jimeng-4.0", False, {}, {}),
    ("jimeng-4.0", False, {"size": "2K"}, {"size": 2048 * 2048}),
    ("jimeng-4.0", False, {"size": "1k"}, {"size": 1024 * 1024}),
    ("jimeng-4.0", False, {"resolution": "4k"}, {"size": 4096 * 4096}),
    ("jimeng-4.0", False, {"size": "2560x1440"}, {"width": 2560, "height": 1440}),
    ("jimeng-4.0", False, {"width": 2304, "height": 1728}, {"width": 2304, "height": 1728}),
    ("jimeng-4.0", False, {"images": [URL, URL]}, {"image_urls": [URL, URL]}),
    ("jimeng-4.0", False, {"images": [PNG]}, {"binary_data_base64": [PNG_B64]}),
    (
        "jimeng-4.0",
        False,
        {"scale": 0.3, "force_single": True},
        {"scale": 0.3, "force_single": True},
    ),
    (
        "jimeng-4.0",
        False,
        {"min_ratio": 0.25, "max_ratio": 4.0},
        {"min_ratio": 0.25, "max_ratio": 4.0},
    ),
    # relays of the official format: model + resolution, for 4.0 only
    ("jimeng-4.0", True, {}, {"model": "jimeng-4.0"}),
    ("jimeng-4.0", True, {"size": "2K"}, {"resolution": "2k", "model": "jimeng-4.0"}),
    ("jimeng-4.0", True, {"resolution": "1K"}, {"resolution": "1k", "model": "jimeng-4.0"}),
    (
        "jimeng-4.0",
        True,
        {"size": "3024x1296"},
        {"width": 3024, "height": 1296, "model": "jimeng-4.0"},
    ),
    # jimeng-4.6 (jimeng_seedream46_cvtob)
    ("jimeng-4.6", False, {}, {}),
    ("jimeng-4.6", False, {"size": "4K", "scale": 80}, {"size": 4096 * 4096, "scale": 80}),
    ("jimeng-4.6", False, {"images": [URL] * 14}, {"image_urls": [URL] * 14}),
    ("jimeng-4.6", True, {"size": "2K"}, {"size": 2048 * 2048}),
    # jimeng-3.1 / jimeng-3.0 (jimeng_t2i_v31 / jimeng_t2i_v30)
    ("jimeng-3.1", False, {}, {}),
    (
        "jimeng-3.1",
        False,
        {"size": "1664x936", "seed": 42},
        {"width": 1664, "height": 936, "seed": 42},
    ),
    ("jimeng-3.1", False, {"use_pre_llm": False, "seed": -1}, {"use_pre_llm": False, "seed": -1}),
    ("jimeng-3.0", False, {"size": "1K"}, {"width": 1024, "height": 1024}),
    ("jimeng-3.0", False, {"width": 512, "height": 2048}, {"width": 512, "height": 2048}),
    # jimeng-i2i-3.0 (jimeng_i2i_v30)
    ("jimeng-i2i-3.0", False, {"images": [URL]}, {"image_urls": [URL]}),
    (
        "jimeng-i2i-3.0",
        False,
        {"images": [PNG], "scale": 0.7, "seed": 7},
        {"binary_data_base64": [PNG_B64], "scale": 0.7, "seed": 7},
    ),
    (
        "jimeng-i2i-3.0",
        False,
        {"images": [URL], "size": "1328x1328"},
        {"image_urls": [URL], "width": 1328, "height": 1328},
    ),
]


@pytest.mark.parametrize(("model", "relay", "kwargs", "fields"), BODIES)
def test_request_body(
    model: str, relay: bool, kwargs: dict[str, Any], fields: dict[str, Any]
) -> None:
    expected = {"req_key": IMAGE_MODELS[model].req_key, "prompt": "p", **fields}
    assert body(model, relay, **kwargs) == expected


@pytest.mark.parametrize(
    ("model", "req_key"),
    [
        ("jimeng-4.0", "jimeng_t2i_v40"),
        ("jimeng-4.6", "jimeng_seedream46_cvtob"),
        ("jimeng-3.1", "jimeng_t2i_v31"),
        ("jimeng-3.0", "jimeng_t2i_v30"),
        ("jimeng-i2i-3.0", "jimeng_i2i_v30"),
    ],
)
def test_public_names_and_req_keys(model: str, req_key: str) -> None:
    assert image_spec(model).req_key == req_key
    assert image_spec(req_key).name == model  # a req_key is accepted as a model too
    assert image_spec(model.removeprefix("jimeng-")).name == model


def test_default_model_is_4_0() -> None:
    assert image_spec(None).name == "jimeng-4.0"


def test_extra_body_is_merged_unchecked() -> None:
    assert body("jimeng-4.0", extra={"callback_url": "https://cb"})["callback_url"] == "https://cb"


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("jimeng-4.0", {"seed": 1}, "seed"),
    ("jimeng-4.0", {"use_pre_llm": True}, "use_pre_llm"),
    ("jimeng-4.0", {"negative_prompt": "x"}, "negative_prompt"),
    ("jimeng-4.0", {"images": [URL] * 11}, "images"),
    ("jimeng-4.0", {"size": "9000x1000"}, "size"),
    ("jimeng-4.0", {"size": "4096x1024"}, "size"),
    ("jimeng-4.0", {"scale": 1.5}, "scale"),
    ("jimeng-4.0", {"min_ratio": 20.0}, "min_ratio"),
    ("jimeng-4.0", {"resolution": "8k"}, "resolution"),
    ("jimeng-4.0", {"resolution": "1k", "size": "2K"}, "size"),
    ("jimeng-4.0", {"images": [gif()]}, "images[0]"),
    ("jimeng-4.0", {"images": [jpeg(5000, 5000)]}, "images[0]"),
    ("jimeng-4.0", {"images": [jpeg(4000, 1000)]}, "images[0]"),
    ("jimeng-4.0", {"images": [jpeg(pad=15 * 1024 * 1024)]}, "images[0]"),
    ("jimeng-4.6", {"scale": 0.5}, "scale"),
    ("jimeng-4.6", {"scale": 101}, "scale"),
    ("jimeng-4.6", {"images": [URL] * 15}, "images"),
    ("jimeng-4.6", {"min_ratio": 0.5}, "min_ratio"),
    ("jimeng-4.6", {"ratio": "5:4"}, "ratio"),
    ("jimeng-3.1", {"images": [URL]}, "images"),
    ("jimeng-3.1", {"scale": 0.5}, "scale"),
    ("jimeng-3.1", {"ratio": "7:3"}, "ratio"),
    ("jimeng-3.1", {"resolution": "3k"}, "resolution"),
    ("jimeng-3.0", {"force_single": True}, "force_single"),
    ("jimeng-3.0", {"seed": -2}, "seed"),
    ("jimeng-i2i-3.0", {}, "images"),
    ("jimeng-i2i-3.0", {"images": [URL, URL]}, "images"),
    ("jimeng-i2i-3.0", {"images": [URL], "use_pre_llm": True}, "use_pre_llm"),
    ("jimeng-i2i-3.0", {"images": [jpeg(pad=4 * 1024 * 1024)]}, "images[0]"),
    ("jimeng-i2i-3.0", {"images": [URL], "response_format": "url"}, "response_format"),
]


@pytest.mark.parametrize(("model", "kwargs", "field"), REFUSED)
def test_refused_parameters(model: str, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        image_spec(model).validate(ImageRequest(prompt="p", model=model, **kwargs))
    assert info.value.field == field


def test_of_several_refused_parameters_the_first_by_name_is_named() -> None:
    """The same field whatever order the call gave them in (here neither is a 4.0 parameter)."""
    request = ImageRequest(prompt="p", seed=3, negative_prompt="blur", callback_url=URL)
    with pytest.raises(ValidationError) as info:
        image_spec("jimeng-4.0").validate(request)
    assert info.value.field == "callback_url"
    assert "is not a parameter of jimeng-4.0 (jimeng_t2i_v40) on Volcengine" in str(info.value)


def test_prompt_limit() -> None:
    image_spec("jimeng-3.0").validate(ImageRequest(prompt="x" * 800))
    with pytest.raises(ValidationError) as info:
        image_spec("jimeng-3.0").validate(ImageRequest(prompt="x" * 801))
    assert info.value.field == "prompt"


def test_unknown_model_lists_the_names() -> None:
    with pytest.raises(ValidationError) as info:
        image_spec("jimeng-9.9")
    assert info.value.field == "model"
    for name in IMAGE_MODELS:
        assert name in str(info.value)


def test_req_key_override_for_the_disputed_4_6_key() -> None:
    table = with_req_keys(IMAGE_MODELS, {"jimeng-4.6": "jimeng_t2i_v46"})
    assert table["jimeng-4.6"].req_key == "jimeng_t2i_v46"
    assert table["jimeng-4.0"].req_key == "jimeng_t2i_v40"
    backend = jimeng.Volcengine("ak", "sk", req_keys={"jimeng-4.6": "jimeng_t2i_v46"})
    assert backend.describe()["req_keys"]["jimeng-4.6"] == "jimeng_t2i_v46"


def test_unknown_override_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"jimeng-5\.0"):
        jimeng.Volcengine("ak", "sk", req_keys={"jimeng-5.0": "x"})


def test_unread_local_file_is_refused() -> None:
    from pathlib import Path

    request = ImageRequest(prompt="p", images=[Path("photo.jpg")])
    with pytest.raises(ValidationError, match="has not been read"):
        image_spec(None).validate(request)


# -- one sizing vocabulary (jimeng.backends._sizing) ------------------------------------------


@pytest.mark.parametrize(
    ("model", "kwargs", "fields", "notes"),
    [
        # seed 001 "Recommended Sizes"; portrait rows are the landscape ones turned.
        ("jimeng-4.0", {"ratio": "16:9", "resolution": "2k"}, {"width": 2560, "height": 1440}, ()),
        ("jimeng-4.0", {"ratio": "21:9", "resolution": "4k"}, {"width": 6198, "height": 2656}, ()),
        ("jimeng-4.0", {"ratio": "3:4", "resolution": "4k"}, {"width": 3520, "height": 4694}, ()),
        ("jimeng-4.0", {"ratio": "2:3"}, {"width": 1664, "height": 2496}, ()),
        # 1K lists only 1:1: other ratios keep the 1K area, rounded up.
        ("jimeng-4.0", {"ratio": "16:9", "resolution": "1k"}, {"width": 1366, "height": 768}, ()),
        ("jimeng-4.0", {"resolution": "2k"}, {"size": 2048 * 2048}, ()),
        (
            "jimeng-4.0",
            {"width": 512, "height": 512},
            {"width": 1024, "height": 1024},
            (
                "width 512x512 scaled to 1024x1024: Volcengine 4.x takes an area from 1024x1024 "
                "to 4096x4096",
            ),
        ),
        ("jimeng-4.6", {"ratio": "4:3", "resolution": "2k"}, {"width": 2304, "height": 1728}, ()),
        (
            "jimeng-3.1",
            {"ratio": "16:9", "resolution": "2k"},
            {"width": 2048, "height": 1152},
            (
                "16:9 at 2k (2560x1440) scaled to 2048x1152: Volcengine 3.x takes sides from 512 "
                "to 2048",
            ),
        ),
        ("jimeng-3.0", {"size": "1K"}, {"width": 1024, "height": 1024}, ()),
    ],
)
def test_ratio_resolution_and_pixels_on_volcengine(
    model: str, kwargs: dict[str, Any], fields: dict[str, int], notes: tuple[str, ...]
) -> None:
    spec = image_spec(model)
    request = ImageRequest(prompt="p", **kwargs)
    spec.validate(request)
    body = spec.body(request)
    assert {key: body[key] for key in fields} == fields
    assert not ({"width", "height", "size"} - set(fields)) & set(body)
    assert spec.notes(request) == notes


def test_relays_get_pixels_for_a_ratio_and_the_preset_name_alone() -> None:
    spec = image_spec("jimeng-4.0")
    ratio = ImageRequest(prompt="p", ratio="16:9", resolution="4k")
    assert {k: spec.body(ratio, relay=True)[k] for k in ("width", "height")} == {
        "width": 5404,
        "height": 3040,
    }
    assert spec.body(ImageRequest(prompt="p", resolution="4K"), relay=True)["resolution"] == "4k"
