"""Batch generation: many requests, each submitted exactly once, resumable after a crash, and
shareable between workers on several machines through Redis.

.. code-block:: python

    async with jimeng.Client(journal=True) as client:
        async for item in client.batch(requests, out="shots/"):
            print(item.id, item.status, item.paths or item.error)

``requests`` are mappings with the parameters of ``images.generate`` / ``videos.generate``
(``{"id": "sku-1", "prompt": "...", "size": "2K"}``) or lines read by :func:`read_lines` from a
JSONL or CSV file. See docs/batch.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jimeng.batch._check import check_lines, request_for
from jimeng.batch._input import (
    BatchLine,
    InputError,
    LineProblem,
    fields_for,
    line_from_mapping,
    parse_lines,
    read_lines,
)
from jimeng.batch._ledger import (
    Ledger,
    LineRecord,
    MemoryLedger,
    SQLiteLedger,
    backend_identity,
    same_backend,
)
from jimeng.batch._redis import RedisJournal, RedisLedger, RedisLimitStore
from jimeng.batch._results import RESULTS_FILE, BatchSummary, ResultsFile
from jimeng.batch._runner import STAGING, BatchItem, LocalSource, Runner, Source, worker_name
from jimeng.models import TaskKind

if TYPE_CHECKING:
    from jimeng._client import Client

__all__ = [
    "RESULTS_FILE",
    "BatchItem",
    "BatchLine",
    "BatchRun",
    "BatchSummary",
    "InputError",
    "Ledger",
    "LineProblem",
    "LineRecord",
    "MemoryLedger",
    "RedisJournal",
    "RedisLedger",
    "RedisLimitStore",
    "SQLiteLedger",
    "Source",
    "backend_identity",
    "check_lines",
    "default_ledger",
    "fields_for",
    "parse_lines",
    "read_lines",
    "request_for",
    "worker_name",
]


def default_ledger(journal: Any) -> Ledger:
    """Where ``client.batch`` keeps line states by default: in the journal's SQLite file (a
    table of its own), else in this process only."""
    from jimeng._journal import SQLiteJournal

    if isinstance(journal, SQLiteJournal):
        return SQLiteLedger(journal.path)
    shared = getattr(journal, "ledger", None)
    if isinstance(shared, Ledger):
        return shared
    return MemoryLedger()


def as_lines(
    requests: Iterable[BatchLine | Mapping[str, Any]], *, kind: TaskKind
) -> tuple[list[BatchLine], list[LineProblem]]:
    """Lines from ``requests`` (mappings are read like JSONL lines, numbered from 1)."""
    lines: list[BatchLine] = []
    problems: list[LineProblem] = []
    for number, request in enumerate(requests, start=1):
        if isinstance(request, BatchLine):
            lines.append(request)
            continue
        line, found = line_from_mapping(request, number=number, kind=kind)
        problems.extend(found)
        if line is not None:
            lines.append(line)
    return lines, problems


async def _finished(source: Source) -> bool:
    try:
        return await source.exhausted()
    except Exception:  # a store that cannot say: keep the folder
        return False


class BatchRun:
    """One run of a batch by one worker: validation, then the lines, then ``results.jsonl``.

    Iterate it (``async for item in run``) to get each line's :class:`BatchItem` as it
    finishes; ``summary`` is set at the end. Nothing is submitted unless every line is valid
    or ``skip_invalid`` is set (:class:`InputError` lists every problem otherwise).
    """

    def __init__(
        self,
        client: Client,
        requests: Iterable[BatchLine | Mapping[str, Any]],
        *,
        out: str | Path = "pic/",
        name: str | None = None,
        ledger: Ledger | None = None,
        max_concurrency: int | None = None,
        retry_failed: bool = False,
        skip_invalid: bool = False,
        kind: TaskKind | str = TaskKind.IMAGE,
        problems: Sequence[LineProblem] = (),
        lease: float = 30.0,
        slot: Any = None,
        owner: str | None = None,
    ):
        if isinstance(lease, bool) or not isinstance(lease, int | float) or not lease > 0:
            from jimeng.errors import ValidationError

            raise ValidationError("lease", f"must be a positive number of seconds, got {lease!r}")
        if max_concurrency is not None and (
            isinstance(max_concurrency, bool)
            or not isinstance(max_concurrency, int)
            or max_concurrency < 1
        ):
            from jimeng.errors import ValidationError

            raise ValidationError(
                "max_concurrency",
                f"must be a whole number of at least 1 or None, got {max_concurrency!r}",
            )
        self.client = client
        self.kind = TaskKind(kind)
        self.lines, found = as_lines(requests, kind=self.kind)
        self.problems: list[LineProblem] = [*problems, *found]
        self.out = Path(out).expanduser()
        self.name = name or "batch"
        self.ledger = ledger if ledger is not None else MemoryLedger()
        self.max_concurrency = max_concurrency
        self.retry_failed = retry_failed
        self.skip_invalid = skip_invalid
        self.lease = lease
        self.slot = slot
        self.owner = owner or worker_name()
        #: How the run waits for lines other workers hold (a seam for tests).
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self.summary: BatchSummary | None = None
        self.results: ResultsFile | None = None

    def validate(self) -> None:
        """Check every line with the library's validation (no network; local files are read):
        raises :class:`InputError` listing every problem unless ``skip_invalid``."""
        found = check_lines(self.lines, self.client.backend)
        self.problems.extend(found)
        bad = {problem.line for problem in self.problems}
        self.lines = [line for line in self.lines if line.number not in bad]
        if self.problems and not self.skip_invalid:
            self.problems.sort(key=lambda problem: problem.line)
            raise InputError(self.problems, source=self.name)

    async def claim_name(self) -> None:
        """Make the batch's name this backend's (first run), or refuse a backend other than the
        one it runs on: its line states (saved files, accepted tasks) are that backend's."""
        from jimeng.errors import ValidationError

        identity = backend_identity(self.client.backend)
        recorded = await self.ledger.bind(self.name, identity)
        if recorded is not None and not same_backend(recorded, identity):
            raise ValidationError(
                "name",
                f"the batch {self.name!r} runs on {recorded.get('where', 'another backend')}, "
                f"and this client is {identity['where']}: its saved lines and accepted tasks "
                "belong to that backend. Run it with that backend, or give this run a name of "
                "its own to start a separate batch",
            )

    async def source(self) -> Source:
        make = getattr(self.ledger, "source", None)
        if make is not None:
            shared: Source = await make(
                self.name, self.lines, lease=self.lease, retry_failed=self.retry_failed
            )
            return shared
        return LocalSource(self.lines, recheck=self.lease / 3, sleep=self.sleep)

    async def __aiter__(self) -> AsyncIterator[BatchItem]:
        started = time.monotonic()
        await asyncio.to_thread(self.validate)  # reads the lines' local files
        await self.claim_name()
        self.results = results = ResultsFile(
            self.out / RESULTS_FILE,
            lines=self.lines,
            problems=self.problems,
            ledger=self.ledger,
            batch=self.name,
        )
        runner = Runner(
            self.client,
            ledger=self.ledger,
            batch=self.name,
            out=self.out,
            owner=self.owner,
            lease=self.lease,
            retry_failed=self.retry_failed,
            max_lines=self.max_concurrency,
            slot=self.slot,
            sleep=self.sleep,
        )
        skipped = 0
        source = await self.source()
        try:
            async for item in runner.run(source):
                skipped += item.skipped
                await results.maybe_write()
                yield item
        finally:
            if await _finished(source):
                # Every line is finished (by every worker): no save can still need it.
                with contextlib.suppress(OSError):
                    (self.out / STAGING).rmdir()
            await results.write()
            self.summary = results.summary(skipped=skipped, seconds=time.monotonic() - started)
