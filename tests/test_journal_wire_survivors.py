"""The SQLite journal's closing, pinned: ``aclose()`` closes the connection on the store's own
worker, after every call already handed to it, without borrowing the loop's default executor;
and a call made while a close is still waiting for the worker is not lost, nor broken by the
close (each worker has its own connection)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jimeng._journal import JournalEntry, SQLiteJournal
from jimeng.models import TaskKind, TaskStatus

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


def entry(ref: str) -> JournalEntry:
    return JournalEntry(
        ref=ref,
        task_id=ref.rpartition(":")[2],
        backend="volcengine",
        protocol="volcengine",
        fingerprint="f" * 16,
        kind=TaskKind.IMAGE,
        status=TaskStatus.QUEUED,
        submitted_at=T0,
        updated_at=T0,
        model="key",
    )


def stored_refs(path: Path) -> list[str]:
    connection = sqlite3.connect(path)
    try:
        return [ref for (ref,) in connection.execute("SELECT ref FROM tasks ORDER BY ref")]
    finally:
        connection.close()


class RefusingExecutor(ThreadPoolExecutor):
    """A loop default executor that takes no work (the application's, busy or shut down)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        raise AssertionError("the journal used the loop's default executor")


async def test_close_runs_on_the_worker_after_the_writes_handed_to_it(tmp_path: Path) -> None:
    asyncio.get_running_loop().set_default_executor(RefusingExecutor(max_workers=1))
    path = tmp_path / "j.sqlite3"
    journal = SQLiteJournal(path)
    await journal.record(entry("key:1"))
    gate = threading.Event()
    held = asyncio.ensure_future(journal._call(lambda connection: gate.wait(10)))
    try:
        await asyncio.sleep(0)  # the worker is busy until the gate opens
        write = asyncio.ensure_future(journal.record(entry("key:2")))
        await asyncio.sleep(0)  # the write waits behind it
        closing = asyncio.ensure_future(journal.aclose())
        await asyncio.sleep(0)  # the close waits behind the write
        assert not write.done() and not closing.done()
    finally:
        gate.set()
    assert await held is True
    await closing
    assert write.done() and write.exception() is None
    # The write landed before the connection closed, and that was the last connection.
    assert stored_refs(path) == ["key:1", "key:2"]
    assert not Path(f"{path}-wal").exists()
    assert journal._worker is None


async def test_a_call_made_while_close_waits_for_the_worker_still_lands(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journal = SQLiteJournal(path)
    await journal.record(entry("key:1"))  # the connection is open, made on the first worker
    gate = threading.Event()
    held = asyncio.ensure_future(journal._call(lambda connection: gate.wait(10)))
    try:
        await asyncio.sleep(0)  # the first worker is busy until the gate opens
        closing = asyncio.ensure_future(journal.aclose())
        await asyncio.sleep(0)  # the close waits behind it; the store has no worker now
        # A new worker takes this call, with a connection of its own.
        await journal.record(entry("key:2"))
        assert not closing.done()
    finally:
        gate.set()
    assert await held is True
    await closing
    assert stored_refs(path) == ["key:1", "key:2"]
    assert await journal.get("key:2") == entry("key:2")  # opened again on use
    await journal.aclose()
    assert not Path(f"{path}-wal").exists()


async def test_a_close_never_closes_the_connection_of_a_call_running_on_a_new_worker(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.sqlite3"
    journal = SQLiteJournal(path)
    await journal.record(entry("key:1"))  # a connection opened on the first worker
    first_gate, second_gate = threading.Event(), threading.Event()
    held = asyncio.ensure_future(journal._call(lambda connection: first_gate.wait(10)))
    await asyncio.sleep(0)
    closing = asyncio.ensure_future(journal.aclose())  # queued behind the held call
    await asyncio.sleep(0)

    def count_after_the_close(connection: sqlite3.Connection) -> int:
        second_gate.wait(10)  # the close runs on the first worker meanwhile
        return int(connection.execute("SELECT count(*) FROM tasks").fetchone()[0])

    counting = asyncio.ensure_future(journal._call(count_after_the_close))
    await asyncio.sleep(0)
    first_gate.set()
    await held
    await closing  # the first worker closed its connection
    second_gate.set()
    assert await counting == 1  # the second worker's own connection is still open
    await journal.aclose()


async def test_a_ledger_close_never_closes_the_connection_of_a_call_on_a_new_worker(
    tmp_path: Path,
) -> None:
    from jimeng.batch._ledger import SQLiteLedger

    ledger = SQLiteLedger(tmp_path / "ledger.sqlite3")
    assert await ledger.records("b") == {}  # a connection opened on the first worker
    first_gate, second_gate = threading.Event(), threading.Event()
    held = asyncio.ensure_future(ledger._call(lambda connection: first_gate.wait(10)))
    await asyncio.sleep(0)
    closing = asyncio.ensure_future(ledger.aclose())
    await asyncio.sleep(0)

    def tables_after_the_close(connection: sqlite3.Connection) -> int:
        second_gate.wait(10)
        return int(connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])

    counting = asyncio.ensure_future(ledger._call(tables_after_the_close))
    await asyncio.sleep(0)
    first_gate.set()
    await held
    await closing
    second_gate.set()
    assert await counting >= 1
    await ledger.aclose()


async def test_calls_run_one_at_a_time_on_the_same_worker_thread(tmp_path: Path) -> None:
    """A SQLite connection is used by one thread only: a call waits for the one before it."""
    journal = SQLiteJournal(tmp_path / "j.sqlite3")
    gate = threading.Event()
    order: list[tuple[str, int]] = []

    def first(connection: sqlite3.Connection) -> None:
        gate.wait(10)
        order.append(("first", threading.get_ident()))

    def second(connection: sqlite3.Connection) -> None:
        order.append(("second", threading.get_ident()))

    held = asyncio.ensure_future(journal._call(first))
    await asyncio.sleep(0)
    queued = asyncio.ensure_future(journal._call(second))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(held, queued)
    assert [name for name, _ in order] == ["first", "second"]
    assert order[0][1] == order[1][1] != threading.get_ident()
    await journal.aclose()
