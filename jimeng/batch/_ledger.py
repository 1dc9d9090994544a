"""Where each batch line's state lives: pending → submitting → accepted(ref) → done / failed.

A worker *claims* a line before touching it: the claim is a lease with an expiry that the worker
renews while it works, so a worker that dies leaves the line to the next one once the lease runs
out, and a worker that lost its lease (stalled past it) can no longer write: every change names
its owner and is refused otherwise. The decisions are pure functions over :class:`LineRecord`;
a store applies them atomically (a SQLite transaction, a Redis ``WATCH``/``MULTI``).

``submitting`` is written before the submit is sent and ``accepted`` with the ref as soon as the
server answers: a line found in ``submitting`` after a crash may or may not have been accepted
(and billed), so it is not submitted again unless the caller asks (``retry_failed``).

A batch belongs to one backend (:func:`bind`): its accepted refs can only be polled, and its
saved files only stand for what that backend made, where the lines were submitted.
"""

from __future__ import annotations

import abc
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs

from jimeng._journal._sqlite import SQLiteWorker

if TYPE_CHECKING:
    import sqlite3

    from jimeng.backends import Backend

__all__ = [
    "Claim",
    "Ledger",
    "LineRecord",
    "MemoryLedger",
    "SQLiteLedger",
    "backend_identity",
    "claim_record",
    "renew_record",
    "reopen_record",
    "same_backend",
    "update_record",
]

T = TypeVar("T")
LineState = Literal["pending", "submitting", "accepted", "done", "failed"]
#: What a claim means for the worker: work on the line, leave it (another worker holds it),
#: or report it as it is (finished earlier).
Claim = Literal["run", "busy", "done", "failed"]
TERMINAL: frozenset[str] = frozenset({"done", "failed"})


@attrs.frozen(kw_only=True)
class LineRecord:
    """One line's state. ``key`` is ``<id>#<fingerprint>`` (an edited line is a new record)."""

    key: str
    id: str
    number: int
    kind: str
    state: LineState = "pending"
    ref: str | None = None
    owner: str | None = None
    lease_until: float = 0.0
    #: Submits the server accepted for this line, or may have (a submit whose answer was lost):
    #: what may have been spent. A submit refused outright is not counted.
    submits: int = 0
    submitted_at: float | None = None
    finished_at: float | None = None
    paths: tuple[str, ...] = ()
    #: ``[{"url": ..., "expires_at": ISO text or None}]``
    urls: tuple[Mapping[str, Any], ...] = ()
    #: ``{"class": ..., "code": ..., "message": ..., "maybe_accepted": bool}``
    error: Mapping[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self, recurse=False)
        data["paths"] = list(self.paths)
        data["urls"] = [dict(url) for url in self.urls]
        data["error"] = dict(self.error) if self.error is not None else None
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LineRecord:
        fields = {field.name for field in attrs.fields(cls)}
        values = {key: value for key, value in data.items() if key in fields}
        values["paths"] = tuple(values.get("paths") or ())
        values["urls"] = tuple(values.get("urls") or ())
        return cls(**values)


def claim_record(
    record: LineRecord | None,
    *,
    key: str,
    line_id: str,
    number: int,
    kind: str,
    owner: str,
    now: float,
    lease: float,
    retry_failed: bool,
    abandoned: Callable[[str], bool] = lambda owner: False,
) -> tuple[LineRecord, Claim]:
    """Take the line for ``owner`` unless it is finished or another owner's lease is live
    (a lease whose owner is known to be gone, ``abandoned(owner)``, is not)."""
    if record is None:
        record = LineRecord(key=key, id=line_id, number=number, kind=kind)
    if record.state == "done":
        return record, "done"
    if record.state == "failed" and not retry_failed:
        return record, "failed"
    if (
        record.owner not in (None, owner)
        and record.lease_until > now
        and not abandoned(record.owner)
    ):
        return record, "busy"
    if record.state == "failed":
        # A retry submits again: the failed task (if any) is history.
        record = attrs.evolve(record, state="pending", ref=None, error=None, finished_at=None)
    return attrs.evolve(record, owner=owner, lease_until=now + lease), "run"


