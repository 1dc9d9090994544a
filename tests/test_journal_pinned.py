"""The task journal, pinned: the entries and rows the store writes and reads back, the SQL and
locking it uses, its error paths, the files' permissions, and what the recorder writes on each
event of a task's life (with an injected clock and an in-memory store)."""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest

from jimeng import _logging
from jimeng._journal import (
    JournalEntry,
    JournallingFetcher,
    JournalStore,
    JournalUpdate,
    Recorder,
    ResultLink,
    SQLiteJournal,
    configuration_fingerprint,
    default_home,
    journal_path,
    open_store,
    scrub,
)
from jimeng._journal._recorder import merge, parse_kind, parse_status, result_links
from jimeng._journal._sqlite import _epoch
from jimeng.errors import ValidationError
from jimeng.models import (
    Image,
    ImageResult,
    Task,
    TaskFailure,
    TaskKind,
    TaskStatus,
    Video,
    VideoResult,
)

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
EPOCH0 = 1777636800.0  # T0
SECRET = "pinned-journal-secret-0000000001"
_logging.register_secret(SECRET)


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
    }
    values.update(changes)
    return JournalEntry(**values)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteJournal]:
    journal = SQLiteJournal(tmp_path / "j" / "journal.sqlite3")
    yield journal
    await journal.aclose()


