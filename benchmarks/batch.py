"""Batch throughput: ``jimeng batch`` on N lines, one worker versus three workers on one Redis.

Each round serves a fresh sandbox in a separate process (generation time ``--delay`` seconds, at
most ``--cap`` unfinished tasks at once, answering 50430 beyond it, like Volcengine), runs the
batch to completion and reads the sandbox's counters: tasks created (= submits accepted) against
lines, the peak of unfinished tasks against the cap, and refusals. The two set-ups alternate
round by round; medians and min–max are printed.

    python benchmarks/batch.py --lines 1000 --rounds 3            # needs redis-server on PATH
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.with_redis import RedisServer, find_binary


def serve(delay: float, cap: int) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable, "-m", "jimeng.sandbox", "--port", "0",
            "--generate-delay", str(delay), "--max-concurrent-tasks", str(cap),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    return process, line.rsplit(" ", 1)[1].strip()


def stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/_sandbox/stats", timeout=10) as answer:
        data: dict[str, Any] = json.load(answer)
        return data


def run(
    workers: int,
    lines: int,
    delay: float,
    cap: int,
    redis_url: str | None,
    max_concurrency: int | None = None,
) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="jimeng-bench-batch-"))
    source = folder / "lines.jsonl"
    source.write_text(
        "".join(
            json.dumps({"id": f"l{n:05d}", "prompt": f"product shot {n}", "size": "1K"}) + "\n"
            for n in range(lines)
        )
    )
    sandbox, url = serve(delay, cap)
    try:
        args = [sys.executable, "-m", "jimeng", "batch", str(source), "--out",
                str(folder / "out"), "--sandbox-url", url, "-q"]  # fmt: skip
        if redis_url is not None:
            args += ["--store", redis_url, "--name", folder.name]
        if max_concurrency is not None:
            args += ["--max-concurrency", str(max_concurrency)]
        env = dict(os.environ, JIMENG_HOME=str(folder / "home"), JIMENG_POLL_INTERVAL="0.1")
        started = time.perf_counter()
        processes = [
            subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL) for _ in range(workers)
        ]
        codes = [process.wait() for process in processes]
        seconds = time.perf_counter() - started
        seen = stats(url)
    finally:
        sandbox.terminate()
        sandbox.communicate(timeout=10)
    rows = [json.loads(row) for row in (folder / "out" / "results.jsonl").read_text().splitlines()]
    return {
        "codes": codes,
        "seconds": seconds,
        "lines_per_second": lines / seconds,
        "done": sum(row["status"] == "done" for row in rows),
        "submits": seen["tasks"],
        "peak": seen["peak_unfinished"],
        "refused": seen["refused"].get("concurrency", 0),
        "requests": seen["requests"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delay", type=float, default=1.0, help="generation seconds per task")
    parser.add_argument("--cap", type=int, default=32, help="sandbox concurrent-task cap")
    parser.add_argument(
        "--fixed",
        action="store_true",
        help="give the workers --max-concurrency CAP (else the adaptive limiter learns it)",
    )
    options = parser.parse_args()
    binary = find_binary()
    if binary is None:
        print("no redis-server: the three-worker set-up needs one", file=sys.stderr)
        return 1
    redis = RedisServer(binary).start()
    results: dict[str, list[dict[str, Any]]] = {"1 worker": [], "3 workers, Redis": []}
    try:
        for round_ in range(options.rounds):
            for name, workers, url in (
                ("1 worker", 1, None),
                ("3 workers, Redis", 3, redis.url),
            ):
                fixed = options.cap if options.fixed else None
                outcome = run(workers, options.lines, options.delay, options.cap, url, fixed)
                results[name].append(outcome)
                print(f"round {round_ + 1} {name}: {json.dumps(outcome)}", flush=True)
    finally:
        redis.stop()
    limit = f"--max-concurrency {options.cap}" if options.fixed else "adaptive limiter"
    print(
        f"\n{options.lines} lines, generation {options.delay}s, sandbox cap {options.cap}, {limit}:"
    )
    for name, outcomes in results.items():
        rates = [o["lines_per_second"] for o in outcomes]
        print(
            f"  {name:17} {statistics.median(rates):6.1f} lines/s "
            f"(min {min(rates):.1f}, max {max(rates):.1f}); "
            f"submits {[o['submits'] for o in outcomes]} for {options.lines} lines; "
            f"peak unfinished {[o['peak'] for o in outcomes]} (cap {options.cap}); "
            f"50430 refusals {[o['refused'] for o in outcomes]}; "
            f"done {[o['done'] for o in outcomes]}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