def renew_record(
    record: LineRecord | None, *, owner: str, now: float, lease: float
) -> tuple[LineRecord | None, bool]:
    """Extend ``owner``'s lease; False when the line is no longer theirs."""
    if record is None or record.owner != owner or record.finished:
        return record, False
    return attrs.evolve(record, lease_until=now + lease), True


def update_record(
    record: LineRecord | None, *, owner: str, now: float, changes: Mapping[str, Any]
) -> tuple[LineRecord | None, bool]:
    """Apply ``changes`` for ``owner`` (refused when the lease went to someone else). A change
    to a finished state releases the lease."""
    if record is None or record.owner != owner:
        return record, False
    values = dict(changes)
    if values.get("state") == "submitting":
        values.setdefault("submitted_at", now)
        if record.state == "submitting":
            # A submit left in flight by a stopped worker, sent again (--retry-failed): the
            # first may have been accepted, so it counts as spent.
            values.setdefault("submits", record.submits + 1)
    elif record.state == "submitting" and _spent(values):
        values.setdefault("submits", record.submits + 1)
    if values.get("state") in TERMINAL:
        values.setdefault("finished_at", now)
        values.update(owner=None, lease_until=0.0)
    for name in ("paths", "urls"):
        if name in values:
            values[name] = tuple(values[name])
    return attrs.evolve(record, **values), True


def _spent(changes: Mapping[str, Any]) -> bool:
    """Whether leaving ``submitting`` this way may have cost a generation: the server accepted
    the submit, or its answer was lost (``maybe_accepted``)."""
    if changes.get("state") == "accepted":
        return True
    error = changes.get("error")
    return changes.get("state") == "failed" and bool(error and error.get("maybe_accepted"))


#: What a done line whose files are gone becomes: ``MISSING`` when nothing can bring them back.
MISSING_FILES = "MissingFiles"


def reopen_record(
    record: LineRecord | None, *, seen: LineRecord, owner: str, now: float, lease: float
) -> tuple[LineRecord | None, Claim]:
    """A done line whose saved files are not where this run saves (deleted, or another
    ``out``): collected again from its task, as an ``accepted`` line (never submitted again),
    keeping the files it had as a source to copy; failed when no task ref was recorded.
    ``busy`` when the line changed since it was ``seen`` (look again later)."""
    if record is None or record.state != "done" or record.paths != seen.paths:
        return record, "busy"
    if record.ref is None:
        error = {
            "class": MISSING_FILES,
            "code": None,
            "message": f"the files saved earlier are gone ({', '.join(record.paths)}) and no task "
            "ref was recorded to fetch them again; rerun with --retry-failed to generate the "
            "line again",
            "maybe_accepted": False,
        }
        failed = attrs.evolve(record, state="failed", error=error, finished_at=now, paths=())
        return failed, "failed"
    return attrs.evolve(record, state="accepted", owner=owner, lease_until=now + lease), "run"


def backend_identity(backend: Backend) -> dict[str, str]:
    """Whose tasks a batch's lines are: the backend's name, where it sends requests (the
    journal's fingerprint of it) and the account (``Backend.account()``), with ``where`` to
    name them in messages. Nothing secret. ``in_process`` names the protocol of a sandbox
    serving inside this process (``""`` otherwise): its address is new each run and its tasks
    end with it, so the next run's is taken as the same one (see :func:`same_backend`)."""
    from jimeng import _logging
    from jimeng._journal import configuration_fingerprint

    described = backend.describe()
    protocol = described.get("protocol")
    address = next(
        (described[key] for key in ("url", "endpoint", "base_url") if described.get(key)), None
    )
    in_process = str(protocol or backend.name) if described.get("in_process") else ""
    where = backend.name + (f" ({protocol})" if protocol else "")
    where += " in-process" if in_process else (f" at {address}" if address else "")
    account = backend.account()
    if account:
        where += f", account {account}"
    return {
        "backend": backend.name,
        "fingerprint": configuration_fingerprint(backend),
        "account": account,
        "in_process": in_process,
        "where": _logging.redact(where),
    }


