"""What survives failures: non-JSON answers, ambiguous submits, and ids on every late error."""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

import jimeng
from jimeng.backends.gateway import _wire as gateway_wire
from jimeng.models import Task, TaskKind
from jimeng.sandbox import Sandbox, Stages
from tests.conftest import Sleeps

PROTOCOLS = ("volcengine", "dreamina", "gateway")
#: No jitter: the retry waits are exactly 0.5, 1.0, 2.0 s.
RETRY = jimeng.RetryPolicy(jitter=0)


@pytest.fixture
async def make(sleeps: Sleeps) -> AsyncIterator[Any]:
    clients: list[jimeng.Client] = []

    async def build(protocol: str = "volcengine", **options: Any) -> jimeng.Client:
        sandbox = Sandbox(protocol, stages=Stages())  # type: ignore[arg-type]
        options.setdefault("retry", RETRY)
        client = jimeng.Client(sandbox, sleep=sleeps, rng=random.Random(0), **options)
        clients.append(client)
        await client.__aenter__()
        return client

    yield build
    for client in clients:
        await client.aclose()


def server_of(client: jimeng.Client) -> Any:
    backend = client.backend
    assert isinstance(backend, Sandbox)
    return backend.server


# -- part 7: a non-JSON 200 is a server failure -------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("kind", ["non_json", "truncate"])
async def test_polls_retry_a_non_json_200_like_a_5xx(
    make: Any, sleeps: Sleeps, protocol: str, kind: str
) -> None:
    client = await make(protocol)
    server = server_of(client)
    baseline = await client.images.submit("a cat")
    await baseline.result()
    polls_clean = server.requests["poll"]
    attempts_clean = client._transport.attempts["poll"]

    handle = await client.images.submit("a cat")
    server.inject("poll", kind=kind, status=200, times=2)
    sleeps.calls.clear()
    result = await handle.result()
    assert len(result) >= 1
    # Exactly two more attempts than a clean task: the two bad answers, each retried once.
    assert server.requests["poll"] - polls_clean == polls_clean + 2
    assert client._transport.attempts["poll"] - attempts_clean == attempts_clean + 2
    assert [delay for delay in sleeps.calls if delay in (0.5, 1.0)][:2] == [0.5, 1.0]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("kind", ["non_json", "truncate"])
async def test_a_submit_answered_by_a_non_json_200_is_not_resent(
    make: Any, protocol: str, kind: str
) -> None:
    client = await make(protocol)
    server = server_of(client)
    server.inject("submit", kind=kind, status=200)
    with pytest.raises(jimeng.ServerError) as caught:
        await client.images.submit("a cat")
    assert server.requests["submit"] == 1
    assert client._transport.attempts["submit"] == 1
    error = caught.value
    assert error.maybe_accepted is True
    assert error.status_code == 200
    assert "unexpected non-JSON answer to the submit (HTTP 200" in str(error)
    assert "may have accepted (and will bill) the task" in str(error)
    assert "client.tasks.list()" in str(error)


# -- part 3: ambiguous submits -----------------------------------------------------------------


async def test_a_reset_submit_is_ambiguous_and_not_resent(make: Any) -> None:
    client = await make()
    server = server_of(client)
    server.inject("submit", kind="reset")
    with pytest.raises(jimeng.APIConnectionError) as caught:
        await client.images.submit("a cat")
    assert caught.value.maybe_accepted is True
    assert "may have reached the server" in str(caught.value)
    assert server.requests["submit"] == 1


async def test_an_opted_in_ambiguous_resend_succeeds_without_the_mark(make: Any) -> None:
    client = await make(retry=jimeng.RetryPolicy(jitter=0, retry_ambiguous_submit=True))
    server = server_of(client)
    server.inject("submit", kind="reset")
    handle = await client.images.submit("a cat")
    assert handle.id
    assert server.requests["submit"] == 2


@pytest.mark.parametrize(
    ("fault", "error", "submits"),
    [
        ({"status": 429}, None, 2),  # a refusal: resent, then accepted
        ({"status": 400, "code": 50400, "times": 1}, jimeng.APIError, 1),
    ],
)
async def test_refusals_are_not_ambiguous(
    make: Any, fault: dict[str, Any], error: type[Exception] | None, submits: int
) -> None:
    client = await make()
    server = server_of(client)
    server.inject("submit", kind="http", **fault)
    if error is None:
        await client.images.submit("a cat")
    else:
        with pytest.raises(error) as caught:
            await client.images.submit("a cat")
        assert getattr(caught.value, "maybe_accepted", None) is False
        assert "may have" not in str(caught.value)
    assert server.requests["submit"] == submits


# -- part 3: every error after acceptance carries the id ---------------------------------------


