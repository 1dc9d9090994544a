"""The default journal store: one SQLite file, shared safely by several processes.

WAL mode lets readers and one writer work at once; a busy timeout makes concurrent writers wait
instead of failing. An accepted task is written with ``synchronous=FULL`` (on disk, even through
a power cut, before ``submit()`` returns); later changes with ``NORMAL``, which survives a killed
process and costs no fsync (a change lost to a power cut is seen again at the next poll).

Every call runs on one worker thread owned by the store, so the event loop never waits on the
disk and the connection is only ever used from that thread.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from jimeng._journal._store import (
    JournalEntry,
    JournalStore,
    JournalUpdate,
    journal_path,
    scrub,
)
from jimeng.models import TaskKind, TaskStatus

if TYPE_CHECKING:
    import sqlite3

__all__ = ["SQLiteJournal"]

T = TypeVar("T")

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    backend TEXT NOT NULL,
    ref TEXT NOT NULL,
    task_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    submitted_at REAL NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (backend, ref)
);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status, submitted_at);
CREATE INDEX IF NOT EXISTS tasks_by_time ON tasks (submitted_at);
CREATE INDEX IF NOT EXISTS tasks_by_id ON tasks (task_id);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"""
_TERMINAL = tuple(status.value for status in TaskStatus if status.is_terminal)


def _epoch(when: datetime) -> float:
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


class SQLiteWorker:
    """One thread and the SQLite connection that only it uses (opened on its first call).

    A store swaps its worker out to close it; a call made meanwhile gets a new worker with a
    connection of its own, so a close never pulls a connection from under a running call.
    """

    def __init__(self, name: str, connect: Callable[[], sqlite3.Connection]):
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.connection: sqlite3.Connection | None = None
        self._connect = connect

    async def call(self, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, functools.partial(self._run, work, *args)
        )

    def _run(self, work: Callable[..., T], *args: Any) -> T:
        if self.connection is None:
            self.connection = self._connect()
        return work(self.connection, *args)

    async def aclose(self) -> None:
        """Close the connection on the worker, after every call already handed to it."""
        await asyncio.get_running_loop().run_in_executor(self.executor, self._close)
        self.executor.shutdown(wait=False)

    def _close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


