"""``client.tasks``: look at, resume, wait for, cancel and list tasks by id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jimeng import _logging
from jimeng._handle import OnUpdate, TaskHandle
from jimeng._polling import PollPolicy
from jimeng.errors import ConfigurationError, JimengError
from jimeng.models import Task, TaskKind, TaskStatus
from jimeng.models._checks import check_int, check_str, refuse
from jimeng.resources._common import check_wait_options

if TYPE_CHECKING:
    from jimeng._client import Client
    from jimeng._journal import JournalEntry, Recorder

__all__ = ["Tasks"]


def _check_ref(ref: object, model: object) -> None:
    check_str("ref", ref)
    if model is not None:
        check_str("model", model)


class Tasks:
    """Tasks by id. ``ref`` is a task's ``ref`` (or its id where the backend needs nothing more;
    Volcengine also needs the model: pass ``model=`` with a bare id)."""

    def __init__(self, client: Client):
        self._client = client

    def resume(self, ref: str, *, model: str | None = None) -> TaskHandle[Any]:
        """A handle on a task submitted earlier (even by another process). No network call.

        With a journal, the first poll uses what the journal recorded at submit time (kind,
        model and poll options such as Volcengine's watermark / AIGC / return_url settings).
        """
        _check_ref(ref, model)
        return TaskHandle(self._client, self._client.backend.resume(ref, model=model))

    def _recorder(self, what: str) -> Recorder:
        recorder = self._client._shared.journal
        if recorder is None:
            raise ConfigurationError(
                f"{what} reads the task journal, and this client keeps none: create it with "
                "jimeng.Client(journal=True) or set JIMENG_JOURNAL=1"
            )
        return recorder

    async def unfinished(self) -> list[TaskHandle[Any]]:
        """Handles on every journalled task of this backend (same endpoint and account) that
        was not seen finished, oldest first, restored with the options they were submitted
        with. A task this backend cannot resume (a session no longer configured) is skipped
        with a warning.
        """
        from jimeng._journal._recorder import merge

        recorder = self._recorder("tasks.unfinished()")
        entries = await recorder.store.unfinished(
            backend=recorder.backend_name, fingerprint=recorder.fingerprint()
        )
        handles: list[TaskHandle[Any]] = []
        for entry in entries:
            if not recorder.sees(entry):
                continue  # another account's task: that account resumes it
            try:
                task = self._client.backend.resume(entry.ref, model=entry.model)
            except JimengError as error:
                _logging.logger.warning("journal: cannot resume task %s: %s", entry.ref, error)
                continue
            handles.append(TaskHandle(self._client, merge(task, entry)))
        return handles

    async def history(
        self,
        *,
        status: TaskStatus | str | None = None,
        kind: TaskKind | str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        all_backends: bool = False,
    ) -> list[JournalEntry]:
        """Journalled tasks, newest first: their state, result links (with expiry) and the
        files saved from them. Only this client's backend unless ``all_backends``."""
        from jimeng._journal._recorder import parse_kind, parse_status

        recorder = self._recorder("tasks.history()")
        if since is not None and not isinstance(since, datetime):
            raise refuse("since", "a datetime", since)
        if limit is not None:
            check_int("limit", limit, minimum=1)
        return await recorder.store.history(
            status=parse_status(status),
            kind=parse_kind(kind),
            since=since,
            backend=None if all_backends else recorder.backend_name,
            limit=limit,
        )

    async def get(self, ref: str, *, model: str | None = None) -> Task:
        """Ask the server once about a task."""
        return await self.resume(ref, model=model).refresh()

    async def wait(
        self,
        ref: str,
        *,
        model: str | None = None,
        poll: PollPolicy | None = None,
        on_update: OnUpdate | None = None,
    ) -> Any:
        """Wait for a task and return its result (raising its error, with the id)."""
        handle = self.resume(ref, model=model)
        check_wait_options(poll, None, on_update)  # before the first poll
        await handle.refresh()
        return await handle.result(poll=poll, on_update=on_update)

    async def cancel(self, task: Task | str, *, model: str | None = None) -> Task:
        """Cancel a task that has not started yet (backends refuse running tasks)."""
        if isinstance(task, str):
            _check_ref(task, model)
            task = self._client.backend.resume(task, model=model)
        elif not isinstance(task, Task):
            raise refuse("task", "a Task or a task ref (str)", task)
        cancelled = await self._client._run(self._client.backend.cancel(task), kind=task.kind)
        journal = self._client._shared.journal
        if journal is not None:  # a cancelled task is no longer "unfinished"
            await journal.observed(task, cancelled)
        return cancelled

    async def list(
        self, *, status: str | None = None, kind: str | None = None, limit: int | None = None
    ) -> Sequence[Task]:
        """Tasks the backend knows about (backends with a task store only)."""
        if status is not None:
            check_str("status", status)
        if kind is not None:
            check_str("kind", kind)
        if limit is not None:
            check_int("limit", limit, minimum=1)
        return await self._client._run(
            self._client.backend.list_tasks(status=status, kind=kind, limit=limit)
        )
