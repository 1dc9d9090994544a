"""Shared fixtures: a sandbox-backed client that never sleeps for real, and an aioresponses fix."""

from __future__ import annotations

import inspect
import os
import random
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import aioresponses.core
import pytest
from hypothesis import HealthCheck, settings

import jimeng
from jimeng.sandbox import Sandbox, Stages


def _patch_aioresponses() -> None:
    """aioresponses 0.7.9 builds ``ClientResponse`` without the keyword-only ``stream_writer``
    that aiohttp 3.14 added (pnuckowski/aioresponses#289, fixes unmerged). Give the mocked
    response an idle writer stub; the shim switches itself off on versions that do not need it."""
    params = inspect.signature(aiohttp.ClientResponse.__init__).parameters
    if "stream_writer" not in params:
        return
    original = aioresponses.core.RequestMatch._build_response

    def build(self: Any, url: Any, *args: Any, response_class: Any = None, **kwargs: Any) -> Any:
        cls = response_class or aiohttp.ClientResponse

        def factory(method: str, real_url: Any, **init: Any) -> Any:
            # A response whose request was already sent reads only ``output_size`` from it.
            init.setdefault("stream_writer", SimpleNamespace(output_size=0))
            return cls(method, real_url, **init)

        return original(self, url, *args, response_class=factory, **kwargs)

    aioresponses.core.RequestMatch._build_response = build  # type: ignore[method-assign]


_patch_aioresponses()

# The edge fuzz suite (tests/test_fuzz_edge.py): a fixed, derandomized budget in CI; a long run
# with fresh randomness when JIMENG_FUZZ_EXAMPLES (examples per test) or
# HYPOTHESIS_PROFILE=fuzz-long is set.
_FUZZ_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "fuzz-ci",
    max_examples=80,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=_FUZZ_HEALTH,
)
settings.register_profile(
    "fuzz-long",
    max_examples=int(os.environ.get("JIMENG_FUZZ_EXAMPLES") or 500),
    deadline=None,
    database=None,
    suppress_health_check=_FUZZ_HEALTH,
)


class Sleeps:
    """An injected ``sleep`` that records the delays instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)

    @property
    def total(self) -> float:
        return sum(self.calls)


@pytest.fixture(autouse=True)
def jimeng_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Every test gets its own JIMENG_HOME (the CLI journals by default), and no journal from
    the environment."""
    home = tmp_path_factory.mktemp("jimeng-home")
    monkeypatch.setenv("JIMENG_HOME", str(home))
    # The fallback when a test clears JIMENG_*: never the user's own ~/.local/share/jimeng.
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "xdg-data"))
    monkeypatch.delenv("JIMENG_JOURNAL", raising=False)
    return home


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def sandbox() -> Sandbox:
    """A sandbox whose tasks are queued for one poll and running for one more."""
    return Sandbox(stages=Stages(queue_polls=1, generate_polls=1))


@pytest.fixture
async def client(sandbox: Sandbox, sleeps: Sleeps) -> AsyncIterator[jimeng.Client]:
    async with jimeng.Client(sandbox, sleep=sleeps, rng=random.Random(0)) as client:
        yield client
