"""The task journal: the SQLite store, what the client writes, and resuming from it."""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import stat
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest

import jimeng
from jimeng import _logging
from jimeng._journal import (
    JournalEntry,
    JournalStore,
    JournalUpdate,
    ResultLink,
    SQLiteJournal,
    configuration_fingerprint,
    default_home,
    open_store,
)
from jimeng.models import TaskKind, TaskStatus
from jimeng.sandbox import RELAY_PATH, SANDBOX_RELAY_KEY, SandboxServer, Stages, build_server

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


def entry(ref: str = "key:1", **changes: Any) -> JournalEntry:
    values: dict[str, Any] = {
        "ref": ref,
        "task_id": ref.rpartition(":")[2],
        "backend": "volcengine",
        "protocol": "volcengine",
        "fingerprint": "f" * 16,
        "kind": TaskKind.IMAGE,
        "status": TaskStatus.QUEUED,
        "submitted_at": T0,
        "updated_at": T0,
        "model": "key",
        "context": {"req_json": '{"return_url":false}', "pixels": (1024, 768)},
    }
    values.update(changes)
    return JournalEntry(**values)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteJournal]:
    journal = SQLiteJournal(tmp_path / "j" / "journal.sqlite3")
    yield journal
    await journal.aclose()


# -- the store ---------------------------------------------------------------------------------


async def test_store_round_trip_and_lookup_by_ref_or_id(store: SQLiteJournal) -> None:
    await store.record(entry())
    found = await store.get("key:1")
    assert found == entry(context={"req_json": '{"return_url":false}', "pixels": [1024, 768]})
    assert await store.get("1") == found  # the bare task id finds it too
    assert await store.get("1", backend="dreamina") is None
    assert await store.get("key:2") is None


