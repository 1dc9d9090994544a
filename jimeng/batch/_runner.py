"""Running a batch: every line claimed, submitted once, polled, saved and recorded.

Built on the public verbs (``images.generate``, ``videos.generate``, ``tasks.resume``) with two
seams the client hands in: ``slot`` (the rate limiter's generation slot, taken *before* a line is
marked ``submitting`` so that lines waiting for the limiter are not mistaken for in-flight
submits after a crash) and the :class:`~jimeng.batch.Ledger` the line states live in.

Where lines come from is a :class:`Source`: this process's own list, or a queue shared by several
workers (:class:`~jimeng.batch.RedisBatchStore`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs

from jimeng._logging import redact
from jimeng.batch._input import BatchLine
from jimeng.batch._ledger import Ledger, LineRecord
from jimeng.errors import JimengError
from jimeng.models import ImageResult, Task, TaskKind, VideoResult

if TYPE_CHECKING:
    from jimeng._client import Client

__all__ = ["BatchItem", "Delivery", "LocalSource", "Runner", "Source", "worker_name"]

logger = logging.getLogger("jimeng")

Slot = Callable[[], AbstractAsyncContextManager[Any]]


def worker_name() -> str:
    """A name unique to this process (host, pid and a random part), for leases."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def gone(owner: str) -> bool:
    """Whether ``owner`` (a :func:`worker_name`) is a process of this machine that no longer
    runs: its claims need not wait for their lease to run out. Unknown means alive."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


@attrs.frozen(kw_only=True)
class BatchItem:
    """What became of one line.

    ``status`` is ``"done"`` or ``"failed"``; ``skipped`` is true when the line had finished in
    an earlier run and nothing was done now. ``error`` (failed lines) holds the error's
    ``class``, ``code`` and ``message``, and ``maybe_accepted`` when a submit may have been
    accepted though no ref came back (it is not submitted again without ``retry_failed``).
    """

    id: str
    line: int
    status: Literal["done", "failed"]
    ref: str | None = None
    paths: tuple[Path, ...] = ()
    urls: tuple[Mapping[str, Any], ...] = ()
    error: Mapping[str, Any] | None = None
    skipped: bool = False

    @classmethod
    def from_record(cls, record: LineRecord, *, skipped: bool) -> BatchItem:
        return cls(
            id=record.id,
            line=record.number,
            status="done" if record.state == "done" else "failed",
            ref=record.ref,
            paths=tuple(Path(path) for path in record.paths),
            urls=record.urls,
            error=record.error,
            skipped=skipped,
        )


@attrs.define(kw_only=True)
class Delivery:
    """A line handed to this worker by a :class:`Source` (``token`` is the source's own)."""

    line: BatchLine
    token: Any = None


class Source(Protocol):
    """Where a worker's lines come from."""

    async def take(self, count: int) -> list[Delivery]:
        """Up to ``count`` lines to work on now (possibly none: look again later)."""
        ...

    async def touch(self, delivery: Delivery) -> None:
        """Keep ``delivery`` ours (called with each lease renewal)."""
        ...

    async def finish(self, delivery: Delivery) -> None:
        """The line is finished (done or failed): never hand it out again."""
        ...

    async def retry_later(self, delivery: Delivery) -> None:
        """Another worker holds the line: offer it again later (in case that worker dies)."""
        ...

    async def exhausted(self) -> bool:
        """True once every line is finished everywhere (this worker may stop)."""
        ...


class LocalSource:
    """The lines of this process, in order. A line another process holds (same SQLite ledger)
    is offered again after ``recheck`` seconds until it is finished."""

    def __init__(self, lines: Sequence[BatchLine], *, recheck: float = 1.0, sleep: Any = None):
        self._waiting = [Delivery(line=line) for line in reversed(lines)]
        self._later: list[Delivery] = []
        self._open = len(lines)
        self._recheck = recheck
        self._sleep = sleep or asyncio.sleep

    async def take(self, count: int) -> list[Delivery]:
        if not self._waiting and self._later:
            await self._sleep(self._recheck)
            self._waiting, self._later = list(reversed(self._later)), []
        taken: list[Delivery] = []
        while self._waiting and len(taken) < count:
            taken.append(self._waiting.pop())
        return taken

    async def touch(self, delivery: Delivery) -> None:
        return None

    async def finish(self, delivery: Delivery) -> None:
        self._open -= 1

    async def retry_later(self, delivery: Delivery) -> None:
        self._later.append(delivery)

    async def exhausted(self) -> bool:
        return self._open <= 0


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
#: Where a line's files are saved before they are renamed into place.
STAGING = ".jimeng-batch"


def _file_stem(line: BatchLine) -> str:
    return _UNSAFE.sub("_", line.id)


def error_info(error: BaseException) -> dict[str, Any]:
    """The error's class, code and message for ``results.jsonl``, registered secrets replaced
    (the library's own errors are scrubbed when built; any other exception is scrubbed here)."""
    code = getattr(error, "code", None)
    return {
        "class": type(error).__name__,
        "code": code if isinstance(code, int | str) or code is None else str(code),
        "message": redact(getattr(error, "message", None) or str(error)),
        "maybe_accepted": bool(getattr(error, "maybe_accepted", False)),
    }


def _links(result: ImageResult | VideoResult) -> list[dict[str, Any]]:
    """The result links as the ledger and ``results.jsonl`` keep them: registered secrets
    replaced (a relay may sign its links with the caller's key); the files are saved already."""
    media = result.images if isinstance(result, ImageResult) else (result.video,)
    return [
        {
            "url": redact(item.url),
            "expires_at": item.expires_at.isoformat() if item.expires_at else None,
        }
        for item in media
        if item.url
    ]


class LostLease(Exception):
    """Another worker took the line over (this one stalled past its lease)."""


#: Lines a worker keeps waiting for a limiter slot (more would only queue: with a limit shared
#: between workers, every waiter re-checks the shared state).
LOOKAHEAD = 4
#: Lines in progress at most without ``max_lines`` (when the limiter is off, nothing else bounds
#: them).
MAX_LINES = 256


class Runner:
    """Runs lines for one worker. ``lease`` is how long a claim lasts without renewal (renewed
    every third of it). ``max_lines`` caps the lines this worker works on at once; without it,
    the rate limiter decides: the worker starts a line whenever fewer than :data:`LOOKAHEAD` of
    its lines wait for a slot."""

    def __init__(
        self,
        client: Client,
        *,
        ledger: Ledger,
        batch: str,
        out: Path,
        owner: str | None = None,
        lease: float = 30.0,
        retry_failed: bool = False,
        max_lines: int | None = None,
        slot: Slot | None = None,
        sleep: Any = None,
    ):
        self.client = client
        self.ledger = ledger
        self.batch = batch
        self.out = out
        self.owner = owner or worker_name()
        self.lease = lease
        self.retry_failed = retry_failed
        self.max_lines = max_lines
        self.slot: Slot = slot or contextlib.nullcontext
        self._sleep = sleep or asyncio.sleep
        #: Lines started that hold no limiter slot yet (claiming, or waiting for the limiter).
        self._waiting: set[str] = set()
        self._moved = asyncio.Event()

    def _room(self, running: int) -> int:
        if self.max_lines is not None:
            return self.max_lines - running
        return min(LOOKAHEAD - len(self._waiting), MAX_LINES - running)

    def _not_waiting(self, key: str) -> None:
        if key in self._waiting:
            self._waiting.discard(key)
            self._moved.set()

    async def run(self, source: Source) -> AsyncIterator[BatchItem]:
        """Work through ``source`` and yield each line's outcome as it finishes."""
        running: dict[asyncio.Task[BatchItem | None], Delivery] = {}
        moved: asyncio.Task[Any] | None = None
        try:
            while True:
                room = self._room(len(running))
                if room > 0:
                    busy = {delivery.line.key for delivery in running.values()}
                    for delivery in await source.take(room):
                        if delivery.line.key in busy:
                            continue  # handed out again while this worker still runs it
                        busy.add(delivery.line.key)
                        self._waiting.add(delivery.line.key)
                        task = asyncio.ensure_future(self._line(delivery, source))
                        running[task] = delivery
                if not running:
                    if await source.exhausted():
                        return
                    await self._sleep(min(0.2, self.lease / 6))
                    continue
                if moved is None or moved.done():
                    # Wakes the loop when a line leaves the waiting room (takes a slot).
                    self._moved.clear()
                    moved = asyncio.ensure_future(self._moved.wait())
                finished, _ = await asyncio.wait(
                    [*running, moved], timeout=0.5, return_when=asyncio.FIRST_COMPLETED
                )
                for task in finished:
                    if task is moved:
                        continue
                    delivery = running.pop(task)
                    item = task.result()
                    if item is None:
                        await source.retry_later(delivery)
                    else:
                        await source.finish(delivery)
                        yield item
        finally:
            if moved is not None:
                moved.cancel()
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    # -- one line -------------------------------------------------------------------------------

    async def _line(self, delivery: Delivery, source: Source) -> BatchItem | None:
        try:
            return await self._claimed_line(delivery, source)
        finally:
            self._not_waiting(delivery.line.key)

    async def _claimed_line(self, delivery: Delivery, source: Source) -> BatchItem | None:
        line = delivery.line
        record, claim = await self.ledger.claim(
            self.batch,
            key=line.key,
            line_id=line.id,
            number=line.number,
            kind=line.kind.value,
            owner=self.owner,
            lease=self.lease,
            retry_failed=self.retry_failed,
            abandoned=gone,
        )
        if claim == "done" and not await asyncio.to_thread(self._intact, record):
            # Saved before, but its files are not where this run saves them: collect it again.
            reopened, claim = await self.ledger.reopen(
                self.batch, line.key, seen=record, owner=self.owner, lease=self.lease
            )
            if reopened is None or claim == "busy":
                return None
            record = reopened
            if claim == "failed":
                return BatchItem.from_record(record, skipped=False)
        if claim == "busy":
            return None
        if claim != "run":
            return BatchItem.from_record(record, skipped=True)
        work = asyncio.ensure_future(self._work(line, record))
        keeper = asyncio.ensure_future(self._keep_lease(line, delivery, source, work))
        try:
            return await work
        except LostLease:
            logger.warning("batch: line %s was taken over by another worker", line.id)
            return None
        except asyncio.CancelledError:
            if keeper.done() and not keeper.cancelled() and keeper.result() is False:
                logger.warning("batch: line %s was taken over by another worker", line.id)
                return None
            raise
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _keep_lease(
        self, line: BatchLine, delivery: Delivery, source: Source, work: asyncio.Future[Any]
    ) -> bool:
        while True:
            # A real timer (not the test seam): renewals pace themselves, nobody waits on them.
            await asyncio.sleep(self.lease / 3)
            try:
                kept = await self.ledger.renew(
                    self.batch, line.key, owner=self.owner, lease=self.lease
                )
                await source.touch(delivery)
            except Exception as error:  # a store hiccup: try again at the next beat
                logger.warning("batch: could not renew the lease of line %s: %s", line.id, error)
                continue
            if not kept:
                work.cancel()
                return False

    async def _set(self, line: BatchLine, **changes: Any) -> None:
        if not await self.ledger.update(self.batch, line.key, owner=self.owner, **changes):
            raise LostLease(line.id)

    def _intact(self, record: LineRecord) -> bool:
        """Whether a done line's files are all there, in this run's folder."""
        folder = self.out.resolve()
        return all(
            Path(path).is_file() and Path(path).resolve().parent == folder for path in record.paths
        )

    async def _work(self, line: BatchLine, record: LineRecord) -> BatchItem:
        ref = record.ref
        try:
            if record.state == "accepted" and ref is not None and record.paths:
                self._not_waiting(line.key)  # copies and polls hold no slot
                return await self._collect_again(line, record, ref)
            if record.state == "accepted" and ref is not None:
                self._not_waiting(line.key)  # polls hold no slot
                result = await self.client.tasks.resume(ref).result()
            elif record.state == "submitting" and not self.retry_failed:
                return await self._finish_failed(
                    line,
                    None,
                    {
                        "class": "AmbiguousSubmit",
                        "code": None,
                        "message": "the worker stopped while this line's submit was in flight: "
                        "the task may have been accepted (and billed) though no ref was "
                        "recorded; rerun with --retry-failed to submit it again",
                        "maybe_accepted": True,
                    },
                )
            else:
                result, ref = await self._generate(line)
            paths = await self._save(line, result, ref)
        except LostLease:
            raise
        except JimengError as error:
            return await self._finish_failed(line, error.task_ref or ref, error_info(error))
        except Exception as error:  # a bug: recorded on the line, the batch goes on
            logger.exception("batch: line %s failed unexpectedly", line.id)
            return await self._finish_failed(line, ref, error_info(error))
        return await self._finish_done(line, ref, paths, _links(result))

    async def _finish_done(
        self, line: BatchLine, ref: str | None, paths: Sequence[Path], urls: Sequence[Any]
    ) -> BatchItem:
        links = [dict(url) for url in urls]
        # Absolute: a rerun from another folder must still find the files (the store is shared).
        saved = [Path(path).resolve() for path in paths]
        await self._set(line, state="done", paths=[str(path) for path in saved], urls=links)
        return BatchItem(
            id=line.id,
            line=line.number,
            status="done",
            ref=ref,
            paths=tuple(saved),
            urls=tuple(links),
        )

    async def _collect_again(self, line: BatchLine, record: LineRecord, ref: str) -> BatchItem:
        """A done line whose files are not in this run's folder: copied from where they were
        saved when they are all still there, else fetched again from the task (never
        submitted again); failed when the task cannot give them any more."""
        try:
            copied = await self._copy(line, record, ref)
            if copied is not None:
                return await self._finish_done(line, ref, copied, record.urls)
            result = await self.client.tasks.resume(ref).result()
            paths = await self._save(line, result, ref)
        except LostLease:
            raise
        except Exception as error:
            if not isinstance(error, JimengError):
                logger.exception("batch: line %s failed unexpectedly", line.id)
            info = error_info(error)
            info["message"] = (
                f"the files saved earlier are not in {self.out} ({', '.join(record.paths)}) and "
                f"the task could not give them again: {info['message']}; rerun with "
                "--retry-failed to generate the line again"
            )
            return await self._finish_failed(line, ref, info, paths=[])
        return await self._finish_done(line, ref, paths, _links(result))

    async def _copy(self, line: BatchLine, record: LineRecord, ref: str) -> list[Path] | None:
        """Copy a line's files saved under another folder into this run's (through the staging
        folder, so a file is there whole or not at all); ``None`` when some are gone."""
        sources = [Path(path) for path in record.paths]
        if not all(source.is_file() for source in sources):
            return None
        staging = self.out / STAGING / _file_stem(line)
        final: list[Path] = []
        for source in sources:
            staged = staging / source.name
            await asyncio.to_thread(staging.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(shutil.copyfile, source, staged)
            os.replace(staged, self.out / source.name)
            final.append(self.out / source.name)
        await asyncio.to_thread(shutil.rmtree, staging, True)
        journal = self.client.journal
        if journal is not None:
            await journal.add_saved(
                self.client.backend.name, ref, [str(path.resolve()) for path in final]
            )
        return final

    async def _finish_failed(
        self, line: BatchLine, ref: str | None, error: Mapping[str, Any], **more: Any
    ) -> BatchItem:
        changes: dict[str, Any] = {"state": "failed", "error": dict(error), **more}
        if ref is not None:
            changes["ref"] = ref
        await self._set(line, **changes)
        return BatchItem(id=line.id, line=line.number, status="failed", ref=ref, error=error)

    async def _generate(self, line: BatchLine) -> tuple[ImageResult | VideoResult, str | None]:
        accepted: list[str] = []

        async def on_submit(task: Task) -> None:
            accepted.append(task.ref)
            await self._set(line, state="accepted", ref=task.ref)

        async with self.slot():
            self._not_waiting(line.key)
            # Marked only now: a line waiting for the limiter has sent nothing.
            await self._set(line, state="submitting")
            try:
                result: ImageResult | VideoResult
                if line.kind is TaskKind.VIDEO:
                    result = await self.client.videos.generate(
                        line.prompt, **line.params, on_submit=on_submit
                    )
                else:
                    result = await self.client.images.generate(
                        line.prompt, **line.params, on_submit=on_submit
                    )
            except JimengError as error:
                if accepted:
                    error.attach_task(error.task_id or accepted[0], accepted[0])
                raise
        return result, accepted[0] if accepted else None

    async def _save(
        self, line: BatchLine, result: ImageResult | VideoResult, ref: str | None
    ) -> list[Path]:
        """Save under ``<out>/<id>.<ext>`` (``<id>_<n>.<ext>`` for several), the extension
        from the content: files are saved into a staging folder (atomically, with their real
        type) and renamed into place."""
        stem = _file_stem(line)
        staging = self.out / STAGING / stem
        await asyncio.to_thread(shutil.rmtree, staging, True)  # a crashed earlier attempt
        staged: list[Path]
        if isinstance(result, VideoResult):
            staged = [await result.save(str(staging) + os.sep)]
        else:
            staged = await result.save(str(staging) + os.sep)
        final: list[Path] = []
        moves: list[tuple[str, str]] = []
        for index, path in enumerate(staged, start=1):
            name = f"{stem}{path.suffix}" if len(staged) == 1 else f"{stem}_{index}{path.suffix}"
            before = str(path.resolve())
            os.replace(path, self.out / name)
            final.append(self.out / name)
            moves.append((before, str(final[-1].resolve())))
        # The staging folder's parent stays while lines (of any worker) may still be saved into
        # it: removing it here could pull it from under another save's mkdir.
        await asyncio.to_thread(shutil.rmtree, staging, True)
        journal = self.client.journal
        if journal is not None and ref is not None:
            # The journal saw the staging names: each file is where it ended up instead.
            for before, after in moves:
                await journal.replace_saved(self.client.backend.name, ref, before, after)
        return final