async def test_a_bug_while_polling_carries_the_task_id(
    make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jimeng.backends.volcengine import _wire

    client = await make()
    accepted: list[Task] = []

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise AttributeError("'NoneType' object has no attribute 'get'")

    monkeypatch.setattr(_wire, "parse_result", broken)
    with pytest.raises(AttributeError) as caught:
        await client.images.generate("a cat", on_submit=accepted.append)
    (task,) = accepted
    error: Any = caught.value
    assert error.task_id == task.id
    assert error.task_ref == task.ref
    if sys.version_info >= (3, 11):  # add_note: 3.11+; the attributes alone on 3.10
        assert error.__notes__ == [
            f"jimeng: task {task.id} keeps running server-side; "
            f"resume it with client.tasks.resume({task.ref!r})"
        ]


async def test_a_bug_in_a_handles_result_carries_the_task_id(
    make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without generate(): the handle itself attaches the id."""
    from jimeng.backends.volcengine import _wire

    client = await make()
    handle = await client.images.submit("a cat")
    monkeypatch.setattr(_wire, "parse_result", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError) as caught:
        await handle.result()
    assert getattr(caught.value, "task_id", None) == handle.id
    if sys.version_info >= (3, 11):  # add_note: 3.11+
        assert len(caught.value.__notes__) == 1  # attached once, not at every level


async def test_a_cancelled_wait_carries_the_task_id(sleeps: Sleeps) -> None:
    blocked = asyncio.Event()

    async def forever(_: float) -> None:
        blocked.set()
        await asyncio.Event().wait()

    sandbox = Sandbox(stages=Stages(queue_polls=5))
    async with jimeng.Client(sandbox, sleep=forever) as client:
        handle = await client.images.submit("a cat")
        waiting = asyncio.create_task(handle.result())
        await blocked.wait()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError) as caught:
            await waiting
    error: Any = caught.value
    assert error.task_id == handle.id
    assert error.task_ref == handle.ref


@pytest.mark.parametrize("journal", [False, True], ids=["no journal", "journal"])
@pytest.mark.parametrize(
    ("fault", "options", "use"),
    [
        ("truncate", {}, "save"),
        ("http", {"status": 404}, "save"),
        ("http", {"status": 404}, "read"),
    ],
)
async def test_a_failed_download_of_a_result_carries_the_task_id(
    sleeps: Sleeps,
    tmp_path: Any,
    journal: bool,
    fault: Any,
    options: dict[str, Any],
    use: str,
) -> None:
    sandbox = Sandbox(stages=Stages())
    store = tmp_path / "journal.sqlite3" if journal else False
    async with jimeng.Client(sandbox, sleep=sleeps, journal=store) as client:
        handle = await client.images.submit("a cat", size="1K")
        result = await handle.result()
        sandbox.server.inject("download", fault, times=50, **options)
        with pytest.raises(jimeng.DownloadError) as caught:
            if use == "save":
                await result.save(tmp_path / "out/")
            else:
                await result.images[0].read()
    assert (caught.value.task_id, caught.value.task_ref) == (handle.id, handle.ref)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


async def test_a_cancelled_save_carries_the_task_id(tmp_path: Any) -> None:
    retrying = asyncio.Event()

    async def sleep(seconds: float) -> None:  # instant, except before a download's retry
        if sandbox.server.requests["download"]:
            retrying.set()
            await asyncio.Event().wait()

    sandbox = Sandbox(stages=Stages())
    async with jimeng.Client(sandbox, sleep=sleep) as client:
        handle = await client.images.submit("a cat", size="1K")
        result = await handle.result()
        sandbox.server.inject("download", "http", status=503, times=1)
        saving = asyncio.create_task(result.save(tmp_path))
        await retrying.wait()
        saving.cancel()
        with pytest.raises(asyncio.CancelledError) as caught:
            await saving
    error: Any = caught.value
    assert (error.task_id, error.task_ref) == (handle.id, handle.ref)
    if sys.version_info >= (3, 11):
        assert error.__notes__ == [
            f"jimeng: task {handle.id} is on the server; resume it with "
            f"client.tasks.resume({handle.ref!r})"
        ]
    assert list(tmp_path.iterdir()) == []


async def test_refresh_keeps_the_id_through_connection_errors(make: Any) -> None:
    client = await make()
    server = server_of(client)
    handle = await client.images.submit("a cat")
    before = handle.task
    server.inject("poll", kind="reset", times=RETRY.max_attempts)
    with pytest.raises(jimeng.APIConnectionError) as caught:
        await handle.refresh()
    assert caught.value.task_id == handle.id
    assert caught.value.task_ref == handle.ref
    assert handle.task is before  # the handle still knows its task…
    task = await handle.refresh()  # …and the next try works
    assert task.done and task.id == before.id


def test_gateway_local_ids_of_failed_sync_answers_are_unique() -> None:
    error = jimeng.APIError("upstream failed", code=-2007)
    first = gateway_wire.failed_sync_task(error, kind=TaskKind.IMAGE, model=None)
    second = gateway_wire.failed_sync_task(error, kind=TaskKind.IMAGE, model=None)
    assert first.id != second.id
    assert first.id.startswith("sync-failed-") and len(first.id) == len("sync-failed-") + 16
    assert first.ref == first.id
