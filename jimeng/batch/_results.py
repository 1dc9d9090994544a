"""``results.jsonl`` and the summary: what became of every input line.

The file is rebuilt from the line states in the store (so with a shared store every worker
writes the whole batch, not only its own lines) and replaced atomically: a reader never sees a
half-written file. Rewrites are spaced by ``interval`` seconds while lines finish.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from jimeng.batch._input import BatchLine, LineProblem
from jimeng.batch._ledger import Ledger, LineRecord

__all__ = ["RESULTS_FILE", "BatchSummary", "ResultsFile", "result_rows"]

RESULTS_FILE = "results.jsonl"


@attrs.frozen(kw_only=True)
class BatchSummary:
    """Counts over every input line at the end of a run.

    ``done`` and ``failed`` are lines in that state now; ``skipped`` those of them that had
    finished before this run (and were left as they were); ``invalid`` lines left out by
    validation; ``pending`` lines not finished (another worker's, or the run was stopped);
    ``submits`` the generations the server accepted for the batch's lines over all runs, or may
    have (an answer lost in transit): what may have been spent. A submit refused outright
    (content policy, bad parameters) costs nothing and is not counted.
    """

    lines: int
    done: int
    failed: int
    skipped: int
    invalid: int
    pending: int
    submits: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def __str__(self) -> str:
        return (
            f"{self.done} done, {self.failed} failed, {self.skipped} skipped (finished before), "
            f"{self.invalid} invalid, {self.pending} pending of {self.lines} "
            f"line{'s' * (self.lines != 1)}; {self.submits} submit{'s' * (self.submits != 1)}; "
            f"{self.seconds:.1f} s"
        )


def result_rows(
    lines: Sequence[BatchLine],
    problems: Sequence[LineProblem],
    records: dict[str, LineRecord],
) -> list[dict[str, Any]]:
    """One row per input line, in input order."""
    rows: list[tuple[int, dict[str, Any]]] = []
    for line in lines:
        record = records.get(line.key)
        row: dict[str, Any] = {
            "id": line.id,
            "line": line.number,
            "kind": line.kind.value,
            "status": record.state if record is not None else "pending",
            "ref": record.ref if record is not None else None,
            "paths": list(record.paths) if record is not None else [],
            "urls": [dict(url) for url in record.urls] if record is not None else [],
            "error": dict(record.error) if record is not None and record.error else None,
            "submits": record.submits if record is not None else 0,
        }
        rows.append((line.number, row))
    by_line: dict[int, list[LineProblem]] = {}
    for problem in problems:
        by_line.setdefault(problem.line, []).append(problem)
    for number, found in by_line.items():
        message = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in found)
        rows.append(
            (
                number,
                {
                    "id": next((p.id for p in found if p.id is not None), None),
                    "line": number,
                    "status": "invalid",
                    "ref": None,
                    "paths": [],
                    "urls": [],
                    "error": {
                        "class": "ValidationError",
                        "code": None,
                        "message": message,
                        "fields": [p.field for p in found if p.field],
                    },
                    "submits": 0,
                },
            )
        )
    rows.sort(key=lambda pair: pair[0])
    return [row for _, row in rows]


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=".results-", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class ResultsFile:
    """Keeps ``<out>/results.jsonl`` in step with the store."""

    def __init__(
        self,
        path: Path,
        *,
        lines: Sequence[BatchLine],
        problems: Sequence[LineProblem],
        ledger: Ledger,
        batch: str,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.path = path
        self._lines = lines
        self._problems = problems
        self._ledger = ledger
        self._batch = batch
        self._interval = interval
        self._clock = clock
        self._written_at: float | None = None
        self.rows: list[dict[str, Any]] = []

    async def write(self) -> list[dict[str, Any]]:
        """Rewrite the file now; returns its rows."""
        records = await self._ledger.records(self._batch)
        self.rows = result_rows(self._lines, self._problems, records)
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in self.rows)
        await asyncio.to_thread(write_atomically, self.path, text)
        self._written_at = self._clock()
        return self.rows

    async def maybe_write(self) -> None:
        """Rewrite unless the last rewrite is younger than ``interval``."""
        if self._written_at is None or self._clock() - self._written_at >= self._interval:
            await self.write()

    def summary(self, *, skipped: int, seconds: float) -> BatchSummary:
        rows = self.rows
        count = {
            status: sum(1 for row in rows if row["status"] == status)
            for status in ("done", "failed", "invalid")
        }
        return BatchSummary(
            lines=len(rows),
            done=count["done"],
            failed=count["failed"],
            skipped=skipped,
            invalid=count["invalid"],
            pending=len(rows) - sum(count.values()),
            submits=sum(int(row.get("submits") or 0) for row in rows),
            seconds=seconds,
        )