async def test_store_file_is_wal_and_private(store: SQLiteJournal) -> None:
    await store.record(entry())
    with sqlite3.connect(store.path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700


async def test_update_keeps_links_and_never_resurrects_a_finished_task(
    store: SQLiteJournal,
) -> None:
    await store.record(entry())
    link = ResultLink(url="https://cdn.example/1.png", expires_at=T0 + timedelta(hours=1))
    done = JournalUpdate(
        status=TaskStatus.SUCCEEDED,
        raw_status="done",
        updated_at=T0 + timedelta(seconds=9),
        completed_at=T0 + timedelta(seconds=9),
        results=(link,),
    )
    await store.update("volcengine", "key:1", done)
    late = JournalUpdate(status=TaskStatus.RUNNING, updated_at=T0 + timedelta(seconds=10))
    await store.update("volcengine", "key:1", late)  # a slower process's stale observation
    await store.update("volcengine", "nope", done)  # unknown: ignored
    found = await store.get("key:1")
    assert found is not None
    assert found.status is TaskStatus.SUCCEEDED
    assert found.results == (link,)
    assert found.completed_at == T0 + timedelta(seconds=9)
    await store.add_saved("volcengine", "key:1", ["/tmp/a.png"])
    await store.add_saved("volcengine", "key:1", ["/tmp/a.png", "/tmp/b.png"])
    found = await store.get("key:1")
    assert found is not None and found.saved == ("/tmp/a.png", "/tmp/b.png")


async def test_unfinished_and_history_filters(store: SQLiteJournal) -> None:
    await store.record(entry("k:1", status=TaskStatus.SUCCEEDED))
    await store.record(entry("k:2", submitted_at=T0 + timedelta(minutes=1)))
    await store.record(
        entry("k:3", kind=TaskKind.VIDEO, submitted_at=T0 + timedelta(minutes=2), fingerprint="x")
    )
    await store.record(
        entry(
            "k:4",
            backend="dreamina",
            status=TaskStatus.RUNNING,
            submitted_at=T0 - timedelta(minutes=1),
        )
    )
    refs = [e.ref for e in await store.unfinished()]
    assert refs == ["k:4", "k:2", "k:3"]  # oldest first
    assert [e.ref for e in await store.unfinished(backend="volcengine")] == ["k:2", "k:3"]
    assert [e.ref for e in await store.unfinished(fingerprint="x")] == ["k:3"]
    assert [e.ref for e in await store.history()] == ["k:3", "k:2", "k:1", "k:4"]
    assert [e.ref for e in await store.history(status=TaskStatus.SUCCEEDED)] == ["k:1"]
    assert [e.ref for e in await store.history(kind=TaskKind.VIDEO)] == ["k:3"]
    since = T0 + timedelta(seconds=30)
    assert [e.ref for e in await store.history(since=since)] == ["k:3", "k:2"]
    assert [e.ref for e in await store.history(since=since, limit=1)] == ["k:3"]
    assert [e.ref for e in await store.history(backend="dreamina")] == ["k:4"]


async def test_meta_round_trip(store: SQLiteJournal) -> None:
    assert await store.get_meta("poll:volcengine:image") is None
    await store.put_meta("poll:volcengine:image", {"median": 7.5, "samples": [6, 7, 9]})
    await store.put_meta("other", [1, "two"])
    assert await store.get_meta("poll:volcengine:image") == {
        "median": 7.5,
        "samples": [6, 7, 9],
    }
    await store.put_meta("other", "replaced")
    assert await store.get_meta("other") == "replaced"


async def test_two_stores_on_one_file_see_each_other(tmp_path: Path) -> None:
    """Two processes share one file: a second connection reads what the first committed."""
    path = tmp_path / "shared.sqlite3"
    first, second = SQLiteJournal(path), SQLiteJournal(path)
    try:
        await first.record(entry())
        await second.update(
            "volcengine", "key:1", JournalUpdate(status=TaskStatus.RUNNING, updated_at=T0)
        )
        found = await first.get("key:1")
        assert found is not None and found.status is TaskStatus.RUNNING
    finally:
        await first.aclose()
        await second.aclose()


async def test_store_reopens_after_close(store: SQLiteJournal) -> None:
    await store.record(entry())
    await store.aclose()
    assert (await store.get("key:1")) is not None


# -- choosing a journal ------------------------------------------------------------------------


def test_default_home_follows_jimeng_home_then_xdg(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("JIMENG_HOME", str(tmp_path / "home"))
    assert default_home() == tmp_path / "home"
    monkeypatch.delenv("JIMENG_HOME")
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_home() == tmp_path / "xdg" / "jimeng"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_home() == Path.home() / ".local" / "share" / "jimeng"


@pytest.mark.parametrize(
    ("env", "expected"),
    [("", None), ("0", None), ("off", None), ("1", "home"), ("TRUE", "home"), ("x.db", "x.db")],
)
def test_jimeng_journal_environment(
    monkeypatch: pytest.MonkeyPatch, jimeng_home: Path, env: str, expected: str | None
) -> None:
    monkeypatch.setenv("JIMENG_JOURNAL", env)
    store, owned = open_store(None)
    if expected is None:
        assert store is None
        return
    assert isinstance(store, SQLiteJournal) and owned
    wanted = jimeng_home / "journal.sqlite3" if expected == "home" else Path(expected)
    assert store.path == wanted


def test_journal_argument_is_checked() -> None:
    with pytest.raises(jimeng.ValidationError, match="journal: must be True, False, a path"):
        jimeng.Client(jimeng.Sandbox(), journal=42)  # type: ignore[arg-type]
    assert jimeng.Client(jimeng.Sandbox(), journal=False).journal is None
    assert jimeng.Client(jimeng.Sandbox()).journal is None  # off unless asked


# -- what the client writes --------------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[SandboxServer]:
    """A sandbox serving like another process would: clients connect by URL."""
    async with build_server(stages=Stages(queue_polls=1, generate_polls=1)) as running:
        yield running


def client_for(server: SandboxServer, journal: Any, **options: Any) -> jimeng.Client:
    async def no_sleep(_: float) -> None:
        return None

    return jimeng.Client(
        jimeng.Sandbox(url=server.url, **options),
        journal=journal,
        sleep=no_sleep,
        rng=random.Random(0),
    )


async def test_accepted_task_is_journalled_before_submit_returns(
    server: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "journal.sqlite3"
    caplog.set_level(logging.INFO, logger="jimeng")
    async with client_for(server, path) as client:
        handle = await client.images.submit("a cat", watermark=True, return_url=False)
        # Another process (another connection) already sees it, with the poll options.
        reader = SQLiteJournal(path)
        found = await reader.get(handle.ref)
        assert found is not None
        assert found.status is TaskStatus.QUEUED
        assert found.backend == "sandbox" and found.protocol == "volcengine"
        assert found.fingerprint == configuration_fingerprint(client.backend)
        assert found.context["req_json"] == handle.task.context["req_json"]
        assert '"return_url": false' in found.context["req_json"].replace('":false', '": false')
        assert '"add_logo"' in found.context["req_json"]
        assert f"accepted image task {handle.id} (ref {handle.ref})" in caplog.text

        result = await handle.result()
        paths = await result.save(tmp_path / "out/")
        found = await reader.get(handle.ref)
        assert found is not None
        assert found.status is TaskStatus.SUCCEEDED and found.completed_at is not None
        assert found.saved == tuple(str(p.resolve()) for p in paths)
        await reader.aclose()


async def test_result_links_are_kept_with_expiry(server: SandboxServer, tmp_path: Path) -> None:
    async with client_for(server, tmp_path / "j.sqlite3") as client:
        result = await client.images.generate("a dog")
        (found,) = await client.tasks.history()
    assert found.status is TaskStatus.SUCCEEDED
    assert [link.url for link in found.results] == result.urls
    assert found.results[0].url.startswith(server.url + "/media/")


async def test_resume_uses_the_journalled_options(server: SandboxServer, tmp_path: Path) -> None:
    """Submitted with return_url=False and a watermark: a resumed task must poll with the same
    req_json (inline bytes, logo applied), not the default one (URLs)."""
    path = tmp_path / "journal.sqlite3"
    async with client_for(server, path) as client:
        handle = await client.images.submit("a cat", watermark=True, return_url=False)
        ref = handle.ref
    async with client_for(server, path) as client:
        result = await client.tasks.resume(ref).result()
        assert result.images[0].url is None and result.images[0].data is not None
        assert result.raw["data"].get("logo_applied") is True
    async with client_for(server, False) as client:  # without the journal: the defaults
        bare = await client.tasks.resume(ref).result()
        assert bare.images[0].url is not None
        assert "logo_applied" not in bare.raw["data"]


async def test_unfinished_restores_handles_and_finishes_them(
    server: SandboxServer, tmp_path: Path
) -> None:
    path = tmp_path / "journal.sqlite3"
    async with client_for(server, path) as client:
        first = await client.images.submit("one", return_url=False)
        second = await client.videos.submit("two", mode="t2v_720p", duration=5)
        done = await client.images.submit("three")
        await done.result()
    async with client_for(server, path) as client:
        handles = await client.tasks.unfinished()
        assert [h.ref for h in handles] == [first.ref, second.ref]
        assert [h.kind for h in handles] == [TaskKind.IMAGE, TaskKind.VIDEO]
        assert handles[0].task.context["req_json"] == first.task.context["req_json"]
        image = await handles[0].result()
        video = await handles[1].result()
        assert image.images[0].data is not None
        assert video.video.url is not None
        assert await client.tasks.unfinished() == []
        assert [e.status for e in await client.tasks.history(kind="video")] == [
            TaskStatus.SUCCEEDED
        ]
    assert server.requests["submit"] == 3


async def test_unfinished_only_for_the_same_endpoint(server: SandboxServer, tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    async with client_for(server, path) as client:
        await client.images.submit("one")
    async with client_for(server, path, protocol="volcengine-relay") as other:
        assert await other.tasks.unfinished() == []
        assert len(await other.tasks.history(all_backends=True)) == 1


async def test_a_task_looked_at_through_another_endpoint_keeps_its_record(
    server: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "journal.sqlite3"
    async with client_for(server, path) as client:
        handle = await client.images.submit("a cat")
    reader = SQLiteJournal(path)
    async with build_server() as elsewhere, client_for(elsewhere, path) as other:
        # The other sandbox never saw the task: asked there, it is "not found" (expired).
        seen = await other.tasks.get(handle.ref)
        assert seen.status is TaskStatus.EXPIRED
        with pytest.raises(jimeng.TaskError):
            await other.tasks.wait(handle.ref)
        assert await other.tasks.unfinished() == []
    found = await reader.get(handle.ref)
    assert found is not None
    assert (found.status, found.raw_status, found.completed_at) == (
        TaskStatus.QUEUED,
        "in_queue",
        None,
    )
    assert (
        f"journal: task {handle.ref} was submitted through another endpoint or account than "
        "this client's; what this client sees of it is not recorded"
    ) in caplog.text
    # Where it was submitted, it is still unfinished, and finishing it is recorded.
    async with client_for(server, path) as client:
        (resumed,) = await client.tasks.unfinished()
        assert resumed.ref == handle.ref
        result = await resumed.result()
        paths = await result.save(tmp_path / "out/")
    found = await reader.get(handle.ref)
    assert found is not None
    assert found.status is TaskStatus.SUCCEEDED
    assert found.saved == (str((tmp_path / "out" / paths[0].name).resolve()),)
    assert server.requests["submit"] == 1
    await reader.aclose()


async def test_a_task_looked_at_by_another_account_keeps_its_record(
    server: SandboxServer, tmp_path: Path
) -> None:
    path = tmp_path / "journal.sqlite3"
    endpoint = server.url + RELAY_PATH
    mine = jimeng.Volcengine(api_key=SANDBOX_RELAY_KEY, endpoint=endpoint)
    async with jimeng.Client(mine, journal=path) as client:
        handle = await client.images.submit("a cat")
    store = SQLiteJournal(path)
    entry = await store.get(handle.ref)
    assert entry is not None and entry.account == _logging.fingerprint(SANDBOX_RELAY_KEY)
    # Another key on the same endpoint: the same fingerprint, another account. (It sends
    # nothing: the sandbox knows one key. What it would see is handed to its journal.)
    theirs = jimeng.Volcengine(api_key="another-accounts-relay-key", endpoint=endpoint)
    async with jimeng.Client(theirs, journal=path) as other:
        assert configuration_fingerprint(theirs) == entry.fingerprint
        assert await other.tasks.unfinished() == []
        journal = other._shared.journal
        assert journal is not None
        await journal.observed(handle.task, attrs.evolve(handle.task, status=TaskStatus.EXPIRED))
        await journal.saved(handle.ref, [tmp_path / "theirs.png"])
    entry = await store.get(handle.ref)
    assert entry is not None and (entry.status, entry.saved) == (TaskStatus.QUEUED, ())
    async with jimeng.Client(mine, journal=path) as client:
        assert [h.ref for h in await client.tasks.unfinished()] == [handle.ref]
    await store.aclose()


async def test_without_a_journal_the_journal_api_says_how_to_get_one() -> None:
    client = jimeng.Client(jimeng.Sandbox())
    with pytest.raises(jimeng.ConfigurationError, match=r"Client\(journal=True\)"):
        await client.tasks.unfinished()
    with pytest.raises(jimeng.ConfigurationError, match="JIMENG_JOURNAL=1"):
        await client.tasks.history()


async def test_history_arguments_are_checked(tmp_path: Path) -> None:
    client = jimeng.Client(jimeng.Sandbox(), journal=tmp_path / "j.sqlite3")
    with pytest.raises(jimeng.ValidationError, match="status: unknown status 'done'"):
        await client.tasks.history(status="done")
    with pytest.raises(jimeng.ValidationError, match="kind: unknown kind"):
        await client.tasks.history(kind="audio")
    with pytest.raises(jimeng.ValidationError, match=r"limit: must be an integer >= 1, got 0"):
        await client.tasks.history(limit=0)
    with pytest.raises(jimeng.ValidationError, match="since: must be a datetime, got 'yesterday'"):
        await client.tasks.history(since="yesterday")  # type: ignore[arg-type]
    await client.aclose()


class BrokenStore(JournalStore):
    """A store whose disk is full."""

    async def record(self, entry: JournalEntry) -> None:
        raise OSError(28, "No space left on device")

    async def update(self, backend: str, ref: str, change: JournalUpdate) -> None:
        raise OSError(28, "No space left on device")

    async def add_saved(self, backend: str, ref: str, paths: Sequence[str]) -> None:
        raise OSError(28, "No space left on device")

    async def get(self, ref: str, *, backend: str | None = None) -> JournalEntry | None:
        raise OSError(28, "No space left on device")

    async def unfinished(
        self, *, backend: str | None = None, fingerprint: str | None = None
    ) -> list[JournalEntry]:
        return []

    async def history(self, **filters: Any) -> list[JournalEntry]:
        return []

    async def get_meta(self, key: str) -> Any:
        return None

    async def put_meta(self, key: str, value: Any) -> None:
        return None


async def test_a_failing_store_never_fails_the_task(
    server: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="jimeng")
    async with client_for(server, BrokenStore()) as client:
        result = await client.images.generate("a cat")
        await result.save(tmp_path / "out/")
    assert result.task_id is not None
    ref = f"{result.raw.get('req_key', '')}"
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        m.startswith("journal: could not record task ") and "No space left on device" in m
        for m in messages
    ), messages
    assert any(m.startswith("journal: could not add saved files to task ") for m in messages)
    del ref


# -- no secret is ever written -----------------------------------------------------------------

CANARY_AK = "AKLTcanary0000access0000key00000"
CANARY_SK = "canary-secret-key-00000000000000000=="
CANARY_SESSION = "canary-session-id-0000000000000000"
CANARY_BEARER = "sk-canary-bearer-00000000000000000"


async def test_no_secret_reaches_the_journal_file(server: SandboxServer, tmp_path: Path) -> None:
    from jimeng.sandbox import (
        SANDBOX_ACCESS_KEY,
        SANDBOX_GATEWAY_TOKEN,
        SANDBOX_RELAY_KEY,
        SANDBOX_SECRET_KEY,
    )
    from jimeng.sandbox._dreamina import SANDBOX_TOKENS

    for canary in (CANARY_AK, CANARY_SK, CANARY_SESSION, CANARY_BEARER):
        _logging.register_secret(canary)
    path = tmp_path / "journal.sqlite3"
    for protocol in ("volcengine", "volcengine-relay", "dreamina", "gateway"):
        async with client_for(server, path, protocol=protocol) as client:
            result = await client.images.generate("a cat")
            await result.save(tmp_path / "out/")
            await client.images.submit("left unfinished")
    store = SQLiteJournal(path)
    # Secrets handed to the journal by mistake are scrubbed too.
    await store.record(
        entry("k:canary", context={"token": CANARY_SESSION, "nested": [CANARY_BEARER]})
    )
    await store.put_meta("estimates", {"key": CANARY_AK, "note": f"sk={CANARY_SK}"})
    assert len(await store.history()) == 9
    await store.aclose()
    data = b"".join(p.read_bytes() for p in tmp_path.glob("journal.sqlite3*"))
    assert b"sandbox" in data  # the file is readable text where it matters
    for secret in (
        CANARY_AK,
        CANARY_SK,
        CANARY_SESSION,
        CANARY_BEARER,
        SANDBOX_ACCESS_KEY,
        SANDBOX_SECRET_KEY,
        SANDBOX_RELAY_KEY,
        SANDBOX_GATEWAY_TOKEN,
        SANDBOX_TOKENS,
    ):
        assert secret.encode() not in data, secret
    assert os.environ.get("JIMENG_JOURNAL") is None


def test_the_suite_never_journals_in_the_users_data_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A test that clears JIMENG_* (to isolate a CLI run) still lands in a temporary folder.
    monkeypatch.delenv("JIMENG_HOME")
    monkeypatch.setattr("sys.platform", "linux")
    assert Path.home() / ".local" / "share" not in default_home().parents
    assert default_home().name == "jimeng"


async def test_a_cancelled_task_leaves_the_unfinished_list(
    server: SandboxServer, tmp_path: Path
) -> None:
    async with client_for(server, tmp_path / "j.sqlite3") as client:
        handle = await client.images.submit("a cat")
        assert [h.ref for h in await client.tasks.unfinished()] == [handle.ref]
        await handle.cancel()
        assert await client.tasks.unfinished() == []
        (entry,) = await client.tasks.history()
        assert entry.status is TaskStatus.CANCELLED
