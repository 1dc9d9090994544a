"""The client's side of the journal: what it writes when a task is accepted, observed or saved.

Backends never see the journal; the client calls a :class:`Recorder`. A store that fails (disk
full, locked for too long) never fails the task it describes: the failure is logged with the
task's ref, and the task goes on.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from jimeng import _logging
from jimeng._journal._store import (
    JournalEntry,
    JournalStore,
    JournalUpdate,
    ResultLink,
    scrub,
)
from jimeng.errors import ValidationError
from jimeng.models import ImageResult, Task, TaskKind, TaskStatus

if TYPE_CHECKING:
    from jimeng.backends._base import Backend
    from jimeng.models._media import Fetcher, Media

__all__ = [
    "JournalLike",
    "JournallingFetcher",
    "Recorder",
    "configuration_fingerprint",
    "open_store",
]

#: What ``Client(journal=...)`` accepts.
JournalLike = bool | str | os.PathLike[str] | JournalStore | None

_ON = ("1", "true", "yes", "on")
_OFF = ("", "0", "false", "no", "off")
#: The parts of ``Backend.describe()`` that say where tasks live (not how many credits are left).
_WHERE = ("backend", "protocol", "endpoint", "video_endpoint", "url", "relay", "flavor")


def open_store(journal: JournalLike) -> tuple[JournalStore | None, bool]:
    """The store ``Client(journal=...)`` asks for, and whether the client owns it.

    ``None`` reads ``JIMENG_JOURNAL`` (``1``/``true``: the default file; a path: that file;
    unset or ``0``: no journal). ``True`` is the default file, a path that file, ``False`` none.
    """
    from jimeng._journal._sqlite import SQLiteJournal

    if journal is None:
        raw = os.environ.get("JIMENG_JOURNAL", "").strip()
        if raw.lower() in _OFF:
            return None, False
        journal = True if raw.lower() in _ON else raw
    if journal is False:
        return None, False
    if journal is True:
        return SQLiteJournal(), True
    if isinstance(journal, str | os.PathLike):
        return SQLiteJournal(journal), True
    if isinstance(journal, JournalStore):
        return journal, False
    raise ValidationError(
        "journal",
        "must be True, False, a path or a JournalStore",
        allowed="True, False, a file path, a JournalStore",
        value=journal,
    )


def configuration_fingerprint(backend: Backend) -> str:
    """16 hex digits naming where ``backend`` sends requests (never a credential): a task is
    resumed from the journal only by a backend with the same fingerprint."""
    described = backend.describe()
    basis = {key: described[key] for key in _WHERE if key in described}
    basis.setdefault("backend", backend.name)
    text = json.dumps(scrub(basis), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def result_links(task: Task) -> tuple[ResultLink, ...]:
    result = task.result
    if result is None:
        return ()
    media: Sequence[Media] = result.images if isinstance(result, ImageResult) else (result.video,)
    return tuple(ResultLink(url=m.url, expires_at=m.expires_at) for m in media if m.url)


def _failure(task: Task) -> str | None:
    if task.failure is None:
        return None
    code = f"[{task.failure.code}] " if task.failure.code is not None else ""
    return f"{code}{task.failure.message}".strip() or None


class Recorder:
    """Writes a client's tasks to a :class:`JournalStore`."""

    def __init__(
        self,
        store: JournalStore,
        *,
        owned: bool,
        backend: Backend,
        clock: Callable[[], datetime],
    ):
        self.store = store
        self.owned = owned
        self._backend = backend
        self._clock = clock
        self._looked_up: set[str] = set()
        #: ref → whether this client's observations of the task belong in its entry.
        self._observable: dict[str, bool] = {}

    @property
    def backend_name(self) -> str:
        return self._backend.name

    def fingerprint(self) -> str:
        return configuration_fingerprint(self._backend)

    def account(self) -> str:
        return self._backend.account()

    def sees(self, entry: JournalEntry) -> bool:
        """Whether this client's backend sees ``entry``'s task (same endpoint and account)."""
        return entry.observable_by(self.fingerprint(), self.account())

    def _remember(self, ref: str, entry: JournalEntry | None) -> bool:
        observable = entry is None or self.sees(entry)
        self._observable[ref] = observable
        if not observable:
            _logging.logger.warning(
                "journal: task %s was submitted through another endpoint or account than this "
                "client's; what this client sees of it is not recorded",
                ref,
            )
        return observable

    async def _records(self, ref: str) -> bool:
        """Whether what this client sees of ``ref`` goes into the journal: a task submitted
        through another endpoint or account is not this client's to describe (asked there, it
        may well look expired). Looked up once per ref."""
        known = self._observable.get(ref)
        if known is not None:
            return known
        try:
            entry = await self.store.get(ref, backend=self.backend_name)
        except Exception as error:
            _logging.logger.warning("journal: could not read task %s: %s", ref, error)
            return True
        return self._remember(ref, entry)

    async def _safely(self, what: str, ref: str, write: Any) -> None:
        try:
            await write
        except Exception as error:  # the journal must never fail the task it describes
            _logging.logger.warning("journal: could not %s task %s: %s", what, ref, error)

    async def accepted(self, task: Task) -> None:
        now = self._clock()
        entry = JournalEntry(
            ref=task.ref,
            task_id=task.id,
            backend=self.backend_name,
            protocol=task.backend,
            fingerprint=self.fingerprint(),
            account=self.account(),
            kind=task.kind,
            status=task.status,
            raw_status=task.raw_status,
            model=task.model,
            context=task.context,
            submitted_at=task.created_at or now,
            updated_at=now,
            completed_at=task.completed_at,
            results=result_links(task),
            failure=_failure(task),
        )
        self._looked_up.add(task.ref)
        self._observable[task.ref] = True
        await self._safely("record", task.ref, self.store.record(entry))

    async def observed(self, before: Task, after: Task) -> None:
        changed = (
            after.status is not before.status
            or after.raw_status != before.raw_status
            or (after.result is not None and before.result is None)
        )
        if not changed or not await self._records(after.ref):
            return
        links = result_links(after)
        change = JournalUpdate(
            status=after.status,
            raw_status=after.raw_status,
            updated_at=after.updated_at or self._clock(),
            completed_at=after.completed_at if after.done else None,
            results=links or None,
            failure=_failure(after),
        )
        await self._safely(
            "update", after.ref, self.store.update(self.backend_name, after.ref, change)
        )

    async def saved(self, ref: str, paths: Sequence[Path]) -> None:
        if not await self._records(ref):
            return
        text = [str(path.resolve()) for path in paths]
        await self._safely(
            "add saved files to", ref, self.store.add_saved(self.backend_name, ref, text)
        )

    async def replaced(self, ref: str, old: Path, new: Path) -> None:
        """A saved file was converted into ``new`` (and ``old`` removed)."""
        if not await self._records(ref):
            return
        await self._safely(
            "replace a saved file of",
            ref,
            self.store.replace_saved(
                self.backend_name, ref, str(old.resolve()), str(new.resolve())
            ),
        )

    async def restore(self, task: Task) -> Task:
        """A task from ``resume(ref)``, with what the journal recorded at submit time (kind,
        model, poll options). Looked up once per ref; a task with a journal entry and one
        without poll the same way otherwise."""
        if task.status is not TaskStatus.UNKNOWN or task.ref in self._looked_up:
            return task
        self._looked_up.add(task.ref)
        try:
            entry = await self.store.get(task.ref, backend=self.backend_name)
        except Exception as error:
            _logging.logger.warning("journal: could not read task %s: %s", task.ref, error)
            return task
        self._remember(task.ref, entry)
        return task if entry is None else merge(task, entry)

    async def aclose(self) -> None:
        if self.owned:
            await self.store.aclose()


