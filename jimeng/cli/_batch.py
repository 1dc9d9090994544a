"""``jimeng batch FILE --out DIR``: a JSONL or CSV file of requests, run through ``client.batch``.

Progress: a tqdm bar on a terminal when the ``progress`` extra is installed (tqdm has no
dependencies of its own, draws counts, rate and ETA on one line and redraws on resize), else a
plain line every few seconds; ``--json`` prints one JSON document per finished line and a final
``{"summary": ...}`` on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import jimeng
from jimeng._journal import journal_path
from jimeng._logging import redact
from jimeng.batch import BatchItem, BatchSummary, InputError, Ledger, SQLiteLedger, read_lines
from jimeng.cli._exit import ExitCode
from jimeng.models import TaskKind

if TYPE_CHECKING:
    from jimeng.cli._app import _Run

__all__ = ["batch_client_options", "run_batch"]

#: Seconds between plain progress lines when stderr is not a terminal.
PLAIN_EVERY = 10.0


def _is_redis(store: str | None) -> bool:
    return bool(store) and str(store).startswith(("redis://", "rediss://", "unix://"))


def open_ledger(store: str | None) -> Ledger:
    """``--store``: a Redis URL, a SQLite file, or (default) the journal's SQLite file
    (``$JIMENG_HOME/journal.sqlite3``, a table of its own)."""
    if _is_redis(store):
        from jimeng.batch._redis import RedisLedger

        return RedisLedger.from_url(str(store))
    return SQLiteLedger(Path(store).expanduser() if store else journal_path())


def batch_client_options(args: argparse.Namespace) -> dict[str, Any]:
    """Options for the command's client: the journal (the SQLite default, or Redis with a
    Redis ``--store``) and the rate limiter, whose state a Redis store shares between workers
    (one account, one limit; ``--max-concurrency`` caps the account's generations in flight)."""
    if _is_redis(args.store):
        from jimeng.batch._redis import RedisJournal

        journal = RedisJournal.from_url(str(args.store))
        return {
            "journal": journal,
            "limits": jimeng.Limits(max_concurrency=args.max_concurrency, store=journal.limits),
            # The limiter's times are compared between machines: a wall clock.
            "monotonic": time.time,
        }
    options: dict[str, Any] = {}  # the journal: the command line's default (--no-journal)
    if args.max_concurrency is not None:
        options["limits"] = jimeng.Limits(max_concurrency=args.max_concurrency)
    return options


class _Bar(Protocol):
    def update(self, n: int = 1) -> Any: ...
    def set_postfix_str(self, text: str, refresh: bool = True) -> Any: ...
    def close(self) -> Any: ...


class BatchProgress:
    """A tqdm bar on a terminal, plain lines elsewhere, nothing with ``--json``/``--quiet``."""

    def __init__(
        self,
        stream: TextIO,
        *,
        total: int,
        mode: str,
        started: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._stream = stream
        self._total = total
        self._mode = mode
        self._monotonic = monotonic
        # The bar appears with the first finished line (the total is known only then); rate
        # and elapsed time still count from ``started``, when the command began the run.
        self._started = monotonic() if started is None else started
        self._last_line = self._started
        self.done = self.failed = self.skipped = 0
        self._bar: _Bar | None = None
        if mode == "bar":
            try:
                from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]
            except ImportError:
                self._mode = "plain"
            else:
                bar = tqdm(total=total, file=stream, unit="line", dynamic_ncols=True)
                bar.start_t -= monotonic() - self._started
                self._bar = bar

    def item(self, item: BatchItem) -> None:
        # Counted as the summary counts: done and failed lines, and how many of them had
        # finished in an earlier run (skipped).
        if item.status == "done":
            self.done += 1
        else:
            self.failed += 1
        self.skipped += item.skipped
        counts = f"{self.done} done, {self.failed} failed, {self.skipped} skipped"
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix_str(counts, refresh=False)
        elif self._mode == "plain":
            now = self._monotonic()
            finished = self.done + self.failed
            if now - self._last_line >= PLAIN_EVERY or finished == self._total:
                self._last_line = now
                rate = (finished - self.skipped) / max(now - self._started, 1e-9)
                self._stream.write(
                    f"jimeng batch: {finished}/{self._total} lines ({counts}), {rate:.1f} lines/s\n"
                )
                self._stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _problems_text(error: InputError) -> str:
    count = len({problem.line for problem in error.problems})
    lines = [f"jimeng: error: {count} invalid line{'s' * (count != 1)}, nothing sent:"]
    lines += [f"  {problem}" for problem in error.problems]
    lines.append("  fix them, or pass --skip-invalid to run the valid lines only")
    return "\n".join(redact(line) for line in lines)


async def run_batch(run: _Run, client: jimeng.Client) -> int:
    """The ``batch`` command; exit 0 when every line is done, 5 when some failed, 2 when lines
    are invalid (nothing is sent then)."""
    args = run.args
    source = Path(args.file).expanduser()
    kind = TaskKind(args.kind)
    lines, problems = read_lines(source, kind=kind, model=args.model)
    shared = getattr(client.journal, "ledger", None)
    ledger = (
        shared if _is_redis(args.store) and isinstance(shared, Ledger) else open_ledger(args.store)
    )
    name = args.name or source.stem
    out = Path(args.out).expanduser()
    mode = "none" if run.json or run.quiet else ("bar" if _isatty(run.stderr) else "plain")
    batch = client.batch(
        lines,
        out=out,
        name=name,
        store=ledger,
        max_concurrency=args.max_concurrency,
        retry_failed=args.retry_failed,
        skip_invalid=args.skip_invalid,
        kind=kind,
        lease=args.lease,
    )
    batch.problems.extend(problems)
    run.progress.stop()
    progress: BatchProgress | None = None
    started = time.monotonic()
    try:
        try:
            async for item in batch:
                if progress is None:
                    progress = BatchProgress(
                        run.stderr, total=len(batch.lines), mode=mode, started=started
                    )
                progress.item(item)
                if run.json:
                    run.out(json.dumps(_item_doc(item), ensure_ascii=False))
        except asyncio.CancelledError:  # Ctrl-C: the line states are saved; say how to go on
            if progress is not None:
                progress.close()
            run.stderr.write(
                "jimeng: batch stopped; run the same command again to continue (accepted tasks "
                "are collected, not submitted again)\n"
            )
            raise
        except InputError as error:
            run.stderr.write(_problems_text(error) + "\n")
            if run.json:
                run.out(json.dumps({"error": _input_error_doc(error)}, ensure_ascii=False))
            return int(ExitCode.USAGE)
    finally:
        if progress is not None:
            progress.close()
        await ledger.aclose()
        if _is_redis(args.store) and client.journal is not None:
            await client.journal.aclose()  # the client does not own a store it was given
    summary = batch.summary
    assert summary is not None
    if batch.problems and not run.json:
        count = len({problem.line for problem in batch.problems})
        run.stderr.write(
            f"jimeng: note: {count} invalid line{'s' * (count != 1)} skipped (see results.jsonl)\n"
        )
    _print_summary(run, summary, out)
    if summary.failed:
        if not run.json:
            run.stderr.write(
                f"jimeng: {summary.failed} lines failed (errors in results.jsonl); rerun with "
                "--retry-failed to submit them again\n"
            )
        return int(ExitCode.TASK_FAILED)
    return int(ExitCode.OK)


def _print_summary(run: _Run, summary: BatchSummary, out: Path) -> None:
    if run.json:
        run.out(json.dumps({"summary": summary.to_json()}))
    elif run.quiet:
        run.out(str(out / "results.jsonl"))
    else:
        run.out(f"{summary}\nresults: {out / 'results.jsonl'}")


def _item_doc(item: BatchItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "line": item.line,
        "status": item.status,
        "skipped": item.skipped,
        "ref": item.ref,
        "paths": [str(path) for path in item.paths],
        "urls": [dict(url) for url in item.urls],
        "error": dict(item.error) if item.error else None,
    }


def _input_error_doc(error: InputError) -> dict[str, Any]:
    return {
        "type": "InputError",
        "exit_code": int(ExitCode.USAGE),
        "problems": [
            {"line": p.line, "id": p.id, "field": p.field, "message": redact(p.message)}
            for p in error.problems
        ],
    }


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
