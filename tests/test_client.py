"""Client lifecycle: owned or borrowed sessions, copies, closing, backend from the environment."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

import jimeng
from jimeng.sandbox import Sandbox, Stages
from tests.conftest import Sleeps


async def test_owned_session_is_closed(sleeps: Sleeps) -> None:
    client = jimeng.Client(Sandbox(), sleep=sleeps)
    async with client:
        await client.images.generate("a cat", size="1K")
        session = client._shared.session
        assert session is not None and not session.closed
    assert session.closed
    with pytest.raises(jimeng.ConfigurationError, match="closed"):
        await client.images.generate("a cat", size="1K")


async def test_borrowed_session_is_left_open(sleeps: Sleeps) -> None:
    async with aiohttp.ClientSession() as session:
        async with jimeng.Client(Sandbox(), session=session, sleep=sleeps) as client:
            await client.images.generate("a cat", size="1K")
        assert not session.closed


async def test_with_options_shares_session_and_backend(sleeps: Sleeps) -> None:
    sandbox = Sandbox()
    async with jimeng.Client(sandbox, sleep=sleeps) as client:
        quick = client.with_options(timeout=5, retry=jimeng.RetryPolicy.disabled())
        assert quick.backend is client.backend
        assert quick._transport.timeout == 5
        assert client._transport.timeout == 120
        sandbox.server.inject("submit", "http", status=429, code=50429)
        with pytest.raises(jimeng.RateLimitError):
            await quick.images.generate("a cat", size="1K")
        await client.images.generate("a cat", size="1K")
        assert quick._shared.session is client._shared.session


async def test_aclose_twice_is_safe() -> None:
    sandbox = Sandbox()
    client = jimeng.Client(sandbox)
    await client.aclose()
    await client.aclose()
    with pytest.raises(jimeng.ConfigurationError, match="closed"):
        await client.images.generate("a cat")
    assert sum(sandbox.server.requests.values()) == 0


def test_backend_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("JIMENG_BACKEND", "VOLC_ACCESSKEY", "JIMENG_GATEWAY_URL", "JIMENG_SESSION_ID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(jimeng.ConfigurationError, match="no backend configured"):
        jimeng.Client()
    monkeypatch.setenv("JIMENG_BACKEND", "sandbox")
    assert isinstance(jimeng.Client().backend, Sandbox)
    monkeypatch.delenv("JIMENG_BACKEND")
    # A served sandbox's URL alone selects it, ahead of any credentials (it is never billed).
    monkeypatch.setenv("JIMENG_SANDBOX_URL", "http://127.0.0.1:8787")
    monkeypatch.setenv("VOLC_ACCESSKEY", "AKLTx")
    chosen = jimeng.Client().backend
    assert isinstance(chosen, Sandbox) and chosen.url == "http://127.0.0.1:8787"
    monkeypatch.delenv("JIMENG_SANDBOX_URL")
    monkeypatch.delenv("VOLC_ACCESSKEY")
    monkeypatch.setenv("VOLC_ACCESSKEY", "AKLTx")
    monkeypatch.setenv("VOLC_SECRETKEY", "y")
    assert isinstance(jimeng.Client().backend, jimeng.Volcengine)
    monkeypatch.setenv("JIMENG_BACKEND", "nope")
    with pytest.raises(jimeng.ConfigurationError, match="unknown backend"):
        jimeng.Client()


def test_timeout_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIMENG_API_TIMEOUT", "33")
    assert jimeng.Client(Sandbox())._transport.timeout == 33
    monkeypatch.setenv("JIMENG_API_TIMEOUT", "-1")
    with pytest.raises(jimeng.ConfigurationError, match="JIMENG_API_TIMEOUT"):
        jimeng.Client(Sandbox())


_POLL_VARIABLES = [
    ("JIMENG_POLL_INTERVAL", "image_poll"),
    ("JIMENG_MAX_POLL_ATTEMPTS", "image_poll"),
    ("JIMENG_VIDEO_POLL_INTERVAL", "video_poll"),
    ("JIMENG_VIDEO_MAX_POLL_ATTEMPTS", "video_poll"),
]


@pytest.mark.parametrize(("variable", "option"), _POLL_VARIABLES)
@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "-inf", "soon"])
def test_bad_polling_variables_are_refused_when_the_client_is_made(
    monkeypatch: pytest.MonkeyPatch, variable: str, option: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    sandbox = Sandbox()
    with pytest.raises(jimeng.ConfigurationError) as caught:
        jimeng.Client(sandbox)
    kind = "a number" if value == "soon" else "a positive number"
    assert str(caught.value) == f"{variable} must be {kind}, got {value!r}"
    assert not sandbox.server.requests  # refused before anything was sent
    # A client given that kind's policy does not read the kind's variables.
    policy = jimeng.PollPolicy(interval=1)
    client = jimeng.Client(sandbox, **{option: policy})
    assert policy in (client._image_poll, client._video_poll)


def test_fractional_poll_attempts_are_refused_when_the_client_is_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JIMENG_VIDEO_MAX_POLL_ATTEMPTS", "2.5")
    with pytest.raises(jimeng.ConfigurationError) as caught:
        jimeng.Client(Sandbox())
    assert str(caught.value) == (
        "JIMENG_VIDEO_MAX_POLL_ATTEMPTS must be a whole number of polls, at least 1"
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda url: jimeng.Volcengine(access_key="a", secret_key="b", endpoint=url),
        lambda url: jimeng.Gateway(url, token="session-abc"),
    ],
)
def test_credentials_in_an_endpoint_url_are_refused(make: object) -> None:
    with pytest.raises(jimeng.ConfigurationError) as caught:
        make("https://alice:hunter2secret@relay.example/jm")  # type: ignore[operator]
    assert "hunter2secret" not in str(caught.value)
    assert "credentials" in str(caught.value)


async def test_a_closed_client_does_not_reopen_its_backend() -> None:
    sandbox = Sandbox()
    client = jimeng.Client(sandbox)
    await client.aclose()
    with pytest.raises(jimeng.ConfigurationError, match="closed"):
        await client.images.generate("a cat", size="1K")
    assert not sandbox.server.running  # the sandbox server was never started


@pytest.mark.parametrize(
    "endpoint", ["https://relay.example/jm?x=1", "https://relay.example/jm#top", "http://[::1"]
)
def test_endpoints_that_would_be_misread_are_refused(endpoint: str) -> None:
    with pytest.raises(jimeng.ConfigurationError):
        jimeng.Volcengine(access_key="a", secret_key="b", endpoint=endpoint)


async def test_unwritable_folder_is_a_download_error(sleeps: Sleeps, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    async with jimeng.Client(Sandbox(), sleep=sleeps) as client:
        result = await client.images.generate("a cat", size="1K")
        with pytest.raises(jimeng.DownloadError, match="cannot write"):
            await result.save(blocker / "sub/")


async def test_a_backend_may_use_the_session_while_opening(sleeps: Sleeps) -> None:
    class Eager(Sandbox):
        async def open(self, runtime: jimeng.backends.Runtime) -> None:
            # Would deadlock if opening held the session lock: bounded so a regression fails.
            await asyncio.wait_for(runtime.transport.session(), 10)
            await super().open(runtime)

    async with jimeng.Client(Eager(), sleep=sleeps) as client:
        assert (await client.images.generate("a cat", size="1K")).images


async def test_a_task_the_journal_saw_cancelled_is_not_reported_expired(
    tmp_path: Path, sleeps: Sleeps
) -> None:
    # Volcengine forgets a cancelled task: get-result then answers "not found".
    sandbox = Sandbox(stages=Stages(queue_polls=5))
    async with jimeng.Client(sandbox, sleep=sleeps, journal=tmp_path / "j.db") as client:
        handle = await client.images.submit("a cat")
        await handle.cancel()
        task = await client.tasks.get(handle.ref)
        assert (task.status, task.raw_status) == (jimeng.TaskStatus.CANCELLED, "not_found")
        with pytest.raises(jimeng.TaskCancelledError, match=f"task {handle.id} was cancelled"):
            await client.tasks.wait(handle.ref)
        (entry,) = await client.tasks.history()
        assert entry.status is jimeng.TaskStatus.CANCELLED
    async with jimeng.Client(sandbox, sleep=sleeps, journal=False) as client:
        with pytest.raises(jimeng.TaskExpiredError):  # no journal: nothing tells them apart
            await client.tasks.wait(handle.ref)