@pytest.fixture
def open_umask() -> Iterator[None]:
    """No umask: the modes on disk are exactly the ones the store asked for."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def raw_rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


# -- where the journal lives -------------------------------------------------------------------


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    home = tmp_path / "user"
    monkeypatch.setenv("HOME", str(home))
    for name in ("JIMENG_HOME", "XDG_DATA_HOME", "LOCALAPPDATA", "APPDATA"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.mark.parametrize(
    ("platform", "env", "expected"),
    [
        ("linux", {"JIMENG_HOME": "~/jh"}, "~/jh"),
        ("win32", {"JIMENG_HOME": "/srv/jh"}, "/srv/jh"),
        ("linux", {"JIMENG_HOME": ""}, "~/.local/share/jimeng"),
        ("linux", {"XDG_DATA_HOME": "/data"}, "/data/jimeng"),
        ("linux", {"XDG_DATA_HOME": ""}, "~/.local/share/jimeng"),
        ("darwin", {"XDG_DATA_HOME": "/data"}, "~/Library/Application Support/jimeng"),
        ("win32", {"LOCALAPPDATA": "/w/local", "APPDATA": "/w/roaming"}, "/w/local/jimeng"),
        ("win32", {"LOCALAPPDATA": "", "APPDATA": "/w/roaming"}, "/w/roaming/jimeng"),
        ("win32", {"APPDATA": "/w/roaming"}, "/w/roaming/jimeng"),
        ("win32", {"XDG_DATA_HOME": "/data"}, "~/AppData/Local/jimeng"),
    ],
)
def test_default_home_per_platform(
    monkeypatch: pytest.MonkeyPatch,
    bare_env: Path,
    platform: str,
    env: dict[str, str],
    expected: str,
) -> None:
    monkeypatch.setattr("sys.platform", platform)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    wanted = bare_env / expected[2:] if expected.startswith("~/") else Path(expected)
    assert default_home() == wanted
    assert journal_path() == wanted / "journal.sqlite3"


# -- scrub and the entry's JSON ----------------------------------------------------------------


class Colour(enum.Enum):
    RED = (1, 2)


class Opaque:
    def __str__(self) -> str:
        return f"opaque {SECRET}"


def test_scrub_turns_anything_into_json_without_secrets() -> None:
    value = {
        "text": f"token={SECRET}",
        SECRET: 1,
        3: (1, 2.5, True, None),
        "when": datetime(2026, 5, 1, 12, 0),
        "status": TaskStatus.QUEUED,
        "colour": Colour.RED,
        "set": frozenset({"x"}),
        "plain set": {SECRET},
        "list": [Opaque()],
    }
    assert scrub(value) == {
        "text": "token=<redacted>",
        "<redacted>": 1,
        "3": [1, 2.5, True, None],
        "when": "2026-05-01T12:00:00",
        "status": "queued",
        "colour": [1, 2],
        "set": ["x"],
        "plain set": ["<redacted>"],
        "list": ["opaque <redacted>"],
    }
    for plain in (None, True, False, 0, 7, 2.5):
        assert scrub(plain) is plain
    assert scrub(Opaque()) == "opaque <redacted>"


FULL = JournalEntry(
    ref="key:7",
    task_id="7",
    backend="sandbox",
    protocol="volcengine",
    fingerprint="0123456789abcdef",
    kind=TaskKind.VIDEO,
    status=TaskStatus.FAILED,
    submitted_at=T0,
    updated_at=T0 + timedelta(seconds=5),
    model="seedance",
    raw_status="not_found",
    context={"req_json": "{}", "size": (1, 2), "token": SECRET},
    completed_at=T0 + timedelta(seconds=9),
    results=(
        ResultLink(url=f"https://cdn.example/1.mp4?s={SECRET}", expires_at=T0 + timedelta(hours=1)),
        ResultLink(url="https://cdn.example/2.mp4"),
    ),
    saved=("/tmp/a.mp4", "/tmp/b.mp4"),
    failure="[50] boom",
    account="…0badf00d",
)
FULL_JSON = {
    "ref": "key:7",
    "task_id": "7",
    "backend": "sandbox",
    "protocol": "volcengine",
    "fingerprint": "0123456789abcdef",
    "account": "…0badf00d",
    "kind": "video",
    "status": "failed",
    "submitted_at": "2026-05-01T12:00:00+00:00",
    "updated_at": "2026-05-01T12:00:05+00:00",
    "model": "seedance",
    "raw_status": "not_found",
    "context": {"req_json": "{}", "size": [1, 2], "token": "<redacted>"},
    "completed_at": "2026-05-01T12:00:09+00:00",
    "results": [
        {
            "url": "https://cdn.example/1.mp4?s=<redacted>",
            "expires_at": "2026-05-01T13:00:00+00:00",
        },
        {"url": "https://cdn.example/2.mp4", "expires_at": None},
    ],
    "saved": ["/tmp/a.mp4", "/tmp/b.mp4"],
    "failure": "[50] boom",
}


def test_entry_json_is_exact_and_round_trips() -> None:
    assert FULL.to_json() == FULL_JSON
    back = JournalEntry.from_json(FULL_JSON)
    assert back == JournalEntry(
        ref="key:7",
        task_id="7",
        backend="sandbox",
        protocol="volcengine",
        fingerprint="0123456789abcdef",
        kind=TaskKind.VIDEO,
        status=TaskStatus.FAILED,
        submitted_at=T0,
        updated_at=T0 + timedelta(seconds=5),
        model="seedance",
        raw_status="not_found",
        context={"req_json": "{}", "size": [1, 2], "token": "<redacted>"},
        completed_at=T0 + timedelta(seconds=9),
        results=(
            ResultLink(
                url="https://cdn.example/1.mp4?s=<redacted>", expires_at=T0 + timedelta(hours=1)
            ),
            ResultLink(url="https://cdn.example/2.mp4", expires_at=None),
        ),
        saved=("/tmp/a.mp4", "/tmp/b.mp4"),
        failure="[50] boom",
        account="…0badf00d",
    )
    assert back.done and not entry().done


def test_entry_from_minimal_json_fills_the_defaults() -> None:
    minimal = {
        "ref": 11,
        "task_id": 12,
        "backend": "dreamina",
        "kind": "image",
        "submitted_at": "2026-05-01T12:00:00",  # naive: read as UTC
    }
    assert JournalEntry.from_json(minimal) == JournalEntry(
        ref="11",
        task_id="12",
        backend="dreamina",
        protocol="dreamina",
        fingerprint="",
        kind=TaskKind.IMAGE,
        status=TaskStatus.UNKNOWN,
        submitted_at=T0,
        updated_at=T0,
    )
    odd = {
        **minimal,
        "protocol": "",
        "fingerprint": None,
        "status": "paused",  # a state this version does not know
        "updated_at": "2026-05-01T20:00:00+08:00",
        "context": None,
        "results": [{"url": 5}],
        "saved": [7],
    }
    found = JournalEntry.from_json(odd)
    assert (found.protocol, found.fingerprint, found.status) == ("dreamina", "", TaskStatus.UNKNOWN)
    assert found.updated_at == T0 and found.updated_at.utcoffset() == timedelta(hours=8)
    assert found.context == {}
    assert found.results == (ResultLink(url="5", expires_at=None),)
    assert found.saved == ("7",)
    assert JournalEntry.from_json({**minimal, "status": "running"}).status is TaskStatus.RUNNING


def test_entry_from_json_needs_the_identifying_fields() -> None:
    with pytest.raises(KeyError, match="submitted_at"):
        JournalEntry.from_json({"ref": "x"})
    with pytest.raises(ValueError, match="'audio' is not a valid TaskKind"):
        JournalEntry.from_json(
            {"ref": "x", "task_id": "x", "backend": "b", "kind": "audio", "submitted_at": T0}
        )


LINK = ResultLink(url="https://cdn.example/1.png")
LATER = T0 + timedelta(seconds=30)


@pytest.mark.parametrize(
    ("before", "change", "after"),
    [
        (  # live -> live: status, raw status and time move; nothing else is invented
            entry(raw_status="in_queue", failure="old"),
            JournalUpdate(status=TaskStatus.RUNNING, updated_at=LATER),
            entry(status=TaskStatus.RUNNING, updated_at=LATER, failure="old"),
        ),
        (  # live -> done: completion, links and failure recorded
            entry(),
            JournalUpdate(
                status=TaskStatus.FAILED,
                raw_status="failed",
                updated_at=LATER,
                completed_at=LATER,
                results=(LINK,),
                failure="[1] no",
            ),
            entry(
                status=TaskStatus.FAILED,
                raw_status="failed",
                updated_at=LATER,
                completed_at=LATER,
                results=(LINK,),
                failure="[1] no",
            ),
        ),
        (  # done -> live: a slower process's stale observation changes nothing
            entry(status=TaskStatus.SUCCEEDED, completed_at=T0, results=(LINK,)),
            JournalUpdate(status=TaskStatus.RUNNING, raw_status="running", updated_at=LATER),
            entry(status=TaskStatus.SUCCEEDED, completed_at=T0, results=(LINK,)),
        ),
        (  # done -> done: the newer terminal word wins, known links and time are kept
            entry(status=TaskStatus.SUCCEEDED, completed_at=T0, results=(LINK,)),
            JournalUpdate(status=TaskStatus.EXPIRED, updated_at=LATER),
            entry(status=TaskStatus.EXPIRED, updated_at=LATER, completed_at=T0, results=(LINK,)),
        ),
        (  # an empty tuple of links is a change, None is not
            entry(results=(LINK,)),
            JournalUpdate(status=TaskStatus.RUNNING, updated_at=LATER, results=()),
            entry(status=TaskStatus.RUNNING, updated_at=LATER, results=()),
        ),
    ],
)
def test_entry_evolve(before: JournalEntry, change: JournalUpdate, after: JournalEntry) -> None:
    assert before.evolve(change) == after


def test_a_finished_entry_comes_back_unchanged() -> None:
    done = entry(status=TaskStatus.CANCELLED)
    assert done.evolve(JournalUpdate(status=TaskStatus.QUEUED, updated_at=LATER)) is done


# -- the SQLite store: files, connection, SQL --------------------------------------------------


async def test_folder_and_files_are_private(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "a" / "b" / "journal.sqlite3"
    journal = SQLiteJournal(path)
    await journal.record(entry())
    try:
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        for suffix in ("", "-wal", "-shm"):
            assert stat.S_IMODE(Path(f"{path}{suffix}").stat().st_mode) == 0o600, suffix
    finally:
        await journal.aclose()


async def test_an_existing_folder_is_used_as_it_is(tmp_path: Path, open_umask: None) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o750)
    journal = SQLiteJournal(folder / "journal.sqlite3")
    await journal.record(entry())
    await journal.aclose()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750
    assert stat.S_IMODE((folder / "journal.sqlite3").stat().st_mode) == 0o600


def test_path_and_repr(tmp_path: Path, bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = SQLiteJournal(tmp_path / "j.sqlite3")
    assert repr(journal) == f"SQLiteJournal('{tmp_path}/j.sqlite3')"
    assert journal.busy_timeout == 30.0
    assert SQLiteJournal("~/x/j.sqlite3").path == bare_env / "x" / "j.sqlite3"
    monkeypatch.setenv("JIMENG_HOME", str(tmp_path / "home"))
    assert SQLiteJournal().path == tmp_path / "home" / "journal.sqlite3"


async def test_one_named_worker_thread_and_the_connection_settings(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "j.sqlite3", busy_timeout=2.5)

    def settings(connection: sqlite3.Connection) -> tuple[Any, ...]:
        return (
            threading.current_thread().name,
            connection.execute("PRAGMA busy_timeout").fetchone()[0],
            connection.execute("PRAGMA journal_mode").fetchone()[0],
            connection.execute("PRAGMA synchronous").fetchone()[0],
            connection.in_transaction,
            connection.isolation_level,
        )

    try:
        assert await journal._call(settings) == ("jimeng-journal_0", 2500, "wal", 1, False, None)
        worker = journal._worker
        assert worker is not None and worker.executor._max_workers == 1
        await journal.record(entry())  # FULL for this commit only, then NORMAL again
        assert await journal._call(settings) == ("jimeng-journal_0", 2500, "wal", 1, False, None)
        assert journal._worker is worker
    finally:
        await journal.aclose()
    assert journal._worker is None
    # Used again after closing: a fresh worker and connection.
    assert await journal._call(settings) == ("jimeng-journal_0", 2500, "wal", 1, False, None)
    await journal.aclose()
    default = SQLiteJournal(tmp_path / "d.sqlite3")
    assert (await default._call(settings))[1] == 30000
    await default.aclose()


async def test_the_schema_is_created_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    statements: list[str] = []
    connect = sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection: sqlite3.Connection = connect(*args, **kwargs)
        connection.set_trace_callback(statements.append)
        return connection

    monkeypatch.setattr(sqlite3, "connect", traced)
    path = tmp_path / "j.sqlite3"
    journal = SQLiteJournal(path, busy_timeout=1.5)
    await journal.get("nothing")
    await journal.aclose()
    settings = [
        "PRAGMA busy_timeout = 1500",
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = NORMAL",
        "PRAGMA user_version",
    ]
    assert [" ".join(s.split()[:6]) for s in statements[:-1]] == [
        *settings,
        "BEGIN IMMEDIATE",
        "CREATE TABLE IF NOT EXISTS tasks",
        "CREATE INDEX IF NOT EXISTS tasks_by_status",
        "CREATE INDEX IF NOT EXISTS tasks_by_time",
        "CREATE INDEX IF NOT EXISTS tasks_by_id",
        "CREATE TABLE IF NOT EXISTS meta",
        "PRAGMA user_version = 1",
        "COMMIT",
    ]
    assert statements[-1].startswith("SELECT entry FROM tasks")
    statements.clear()
    again = SQLiteJournal(path, busy_timeout=1.5)
    await again.get("nothing")
    await again.aclose()
    assert statements[:-1] == settings  # already current: no migration, no write lock
    names = raw_rows(path, "SELECT type, name FROM sqlite_master ORDER BY name")
    assert names == [
        ("table", "meta"),
        ("index", "sqlite_autoindex_meta_1"),
        ("index", "sqlite_autoindex_tasks_1"),
        ("table", "tasks"),
        ("index", "tasks_by_id"),
        ("index", "tasks_by_status"),
        ("index", "tasks_by_time"),
    ]
    assert raw_rows(path, "PRAGMA user_version") == [(1,)]
    # A journal at the current version opens without the write lock: a reader is not held up
    # by a writer in another process.
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        reader = SQLiteJournal(path, busy_timeout=0)
        assert await reader.history() == []
        await reader.aclose()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


async def test_the_sql_each_call_runs(store: SQLiteJournal) -> None:
    """The durable write of an accepted task (FULL sync for its commit only); read-change-write
    under one write lock; the filters as bound parameters."""
    statements: list[str] = []
    await store._call(lambda connection: connection.set_trace_callback(statements.append))

    async def run(call: Any) -> list[str]:
        statements.clear()
        await call
        return list(statements)

    insert = (
        "INSERT OR REPLACE INTO tasks (backend, ref, task_id, kind, status, submitted_at, entry)"
        f" VALUES ('volcengine', 'key:1', '1', 'image', %s, {EPOCH0}, '"
    )
    ran = await run(store.record(entry()))
    assert [ran[0], ran[2]] == ["PRAGMA synchronous = FULL", "PRAGMA synchronous = NORMAL"]
    assert ran[1].startswith(insert % "'queued'") and len(ran) == 3

    select = "SELECT entry FROM tasks WHERE backend = 'volcengine' AND ref = 'key:1'"
    running = JournalUpdate(status=TaskStatus.RUNNING, updated_at=T0)
    ran = await run(store.update("volcengine", "key:1", running))
    assert [ran[0], ran[1], ran[3]] == ["BEGIN IMMEDIATE", select, "COMMIT"]
    assert ran[2].startswith(insert % "'running'") and len(ran) == 4
    # The same observation again writes nothing; an unknown task neither.
    assert await run(store.update("volcengine", "key:1", running)) == [
        "BEGIN IMMEDIATE",
        select,
        "COMMIT",
    ]
    assert await run(store.add_saved("volcengine", "nope", ["/a"])) == [
        "BEGIN IMMEDIATE",
        "SELECT entry FROM tasks WHERE backend = 'volcengine' AND ref = 'nope'",
        "COMMIT",
    ]

    assert await run(store.get("key:1")) == [
        "SELECT entry FROM tasks WHERE (ref = 'key:1' OR task_id = 'key:1')"
        " ORDER BY submitted_at DESC LIMIT 1"
    ]
    assert await run(store.get("1", backend="dreamina")) == [
        "SELECT entry FROM tasks WHERE (ref = '1' OR task_id = '1') AND backend = 'dreamina'"
        " ORDER BY submitted_at DESC LIMIT 1"
    ]
    unfinished = (
        "SELECT entry FROM tasks WHERE status NOT IN"
        " ('succeeded', 'failed', 'cancelled', 'expired')"
    )
    assert await run(store.unfinished()) == [unfinished + " ORDER BY submitted_at"]
    assert await run(store.unfinished(backend="sandbox", fingerprint="x")) == [
        unfinished + " AND backend = 'sandbox' ORDER BY submitted_at"
    ]
    assert await run(store.history()) == ["SELECT entry FROM tasks ORDER BY submitted_at DESC"]
    assert await run(
        store.history(
            status=TaskStatus.QUEUED,
            kind=TaskKind.IMAGE,
            since=T0,
            backend="volcengine",
            limit=5,
        )
    ) == [
        "SELECT entry FROM tasks WHERE status = 'queued' AND kind = 'image'"
        f" AND backend = 'volcengine' AND submitted_at >= {EPOCH0}"
        " ORDER BY submitted_at DESC LIMIT 5"
    ]
    assert await run(store.get_meta("k")) == ["SELECT value FROM meta WHERE key = 'k'"]
    (put,) = await run(store.put_meta("k", 1))
    assert put.startswith("INSERT OR REPLACE INTO meta (key, value, updated_at) VALUES ('k', '1', ")


async def test_the_stored_row(store: SQLiteJournal) -> None:
    await store.record(
        entry(submitted_at=datetime(2026, 5, 1, 12, 0), context={"prompt": "猫", "key": SECRET})
    )
    await store.aclose()
    ((backend, ref, task_id, kind, status, submitted, text),) = raw_rows(
        store.path, "SELECT backend, ref, task_id, kind, status, submitted_at, entry FROM tasks"
    )
    assert (backend, ref, task_id, kind, status, submitted) == (
        "volcengine",
        "key:1",
        "1",
        "image",
        "queued",
        EPOCH0,  # a naive time is UTC
    )
    assert text == json.dumps(
        {
            "ref": "key:1",
            "task_id": "1",
            "backend": "volcengine",
            "protocol": "volcengine",
            "fingerprint": "ffffffffffffffff",
            "account": "",
            "kind": "image",
            "status": "queued",
            "submitted_at": "2026-05-01T12:00:00",
            "updated_at": "2026-05-01T12:00:00+00:00",
            "model": "key",
            "raw_status": None,
            "context": {"prompt": "猫", "key": "<redacted>"},
            "completed_at": None,
            "results": [],
            "saved": [],
            "failure": None,
        },
        ensure_ascii=False,
    )
    assert "猫" in text  # UTF-8 text, not \u escapes
    found = await store.get("key:1")
    assert found is not None and found.submitted_at == T0 and found.context["key"] == "<redacted>"


@pytest.fixture
def far_east(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's local time is UTC+8."""
    monkeypatch.setenv("TZ", "CST-8")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_epoch_reads_naive_times_as_utc(far_east: None) -> None:
    assert _epoch(datetime(2026, 5, 1, 12, 0)) == EPOCH0
    assert _epoch(T0) == EPOCH0
    assert _epoch(datetime(2026, 5, 1, 20, 0, tzinfo=timezone(timedelta(hours=8)))) == EPOCH0


