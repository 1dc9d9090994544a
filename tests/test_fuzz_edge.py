"""Property-based fuzzing of the edge: every parameter of images and videos generate/submit, and
of the family verbs (edit, upscale, outpaint, imitate_motion, avatar, translate), on every
protocol the sandbox speaks.

Each example is a set of arguments in which every parameter is left out, given a value of the
right type (which a backend may or may not support), or given a value that is invalid everywhere
(a wrong type, NaN, an out-of-range number, an integer or a fraction no float can hold, a float or
a bool for an integer choice, text with a lone surrogate, ``None`` for required text, a malformed
URL, a missing or non-image file). The oracle:

- nothing but a :class:`jimeng.JimengError` ever escapes (no untyped exception);
- an example with an invalid value raises ``ValidationError`` (or ``NotSupportedError``) and not
  one request reaches the sandbox (its request counters do not move);
- an example of well-typed values either gets that typed refusal with zero requests, or reaches
  the sandbox, and then every value it gave is on the wire with its own JSON type (a bool as a
  bool, an integer as an integer) and no NaN or infinity anywhere.

CI runs a fixed, derandomized budget (profile ``fuzz-ci``); ``JIMENG_FUZZ_EXAMPLES=N`` (or
``HYPOTHESIS_PROFILE=fuzz-long``) runs N examples per test with fresh randomness. Counts are
printed at the end of the module (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import os
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jimeng
from jimeng.backends.ark._models import IMAGE_MODELS as ARK_IMAGE_MODELS
from jimeng.backends.ark._models import VIDEO_MODELS as ARK_VIDEO_MODELS
from jimeng.backends.dreamina._tables import IMAGE_MODELS as WEB_IMAGE_MODELS
from jimeng.backends.dreamina._tables import VIDEO_MODELS as WEB_VIDEO_MODELS
from jimeng.backends.volcengine._models import IMAGE_MODELS as VOLC_IMAGE_MODELS
from jimeng.backends.volcengine._video import CAMERA_TEMPLATES, VIDEO_MODELS, VIDEO_MODES
from jimeng.sandbox import Sandbox, Stages
from tests._images import jpeg, png

PROTOCOLS = (
    "volcengine",
    "volcengine-relay",
    "ark",
    "dreamina",
    "gateway",
    "gateway-sync",
    "gateway-openai",
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or (
    "fuzz-long" if os.environ.get("JIMENG_FUZZ_EXAMPLES") else "fuzz-ci"
)
FUZZ = settings.get_profile(PROFILE if PROFILE.startswith("fuzz-") else "fuzz-ci")

#: Outcome counts over the whole module, printed at its end.
COUNTS: Counter[str] = Counter()
#: Well-typed examples that reached the sandbox and got an error back (worth a look: the
#: backend's own checks may have missed something the server knows).
ANSWERED: list[str] = []

OMIT: Any = object()
#: (method, positional arguments, keyword arguments, names of the invalid ones)
Example = tuple[str, tuple[Any, ...], dict[str, Any], list[str]]
Parameters = dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]]
#: Replaced by the running sandbox's URL when an example is run.
HOST = "{sandbox}"


# -- values ---------------------------------------------------------------------------------------

PNG = png(512, 512)
JPEG = jpeg(640, 480)
TEXT = st.text(
    alphabet=st.characters(whitelist_categories=("L", "N", "Zs"), max_codepoint=0x9FFF),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() != "")
NOT_NUMBERS = st.one_of(
    st.text(max_size=5), st.booleans(), st.lists(st.integers(), max_size=2), st.just({})
)
NOT_STRINGS = st.one_of(
    st.integers(), st.floats(allow_nan=True), st.booleans(), st.lists(TEXT, max_size=2)
)
NOT_BOOLS = st.one_of(
    st.sampled_from(["no", "yes", "true", "false", "", "0", "1"]),
    st.integers(-2, 2),
    st.floats(allow_nan=True),
    st.just([]),
)
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
#: Text no wire can carry: a lone surrogate (a ``str``, but not encodable as UTF-8) in text.
UNENCODABLE = st.builds(
    "{}{}{}".format, TEXT | st.just(""), st.characters(categories=["Cs"]), TEXT | st.just("")
)
#: Integers no float can hold (every backend computes with them as floats, every JSON reader
#: reads them as one).
HUGE_INTS = st.one_of(
    st.integers(min_value=2**1024, max_value=2**1100),
    st.integers(min_value=-(2**1100), max_value=-(2**1024)),
    st.sampled_from([10**400, -(10**400)]),
)
#: Numbers no JSON encoder writes: huge integers and fractions.
NOT_FLOATS = st.one_of(HUGE_INTS, st.fractions())
BAD_TEXT = st.one_of(st.integers(), st.floats(), st.booleans(), st.just(""), UNENCODABLE)


def number(low: float, high: float, *, integral: bool = False) -> st.SearchStrategy[Any]:
    if integral:
        return st.integers(int(low), int(high))
    return st.one_of(
        st.floats(low, high, allow_nan=False, allow_infinity=False),
        st.integers(math.ceil(low), int(high)),
    )


# Images given by reference: local files (made by the harness), bytes, and URLs served by the
# sandbox itself (a mix of URLs and local files makes Volcengine fetch the URLs first).
VALID_IMAGE = st.sampled_from(
    [PNG, JPEG, "file:ref.png", "file:ref.jpg", f"{HOST}/media/ref.png", Path("file:ref.png")]
)
INVALID_IMAGE = st.one_of(
    st.sampled_from(
        [
            "http://",
            "https://",
            "https:///nohost.png",
            "ftp://host/a.png",
            "file:///etc/hosts",
            "",
            "   ",
            "file:missing.png",
            "file:notes.txt",
            "file:empty.png",
            "file:.",
            "file:a\x00.png",
            b"",
            b"not an image at all",
            b"<html>",
        ]
    ),
    st.integers(),
    st.floats(allow_nan=True),
    st.just({"url": "https://a.test/x.png"}),
    st.just(None).map(lambda _: object()),
    UNENCODABLE.map("https://a.test/{}.png".format),
)

WATERMARKS = st.one_of(
    st.booleans(),
    st.builds(
        jimeng.Watermark,
        position=st.sampled_from(list(jimeng.WatermarkPosition)),
        language=st.sampled_from([0, 1]),
        opacity=st.floats(0, 1),
        text=st.none() | TEXT,
    ),
)
AIGC_META = st.builds(jimeng.AigcMeta, producer_id=TEXT, content_producer=st.none() | TEXT)
URLS = st.sampled_from(["https://hooks.test/cb", "http://127.0.0.1:9/hook?token=abc"])
BAD_URLS = st.one_of(
    st.sampled_from(["localhost:5000/cb", "ftp://hooks.test/cb", "http://", "hooks.test", ""]),
    st.integers(),
    UNENCODABLE.map("https://hooks.test/{}".format),
)
RATIOS = st.sampled_from(["1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "3:2", "2:3", "5:4", "7:3"])
RESOLUTIONS = st.sampled_from(["1k", "2k", "4k", "720p", "1080p", "8k", "2K"])
SEEDS = st.integers(-1, 2**33)
BAD_SEEDS = st.one_of(
    st.integers(max_value=-2),
    st.integers(min_value=2**63),
    HUGE_INTS,
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=4),
)

#: parameter → (well-typed values, values invalid on every backend)
COMMON: Parameters = {
    "seed": (SEEDS, BAD_SEEDS),
    "watermark": (WATERMARKS, st.one_of(NOT_BOOLS, st.just("Watermark"), st.just({"text": "x"}))),
    "aigc_meta": (AIGC_META, st.one_of(TEXT, st.just({"producer_id": "p"}), st.integers())),
    "return_url": (st.booleans(), NOT_BOOLS),
    "response_format": (
        st.sampled_from(["url", "b64_json"]),
        st.one_of(TEXT, st.integers(), UNENCODABLE),
    ),
    "callback_url": (URLS, BAD_URLS),
    "resolution": (RESOLUTIONS, st.one_of(BAD_TEXT, st.just(" "))),
    "extra_body": (
        st.just(OMIT),  # an escape hatch sent as given: only its invalid forms are fuzzed
        st.one_of(
            st.sampled_from([{"x": math.nan}, {1: "a"}, "body", [("k", "v")], {"x": object()}]),
            UNENCODABLE.map(lambda text: {"note": text}),
            UNENCODABLE.map(lambda text: {text: 1}),
        ),
    ),
}

IMAGE_PARAMETERS: Parameters = {
    **COMMON,
    "model": (
        st.sampled_from(
            sorted(set(VOLC_IMAGE_MODELS) | set(WEB_IMAGE_MODELS) | set(ARK_IMAGE_MODELS) | {"x-9"})
        ),
        st.one_of(BAD_TEXT, st.just([])),
    ),
    "size": (
        st.one_of(
            st.sampled_from(["1K", "2K", "4K", "1k", "1024x1024", "2048x1152", "1328x1328"]),
            st.builds("{}x{}".format, st.integers(1, 5000), st.integers(1, 5000)),
        ),
        st.one_of(
            st.integers(),
            st.floats(),
            st.sampled_from(["0x0", "0x512", "big", "", "1024", "-5x5", "2K2"]),
            UNENCODABLE,
            HUGE_INTS.map("{}x1024".format),
            st.just("1" * 5000 + "x1"),
        ),
    ),
    "width": (
        st.integers(1, 5000),
        st.one_of(st.integers(max_value=0), st.floats(), NOT_NUMBERS, HUGE_INTS),
    ),
    "height": (
        st.integers(1, 5000),
        st.one_of(st.integers(max_value=0), st.floats(), NOT_NUMBERS, HUGE_INTS),
    ),
    "images": (
        st.one_of(VALID_IMAGE, st.lists(VALID_IMAGE, min_size=1, max_size=3)),
        st.one_of(
            INVALID_IMAGE,
            st.lists(INVALID_IMAGE, min_size=1, max_size=2),
            st.tuples(VALID_IMAGE, INVALID_IMAGE).map(list),
            st.just({"a": 1}),
            st.just({PNG}),
        ),
    ),
    "scale": (
        number(0, 100),
        st.one_of(NON_FINITE, st.floats(max_value=-0.001), NOT_NUMBERS, NOT_FLOATS),
    ),
    "force_single": (st.booleans(), NOT_BOOLS),
    "use_pre_llm": (st.booleans(), NOT_BOOLS),
    "intelligent_ratio": (st.booleans(), NOT_BOOLS),
    "min_ratio": (
        number(0.01, 20),
        st.one_of(
            NON_FINITE, st.floats(max_value=0), st.integers(max_value=0), NOT_NUMBERS, NOT_FLOATS
        ),
    ),
    "max_ratio": (
        number(0.01, 20),
        st.one_of(
            NON_FINITE, st.floats(max_value=0), st.integers(max_value=0), NOT_NUMBERS, NOT_FLOATS
        ),
    ),
    "ratio": (RATIOS, BAD_TEXT),
    "negative_prompt": (st.one_of(TEXT, st.just("")), st.one_of(NOT_STRINGS, UNENCODABLE)),
    "max_images": (
        st.integers(1, 20),
        st.one_of(st.integers(max_value=0), st.floats(), NOT_NUMBERS, HUGE_INTS),
    ),
    "multi_image": (st.booleans(), NOT_BOOLS),
    "sample_strength": (
        st.floats(0, 1),
        st.one_of(
            NON_FINITE,
            st.floats(min_value=1.0001),
            st.floats(max_value=-0.0001),
            NOT_NUMBERS,
            NOT_FLOATS,
        ),
    ),
}

VIDEO_PARAMETERS: Parameters = {
    **COMMON,
    "model": (
        st.sampled_from(
            sorted(set(VIDEO_MODELS) | set(WEB_VIDEO_MODELS) | set(ARK_VIDEO_MODELS) | {"v-9"})
        ),
        BAD_TEXT,
    ),
    "mode": (st.sampled_from([*VIDEO_MODES, "t2v_4k"]), BAD_TEXT),
    "duration": (
        st.one_of(st.sampled_from([4, 5, 6, 8, 10, 12, 5.0, 10.0]), number(0.1, 30)),
        st.one_of(
            NON_FINITE, st.floats(max_value=0), st.integers(max_value=0), NOT_NUMBERS, NOT_FLOATS
        ),
    ),
    "fps": (
        st.one_of(st.just(24), st.integers(1, 60)),
        st.one_of(st.floats(), st.integers(max_value=0), NOT_NUMBERS, HUGE_INTS),
    ),
    "frames": (
        st.one_of(st.sampled_from([121, 241]), st.integers(1, 400)),
        st.one_of(st.floats(), st.integers(max_value=0), NOT_NUMBERS, HUGE_INTS),
    ),
    "aspect_ratio": (RATIOS, BAD_TEXT),
    "ratio": (RATIOS, BAD_TEXT),
    "image": (VALID_IMAGE, INVALID_IMAGE),
    "reference_images": (
        st.one_of(VALID_IMAGE, st.lists(VALID_IMAGE, min_size=1, max_size=3)),
        st.one_of(INVALID_IMAGE, st.lists(INVALID_IMAGE, min_size=1, max_size=2), st.just({1})),
    ),
    "reference_videos": (
        st.one_of(
            st.just("https://video.example/clip.mp4"),
            st.lists(st.just("https://video.example/clip.mp4"), min_size=1, max_size=3),
        ),
        st.one_of(
            st.integers(),
            st.floats(),
            st.just(b""),
            st.just({1}),
            st.just("https://"),
            UNENCODABLE.map("https://video.example/{}.mp4".format),
        ),
    ),
    "camera_fixed": (st.booleans(), NOT_BOOLS),
    "generate_audio": (st.booleans(), NOT_BOOLS),
    "ms_token": (TEXT, st.one_of(NOT_STRINGS, UNENCODABLE)),
    "a_bogus": (TEXT, st.one_of(NOT_STRINGS, UNENCODABLE)),
    "tail_image": (VALID_IMAGE, INVALID_IMAGE),
    "camera": (st.sampled_from([*CAMERA_TEMPLATES, "zoom"]), BAD_TEXT),
    "camera_strength": (st.sampled_from(["weak", "medium", "strong", "max"]), BAD_TEXT),
    "function_mode": (st.sampled_from(["first_last_frames", "omni_reference"]), BAD_TEXT),
}

WAIT_OPTIONS: dict[str, st.SearchStrategy[Any]] = {
    "poll": st.one_of(st.sampled_from(["fast", 1, 2.5, {"interval": 1}]), st.booleans()),
    "on_submit": st.one_of(st.integers(), TEXT),
    "on_update": st.one_of(st.integers(), TEXT),
}


FRACTION_OF_A_SIDE = (
    st.floats(0, 1),
    st.one_of(
        NON_FINITE,
        st.floats(min_value=1.0001),
        st.floats(max_value=-0.0001),
        NOT_NUMBERS,
        NOT_FLOATS,
    ),
)
#: An image the verb cannot do without: ``None`` is invalid too.
REQUIRED_IMAGE = (VALID_IMAGE, st.one_of(INVALID_IMAGE, st.none()))
#: Videos and audio by URL (the visual API downloads them itself).
REQUIRED_MEDIA = (
    st.sampled_from(["https://media.example/talk.mp4", "https://media.example/voice.mp3"]),
    st.one_of(
        st.none(),
        st.integers(),
        st.floats(),
        st.just(b""),
        st.just({"url": "https://media.example/a.mp4"}),
        st.sampled_from(["https://", "http:///nohost.mp4"]),
        UNENCODABLE.map("https://media.example/{}.mp4".format),
    ),
)
OPTIONAL_TEXT = (TEXT, BAD_TEXT)
REQUIRED_TEXT = (TEXT, st.one_of(BAD_TEXT, st.none()))
#: A choice among integers: an equal float or bool is not one of them.
INT_CHOICE_BAD = st.one_of(
    st.sampled_from([720.0, 1080.0, True, False, "720", "1080"]),
    st.integers().filter(lambda n: n not in (720, 1080)),
    st.floats(),
    HUGE_INTS,
)
FAMILY_COMMON = {name: COMMON[name] for name in ("seed", "watermark", "aigc_meta", "return_url")}
FAMILY_EXTRA = {"extra_body": COMMON["extra_body"]}

#: verb → (resource, the parameters taken positionally, the required ones, the parameters)
FAMILY: dict[str, tuple[str, tuple[str, ...], frozenset[str], Parameters]] = {
    "edit": (
        "images",
        ("prompt",),
        frozenset({"prompt", "image", "mask"}),
        {
            "prompt": REQUIRED_TEXT,
            "image": REQUIRED_IMAGE,
            "mask": REQUIRED_IMAGE,
            **FAMILY_COMMON,
            **FAMILY_EXTRA,
        },
    ),
    "upscale": (
        "images",
        ("image",),
        frozenset({"image"}),
        {
            "image": REQUIRED_IMAGE,
            "resolution": (st.sampled_from(["4k", "8k", "16k"]), BAD_TEXT),
            "detail": (
                st.integers(0, 100),
                st.one_of(
                    st.integers(max_value=-1),
                    st.integers(min_value=101),
                    st.floats(),
                    NOT_NUMBERS,
                    HUGE_INTS,
                ),
            ),
            **{name: FAMILY_COMMON[name] for name in ("watermark", "aigc_meta", "return_url")},
            **FAMILY_EXTRA,
        },
    ),
    "outpaint": (
        "images",
        ("image",),
        frozenset({"image"}),
        {
            "image": REQUIRED_IMAGE,
            "left": FRACTION_OF_A_SIDE,
            "right": FRACTION_OF_A_SIDE,
            "top": FRACTION_OF_A_SIDE,
            "bottom": FRACTION_OF_A_SIDE,
            "prompt": OPTIONAL_TEXT,
            "mask": (VALID_IMAGE, INVALID_IMAGE),
            **FAMILY_COMMON,
            **FAMILY_EXTRA,
        },
    ),
    "imitate_motion": (
        "videos",
        (),
        frozenset({"image", "video"}),
        {
            "image": REQUIRED_IMAGE,
            "video": REQUIRED_MEDIA,
            "model": (st.sampled_from(["motion-1.0", "motion-2.0", "motion-9"]), BAD_TEXT),
            "trim_start": (st.booleans(), NOT_BOOLS),
            "callback_url": COMMON["callback_url"],
            "aigc_meta": COMMON["aigc_meta"],
            **FAMILY_EXTRA,
        },
    ),
    "avatar": (
        "videos",
        (),
        frozenset({"image", "audio"}),
        {
            "image": REQUIRED_IMAGE,
            "audio": REQUIRED_MEDIA,
            "prompt": OPTIONAL_TEXT,
            "resolution": (st.sampled_from([720, 1080]), INT_CHOICE_BAD),
            "fast": (st.booleans(), NOT_BOOLS),
            "masks": (
                st.lists(st.just("https://masks.example/1.png"), min_size=1, max_size=2),
                st.one_of(
                    st.integers(),
                    st.just("not a url"),
                    st.lists(
                        st.one_of(
                            st.integers(),
                            st.just("ftp://masks.example/1.png"),
                            st.just(""),
                            UNENCODABLE.map("https://masks.example/{}.png".format),
                        ),
                        min_size=1,
                        max_size=2,
                    ),
                ),
            ),
            "seed": COMMON["seed"],
            "check": (st.booleans(), NOT_BOOLS),
            "aigc_meta": COMMON["aigc_meta"],
            **FAMILY_EXTRA,
        },
    ),
    "translate": (
        "videos",
        ("video",),
        frozenset({"video", "target_language"}),
        {
            "video": REQUIRED_MEDIA,
            "target_language": (
                st.sampled_from(["en", "ja", "ko", "zh", "pt-BR"]),
                REQUIRED_TEXT[1],
            ),
            "source_language": (st.sampled_from(["zh", "en", "xx-YYYYY"]), BAD_TEXT),
            "aigc_meta": COMMON["aigc_meta"],
            **FAMILY_EXTRA,
        },
    ),
}
_SIDES = ("left", "right", "top", "bottom")


def conflicts(kwargs: dict[str, Any]) -> list[str]:
    """Well-typed values that are invalid together, on every backend."""
    found = []
    if ("width" in kwargs) != ("height" in kwargs):
        found += ["width", "height"]  # one without the other
    if "size" in kwargs and ("width" in kwargs or "height" in kwargs):
        found.append("size")  # a size two ways
    ratio, aspect = kwargs.get("ratio"), kwargs.get("aspect_ratio")
    if "aspect_ratio" in kwargs and ratio is not None and aspect is not None and ratio != aspect:
        found.append("ratio")  # videos: two ratios that disagree
    return found


def outpaint_conflicts(kwargs: dict[str, Any]) -> list[str]:
    """Outpainting takes a mask or fractions of the sides, at least one of them above 0."""
    sides = [kwargs[side] for side in _SIDES if side in kwargs]
    if "mask" in kwargs and sides:
        return ["mask"]
    if "mask" not in kwargs and not any(sides):
        return ["left"]
    return []


def draw_parameters(
    draw: st.DrawFn, parameters: Parameters, required: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], list[str]]:
    """Keyword arguments (the required ones always given) and the names given invalid values."""
    names = sorted(parameters)
    some_invalid = draw(st.booleans())
    # Few companions beside an invalid value, so that each parameter's refusal is exercised.
    companions = draw(st.integers(0, 2 if some_invalid else 4))
    given = set(draw(st.lists(st.sampled_from(names), unique=True, max_size=companions)))
    invalid = (
        draw(st.lists(st.sampled_from(names), unique=True, min_size=1, max_size=2))
        if some_invalid
        else []
    )
    kwargs: dict[str, Any] = {}
    for name in sorted(given | required):
        valid, _ = parameters[name]
        value = draw(valid)
        if value is not OMIT:
            kwargs[name] = value
    for name in invalid:
        _, bad = parameters[name]
        kwargs[name] = draw(bad)
    return kwargs, list(invalid)


def draw_wait_option(draw: st.DrawFn, method: str, kwargs: dict[str, Any]) -> list[str]:
    """Now and then, a bad ``poll``/``on_submit``/``on_update`` for a method that waits."""
    if method.startswith("submit") or draw(st.integers(0, 9)) != 0:
        return []
    option = draw(st.sampled_from(sorted(WAIT_OPTIONS)))
    kwargs[option] = draw(WAIT_OPTIONS[option])
    return [option]


@st.composite
def arguments(draw: st.DrawFn, parameters: Parameters) -> Example:
    method = draw(st.sampled_from(["submit", "generate"]))
    kwargs, bad_names = draw_parameters(draw, parameters)
    bad_names += conflicts(kwargs)
    prompt: Any = draw(TEXT)
    if draw(st.integers(0, 14)) == 0:
        prompt = draw(
            st.one_of(st.sampled_from(["", "   ", None, 42, b"bytes", ["a cat"]]), UNENCODABLE)
        )
        bad_names.append("prompt")
    bad_names += draw_wait_option(draw, method, kwargs)
    return method, (prompt,), kwargs, bad_names


@st.composite
def family_arguments(draw: st.DrawFn) -> tuple[str, Example]:
    """A family verb (or its ``submit_`` form) with arguments over its whole parameter space."""
    verb = draw(st.sampled_from(sorted(FAMILY)))
    resource, positional, required, parameters = FAMILY[verb]
    method = draw(st.sampled_from([verb, f"submit_{verb}"]))
    kwargs, bad_names = draw_parameters(draw, parameters, required)
    if verb == "outpaint":
        bad_names += outpaint_conflicts(kwargs)
    args = tuple(kwargs.pop(name) for name in positional)
    bad_names += draw_wait_option(draw, method, kwargs)
    return resource, (method, args, kwargs, bad_names)


# -- the harness: one sandbox and one client per protocol, on a private event loop ---------------


#: What the sandbox counts of its own outgoing deliveries (gateway webhooks, Ark callbacks).
_OUTBOUND = frozenset({"webhook", "callback"})


class Harness:
    """A sandbox-backed client whose every request body is recorded at the socket level."""

    def __init__(self, protocol: str, folder: Path):
        self.protocol = protocol
        self.folder = folder
        self.loop = asyncio.new_event_loop()
        self.wire: list[tuple[str, str, bytearray]] = []
        self.sandbox = Sandbox(
            protocol, stages=Stages(queue_polls=0, generate_polls=0), time_factor=0
        )  # type: ignore[arg-type]
        self.loop.run_until_complete(self._open())

    async def _open(self) -> None:
        trace = aiohttp.TraceConfig()

        async def started(_: Any, __: Any, params: aiohttp.TraceRequestStartParams) -> None:
            self.wire.append((params.method, str(params.url), bytearray()))

        async def chunk(_: Any, __: Any, params: aiohttp.TraceRequestChunkSentParams) -> None:
            if self.wire:
                self.wire[-1][2].extend(params.chunk)

        trace.on_request_start.append(started)
        trace.on_request_chunk_sent.append(chunk)
        self.session = aiohttp.ClientSession(trace_configs=[trace])

        async def no_sleep(_: float) -> None:
            return None

        self.client = jimeng.Client(
            self.sandbox, session=self.session, sleep=no_sleep, rng=random.Random(0)
        )
        await self.client.__aenter__()
        self.sandbox.server.add_media("ref.png", "image/png", lambda: PNG)

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.run_until_complete(self.session.close())
        self.loop.close()

    def requests(self) -> int:
        """Requests the sandbox counted from clients (its own webhook and callback deliveries,
        which run in the background after an earlier example, are not requests to it)."""
        counts = self.sandbox.server.requests
        return sum(count for label, count in counts.items() if label not in _OUTBOUND)

    def top_up(self) -> None:
        """Dreamina sessions start with 100 credits; thousands of examples would spend them and
        turn every later example into the same InsufficientCreditsError."""
        if self.protocol == "dreamina":
            for session in self.sandbox.server.protocol("dreamina").sessions.values():
                session.gift = 10**6

    def resolve(self, value: Any) -> Any:
        """Placeholders → real paths and URLs of this harness."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if isinstance(value, Path) and str(value).startswith("file:"):
            return self.folder / str(value)[5:]
        if isinstance(value, str) and value.startswith("file:") and not value.startswith("file://"):
            return str(self.folder / value[5:])
        if isinstance(value, str) and value.startswith(HOST):
            return value.replace(HOST, self.sandbox.server.url)
        return value

    def run(
        self, resource: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> BaseException | None:
        call: Callable[..., Any] = getattr(getattr(self.client, resource), method)
        positional = [self.resolve(value) for value in args]
        arguments = {name: self.resolve(value) for name, value in kwargs.items()}
        self.wire.clear()
        try:
            self.loop.run_until_complete(asyncio.wait_for(call(*positional, **arguments), 30))
        except Exception as error:
            return error
        return None


@pytest.fixture(scope="module")
def harnesses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Harness]]:
    folder = tmp_path_factory.mktemp("fuzz-inputs")
    (folder / "ref.png").write_bytes(PNG)
    (folder / "ref.jpg").write_bytes(JPEG)
    (folder / "notes.txt").write_text("not an image")
    (folder / "empty.png").write_bytes(b"")
    made: dict[str, Harness] = {}
    try:
        for protocol in PROTOCOLS:
            made[protocol] = Harness(protocol, folder)
        yield made
    finally:
        for harness in made.values():
            harness.close()
        if COUNTS:
            counts = ", ".join(f"{name}={count}" for name, count in sorted(COUNTS.items()))
            print(f"\nfuzz ({PROFILE}): {counts}")
            for line in ANSWERED[:20]:
                print(f"  answered: {line}")


