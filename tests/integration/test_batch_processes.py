"""``jimeng batch`` as real processes against a sandbox served by another process.

A worker is killed with SIGKILL mid-batch. To know what the kill interrupted, the test first
freezes the worker (SIGSTOP) and reads the line states it had committed: a line is marked
``submitting`` before its submit is sent and ``accepted`` once the ref is back, so when no line of
the frozen worker is ``submitting``, no submit of it is in flight and the counts below are exact.
(A kill during a submit is covered in tests/test_batch_run.py: that line is reported, not
resubmitted.)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Runs the library in other processes, which mutation runs cannot reach.
pytestmark = pytest.mark.subprocess

LINES = 200


@contextlib.contextmanager
def serve_sandbox(*options: str) -> Iterator[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jimeng.sandbox",
            "--port",
            "0",
            "--generate-delay",
            "0.1",
            *options,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("jimeng sandbox serving on http://127.0.0.1:"), line
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        process.terminate()
        process.communicate(timeout=10)


@pytest.fixture
def sandbox_url() -> Iterator[str]:
    with serve_sandbox() as url:
        yield url


def stats(url: str) -> dict[str, Any]:
    """The sandbox's counters, as the other process keeps them."""
    with urllib.request.urlopen(f"{url}/_sandbox/stats", timeout=5) as answer:
        data: dict[str, Any] = json.load(answer)
        return data


def tasks_created(url: str) -> int:
    """Submits the sandbox accepted (one task each)."""
    return int(stats(url)["tasks"])


def _write_lines(path: Path, count: int) -> None:
    path.write_text(
        "".join(
            json.dumps({"id": f"p{n:03d}", "prompt": f"product {n}", "size": "1K"}) + "\n"
            for n in range(count)
        )
    )


def _env(home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("JIMENG_")}
    env.update(JIMENG_HOME=str(home), JIMENG_POLL_INTERVAL="0.05", PYTHONUNBUFFERED="1")
    return env