async def test_meta_is_stored_as_scrubbed_utf8_json(store: SQLiteJournal) -> None:
    before = time.time()
    await store.put_meta("poll:volcengine:image", {"median": 7.5, "label": "猫", "k": SECRET})
    await store.put_meta("tuple", (1, 2))
    assert await store.get_meta("tuple") == [1, 2]
    assert await store.get_meta("poll:volcengine:image") == {
        "median": 7.5,
        "label": "猫",
        "k": "<redacted>",
    }
    await store.aclose()
    ((value, updated),) = raw_rows(
        store.path, "SELECT value, updated_at FROM meta WHERE key = 'poll:volcengine:image'"
    )
    assert value == '{"median": 7.5, "label": "猫", "k": "<redacted>"}'
    assert before <= updated <= time.time()


async def test_values_json_cannot_hold_are_refused(store: SQLiteJournal) -> None:
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        await store.put_meta("k", {"median": float("nan")})
    assert await store.get_meta("k") is None
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        await store.record(entry(context={"scale": float("inf")}))
    assert await store.history() == []
    # Anything else becomes text (scrubbed) rather than failing.
    await store.put_meta("k", Opaque())
    assert await store.get_meta("k") == "opaque <redacted>"


# -- the SQLite store: reading back ------------------------------------------------------------