def same_backend(recorded: Mapping[str, str], identity: Mapping[str, str]) -> bool:
    """Whether two :func:`backend_identity` values name the same backend and account: the same
    endpoint, or two in-process sandboxes of one protocol (the first one is gone)."""
    if any(recorded.get(key) != identity.get(key) for key in ("backend", "account")):
        return False
    if recorded.get("fingerprint") == identity.get("fingerprint"):
        return True
    return bool(recorded.get("in_process")) and recorded.get("in_process") == identity.get(
        "in_process"
    )


class Ledger(abc.ABC):
    """Line states of batches, keyed by batch name and line key. Every method is a coroutine
    that never blocks the event loop; ``apply`` is the one atomic primitive."""

    #: Seconds since the epoch, as the store sees them (a shared store: the server's clock).
    async def now(self) -> float:
        return time.time()

    @abc.abstractmethod
    async def apply(
        self,
        batch: str,
        key: str,
        change: Callable[[LineRecord | None, float], tuple[LineRecord | None, T]],
    ) -> T:
        """Run ``change(record, now)`` atomically and store the record it returns."""

    @abc.abstractmethod
    async def records(self, batch: str) -> dict[str, LineRecord]:
        """Every record of ``batch`` by key."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections and threads."""

    async def bind(self, batch: str, owner: Mapping[str, str]) -> Mapping[str, str] | None:
        """Record ``owner`` (the backend the batch runs on, see
        :func:`~jimeng.batch.backend_identity`) as the batch's, unless one is recorded already:
        returns that one (``None`` when this call recorded it). Stores that cannot keep it
        remember it in this object only."""
        owners: dict[str, Mapping[str, str]] = self.__dict__.setdefault("_owners", {})
        recorded = owners.get(batch)
        if recorded is None:
            owners[batch] = dict(owner)
        return recorded

    async def claim(
        self,
        batch: str,
        *,
        key: str,
        line_id: str,
        number: int,
        kind: str,
        owner: str,
        lease: float,
        retry_failed: bool,
        abandoned: Callable[[str], bool] = lambda owner: False,
    ) -> tuple[LineRecord, Claim]:
        return await self.apply(
            batch,
            key,
            lambda record, now: _pair(
                claim_record(
                    record,
                    key=key,
                    line_id=line_id,
                    number=number,
                    kind=kind,
                    owner=owner,
                    now=now,
                    lease=lease,
                    retry_failed=retry_failed,
                    abandoned=abandoned,
                )
            ),
        )

    async def reopen(
        self, batch: str, key: str, *, seen: LineRecord, owner: str, lease: float
    ) -> tuple[LineRecord | None, Claim]:
        """:func:`reopen_record`, atomically: a done line whose files are gone."""

        def change(
            record: LineRecord | None, now: float
        ) -> tuple[LineRecord | None, tuple[LineRecord | None, Claim]]:
            after, claim = reopen_record(record, seen=seen, owner=owner, now=now, lease=lease)
            return after, (after, claim)

        return await self.apply(batch, key, change)

    async def renew(self, batch: str, key: str, *, owner: str, lease: float) -> bool:
        return await self.apply(
            batch,
            key,
            lambda record, now: renew_record(record, owner=owner, now=now, lease=lease),
        )

    async def update(self, batch: str, key: str, *, owner: str, **changes: Any) -> bool:
        return await self.apply(
            batch,
            key,
            lambda record, now: update_record(record, owner=owner, now=now, changes=changes),
        )


def _pair(result: tuple[LineRecord, Claim]) -> tuple[LineRecord, tuple[LineRecord, Claim]]:
    return result[0], result


