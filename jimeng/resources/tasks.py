"""``client.tasks``: look at, resume, wait for, cancel and list tasks by id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from jimeng._handle import OnUpdate, TaskHandle
from jimeng._polling import PollPolicy
from jimeng.models import Task
from jimeng.models._checks import check_int, check_str, refuse
from jimeng.resources._common import check_wait_options


def _check_ref(ref: object, model: object) -> None:
    check_str("ref", ref)
    if model is not None:
        check_str("model", model)


if TYPE_CHECKING:
    from jimeng._client import Client

__all__ = ["Tasks"]


class Tasks:
    """Tasks by id. ``ref`` is a task's ``ref`` (or its id where the backend needs nothing more;
    Volcengine also needs the model: pass ``model=`` with a bare id)."""

    def __init__(self, client: Client):
        self._client = client

    def resume(self, ref: str, *, model: str | None = None) -> TaskHandle[Any]:
        """A handle on a task submitted earlier (even by another process). No network call."""
        _check_ref(ref, model)
        return TaskHandle(self._client, self._client.backend.resume(ref, model=model))

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
        return await self._client._run(self._client.backend.cancel(task), kind=task.kind)

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