async def test_get_finds_the_newest_entry_by_ref_or_task_id(store: SQLiteJournal) -> None:
    await store.record(entry("a:7", backend="volcengine"))
    await store.record(entry("b:7", backend="dreamina", submitted_at=T0 + timedelta(seconds=1)))
    await store.record(entry("c:7", backend="sandbox", submitted_at=T0 - timedelta(seconds=1)))
    found = await store.get("7")
    assert found is not None and found.ref == "b:7"
    found = await store.get("7", backend="volcengine")
    assert found is not None and found.ref == "a:7"
    found = await store.get("c:7")
    assert found is not None and found.ref == "c:7"
    assert await store.get("c:7", backend="volcengine") is None
    assert await store.get("8") is None


async def test_unfinished_and_history_order_and_filters(store: SQLiteJournal) -> None:
    def at(minutes: int) -> datetime:
        return T0 + timedelta(minutes=minutes)

    rows = [
        entry("k:1", status=TaskStatus.SUCCEEDED, submitted_at=at(0)),
        entry("k:2", status=TaskStatus.FAILED, submitted_at=at(1)),
        entry("k:3", status=TaskStatus.CANCELLED, submitted_at=at(2)),
        entry("k:4", status=TaskStatus.EXPIRED, submitted_at=at(3)),
        entry("k:5", status=TaskStatus.UNKNOWN, submitted_at=at(4), fingerprint="x"),
        entry("k:6", status=TaskStatus.RUNNING, submitted_at=at(-1), kind=TaskKind.VIDEO),
        entry("k:7", backend="dreamina", submitted_at=at(5), fingerprint="x"),
        entry("k:8", status=TaskStatus.QUEUED, submitted_at=at(6), kind=TaskKind.VIDEO),
    ]
    for row in reversed(rows):  # the order written does not matter
        await store.record(row)

    async def unfinished(**filters: Any) -> list[str]:
        return [e.ref for e in await store.unfinished(**filters)]

    async def history(**filters: Any) -> list[str]:
        return [e.ref for e in await store.history(**filters)]

    assert await unfinished() == ["k:6", "k:5", "k:7", "k:8"]
    assert await unfinished(backend="volcengine") == ["k:6", "k:5", "k:8"]
    assert await unfinished(fingerprint="x") == ["k:5", "k:7"]
    assert await unfinished(backend="volcengine", fingerprint="x") == ["k:5"]
    assert await unfinished(backend="nope") == []
    assert await history() == ["k:8", "k:7", "k:5", "k:4", "k:3", "k:2", "k:1", "k:6"]
    assert await history(status=TaskStatus.QUEUED) == ["k:8", "k:7"]
    assert await history(status=TaskStatus.QUEUED, kind=TaskKind.VIDEO) == ["k:8"]
    assert await history(status=TaskStatus.QUEUED, backend="volcengine") == ["k:8"]
    assert await history(kind=TaskKind.VIDEO) == ["k:8", "k:6"]
    assert await history(kind=TaskKind.IMAGE, backend="dreamina") == ["k:7"]
    assert await history(since=at(4)) == ["k:8", "k:7", "k:5"]  # inclusive
    assert await history(since=datetime(2026, 5, 1, 12, 4)) == ["k:8", "k:7", "k:5"]
    assert await history(since=at(4), kind=TaskKind.IMAGE) == ["k:7", "k:5"]
    assert await history(limit=2) == ["k:8", "k:7"]
    assert await history(limit=0) == []
    assert await history(status=TaskStatus.RUNNING, limit=5) == ["k:6"]


async def test_add_saved_appends_without_duplicates(store: SQLiteJournal) -> None:
    await store.record(entry(saved=("/out/0.png",)))
    await store.add_saved("volcengine", "key:1", ("/out/1.png", "/out/0.png", "/out/1.png"))
    await store.add_saved("volcengine", "key:1", [])
    await store.add_saved("dreamina", "key:1", ["/elsewhere.png"])  # another backend's task
    found = await store.get("key:1")
    assert found is not None and found.saved == ("/out/0.png", "/out/1.png")
    assert found.status is TaskStatus.QUEUED and found.updated_at == T0
    await store.add_saved("volcengine", "key:2", ["/out/2.png"])  # unknown: ignored
    assert [e.ref for e in await store.history()] == ["key:1"]


@pytest.mark.parametrize(
    ("saved", "old", "new", "expected"),
    [
        (("/a.png", "/b.webp", "/c.png"), "/b.webp", "/b.png", ("/a.png", "/b.png", "/c.png")),
        (("/a.webp",), "/a.webp", "/a.webp", ("/a.webp",)),  # the same path: unchanged
        (("/a.png", "/b.webp"), "/b.webp", "/a.png", ("/a.png",)),  # each path once
        (("/a.png",), "/x.webp", "/x.png", ("/a.png", "/x.png")),  # old unknown: appended
        ((), "/x.webp", "/x.png", ("/x.png",)),
    ],
)
def test_a_saved_path_replaced_keeps_its_place(
    saved: tuple[str, ...], old: str, new: str, expected: tuple[str, ...]
) -> None:
    assert entry(saved=saved).with_saved_replaced(old, new).saved == expected


async def test_replace_saved_rewrites_the_stored_entry_only(store: SQLiteJournal) -> None:
    await store.record(entry(saved=("/out/0.webp", "/out/1.png")))
    await store.record(entry("key:2", saved=("/out/0.webp",)))
    await store.replace_saved("volcengine", "key:1", "/out/0.webp", "/out/0.png")
    await store.replace_saved("dreamina", "key:2", "/out/0.webp", "/out/0.png")  # not its backend
    await store.replace_saved("volcengine", "key:3", "/out/0.webp", "/out/0.png")  # unknown
    first, second = await store.get("key:1"), await store.get("key:2")
    assert first is not None and first.saved == ("/out/0.png", "/out/1.png")
    assert first.status is TaskStatus.QUEUED and first.updated_at == T0
    assert second is not None and second.saved == ("/out/0.webp",)
    assert sorted(e.ref for e in await store.history()) == ["key:1", "key:2"]  # none added


async def test_a_store_without_replace_saved_adds_the_new_path() -> None:
    calls: list[tuple[str, str, list[str]]] = []

    class OlderStore(MemoryStore):
        async def add_saved(self, backend: str, ref: str, paths: Sequence[str]) -> None:
            calls.append((backend, ref, list(paths)))

    await OlderStore().replace_saved("volcengine", "key:1", "/a.webp", "/a.png")
    assert calls == [("volcengine", "key:1", ["/a.png"])]


async def test_update_only_touches_its_own_task(store: SQLiteJournal) -> None:
    await store.record(entry("key:1"))
    await store.record(entry("key:1", backend="dreamina"))
    done = JournalUpdate(status=TaskStatus.SUCCEEDED, updated_at=LATER, completed_at=LATER)
    await store.update("dreamina", "key:1", done)
    mine = await store.get("key:1", backend="volcengine")
    theirs = await store.get("key:1", backend="dreamina")
    assert mine == entry("key:1")
    assert theirs == entry(
        "key:1",
        backend="dreamina",
        status=TaskStatus.SUCCEEDED,
        updated_at=LATER,
        completed_at=LATER,
    )


