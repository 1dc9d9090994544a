"""What the journal records, and the interface every journal store implements.

A store keeps one :class:`JournalEntry` per accepted task (keyed by backend name and ``ref``) and a
small key → JSON table of metadata. Stores are async and must never block the event loop; they
hold no secrets: every string they write goes through :func:`scrub` first.
"""

from __future__ import annotations

import abc
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import attrs

from jimeng import _logging
from jimeng.models import TaskKind, TaskStatus

__all__ = [
    "JournalEntry",
    "JournalStore",
    "JournalUpdate",
    "ResultLink",
    "default_home",
    "journal_path",
    "scrub",
]

JOURNAL_FILE = "journal.sqlite3"


def default_home() -> Path:
    """``$JIMENG_HOME``, else the user's data folder: ``$XDG_DATA_HOME/jimeng`` (default
    ``~/.local/share/jimeng``) on Linux, ``~/Library/Application Support/jimeng`` on macOS,
    ``%LOCALAPPDATA%\\jimeng`` on Windows."""
    explicit = os.environ.get("JIMENG_HOME")
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.environ.get("APPDATA")
        return Path(base) / "jimeng" if base else Path.home() / "AppData" / "Local" / "jimeng"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "jimeng"
    data = os.environ.get("XDG_DATA_HOME")
    return (Path(data) if data else Path.home() / ".local" / "share") / "jimeng"


def journal_path() -> Path:
    """Where the default SQLite journal lives: ``default_home() / "journal.sqlite3"``."""
    return default_home() / JOURNAL_FILE