# -- the oracle -----------------------------------------------------------------------------------

#: Parameters every backend that takes them sends under their own name, as given.
SAME_NAME = (
    "force_single",
    "use_pre_llm",
    "intelligent_ratio",
    "negative_prompt",
    "seed",
    "camera_fixed",
    "generate_audio",
)


def _reject_constant(token: str) -> Any:
    raise AssertionError(f"{token} on the wire")


def decoded(body: bytes) -> Any:
    """A JSON body with the JSON documents nested in its strings decoded too; ``None`` if not
    JSON (multipart uploads, image bytes)."""
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError):
        return None
    return _expand(document)


def _expand(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _expand(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item) for item in value]
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return _expand(json.loads(value, parse_constant=_reject_constant))
        except ValueError:
            return value
    return value


def occurrences(document: Any, key: str) -> Iterator[Any]:
    if isinstance(document, dict):
        for name, value in document.items():
            if name == key:
                yield value
            yield from occurrences(value, key)
    elif isinstance(document, list):
        for item in document:
            yield from occurrences(item, key)


def check_wire(harness: Harness, kwargs: dict[str, Any]) -> None:
    """Every value given went out with its own type; nothing non-finite went out."""
    documents = [decoded(bytes(body)) for _, _, body in harness.wire if body]
    documents = [d for d in documents if d is not None]
    for name in SAME_NAME:
        if name not in kwargs:
            continue
        expected = kwargs[name]
        for document in documents:
            for value in occurrences(document, name):
                if name == "seed" and value != expected and harness.protocol == "dreamina":
                    continue  # Dreamina's blend payload carries random seeds of its own
                assert type(value) is type(expected) and value == expected, (
                    f"{name}={expected!r} went out as {value!r}"
                )
    if harness.protocol.startswith("volcengine"):
        for document in documents:
            options = document.get("req_json") if isinstance(document, dict) else None
            if isinstance(options, dict) and kwargs.get("return_url") is not None:
                assert options.get("return_url") is kwargs["return_url"]
            if isinstance(options, dict) and isinstance(kwargs.get("watermark"), jimeng.Watermark):
                logo = options["logo_info"]
                assert logo["add_logo"] is True and logo["language"] in (0, 1)
                assert 0 <= logo["opacity"] <= 1


