"""``jimeng.TaskProgress``: an ``on_update`` callback that shows how a task is doing.

In a Jupyter notebook it draws one line under the cell and updates it in place; elsewhere it
writes one line to stderr per status change. IPython is used only if it is already running.
"""

from __future__ import annotations

import html
import importlib
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from jimeng.models import Task, TaskStatus

__all__ = ["TaskProgress"]

_SYMBOLS = {
    TaskStatus.QUEUED: "⏳",
    TaskStatus.RUNNING: "⚙️",
    TaskStatus.SUCCEEDED: "✅",
    TaskStatus.FAILED: "❌",
    TaskStatus.CANCELLED: "⏹",
    TaskStatus.EXPIRED: "⌛",
    TaskStatus.UNKNOWN: "…",
}


class _Line:
    """What the notebook displays: the same words as text and as HTML."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return f"<code>{html.escape(self.text)}</code>"


class TaskProgress:
    """Show a task's progress; pass it as ``on_update`` (one instance per task)::

        result = await client.images.generate("a red fox", on_update=jimeng.TaskProgress())

    Each status change updates the line: ``⚙️ image task 7390… running · 4 s``. ``stream`` is
    where to write outside notebooks (stderr by default); ``monotonic`` is a seam for tests.
    """

    def __init__(
        self,
        label: str | None = None,
        *,
        stream: TextIO | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._label = label
        self._stream = stream
        self._monotonic = monotonic
        self._started: float | None = None
        self._handle: Any = None
        self._last: tuple[object, ...] | None = None
        #: Every line shown, in order.
        self.lines: list[str] = []

    def describe(self, task: Task) -> str:
        """The line for ``task``."""
        now = self._monotonic()
        if self._started is None:
            self._started = now
        label = self._label or f"{task.kind.value} task {task.id}"
        status = task.status.value
        if task.failure is not None and task.failure.message:
            status += f": {task.failure.message}"
        return f"{_SYMBOLS[task.status]} {label} {status} · {now - self._started:.0f} s"

    def __call__(self, task: Task) -> None:
        state = (task.id, task.status, task.failure)
        if state == self._last:
            return
        self._last = state
        line = self.describe(task)
        self.lines.append(line)
        if self._stream is None and self._draw_in_notebook(line):
            return
        stream = self._stream or sys.stderr
        stream.write(line + "\n")
        stream.flush()

    def _draw_in_notebook(self, line: str) -> bool:
        if self._handle is not None:
            self._handle.update(_Line(line))
            return True
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None
        if shell is None or not hasattr(shell, "kernel"):
            return False
        display = importlib.import_module("IPython.display").display
        self._handle = display(_Line(line), display_id=True)
        return self._handle is not None