async def test_record_replaces_an_entry_with_the_same_ref(store: SQLiteJournal) -> None:
    await store.record(entry(model="first"))
    await store.record(entry(model="second", status=TaskStatus.RUNNING))
    assert await store.history() == [entry(model="second", status=TaskStatus.RUNNING)]


# -- the SQLite store: failures ----------------------------------------------------------------


async def test_a_locked_journal_fails_the_write_and_keeps_working(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journal = SQLiteJournal(path, busy_timeout=0)
    await journal.record(entry("key:1"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            await journal.record(entry("key:2"))
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            await journal.update(
                "volcengine", "key:1", JournalUpdate(status=TaskStatus.RUNNING, updated_at=LATER)
            )
        assert [e.ref for e in await journal.history()] == ["key:1"]  # readers go on
    finally:
        other.execute("ROLLBACK")
        other.close()
    sync = await journal._call(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
    assert sync == 1  # the failed record put NORMAL back
    await journal.record(entry("key:2", submitted_at=LATER))
    await journal.update(
        "volcengine", "key:1", JournalUpdate(status=TaskStatus.RUNNING, updated_at=LATER)
    )
    assert [(e.ref, e.status) for e in await journal.history()] == [
        ("key:2", TaskStatus.QUEUED),
        ("key:1", TaskStatus.RUNNING),
    ]
    await journal.aclose()


async def test_a_journal_locked_while_opening_is_opened_by_the_next_call(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE unrelated (x)")
    other.execute("BEGIN EXCLUSIVE")
    journal = SQLiteJournal(path, busy_timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            await journal.record(entry())
        # The half-opened connection was dropped.
        assert journal._worker is not None and journal._worker.connection is None
    finally:
        other.execute("ROLLBACK")
        other.close()
    await journal.record(entry())
    assert [e.ref for e in await journal.history()] == ["key:1"]
    await journal.aclose()
    assert raw_rows(path, "PRAGMA user_version") == [(1,)]


async def test_a_corrupt_file_is_reported_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    garbage = b"this is not a database, but someone's notes\n" * 200
    path.write_bytes(garbage)
    journal = SQLiteJournal(path)
    with pytest.raises(sqlite3.DatabaseError, match="file is not a database"):
        await journal.record(entry())
    with pytest.raises(sqlite3.DatabaseError, match="file is not a database"):
        await journal.history()
    await journal.aclose()
    assert path.read_bytes() == garbage


RUNNING_AT_T0 = JournalUpdate(status=TaskStatus.RUNNING, updated_at=T0)


async def test_an_unreadable_entry_fails_its_calls_and_rolls_back(store: SQLiteJournal) -> None:
    await store.record(entry("key:1"))
    await store._call(
        lambda c: c.execute(
            "INSERT INTO tasks VALUES ('volcengine', 'bad:1', '1', 'image', 'queued', 0, '{oops')"
        )
    )
    statements: list[str] = []
    await store._call(lambda connection: connection.set_trace_callback(statements.append))
    with pytest.raises(json.JSONDecodeError):
        await store.update("volcengine", "bad:1", RUNNING_AT_T0)
    assert statements == [
        "BEGIN IMMEDIATE",
        "SELECT entry FROM tasks WHERE backend = 'volcengine' AND ref = 'bad:1'",
        "ROLLBACK",
    ]
    with pytest.raises(json.JSONDecodeError):
        await store.add_saved("volcengine", "bad:1", ["/a"])
    with pytest.raises(json.JSONDecodeError):
        await store.history()
    # The failed transactions were rolled back: the store writes on.
    assert await store._call(lambda c: c.in_transaction) is False
    await store.update("volcengine", "key:1", RUNNING_AT_T0)
    found = await store.get("key:1")
    assert found is not None and found.status is TaskStatus.RUNNING
    await store._call(
        lambda c: c.execute("UPDATE tasks SET entry = '{\"ref\": \"bad:1\"}' WHERE ref = 'bad:1'")
    )
    with pytest.raises(KeyError, match="submitted_at"):
        await store.get("bad:1")


async def test_close_releases_the_file_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journal = SQLiteJournal(path)
    await journal.aclose()  # never used: nothing to close, no file made
    assert not path.exists()
    await journal.record(entry())
    assert Path(f"{path}-wal").exists()
    await journal.aclose()
    assert journal._worker is None
    assert not Path(f"{path}-wal").exists()  # the last connection closed: WAL folded in
    await journal.aclose()
    assert await journal.get("key:1") == entry()
    await journal.aclose()


async def test_a_cancelled_caller_does_not_stop_the_write(store: SQLiteJournal) -> None:
    job = asyncio.ensure_future(store.record(entry()))
    await asyncio.sleep(0)  # the write is handed to the worker
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert await store.get("key:1") == entry()


# -- choosing a store --------------------------------------------------------------------------


class MemoryStore(JournalStore):
    """A store in memory that records every call (and can be told to fail)."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.entries: dict[str, JournalEntry] = {}
        self.failure = failure
        self.closed = 0

    def _called(self, *call: Any) -> None:
        self.calls.append(call)
        if self.failure is not None:
            raise self.failure

    async def record(self, entry: JournalEntry) -> None:
        self._called("record", entry)
        self.entries[entry.ref] = entry

    async def update(self, backend: str, ref: str, change: JournalUpdate) -> None:
        self._called("update", backend, ref, change)

    async def add_saved(self, backend: str, ref: str, paths: Sequence[str]) -> None:
        self._called("add_saved", backend, ref, paths)

    async def get(self, ref: str, *, backend: str | None = None) -> JournalEntry | None:
        self._called("get", ref, backend)
        return self.entries.get(ref)

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

    async def aclose(self) -> None:
        self.closed += 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ("  yes ", "home"),
        ("On", "home"),
        ("true", "home"),
        (" No ", None),
        ("FALSE", None),
        ("   ", None),
        (" elsewhere.sqlite3 ", "elsewhere.sqlite3"),
    ],
)
def test_the_environment_switch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: str, expected: str | None
) -> None:
    monkeypatch.setenv("JIMENG_HOME", str(tmp_path))
    monkeypatch.setenv("JIMENG_JOURNAL", env)
    store, owned = open_store(None)
    if expected is None:
        assert (store, owned) == (None, False)
        return
    assert isinstance(store, SQLiteJournal) and owned is True
    assert store.path == (tmp_path / "journal.sqlite3" if expected == "home" else Path(expected))


def test_open_store_arguments(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JIMENG_HOME", str(tmp_path))
    monkeypatch.delenv("JIMENG_JOURNAL", raising=False)
    assert open_store(None) == (None, False)
    monkeypatch.setenv("JIMENG_JOURNAL", "1")
    assert open_store(False) == (None, False)  # the argument wins over the environment
    default, owned = open_store(True)
    assert isinstance(default, SQLiteJournal) and owned is True
    assert default.path == tmp_path / "journal.sqlite3"
    for given in (tmp_path / "p.sqlite3", str(tmp_path / "p.sqlite3")):
        store, owned = open_store(given)
        assert isinstance(store, SQLiteJournal) and owned is True
        assert store.path == tmp_path / "p.sqlite3"
    mine = MemoryStore()
    assert open_store(mine) == (mine, False)  # the caller's store: the caller closes it
    with pytest.raises(ValidationError) as caught:
        open_store(42)  # type: ignore[arg-type]
    error = caught.value
    assert (error.field, error.allowed, error.value) == (
        "journal",
        "True, False, a file path, a JournalStore",
        "42",
    )
    assert str(error) == (
        "journal: must be True, False, a path or a JournalStore, got 42"
        " (allowed: True, False, a file path, a JournalStore)"
    )


@pytest.mark.parametrize(
    ("parse", "given", "expected"),
    [
        (parse_kind, None, None),
        (parse_kind, TaskKind.VIDEO, TaskKind.VIDEO),
        (parse_kind, " Image ", TaskKind.IMAGE),
        (parse_kind, "VIDEO", TaskKind.VIDEO),
        (parse_status, None, None),
        (parse_status, TaskStatus.EXPIRED, TaskStatus.EXPIRED),
        (parse_status, " Succeeded\n", TaskStatus.SUCCEEDED),
        (parse_status, "QUEUED", TaskStatus.QUEUED),
    ],
)
def test_parse_filters(parse: Callable[[Any], Any], given: Any, expected: Any) -> None:
    assert parse(given) is expected


def test_parse_filters_name_what_is_allowed() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_kind("audio")
    assert (caught.value.field, caught.value.allowed) == ("kind", "image, video")
    assert str(caught.value) == "kind: unknown kind 'audio' (allowed: image, video)"
    with pytest.raises(ValidationError) as caught:
        parse_status("done")
    assert caught.value.field == "status"
    assert str(caught.value) == (
        "status: unknown status 'done'"
        " (allowed: queued, running, succeeded, failed, cancelled, expired, unknown)"
    )
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


# -- the fingerprint ---------------------------------------------------------------------------


class FakeBackend:
    def __init__(self, name: str, described: dict[str, Any]) -> None:
        self.name = name
        self.described = described

    def describe(self) -> dict[str, Any]:
        return dict(self.described)

    def account(self) -> str:
        return str(self.described.get("account", ""))


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint_of(name: str, described: dict[str, Any]) -> str:
    return configuration_fingerprint(cast(Any, FakeBackend(name, described)))


def test_fingerprint_is_a_stable_digest_of_where_requests_go() -> None:
    described = {
        "backend": "sandbox",
        "protocol": "volcengine",
        "url": "http://127.0.0.1:1",
        "credits": 7,
        "key": "AK…1234",
    }
    text = '{"backend":"sandbox","protocol":"volcengine","url":"http://127.0.0.1:1"}'
    # Journals written by earlier versions hold this value: it must never change.
    assert fingerprint_of("sandbox", described) == digest(text) == "868ec587d970a2aa"
    assert fingerprint_of("sandbox", {**described, "credits": 0}) == digest(text)
    everything = {
        "flavor": "f",
        "relay": "r",
        "url": "u",
        "video_endpoint": "v",
        "endpoint": "e",
        "protocol": "p",
        "backend": "b",
        "region": "cn",
    }
    assert fingerprint_of("other", everything) == digest(
        '{"backend":"b","endpoint":"e","flavor":"f","protocol":"p","relay":"r","url":"u",'
        '"video_endpoint":"v"}'
    )
    # Without a backend entry the name stands in; secrets never reach the digest.
    assert fingerprint_of("volcengine", {"endpoint": f"https://x/{SECRET}"}) == digest(
        '{"backend":"volcengine","endpoint":"https://x/<redacted>"}'
    )
    assert len(fingerprint_of("volcengine", {})) == 16


# -- the recorder ------------------------------------------------------------------------------

WHERE = {"backend": "sandbox", "protocol": "volcengine", "url": "http://127.0.0.1:1"}
FP = digest('{"backend":"sandbox","protocol":"volcengine","url":"http://127.0.0.1:1"}')
DISK_FULL = OSError(28, "No space left on device")


class Clock:
    """An injected clock: hands out the given times and counts the calls."""

    def __init__(self, *times: datetime) -> None:
        self.times = list(times)
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return self.times.pop(0)


def recorder(store: JournalStore, *, clock: Clock | None = None, owned: bool = False) -> Recorder:
    backend = cast(Any, FakeBackend("sandbox", {**WHERE, "credits": 3}))
    return Recorder(store, owned=owned, backend=backend, clock=clock or Clock())


def task(**changes: Any) -> Task:
    values: dict[str, Any] = {
        "id": "7",
        "kind": TaskKind.IMAGE,
        "status": TaskStatus.QUEUED,
        "backend": "volcengine",
        "ref": "key:7",
        "model": "key",
        "raw_status": "in_queue",
        "context": {"req_json": "{}"},
    }
    values.update(changes)
    return Task(**values)


def images(*media: Image) -> ImageResult:
    return ImageResult(images=media)


def test_result_links_keep_urls_and_expiry() -> None:
    expiry = T0 + timedelta(hours=1)
    assert result_links(task()) == ()
    result = images(
        Image(url="https://cdn.example/1.png", expires_at=expiry),
        Image(data=b"inline"),
        Image(url="https://cdn.example/3.png", data=b"both"),
    )
    assert result_links(task(result=result)) == (
        ResultLink(url="https://cdn.example/1.png", expires_at=expiry),
        ResultLink(url="https://cdn.example/3.png", expires_at=None),
    )
    video = VideoResult(video=Video(url="https://cdn.example/v.mp4", expires_at=expiry))
    assert result_links(task(kind=TaskKind.VIDEO, result=video)) == (
        ResultLink(url="https://cdn.example/v.mp4", expires_at=expiry),
    )
    inline = VideoResult(video=Video(data=b"mp4"))
    assert result_links(task(kind=TaskKind.VIDEO, result=inline)) == ()


async def test_accepted_records_the_task_as_submitted() -> None:
    store, clock = MemoryStore(), Clock(LATER)
    journal = recorder(store, clock=clock)
    assert journal.backend_name == "sandbox" and journal.fingerprint() == FP
    await journal.accepted(task(created_at=T0))
    assert store.calls == [
        (
            "record",
            JournalEntry(
                ref="key:7",
                task_id="7",
                backend="sandbox",
                protocol="volcengine",
                fingerprint=FP,
                kind=TaskKind.IMAGE,
                status=TaskStatus.QUEUED,
                raw_status="in_queue",
                model="key",
                context={"req_json": "{}"},
                submitted_at=T0,
                updated_at=LATER,
            ),
        )
    ]
    assert clock.calls == 1


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (None, None),
        (TaskFailure(message="boom"), "boom"),
        (TaskFailure(code=50, message="boom"), "[50] boom"),
        (TaskFailure(code=0), "[0]"),
        (TaskFailure(code="E_LIMIT", message=" slow down "), "[E_LIMIT]  slow down"),
        (TaskFailure(message="   "), None),
    ],
)
async def test_accepted_records_a_finished_task_whole(
    failure: TaskFailure | None, expected: str | None
) -> None:
    store = MemoryStore()
    link = Image(url="https://cdn.example/1.png", expires_at=LATER)
    finished = task(
        id="8",
        ref="key:8",
        kind=TaskKind.VIDEO,
        status=TaskStatus.SUCCEEDED,
        raw_status="done",
        model=None,
        context={},
        completed_at=T0 + timedelta(seconds=3),
        result=images(link, Image(data=b"x")),
        failure=failure,
    )
    await recorder(store, clock=Clock(LATER)).accepted(finished)
    ((call, recorded),) = store.calls
    assert call == "record"
    assert recorded == JournalEntry(
        ref="key:8",
        task_id="8",
        backend="sandbox",
        protocol="volcengine",
        fingerprint=FP,
        kind=TaskKind.VIDEO,
        status=TaskStatus.SUCCEEDED,
        raw_status="done",
        submitted_at=LATER,  # no creation time known: now
        updated_at=LATER,
        completed_at=T0 + timedelta(seconds=3),
        results=(ResultLink(url="https://cdn.example/1.png", expires_at=LATER),),
        failure=expected,
    )


U1 = T0 + timedelta(seconds=11)
NOW = T0 + timedelta(seconds=99)
DONE_AT = T0 + timedelta(seconds=12)
PNG = Image(url="https://cdn.example/1.png")


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ({}, {}, None),
        ({}, {"updated_at": U1, "context": {"other": 1}}, None),  # nothing the journal keeps
        ({"result": images(PNG)}, {"result": images(PNG)}, None),
        (
            {},
            {"raw_status": "generating", "updated_at": U1},
            JournalUpdate(status=TaskStatus.QUEUED, raw_status="generating", updated_at=U1),
        ),
        (
            {},
            {"raw_status": None},
            JournalUpdate(status=TaskStatus.QUEUED, raw_status=None, updated_at=NOW),
        ),
        (
            {},
            {"status": TaskStatus.RUNNING},
            JournalUpdate(status=TaskStatus.RUNNING, raw_status="in_queue", updated_at=NOW),
        ),
        (
            {},
            {"result": images(PNG), "updated_at": U1},
            JournalUpdate(
                status=TaskStatus.QUEUED,
                raw_status="in_queue",
                updated_at=U1,
                results=(ResultLink(url="https://cdn.example/1.png"),),
            ),
        ),
        (
            {},
            {"result": images(Image(data=b"inline")), "updated_at": U1},
            JournalUpdate(status=TaskStatus.QUEUED, raw_status="in_queue", updated_at=U1),
        ),
        (
            {},
            {
                "status": TaskStatus.SUCCEEDED,
                "raw_status": "done",
                "updated_at": U1,
                "completed_at": DONE_AT,
                "result": images(PNG),
            },
            JournalUpdate(
                status=TaskStatus.SUCCEEDED,
                raw_status="done",
                updated_at=U1,
                completed_at=DONE_AT,
                results=(ResultLink(url="https://cdn.example/1.png"),),
            ),
        ),
        (
            {},
            {
                "status": TaskStatus.FAILED,
                "completed_at": DONE_AT,
                "failure": TaskFailure(code=1, message="no"),
            },
            JournalUpdate(
                status=TaskStatus.FAILED,
                raw_status="in_queue",
                updated_at=NOW,
                completed_at=DONE_AT,
                failure="[1] no",
            ),
        ),
        (  # a completion time on a live task is not one
            {},
            {"status": TaskStatus.RUNNING, "completed_at": DONE_AT, "updated_at": U1},
            JournalUpdate(status=TaskStatus.RUNNING, raw_status="in_queue", updated_at=U1),
        ),
    ],
)
async def test_observed_writes_only_changes(
    before: dict[str, Any], after: dict[str, Any], expected: JournalUpdate | None
) -> None:
    store, clock = MemoryStore(), Clock(NOW)
    await recorder(store, clock=clock).observed(task(**before), task(**{**before, **after}))
    if expected is None:
        assert store.calls == []
        assert clock.calls == 0
    else:
        # Whose the task is is looked up first (once per ref): see test_recorder_ignores_...
        assert store.calls == [
            ("get", "key:7", "sandbox"),
            ("update", "sandbox", "key:7", expected),
        ]
        assert clock.calls == (0 if "updated_at" in after else 1)


async def test_saved_records_resolved_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = MemoryStore()
    await recorder(store).saved("key:7", [Path("out/a.png"), Path("b.png")])
    here = tmp_path.resolve()
    assert store.calls == [
        ("get", "key:7", "sandbox"),
        ("add_saved", "sandbox", "key:7", [str(here / "out" / "a.png"), str(here / "b.png")]),
    ]


async def test_replaced_passes_resolved_paths_to_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    calls: list[tuple[str, ...]] = []

    class Store(MemoryStore):
        async def replace_saved(self, backend: str, ref: str, old: str, new: str) -> None:
            calls.append((backend, ref, old, new))
            if self.failure is not None:
                raise self.failure

    await recorder(Store()).replaced("key:7", Path("out/a.webp"), Path("out/a.png"))
    here = tmp_path.resolve()
    assert calls == [("sandbox", "key:7", str(here / "out/a.webp"), str(here / "out/a.png"))]
    caplog.set_level(logging.WARNING, logger="jimeng")
    await recorder(Store(failure=DISK_FULL)).replaced("key:7", Path("a.webp"), Path("a.png"))
    assert [r.getMessage() for r in caplog.records] == [
        "journal: could not read task key:7: [Errno 28] No space left on device",
        "journal: could not replace a saved file of task key:7: [Errno 28] No space left on device",
    ]


async def test_restore_brings_back_what_was_submitted_once_per_ref() -> None:
    store = MemoryStore()
    store.entries["key:7"] = entry(
        "key:7",
        kind=TaskKind.VIDEO,
        model="seedance",
        context={"req_json": "journalled", "extra": 1},
    )
    journal = recorder(store)
    fresh = task(
        status=TaskStatus.UNKNOWN,
        model="key",
        raw_status=None,
        context={"req_json": "default", "poll": 2},
    )
    restored = await journal.restore(fresh)
    assert store.calls == [("get", "key:7", "sandbox")]
    assert restored == task(
        status=TaskStatus.UNKNOWN,
        kind=TaskKind.VIDEO,
        model="seedance",
        raw_status=None,
        created_at=T0,
    )
    assert restored.context == {"req_json": "journalled", "poll": 2, "extra": 1}
    assert await journal.restore(fresh) is fresh  # looked up once
    assert len(store.calls) == 1


async def test_restore_keeps_what_the_task_knows() -> None:
    store = MemoryStore()
    store.entries["key:7"] = entry("key:7", model=None, context={})
    fresh = task(status=TaskStatus.UNKNOWN, created_at=LATER, context={"req_json": "x"})
    restored = await recorder(store).restore(fresh)
    assert restored == task(status=TaskStatus.UNKNOWN, created_at=LATER)
    assert restored.model == "key" and restored.context == {"req_json": "x"}
    assert merge(fresh, entry("key:7", model="m")).created_at == LATER


async def test_restore_skips_known_states_unknown_refs_and_accepted_tasks() -> None:
    store = MemoryStore()
    store.entries["key:7"] = entry("key:7", kind=TaskKind.VIDEO)
    journal = recorder(store, clock=Clock(NOW))
    live = task(status=TaskStatus.RUNNING)
    assert await journal.restore(live) is live  # polled already: nothing to restore
    missing = task(ref="key:9", id="9", status=TaskStatus.UNKNOWN)
    assert await journal.restore(missing) is missing
    assert store.calls == [("get", "key:9", "sandbox")]
    await journal.accepted(task(ref="key:5", id="5"))
    submitted = task(ref="key:5", id="5", status=TaskStatus.UNKNOWN)
    assert await journal.restore(submitted) is submitted  # this client wrote it: no lookup
    assert [call[0] for call in store.calls] == ["get", "record"]


async def test_a_failing_store_is_logged_with_the_task_ref(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    store = MemoryStore(failure=DISK_FULL)
    journal = recorder(store, clock=Clock(NOW, NOW))
    caplog.set_level(logging.WARNING, logger="jimeng")
    await journal.accepted(task())
    await journal.observed(task(), task(status=TaskStatus.RUNNING))
    await journal.saved("key:7", [tmp_path / "a.png"])
    unknown = task(status=TaskStatus.UNKNOWN, ref="key:8", id="8")
    assert await journal.restore(unknown) is unknown
    assert await journal.restore(unknown) is unknown  # a failed lookup is not retried
    assert [call[0] for call in store.calls] == ["record", "update", "add_saved", "get"]
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.WARNING,
            "journal: could not record task key:7: [Errno 28] No space left on device",
        ),
        (
            logging.WARNING,
            "journal: could not update task key:7: [Errno 28] No space left on device",
        ),
        (
            logging.WARNING,
            "journal: could not add saved files to task key:7: [Errno 28] No space left on device",
        ),
        (logging.WARNING, "journal: could not read task key:8: [Errno 28] No space left on device"),
    ]


async def test_a_locked_journal_loses_only_the_write_it_could_not_make(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.sqlite3"
    store = SQLiteJournal(path, busy_timeout=0)
    journal = recorder(store, clock=Clock(NOW), owned=True)
    caplog.set_level(logging.WARNING, logger="jimeng")
    await journal.accepted(task(created_at=T0))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    running = task(status=TaskStatus.RUNNING, updated_at=U1)
    await journal.observed(task(), running)  # locked: logged, the task goes on
    other.execute("COMMIT")
    other.close()
    done = task(status=TaskStatus.SUCCEEDED, updated_at=LATER, completed_at=LATER)
    await journal.observed(running, done)
    assert [r.getMessage() for r in caplog.records] == [
        "journal: could not update task key:7: database is locked"
    ]
    found = await store.get("key:7")
    assert found is not None
    assert (found.status, found.updated_at, found.completed_at) == (
        TaskStatus.SUCCEEDED,
        LATER,
        LATER,
    )
    await journal.aclose()  # owned: closed with the recorder
    assert store._worker is None


async def test_aclose_closes_only_an_owned_store() -> None:
    mine, theirs = MemoryStore(), MemoryStore()
    await recorder(mine, owned=True).aclose()
    await recorder(theirs, owned=False).aclose()
    assert (mine.closed, theirs.closed) == (1, 0)


class FakeFetcher:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def read(self, media: Any) -> bytes:
        self.calls.append(("read", media))
        return b"bytes"

    async def save(
        self, media: Any, target: Path, *, index: int, explicit: bool, stamp: str | None = None
    ) -> Path:
        self.calls.append(("save", media, target, index, explicit, stamp))
        return target / f"{index}.png"

    def stamp(self) -> str:
        return "20260501_120000"


async def test_the_journalling_fetcher_records_each_saved_file(tmp_path: Path) -> None:
    inner, store = FakeFetcher(), MemoryStore()
    fetcher = JournallingFetcher(cast(Any, inner), recorder(store), "key:7")
    media = Image(url="https://cdn.example/1.png")
    assert await fetcher.read(media) == b"bytes"
    assert fetcher.stamp() == "20260501_120000"
    out = tmp_path / "out"
    assert await fetcher.save(media, out, index=2, explicit=True, stamp="S") == out / "2.png"
    assert await fetcher.save(media, out, index=0, explicit=False) == out / "0.png"
    assert inner.calls == [
        ("read", media),
        ("save", media, out, 2, True, "S"),
        ("save", media, out, 0, False, None),
    ]
    assert store.calls == [
        ("get", "key:7", "sandbox"),  # once per ref
        ("add_saved", "sandbox", "key:7", [str(out.resolve() / "2.png")]),
        ("add_saved", "sandbox", "key:7", [str(out.resolve() / "0.png")]),
    ]


@pytest.mark.parametrize(
    ("recorded", "observer", "expected"),
    [
        (("f" * 16, "…a1"), ("f" * 16, "…a1"), True),
        (("f" * 16, "…a1"), ("e" * 16, "…a1"), False),  # another endpoint
        (("f" * 16, "…a1"), ("f" * 16, "…b2"), False),  # another account
        (("f" * 16, "…a1"), ("f" * 16, ""), False),  # a backend without accounts
        (("f" * 16, ""), ("f" * 16, "…b2"), True),  # no account recorded (an older entry)
        (("", ""), ("e" * 16, "…b2"), True),  # nothing recorded at all
    ],
)
def test_an_entry_is_observable_where_it_was_submitted(
    recorded: tuple[str, str], observer: tuple[str, str], expected: bool
) -> None:
    fingerprint, account = recorded
    assert entry(fingerprint=fingerprint, account=account).observable_by(*observer) is expected


async def test_the_recorder_ignores_what_another_place_sees_and_says_so_once(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.WARNING, logger="jimeng")
    store = MemoryStore()
    store.entries["key:7"] = entry("key:7", backend="sandbox", fingerprint=FP, account="…a1")
    store.entries["key:8"] = entry("key:8", backend="sandbox", fingerprint=FP, account="…b2")
    backend = cast(Any, FakeBackend("sandbox", {**WHERE, "account": "…b2"}))
    journal = Recorder(store, owned=False, backend=backend, clock=Clock(NOW, NOW))
    expired = {"status": TaskStatus.EXPIRED, "updated_at": U1}
    await journal.observed(task(), task(**expired))
    await journal.saved("key:7", [tmp_path / "a.png"])
    await journal.replaced("key:7", tmp_path / "a.webp", tmp_path / "a.png")
    await journal.observed(task(ref="key:8"), task(ref="key:8", **expired))
    assert store.calls == [
        ("get", "key:7", "sandbox"),
        ("get", "key:8", "sandbox"),
        (
            "update",
            "sandbox",
            "key:8",
            JournalUpdate(status=TaskStatus.EXPIRED, raw_status="in_queue", updated_at=U1),
        ),
    ]
    assert [r.getMessage() for r in caplog.records] == [
        "journal: task key:7 was submitted through another endpoint or account than this "
        "client's; what this client sees of it is not recorded"
    ]
    assert journal.account() == "…b2"


def test_an_account_is_named_only_where_tasks_are_its_own() -> None:
    from jimeng import Ark, Dreamina, Gateway, Sandbox, Volcengine

    signed = Volcengine(access_key="AKLTexample-account-1", secret_key="a-secret-key-1")
    relay = Volcengine(api_key="relay-key-example-2", endpoint="https://relay.example/jm")
    ark = Ark(api_key="ark-key-example-3")
    assert signed.account() == _logging.fingerprint("AKLTexample-account-1")
    assert relay.account() == _logging.fingerprint("relay-key-example-2")
    assert ark.account() == f"{_logging.fingerprint('ark-key-example-3')}@{ark.base_url}"
    # The rate limiter's keys name the same accounts as before.
    assert signed.limit_key() == f"volcengine:{signed.account()}@{signed.base_url}"
    assert ark.limit_key() == f"ark:{ark.account()}"
    # A Dreamina ref names its session; a gateway's tasks are the gateway's; a sandbox has one.
    assert Dreamina("example-session-id-4").account() == ""
    assert Gateway("http://127.0.0.1:5100", token="example-token-5").account() == ""
    assert Sandbox().account() == ""