def scrub(value: Any) -> Any:
    """``value`` as plain JSON data (dicts, lists, strings, numbers), every string cleared of the
    secrets backends registered. Tuples become lists, enums their value, datetimes ISO text."""
    if isinstance(value, str):
        return _logging.redact(value)
    if isinstance(value, Enum):
        return scrub(value.value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {scrub(str(key)): scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(item) for item in value]
    return _logging.redact(str(value))


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    when = datetime.fromisoformat(str(value))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


@attrs.frozen(kw_only=True)
class ResultLink:
    """A result URL and until when it works (signed links expire), if known."""

    url: str
    expires_at: datetime | None = None


@attrs.frozen(kw_only=True)
class JournalEntry:
    """One accepted task as the journal knows it.

    ``backend`` is the client's backend name (``"volcengine"``, ``"sandbox"``…), ``protocol`` the
    name the task itself reports (a sandbox task speaks ``"volcengine"``), ``fingerprint`` a
    non-secret digest of where the backend sends requests (endpoint, flavour) and ``account`` a
    fingerprint of the credential where a task is its account's own (``""`` elsewhere, and in
    entries written before it was recorded): tasks are only resumed, and their changes only
    recorded, by a backend with the same ones (:meth:`observable_by`). ``context`` holds what
    polling and fetching need exactly as submitted (Volcengine's ``req_json`` with watermark /
    AIGC / return_url options, a Dreamina session fingerprint…). ``saved`` lists files written
    through ``result.save()``.
    """

    ref: str
    task_id: str
    backend: str
    protocol: str
    fingerprint: str
    kind: TaskKind
    status: TaskStatus
    submitted_at: datetime
    updated_at: datetime
    model: str | None = None
    raw_status: str | None = None
    context: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    completed_at: datetime | None = None
    results: tuple[ResultLink, ...] = ()
    saved: tuple[str, ...] = ()
    failure: str | None = None
    account: str = ""

    @property
    def done(self) -> bool:
        return self.status.is_terminal

    def observable_by(self, fingerprint: str, account: str) -> bool:
        """Whether a backend with this ``fingerprint`` and ``account`` sees this task: what it
        observes of it (its state, its files) belongs in this entry. Unrecorded parts (entries
        of older versions) do not count against it."""
        return (not self.fingerprint or self.fingerprint == fingerprint) and (
            not self.account or self.account == account
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data, scrubbed of secrets (what every store writes)."""
        data: dict[str, Any] = scrub(
            {
                "ref": self.ref,
                "task_id": self.task_id,
                "backend": self.backend,
                "protocol": self.protocol,
                "fingerprint": self.fingerprint,
                "account": self.account,
                "kind": self.kind,
                "status": self.status,
                "submitted_at": self.submitted_at,
                "updated_at": self.updated_at,
                "model": self.model,
                "raw_status": self.raw_status,
                "context": self.context,
                "completed_at": self.completed_at,
                "results": [
                    {"url": link.url, "expires_at": link.expires_at} for link in self.results
                ],
                "saved": list(self.saved),
                "failure": self.failure,
            }
        )
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JournalEntry:
        submitted = _time(data["submitted_at"])
        assert submitted is not None
        return cls(
            ref=str(data["ref"]),
            task_id=str(data["task_id"]),
            backend=str(data["backend"]),
            protocol=str(data.get("protocol") or data["backend"]),
            fingerprint=str(data.get("fingerprint") or ""),
            account=str(data.get("account") or ""),
            kind=TaskKind(data["kind"]),
            status=_status(data.get("status")),
            submitted_at=submitted,
            updated_at=_time(data.get("updated_at")) or submitted,
            model=data.get("model"),
            raw_status=data.get("raw_status"),
            context=dict(data.get("context") or {}),
            completed_at=_time(data.get("completed_at")),
            results=tuple(
                ResultLink(url=str(link["url"]), expires_at=_time(link.get("expires_at")))
                for link in data.get("results") or ()
            ),
            saved=tuple(str(path) for path in data.get("saved") or ()),
            failure=data.get("failure"),
        )

    def with_saved_replaced(self, old: str, new: str) -> JournalEntry:
        """This entry with ``new`` in ``old``'s place among the saved files (each path once;
        appended when ``old`` is not there)."""
        # ``old`` once more at the end: ``new`` lands in its place, or at the end when absent.
        paths = (new if path == old else path for path in (*self.saved, old))
        return attrs.evolve(self, saved=tuple(dict.fromkeys(paths)))

    def evolve(self, change: JournalUpdate) -> JournalEntry:
        """This entry after ``change`` (a terminal status is never replaced by a live one: a
        slower process must not resurrect a finished task)."""
        if self.done and not change.status.is_terminal:
            return self
        return attrs.evolve(
            self,
            status=change.status,
            raw_status=change.raw_status,
            updated_at=change.updated_at,
            completed_at=change.completed_at or self.completed_at,
            results=self.results if change.results is None else change.results,
            failure=change.failure if change.failure is not None else self.failure,
        )


def _status(value: Any) -> TaskStatus:
    try:
        return TaskStatus(value)
    except ValueError:
        return TaskStatus.UNKNOWN


@attrs.frozen(kw_only=True)
class JournalUpdate:
    """A change of a journalled task's state. ``results=None`` keeps the links recorded."""

    status: TaskStatus
    updated_at: datetime
    raw_status: str | None = None
    completed_at: datetime | None = None
    results: tuple[ResultLink, ...] | None = None
    failure: str | None = None


class JournalStore(abc.ABC):
    """Where the journal lives. The default is :class:`~jimeng.SQLiteJournal`; a shared store
    (Redis, a database) implements the same methods. Every method is a coroutine and must not
    block the event loop; entries are identified by ``(backend, ref)``."""

    @abc.abstractmethod
    async def record(self, entry: JournalEntry) -> None:
        """Store a newly accepted task (replacing an entry with the same backend and ref)."""

    @abc.abstractmethod
    async def update(self, backend: str, ref: str, change: JournalUpdate) -> None:
        """Apply ``change`` (see :meth:`JournalEntry.evolve`); unknown tasks are ignored."""

    @abc.abstractmethod
    async def add_saved(self, backend: str, ref: str, paths: Sequence[str]) -> None:
        """Remember files saved from a task's result (appended, without duplicates)."""

    async def replace_saved(self, backend: str, ref: str, old: str, new: str) -> None:
        """A saved file became another (the command line turns WebP into PNG): ``new`` takes
        ``old``'s place. Stores that predate this method only add ``new``."""
        await self.add_saved(backend, ref, [new])

    @abc.abstractmethod
    async def get(self, ref: str, *, backend: str | None = None) -> JournalEntry | None:
        """The newest entry whose ref (or task id) is ``ref``."""

    @abc.abstractmethod
    async def unfinished(
        self, *, backend: str | None = None, fingerprint: str | None = None
    ) -> list[JournalEntry]:
        """Entries not in a terminal state, oldest first."""

    @abc.abstractmethod
    async def history(
        self,
        *,
        status: TaskStatus | None = None,
        kind: TaskKind | None = None,
        since: datetime | None = None,
        backend: str | None = None,
        limit: int | None = None,
    ) -> list[JournalEntry]:
        """Entries, newest first, filtered by state, kind and submission time."""

    @abc.abstractmethod
    async def get_meta(self, key: str) -> Any:
        """The JSON value stored under ``key``, or ``None``."""

    @abc.abstractmethod
    async def put_meta(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable ``value`` (scrubbed) under ``key``."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections and threads; the store may be used again afterwards."""
