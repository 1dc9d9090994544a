"""One updating progress line on stderr: status, elapsed time, bytes saved.

Drawn only when stderr is a terminal (never with ``--json`` or ``--quiet``), so pipes and logs
get clean output. The line is redrawn on every task update and by a ticker for the clock.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from jimeng.models import Task

__all__ = ["Progress", "format_bytes", "format_elapsed"]

_SPINNER = "-\\|/"
_TICK = 0.2


def format_elapsed(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


class Progress:
    """The progress line. A disabled one accepts every call and draws nothing."""

    def __init__(
        self,
        stream: TextIO,
        *,
        enabled: bool,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._stream = stream
        self.enabled = enabled
        self._monotonic = monotonic
        self._started = monotonic()
        self._label = "starting"
        self._folder: Path | None = None
        self._before: frozenset[str] = frozenset()
        self._frame = 0
        self._ticker: asyncio.Task[None] | None = None
        self._drawn = False

    def start(self) -> None:
        """Start the clock ticker (inside the running loop)."""
        if self.enabled and self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    def status(self, label: str) -> None:
        self._label = label
        self._draw()

    def on_update(self, task: Task) -> None:
        """``on_update`` callback for a task handle."""
        label = task.status.value
        if task.raw_status and task.raw_status != label:
            label += f" ({task.raw_status})"
        self.status(label)

    def downloading(self, folder: Path) -> None:
        """Count bytes appearing in ``folder`` from now on (temporary files included)."""
        self._folder = folder
        try:
            self._before = frozenset(os.listdir(folder)) if folder.is_dir() else frozenset()
        except OSError:
            self._before = frozenset()
        self.status("downloading")

    def _bytes(self) -> int | None:
        if self._folder is None:
            return None
        total = 0
        try:
            with os.scandir(self._folder) as entries:
                for entry in entries:
                    # The library streams into ".jimeng-*.part" beside the target, then renames.
                    if entry.name not in self._before and entry.is_file():
                        total += entry.stat().st_size
        except OSError:
            return None
        return total

    def line(self) -> str:
        parts = [f"{_SPINNER[self._frame % len(_SPINNER)]} {self._label}"]
        parts.append(format_elapsed(self._monotonic() - self._started))
        received = self._bytes()
        if received:
            parts.append(format_bytes(received))
        return " · ".join(parts)

    def _draw(self) -> None:
        if not self.enabled:
            return
        width = max(20, shutil.get_terminal_size((80, 24)).columns - 1)
        self._stream.write("\r\x1b[K" + self.line()[:width])
        self._stream.flush()
        self._drawn = True

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(_TICK)
            self._frame += 1
            self._draw()

    def stop(self) -> None:
        """Stop the ticker and erase the line (not awaited: it may run during cancellation)."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self.clear()

    def clear(self) -> None:
        if self.enabled and self._drawn:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._drawn = False