def merge(task: Task, entry: JournalEntry) -> Task:
    """``task`` (fresh from ``backend.resume``) with the journalled kind, model and options."""
    return attrs.evolve(
        task,
        kind=entry.kind,
        model=entry.model or task.model,
        context={**task.context, **entry.context},
        created_at=task.created_at or entry.submitted_at,
    )


def parse_kind(value: TaskKind | str | None) -> TaskKind | None:
    if value is None or isinstance(value, TaskKind):
        return value
    try:
        return TaskKind(str(value).strip().lower())
    except ValueError:
        raise ValidationError(
            "kind", f"unknown kind {value!r}", allowed=[k.value for k in TaskKind]
        ) from None


def parse_status(value: TaskStatus | str | None) -> TaskStatus | None:
    if value is None or isinstance(value, TaskStatus):
        return value
    try:
        return TaskStatus(str(value).strip().lower())
    except ValueError:
        raise ValidationError(
            "status",
            f"unknown status {value!r}",
            allowed=[s.value for s in TaskStatus],
        ) from None


class JournallingFetcher:
    """A client's downloader that also records in the journal where a task's files went."""

    def __init__(self, inner: Fetcher, recorder: Recorder, ref: str):
        self._inner = inner
        self._recorder = recorder
        self._ref = ref

    async def read(self, media: Media) -> bytes:
        return await self._inner.read(media)

    async def save(
        self, media: Media, target: Path, *, index: int, explicit: bool, stamp: str | None = None
    ) -> Path:
        path = await self._inner.save(media, target, index=index, explicit=explicit, stamp=stamp)
        await self._recorder.saved(self._ref, [path])
        return path

    def stamp(self) -> str:
        return self._inner.stamp()