_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_worker_left() -> Iterator[None]:
    """Workers a failed test left running are killed and their pipes closed."""
    yield
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def _batch(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "jimeng", "batch", *args, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    _STARTED.append(process)
    return process


def _until(condition: Callable[[], bool], *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the batch")
        time.sleep(0.02)


def _kill_between_submits(
    process: subprocess.Popen[str], states: Callable[[], dict[str, dict[str, Any]]]
) -> dict[str, dict[str, Any]]:
    """SIGKILL ``process`` at a moment none of its lines has a submit in flight; returns the
    line states it left."""
    for _ in range(500):
        os.kill(process.pid, signal.SIGSTOP)
        seen = states()
        if not any(record["state"] == "submitting" for record in seen.values()):
            os.kill(process.pid, signal.SIGKILL)
            process.communicate(timeout=10)
            return seen
        os.kill(process.pid, signal.SIGCONT)
        time.sleep(0.003)
    raise AssertionError("the worker always had a submit in flight")


def test_a_killed_batch_resumes_with_exactly_one_submit_per_line(
    sandbox_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "products.jsonl"
    _write_lines(source, LINES)
    out = tmp_path / "out"
    env = _env(tmp_path / "home")
    args = [str(source), "--out", str(out), "--sandbox-url", sandbox_url, "--max-concurrency", "20"]
    journal = tmp_path / "home" / "journal.sqlite3"

    def states() -> dict[str, dict[str, Any]]:
        if not journal.exists():
            return {}
        with contextlib.closing(sqlite3.connect(journal, timeout=10)) as db:
            try:
                rows = db.execute(
                    "SELECT key, record FROM batch_lines WHERE batch = 'products'"
                ).fetchall()
            except sqlite3.OperationalError:  # the table is not there yet
                return {}
        return {key: json.loads(text) for key, text in rows}

    first = _batch(args, env)
    _until(lambda: sum(r["state"] == "done" for r in states().values()) >= 40)
    left = _kill_between_submits(first, states)
    by_state = {state: [k for k, r in left.items() if r["state"] == state] for state in
                ("done", "accepted", "pending")}  # fmt: skip
    # The kill left all three kinds of line: finished, accepted and polling, not yet sent.
    assert by_state["done"] and by_state["accepted"]
    assert len(left) - len(by_state["done"]) - len(by_state["accepted"]) + (LINES - len(left)) > 0
    assert tasks_created(sandbox_url) == len(by_state["done"]) + len(by_state["accepted"])

    second = _batch(args, env)
    stdout, stderr = second.communicate(timeout=120)
    assert second.returncode == 0, stderr
    assert tasks_created(sandbox_url) == LINES
    summary = json.loads(stdout.splitlines()[-1])["summary"]
    assert (summary["done"], summary["failed"], summary["submits"]) == (LINES, 0, LINES)
    assert summary["skipped"] == len(by_state["done"])
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == LINES
    assert {(row["status"], row["submits"]) for row in rows} == {("done", 1)}
    final = {row["id"]: row for row in rows}
    for key in by_state["accepted"]:
        # Polled by the ref recorded before the kill, not submitted again.
        assert final[left[key]["id"]]["ref"] == left[key]["ref"]
    assert len(list(out.glob("p*.png"))) == LINES


def test_three_workers_on_one_redis_and_one_killed(
    sandbox_url: str, redis_url: str, tmp_path: Path
) -> None:
    from redis import Redis

    count = 90
    source = tmp_path / "shared.jsonl"
    _write_lines(source, count)
    out = tmp_path / "out"
    args = [
        str(source),
        "--out",
        str(out),
        "--sandbox-url",
        sandbox_url,
        "--store",
        redis_url,
        "--max-concurrency",
        "5",
        "--lease",
        "1",
    ]
    redis = Redis.from_url(redis_url, decode_responses=True)

    def states(pid: int | None = None) -> dict[str, dict[str, Any]]:
        raw = redis.hgetall("jimeng:batch:shared:lines")
        records = {key: json.loads(text) for key, text in raw.items()}
        if pid is None:
            return records
        return {k: r for k, r in records.items() if f":{pid}:" in (r.get("owner") or "")}

    workers = [_batch(args, _env(tmp_path / f"home{n}")) for n in range(3)]
    victim = workers[0]
    _until(
        lambda: (
            any(r["state"] == "accepted" for r in states(victim.pid).values())
            and sum(r["state"] == "done" for r in states().values()) >= 10
        )
    )
    left = _kill_between_submits(victim, lambda: states(victim.pid))
    orphans = {k: r for k, r in left.items() if r["state"] == "accepted"}
    assert orphans
    for worker in workers[1:]:
        _, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 0, stderr
    assert tasks_created(sandbox_url) == count
    final = states()
    assert len(final) == count
    assert {(r["state"], r["submits"]) for r in final.values()} == {("done", 1)}
    for key, record in orphans.items():
        # Another worker finished the dead worker's task by polling its ref.
        assert final[key]["ref"] == record["ref"]
        assert Path(final[key]["paths"][0]).is_file()
    redis.close()


def test_three_workers_share_one_concurrency_limit(redis_url: str, tmp_path: Path) -> None:
    cap, count = 4, 60
    source = tmp_path / "capped.jsonl"
    _write_lines(source, count)
    with serve_sandbox("--max-concurrent-tasks", str(cap)) as url:
        args = [str(source), "--out", str(tmp_path / "out"), "--sandbox-url", url,
                "--store", redis_url, "--max-concurrency", str(cap)]  # fmt: skip
        workers = [_batch(args, _env(tmp_path / f"home{n}")) for n in range(3)]
        outputs = [worker.communicate(timeout=120) for worker in workers]
        for worker, (_, stderr) in zip(workers, outputs, strict=True):
            assert worker.returncode == 0, stderr
        seen = stats(url)
    assert seen["tasks"] == count
    # Any submit past the cap would have been refused (50430) and counted.
    assert seen["refused"].get("concurrency", 0) == 0
    assert seen["peak_unfinished"] == cap
    done_by = [
        sum(not json.loads(line).get("skipped", True) for line in stdout.splitlines()[:-1])
        for stdout, _ in outputs
    ]
    assert sum(done_by) == count