#: ``videos.submit(ratio=…)`` is ``aspect_ratio`` in the request model.
_SAME_FIELD = {"ratio": {"ratio", "aspect_ratio"}, "aspect_ratio": {"ratio", "aspect_ratio"}}


def field_root(field: str) -> str:
    """``images[1]`` → ``images``, ``extra_body key`` → ``extra_body``."""
    return re.split(r"[\[. ]", field, maxsplit=1)[0]


def judge(harness: Harness, resource: str, example: Example) -> None:
    method, args, kwargs, bad = example
    harness.top_up()
    before = harness.requests()
    error = harness.run(resource, method, args, kwargs)
    # The sandbox's counters, cross-checked with what the client's session put on the wire.
    reached = max(harness.requests() - before, len(harness.wire))
    COUNTS["examples"] += 1
    if error is not None and not isinstance(error, jimeng.JimengError):
        COUNTS["untyped exceptions"] += 1
        raise AssertionError(f"untyped {type(error).__name__}: {error}") from error
    refused = isinstance(error, jimeng.ValidationError | jimeng.NotSupportedError)
    if bad:
        COUNTS["invalid examples"] += 1
        if reached:
            COUNTS["invalid reaching the sandbox"] += 1
        assert refused, f"invalid {bad} gave {error!r}"
        assert reached == 0, f"invalid {bad}: {reached} requests reached the sandbox"
        # Refused for the invalid value itself, not for another reason that happened first.
        assert isinstance(error, jimeng.ValidationError), error
        named = _SAME_FIELD.get(field_root(error.field), {field_root(error.field)})
        assert named & set(bad), f"invalid {bad} refused for {error.field}: {error}"
        return
    COUNTS["valid examples"] += 1
    if refused:
        COUNTS["valid, refused before sending"] += 1
        assert reached == 0, f"refused with {error!r} after {reached} requests"
        return
    assert reached >= 1, f"{error!r} without a request"
    COUNTS["valid, reached the sandbox"] += 1
    if error is not None:
        COUNTS[f"valid, answered {type(error).__name__}"] += 1
        ANSWERED.append(f"{harness.protocol} {resource}.{method} {kwargs!r}: {error!r}"[:400])
    check_wire(harness, kwargs)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@FUZZ
