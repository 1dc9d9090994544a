"""Memory: peak RSS of 1000 concurrent generations, jimeng versus the raw aiohttp loop.

Each measurement runs in a fresh interpreter (``ru_maxrss`` is a high-water mark) against
``benchmarks/stub_server.py``; rounds alternate raw and SDK. Target (issue 11): the SDK's peak
at most 1.1x the raw loop's.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
from pathlib import Path

from _report import line

HERE = Path(__file__).resolve().parent


async def child(which: str, url: str, tasks: int) -> None:
    import overhead

    job = overhead.sdk_rate if which == "sdk" else overhead.raw_rate
    await job(url, tasks, tasks)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def peak_kib(which: str, url: str, tasks: int) -> int:
    out = subprocess.run(
        [
            sys.executable,
            str(HERE / "memory.py"),
            "--child",
            which,
            "--url",
            url,
            "--tasks",
            str(tasks),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=("sdk", "raw"))
    parser.add_argument("--url")
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(child(args.child, args.url, args.tasks))
        return 0
    stub = subprocess.Popen(
        [sys.executable, str(HERE / "stub_server.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert stub.stdout is not None
        url = stub.stdout.readline().rsplit(" ", 1)[1].strip()
        ratios, raws, sdks = [], [], []
        for _ in range(args.rounds):
            raw = peak_kib("raw", url, args.tasks)
            sdk = peak_kib("sdk", url, args.tasks)
            raws.append(raw)
            sdks.append(sdk)
            ratios.append(sdk / raw)
        print(
            f"{args.tasks} concurrent generations: raw peak RSS {min(raws) / 1024:.1f}–"
            f"{max(raws) / 1024:.1f} MiB, SDK {min(sdks) / 1024:.1f}–{max(sdks) / 1024:.1f} MiB"
        )
        ok = sorted(ratios)[len(ratios) // 2] <= 1.1
        print(line("peak RSS SDK/raw, 1000 concurrent tasks", "<= 1.1", ratios, ok))
    finally:
        stub.terminate()
        stub.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