class MemoryLedger(Ledger):
    """Line states in this process only (a batch that cannot be resumed after a crash)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._batches: dict[str, dict[str, LineRecord]] = {}

    async def now(self) -> float:
        return self._clock()

    async def apply(
        self,
        batch: str,
        key: str,
        change: Callable[[LineRecord | None, float], tuple[LineRecord | None, T]],
    ) -> T:
        records = self._batches.setdefault(batch, {})
        record, result = change(records.get(key), self._clock())
        if record is not None:
            records[key] = record
        return result

    async def records(self, batch: str) -> dict[str, LineRecord]:
        return dict(self._batches.get(batch, {}))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS batch_lines (
    batch TEXT NOT NULL,
    key TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (batch, key)
);
CREATE TABLE IF NOT EXISTS batch_owners (
    batch TEXT PRIMARY KEY,
    owner TEXT NOT NULL
);
"""


class SQLiteLedger(Ledger):
    """Line states in a SQLite file (WAL; several processes on one machine may share it: each
    change runs in an immediate transaction). Calls run on one worker thread."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0):
        self.path = Path(path).expanduser()
        self.busy_timeout = busy_timeout
        self._worker: SQLiteWorker | None = None
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        return f"SQLiteLedger({str(self.path)!r})"

    async def _call(self, work: Callable[..., T], *args: Any) -> T:
        with self._guard:
            if self._worker is None:
                self._worker = SQLiteWorker("jimeng-batch-ledger", self._connect)
            worker = self._worker
        return await worker.call(work, *args)

    def _connect(self) -> sqlite3.Connection:
        import sqlite3

        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        connection = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        connection.execute("PRAGMA journal_mode = WAL")
        # NORMAL survives a killed process (what resuming is about); the ref of an accepted
        # task is also in the journal, which syncs every commit (FULL) against power loss.
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.executescript(_SCHEMA)
        return connection

    async def apply(
        self,
        batch: str,
        key: str,
        change: Callable[[LineRecord | None, float], tuple[LineRecord | None, T]],
    ) -> T:
        return await self._call(_apply_sqlite, batch, key, change)

    async def records(self, batch: str) -> dict[str, LineRecord]:
        return await self._call(_records_sqlite, batch)

    async def bind(self, batch: str, owner: Mapping[str, str]) -> Mapping[str, str] | None:
        return await self._call(_bind_sqlite, batch, json.dumps(dict(owner), sort_keys=True))

    async def aclose(self) -> None:
        with self._guard:
            worker, self._worker = self._worker, None
        if worker is not None:
            await worker.aclose()


def _apply_sqlite(
    connection: sqlite3.Connection,
    batch: str,
    key: str,
    change: Callable[[LineRecord | None, float], tuple[LineRecord | None, T]],
) -> T:
    connection.execute("BEGIN IMMEDIATE")
    try:
        row = connection.execute(
            "SELECT record FROM batch_lines WHERE batch = ? AND key = ?", (batch, key)
        ).fetchone()
        before = LineRecord.from_json(json.loads(row[0])) if row else None
        after, result = change(before, time.time())
        if after is not None and after != before:
            connection.execute(
                "INSERT OR REPLACE INTO batch_lines (batch, key, record) VALUES (?, ?, ?)",
                (batch, key, json.dumps(after.to_json(), separators=(",", ":"))),
            )
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return result


def _records_sqlite(connection: sqlite3.Connection, batch: str) -> dict[str, LineRecord]:
    rows = connection.execute(
        "SELECT key, record FROM batch_lines WHERE batch = ?", (batch,)
    ).fetchall()
    return {key: LineRecord.from_json(json.loads(text)) for key, text in rows}


def _bind_sqlite(connection: sqlite3.Connection, batch: str, owner: str) -> dict[str, str] | None:
    connection.execute("BEGIN IMMEDIATE")
    try:
        row = connection.execute(
            "SELECT owner FROM batch_owners WHERE batch = ?", (batch,)
        ).fetchone()
        if row is None:
            connection.execute(
                "INSERT INTO batch_owners (batch, owner) VALUES (?, ?)", (batch, owner)
            )
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return None if row is None else dict(json.loads(row[0]))
