"""The same calls on every backend the sandbox emulates: sizing is one vocabulary everywhere.

Each backend translates ``size`` / ``width`` + ``height`` / ``ratio`` + ``resolution`` to what its
protocol takes; the sandbox renders what arrived on the wire, so the PNG's pixels show what the
backend really asked for.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

import jimeng
from jimeng.sandbox import Sandbox, Stages
from jimeng.sandbox._media import mp4_info, png_size

IMAGE_PROTOCOLS = (
    "volcengine",
    "volcengine-relay",
    "ark",
    "dreamina",
    "gateway",
    "gateway-sync",
    "gateway-openai",
)
VIDEO_PROTOCOLS = ("volcengine", "ark", "dreamina", "gateway", "gateway-sync")


async def _no_sleep(seconds: float) -> None:
    return None


@pytest.fixture(params=IMAGE_PROTOCOLS)
async def any_client(request: pytest.FixtureRequest) -> AsyncIterator[jimeng.Client]:
    sandbox = Sandbox(request.param, stages=Stages(queue_polls=1, generate_polls=1))
    async with jimeng.Client(sandbox, sleep=_no_sleep, rng=random.Random(0)) as client:
        yield client


def _protocol(client: jimeng.Client) -> str:
    backend = client.backend
    assert isinstance(backend, Sandbox)
    return backend.protocol


#: (call, expected pixels per protocol family). Volcengine makes exact sizes; the web protocol
#: and the gateway make their table's sizes; the relay renders what it is asked.
CALLS: list[tuple[dict[str, Any], dict[str, tuple[int, int]]]] = [
    (
        {"ratio": "16:9", "resolution": "2k"},
        {
            "volcengine": (2560, 1440),
            "web": (2560, 1440),
            "relay": (2560, 1440),
            "ark": (2560, 1440),
        },
    ),
    (
        {"width": 1024, "height": 768},
        # Volcengine scales below-minimum areas up; the gateway's 1k 4:3 row is portrait, so
        # it goes to 2k; the web backend sends 1k 4:3 landscape (dreamina-web.md §20).
        {
            "volcengine": (1183, 887),
            "web": (1024, 768),
            "gateway": (2304, 1728),
            "relay": (1024, 768),
            "ark": (1109, 832),  # Seedream 4.0 takes at least 1280x720 pixels
        },
    ),
    (
        {"size": "1920x1080"},
        {
            "volcengine": (1920, 1080),
            "web": (2560, 1440),
            "relay": (1920, 1080),
            "ark": (1920, 1080),
        },
    ),
    (
        {"size": "1K"},
        {"web": (1024, 1024), "relay": (1024, 1024), "ark": (1024, 1024)},
    ),
    (
        {"ratio": "3:4"},
        {
            "volcengine": (1728, 2304),
            "web": (1728, 2304),
            "relay": (1728, 2304),
            "ark": (1728, 2304),
        },
    ),
]


def _family(protocol: str) -> list[str]:
    if protocol.startswith("volcengine"):
        return ["volcengine"]
    if protocol == "gateway-openai":
        return ["relay"]
    if protocol == "ark":
        return ["ark"]
    if protocol.startswith("gateway"):
        return ["gateway", "web"]
    return ["web"]


@pytest.mark.parametrize(("call", "expected"), CALLS)
async def test_one_sizing_call_works_on_every_backend(
    any_client: jimeng.Client, call: dict[str, Any], expected: dict[str, tuple[int, int]]
) -> None:
    protocol = _protocol(any_client)
    result = await any_client.images.generate("a lighthouse at dusk", **call)
    assert result.images
    width, height = png_size(await result.images[0].read())
    family = next((name for name in _family(protocol) if name in expected), None)
    if family is not None:
        assert (width, height) == expected[family], protocol
    asked = _asked_pixels(call)
    if asked is not None:
        # A landscape ask never comes back portrait, whatever the backend…
        assert (width > height) == (asked[0] > asked[1])
        # …and an approximation says so on the result; an exact size carries no note.
        assert bool(result.notes) == ((width, height) != asked), protocol


def _asked_pixels(call: dict[str, Any]) -> tuple[int, int] | None:
    if "width" in call:
        return call["width"], call["height"]
    size = str(call.get("size", ""))
    if "x" in size:
        wide, _, high = size.partition("x")
        return int(wide), int(high)
    return None


async def test_notes_name_the_approximation(any_client: jimeng.Client) -> None:
    result = await any_client.images.generate("a lighthouse", width=1024, height=768)
    protocol = _protocol(any_client)
    if protocol.startswith("volcengine"):
        assert result.notes == (
            "width 1024x768 scaled to 1183x887: Volcengine 4.x takes an area from 1024x1024 to "
            "4096x4096",
        )
    elif protocol == "ark":
        assert result.notes == (
            "width 1024x768 scaled to 1109x832: seedream-4.0 takes 921600 to 16777216 pixels",
        )
    elif protocol in ("gateway", "gateway-sync"):
        assert result.notes == (
            "width 1024x768 approximated as 4:3 at 2k (2304x1728): the gateway takes ratio and "
            "resolution only",
        )
    else:
        assert result.notes == ()  # exact on the web protocol and on the relay


async def test_what_no_backend_can_do_is_refused_before_the_network(
    any_client: jimeng.Client,
) -> None:
    backend = any_client.backend
    assert isinstance(backend, Sandbox)
    if backend.protocol == "gateway-openai":
        pytest.skip("a relay defines its own sizes: it is asked, not second-guessed")
    with pytest.raises(jimeng.ValidationError) as caught:
        await any_client.images.generate("x", ratio="5:4")
    assert caught.value.field == "ratio"
    with pytest.raises(jimeng.ValidationError) as caught:
        await any_client.images.generate("x", width=1024, height=768, ratio="4:3")
    assert caught.value.field == "width"
    assert sum(backend.server.requests.values()) == 0


@pytest.mark.parametrize("protocol", VIDEO_PROTOCOLS)
async def test_one_video_call_works_on_every_video_backend(protocol: str) -> None:
    sandbox = Sandbox(protocol, stages=Stages(queue_polls=1, generate_polls=1))
    async with jimeng.Client(sandbox, sleep=_no_sleep, rng=random.Random(0)) as client:
        result = await client.videos.generate(
            "a golden retriever in sunflowers", duration=5, aspect_ratio="16:9"
        )
        info = mp4_info(await result.read())
    assert info.width > info.height
    assert round(info.duration) == 5


def test_capabilities_come_from_the_validation_tables() -> None:
    for protocol in IMAGE_PROTOCOLS:
        capabilities = Sandbox(protocol).capabilities()
        for model in capabilities.image_models:
            if model.sizes == "follows the input image":  # Ark's SeedEdit takes no size
                continue
            assert "3:4" in model.ratios and "2k" in model.resolutions, (protocol, model.name)
    volcengine = Sandbox("volcengine").capabilities()
    assert volcengine.model("jimeng-4.0") is not None
    assert volcengine.model("t2v_720p") is not None
    t2v = volcengine.model("t2v_720p")
    assert t2v is not None and t2v.durations == (5, 10)
    dreamina = Sandbox("dreamina").capabilities()
    seedance = dreamina.model("jimeng-video-seedance-2.0")
    assert seedance is not None and seedance.durations == tuple(range(4, 16))
