"""``jimeng.TaskProgress``: a line per status change, updated in place in a notebook."""

from __future__ import annotations

import io
import sys
import types
from typing import Any

import pytest

import jimeng
from jimeng.sandbox import Sandbox, Stages
from tests.conftest import Sleeps


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 2.0
        return self.now


async def test_a_line_per_status_change_on_a_stream(sleeps: Sleeps) -> None:
    stream = io.StringIO()
    progress = jimeng.TaskProgress(stream=stream, monotonic=Clock())
    sandbox = Sandbox(stages=Stages(queue_polls=1, generate_polls=1))
    async with jimeng.Client(sandbox, sleep=sleeps) as client:
        result = await client.images.generate("a cat", size="1K", on_update=progress)
    task = result.task_id
    assert stream.getvalue().splitlines() == [
        f"⏳ image task {task} queued · 0 s",
        f"⚙️ image task {task} running · 2 s",
        f"✅ image task {task} succeeded · 4 s",
    ]


def test_failures_show_their_reason() -> None:
    stream = io.StringIO()
    progress = jimeng.TaskProgress("cover", stream=stream, monotonic=Clock())
    task = jimeng.Task(
        id="t1", kind=jimeng.TaskKind.IMAGE, status=jimeng.TaskStatus.FAILED, backend="x",
        ref="t1", failure=jimeng.TaskFailure(code=1, message="no credits"),
    )  # fmt: skip
    progress(task)
    progress(task)  # the same line again is not repeated
    assert stream.getvalue() == "❌ cover failed: no credits · 0 s\n"


def test_in_a_notebook_one_display_is_updated(monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[Any] = []

    class Handle:
        def update(self, obj: Any) -> None:
            shown.append(("update", repr(obj), obj._repr_html_()))

    def display(obj: Any, display_id: bool = False) -> Handle:
        assert display_id is True
        shown.append(("display", repr(obj), obj._repr_html_()))
        return Handle()

    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: types.SimpleNamespace(kernel=object())  # type: ignore[attr-defined]
    ipython_display = types.ModuleType("IPython.display")
    ipython_display.display = display  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", ipython_display)

    progress = jimeng.TaskProgress("<fox>", monotonic=Clock())
    for status in (jimeng.TaskStatus.QUEUED, jimeng.TaskStatus.SUCCEEDED):
        progress(
            jimeng.Task(id="t", kind=jimeng.TaskKind.IMAGE, status=status, backend="x", ref="t")
        )
    assert shown == [
        ("display", "⏳ <fox> queued · 0 s", "<code>⏳ &lt;fox&gt; queued · 0 s</code>"),
        ("update", "✅ <fox> succeeded · 2 s", "<code>✅ &lt;fox&gt; succeeded · 2 s</code>"),
    ]
