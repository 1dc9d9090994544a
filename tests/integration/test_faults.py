"""Every injected fault is either retried to success or raised as the right typed error."""

from __future__ import annotations

from pathlib import Path

import pytest

import jimeng
from jimeng.sandbox import Sandbox
from tests.conftest import Sleeps


async def test_rate_limit_on_submit_is_retried(sandbox: Sandbox, sleeps: Sleeps) -> None:
    policy = jimeng.RetryPolicy(initial_delay=0.5, jitter=0.0)
    sandbox.server.inject("submit", "http", status=429, code=50429, times=2)
    async with jimeng.Client(sandbox, sleep=sleeps, retry=policy) as client:
        task = await client.images.submit("a cat", size="1K")
        assert (await task.result()).images
    assert sandbox.server.requests["submit"] == 3
    # The two retry waits come first, exactly; polling waits follow.
    assert sleeps.calls[:2] == [0.5, 1.0]


async def test_retry_after_is_honoured(
    client: jimeng.Client, sandbox: Sandbox, sleeps: Sleeps
) -> None:
    sandbox.server.inject("submit", "http", status=429, code=50430, retry_after=7, times=1)
    await client.images.generate("a cat", size="1K")
    assert sleeps.calls[0] == 7.0


async def test_retry_after_beyond_the_cap_is_raised(
    client: jimeng.Client, sandbox: Sandbox
) -> None:
    sandbox.server.inject("submit", "http", status=429, code=50429, retry_after=3600)
    with pytest.raises(jimeng.RateLimitError) as caught:
        await client.images.generate("a cat", size="1K")
    assert caught.value.retry_after == 3600
    assert sandbox.server.requests["submit"] == 1


async def test_persistent_rate_limit_gives_up_with_the_code(
    client: jimeng.Client, sandbox: Sandbox
) -> None:
    sandbox.server.inject("submit", "http", status=429, code=50429, times=99)
    with pytest.raises(jimeng.RateLimitError) as caught:
        await client.images.generate("a cat", size="1K")
    assert caught.value.code == 50429 and caught.value.status_code == 429
    assert sandbox.server.requests["submit"] == jimeng.RetryPolicy().max_attempts


async def test_server_error_on_poll_is_retried(client: jimeng.Client, sandbox: Sandbox) -> None:
    sandbox.server.inject("poll", "http", status=500, code=50500, times=2)
    result = await client.images.generate("a cat", size="1K")
    assert result.images


async def test_non_json_poll_answer_is_retried(client: jimeng.Client, sandbox: Sandbox) -> None:
    sandbox.server.inject("poll", "non_json", status=502, times=1)
    assert (await client.images.generate("a cat", size="1K")).images


async def test_non_json_poll_answer_that_persists_keeps_the_task_id(
    client: jimeng.Client, sandbox: Sandbox
) -> None:
    task = await client.images.submit("a cat", size="1K")
    sandbox.server.inject("poll", "non_json", status=502, times=99)
    with pytest.raises(jimeng.ServerError) as caught:
        await task.result()
    assert caught.value.task_id == task.id
    assert "non-JSON" in caught.value.message


async def test_reset_during_poll_is_retried(client: jimeng.Client, sandbox: Sandbox) -> None:
    sandbox.server.inject("poll", "reset", times=2)
    assert (await client.images.generate("a cat", size="1K")).images


async def test_reset_during_submit_is_not_resent(client: jimeng.Client, sandbox: Sandbox) -> None:
    # The server may have accepted the first submit: resending could bill twice.
    sandbox.server.inject("submit", "reset", times=1)
    with pytest.raises(jimeng.APIConnectionError) as caught:
        await client.images.generate("a cat", size="1K")
    assert caught.value.sent is None
    assert sandbox.server.requests["submit"] == 1


async def test_reset_during_submit_is_resent_when_allowed(sandbox: Sandbox, sleeps: Sleeps) -> None:
    policy = jimeng.RetryPolicy(retry_ambiguous_submit=True)
    async with jimeng.Client(sandbox, sleep=sleeps, retry=policy) as client:
        sandbox.server.inject("submit", "reset", times=1)
        assert (await client.images.generate("a cat", size="1K")).images
        assert sandbox.server.requests["submit"] == 2


async def test_connection_refused_is_retried_then_raised(sleeps: Sleeps) -> None:
    backend = jimeng.Volcengine(access_key="AKLTx", secret_key="sk", endpoint="http://127.0.0.1:9")
    policy = jimeng.RetryPolicy(max_attempts=4, initial_delay=0.5, jitter=0.0)
    async with jimeng.Client(backend, sleep=sleeps, retry=policy) as client:
        with pytest.raises(jimeng.APIConnectionError) as caught:
            await client.images.generate("a cat")
    assert caught.value.sent is False
    assert sleeps.calls == [0.5, 1.0, 2.0]


async def test_truncated_download_is_retried(
    client: jimeng.Client, sandbox: Sandbox, tmp_path: Path
) -> None:
    result = await client.images.generate("a cat", size="1K")
    sandbox.server.inject("download", "truncate", times=1)
    paths = await result.save(tmp_path)
    assert paths[0].stat().st_size > 0
    assert sandbox.server.requests["download"] == 2


async def test_truncated_download_leaves_no_file(
    client: jimeng.Client, sandbox: Sandbox, tmp_path: Path
) -> None:
    result = await client.images.generate("a cat", size="1K")
    sandbox.server.inject("download", "truncate", times=99)
    with pytest.raises(jimeng.DownloadError):
        await result.save(tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []


async def test_download_size_cap(sandbox: Sandbox, sleeps: Sleeps, tmp_path: Path) -> None:
    async with jimeng.Client(sandbox, sleep=sleeps, max_download_bytes=1000) as client:
        result = await client.images.generate("a cat", size="1K")
        with pytest.raises(jimeng.DownloadError, match=r"file is \d+ bytes, above the 1000-byte"):
            await result.save(tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert sandbox.server.requests["download"] == 1  # a size refusal is not retried


async def test_wrong_secret_is_rejected_with_the_real_envelope(sleeps: Sleeps) -> None:
    sandbox = Sandbox()
    async with jimeng.Client(sandbox, sleep=sleeps) as probe:
        await probe.images.submit("warm up", size="1K")
        wrong = jimeng.Volcengine(
            access_key=jimeng.sandbox.SANDBOX_ACCESS_KEY,
            secret_key="not-the-secret",
            endpoint=sandbox.url,
        )
        async with jimeng.Client(wrong, sleep=sleeps) as client:
            with pytest.raises(jimeng.AuthenticationError) as caught:
                await client.images.generate("a cat")
    error = caught.value
    assert error.code == "SignatureDoesNotMatch" and error.status_code == 401
    assert error.request_id
    assert "VOLC_SECRETKEY" in str(error)
    assert "not-the-secret" not in str(error)