@given(example=arguments(IMAGE_PARAMETERS))
def test_image_arguments(harnesses: dict[str, Harness], protocol: str, example: Example) -> None:
    judge(harnesses[protocol], "images", example)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@FUZZ
@given(example=arguments(VIDEO_PARAMETERS))
def test_video_arguments(harnesses: dict[str, Harness], protocol: str, example: Example) -> None:
    judge(harnesses[protocol], "videos", example)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@FUZZ
@given(drawn=family_arguments())
def test_family_arguments(
    harnesses: dict[str, Harness], protocol: str, drawn: tuple[str, Example]
) -> None:
    resource, example = drawn
    judge(harnesses[protocol], resource, example)


@pytest.mark.parametrize(
    ("verb", "parameters"),
    [("images", IMAGE_PARAMETERS), ("videos", VIDEO_PARAMETERS)],
)
def test_every_parameter_is_fuzzed(verb: str, parameters: dict[str, Any]) -> None:
    """A parameter added to generate() must be added here too."""
    for method in ("generate", "submit"):
        signature = inspect.signature(getattr(getattr(jimeng.Client(Sandbox()), verb), method))
        taken = set(signature.parameters) - {"prompt"}
        assert taken <= set(parameters) | set(WAIT_OPTIONS), taken - set(parameters)


@pytest.mark.parametrize("verb", sorted(FAMILY))
def test_every_family_parameter_is_fuzzed(verb: str) -> None:
    resource, positional, required, parameters = FAMILY[verb]
    for method in (verb, f"submit_{verb}"):
        signature = inspect.signature(getattr(getattr(jimeng.Client(Sandbox()), resource), method))
        taken = set(signature.parameters)
        assert taken <= set(parameters) | set(WAIT_OPTIONS), taken - set(parameters)
        assert set(parameters) <= taken, set(parameters) - taken
        without_default = {
            name for name, item in signature.parameters.items() if item.default is item.empty
        }
        assert without_default == required
        assert list(signature.parameters)[: len(positional)] == list(positional)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_plain_request_reaches_every_protocol(
    harnesses: dict[str, Harness], protocol: str
) -> None:
    """The other half of the oracle's premise: valid input does get through."""
    harness = harnesses[protocol]
    for kind in ("images", "videos"):
        before = harness.requests()
        error = harness.run(kind, "submit", ("a lighthouse at dusk",), {})
        if kind == "videos" and protocol == "gateway-openai":
            assert isinstance(error, jimeng.NotSupportedError)  # an image-only relay
            continue
        assert error is None, error
        assert harness.requests() > before