class SQLiteJournal(JournalStore):
    """The journal in a SQLite file (default ``$JIMENG_HOME/journal.sqlite3``, see
    :func:`jimeng.journal_path`). The folder is created private to the user (0700), the file
    0600. ``busy_timeout`` is how long a write waits for another process holding the lock."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, busy_timeout: float = 30.0):
        self.path = Path(path).expanduser() if path is not None else journal_path()
        self.busy_timeout = busy_timeout
        self._worker: SQLiteWorker | None = None
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        return f"SQLiteJournal({str(self.path)!r})"

    # -- plumbing ------------------------------------------------------------------------------

    async def _call(self, work: Callable[..., T], *args: Any) -> T:
        with self._guard:
            if self._worker is None:
                self._worker = SQLiteWorker("jimeng-journal", self._connect)
            worker = self._worker
        # A cancelled caller does not stop the write: the worker finishes it.
        return await worker.call(work, *args)

    def _connect(self) -> sqlite3.Connection:
        import sqlite3

        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            # Created private before SQLite opens it (its -wal and -shm files copy the mode).
            descriptor = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(descriptor)
        connection = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version < _SCHEMA_VERSION:
                connection.execute("BEGIN IMMEDIATE")
                # IF NOT EXISTS: a process that raced us here finds the tables and moves on.
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
                connection.execute("COMMIT")
        except BaseException:
            connection.close()
            raise
        return connection

    async def aclose(self) -> None:
        with self._guard:
            worker, self._worker = self._worker, None
        if worker is not None:
            await worker.aclose()

    # -- tasks ---------------------------------------------------------------------------------

    async def record(self, entry: JournalEntry) -> None:
        await self._call(_record, entry)

    async def update(self, backend: str, ref: str, change: JournalUpdate) -> None:
        await self._call(_update, backend, ref, change)

    async def add_saved(self, backend: str, ref: str, paths: Sequence[str]) -> None:
        await self._call(_add_saved, backend, ref, list(paths))

    async def replace_saved(self, backend: str, ref: str, old: str, new: str) -> None:
        await self._call(_replace_saved, backend, ref, old, new)

    async def get(self, ref: str, *, backend: str | None = None) -> JournalEntry | None:
        return await self._call(_get, ref, backend)

    async def unfinished(
        self, *, backend: str | None = None, fingerprint: str | None = None
    ) -> list[JournalEntry]:
        return await self._call(_unfinished, backend, fingerprint)

    async def history(
        self,
        *,
        status: TaskStatus | None = None,
        kind: TaskKind | None = None,
        since: datetime | None = None,
        backend: str | None = None,
        limit: int | None = None,
    ) -> list[JournalEntry]:
        return await self._call(_history, status, kind, since, backend, limit)

    # -- metadata ------------------------------------------------------------------------------

    async def get_meta(self, key: str) -> Any:
        return await self._call(_get_meta, key)

    async def put_meta(self, key: str, value: Any) -> None:
        text = json.dumps(scrub(value), ensure_ascii=False, allow_nan=False)
        await self._call(_put_meta, key, text)


# The functions below run on the store's worker thread.


def _row(entry: JournalEntry) -> tuple[Any, ...]:
    data = entry.to_json()
    return (
        data["backend"],
        data["ref"],
        data["task_id"],
        data["kind"],
        data["status"],
        _epoch(entry.submitted_at),
        json.dumps(data, ensure_ascii=False, allow_nan=False),
    )


def _write(connection: sqlite3.Connection, entry: JournalEntry) -> None:
    connection.execute(
        "INSERT OR REPLACE INTO tasks (backend, ref, task_id, kind, status, submitted_at, entry)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        _row(entry),
    )


def _record(connection: sqlite3.Connection, entry: JournalEntry) -> None:
    # A paid task must outlive a power cut: this one commit waits for the disk.
    connection.execute("PRAGMA synchronous = FULL")
    try:
        _write(connection, entry)
    finally:
        connection.execute("PRAGMA synchronous = NORMAL")


def _read(text: str) -> JournalEntry:
    return JournalEntry.from_json(json.loads(text))


def _change(
    connection: sqlite3.Connection,
    backend: str,
    ref: str,
    apply: Callable[[JournalEntry], JournalEntry],
) -> None:
    # Read, change and write under one write lock, so two processes never lose each other's work.
    connection.execute("BEGIN IMMEDIATE")
    try:
        found = connection.execute(
            "SELECT entry FROM tasks WHERE backend = ? AND ref = ?", (backend, ref)
        ).fetchone()
        if found is not None:
            before = _read(found[0])
            after = apply(before)
            if after != before:
                _write(connection, after)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _update(connection: sqlite3.Connection, backend: str, ref: str, change: JournalUpdate) -> None:
    _change(connection, backend, ref, lambda entry: entry.evolve(change))


def _add_saved(connection: sqlite3.Connection, backend: str, ref: str, paths: list[str]) -> None:
    import attrs

    def add(entry: JournalEntry) -> JournalEntry:
        # In order, each path once (also when ``paths`` repeats one).
        return attrs.evolve(entry, saved=tuple(dict.fromkeys((*entry.saved, *paths))))

    _change(connection, backend, ref, add)


def _replace_saved(
    connection: sqlite3.Connection, backend: str, ref: str, old: str, new: str
) -> None:
    _change(connection, backend, ref, lambda entry: entry.with_saved_replaced(old, new))


def _get(connection: sqlite3.Connection, ref: str, backend: str | None) -> JournalEntry | None:
    query = "SELECT entry FROM tasks WHERE (ref = ? OR task_id = ?)"
    params: list[Any] = [ref, ref]
    if backend is not None:
        query += " AND backend = ?"
        params.append(backend)
    found = connection.execute(query + " ORDER BY submitted_at DESC LIMIT 1", params).fetchone()
    return _read(found[0]) if found else None


def _unfinished(
    connection: sqlite3.Connection, backend: str | None, fingerprint: str | None
) -> list[JournalEntry]:
    marks = ", ".join("?" for _ in _TERMINAL)
    query = f"SELECT entry FROM tasks WHERE status NOT IN ({marks})"
    params: list[Any] = list(_TERMINAL)
    if backend is not None:
        query += " AND backend = ?"
        params.append(backend)
    rows = connection.execute(query + " ORDER BY submitted_at", params).fetchall()
    entries = [_read(text) for (text,) in rows]
    if fingerprint is not None:
        entries = [entry for entry in entries if entry.fingerprint == fingerprint]
    return entries


def _history(
    connection: sqlite3.Connection,
    status: TaskStatus | None,
    kind: TaskKind | None,
    since: datetime | None,
    backend: str | None,
    limit: int | None,
) -> list[JournalEntry]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("status", status.value if status else None),
        ("kind", kind.value if kind else None),
        ("backend", backend),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        clauses.append("submitted_at >= ?")
        params.append(_epoch(since))
    query = "SELECT entry FROM tasks"
    if clauses:
        query += " WHERE " + " AND ".join(clauses)
    query += " ORDER BY submitted_at DESC"
    if limit is not None:
        query += " LIMIT ?"
        params.append(limit)
    return [_read(text) for (text,) in connection.execute(query, params).fetchall()]


def _get_meta(connection: sqlite3.Connection, key: str) -> Any:
    found = connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return json.loads(found[0]) if found else None


def _put_meta(connection: sqlite3.Connection, key: str, text: str) -> None:
    connection.execute(
        "INSERT OR REPLACE INTO meta (key, value, updated_at) VALUES (?, ?, ?)",
        (key, text, datetime.now(timezone.utc).timestamp()),
    )
