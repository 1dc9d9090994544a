"""Client cost per generation in CPU instructions (valgrind's callgrind), jimeng versus the raw
aiohttp loop of ``overhead.py``: a count, not a time, so it does not move with the machine's load.

Each side runs twice under callgrind in a fresh process (``--small`` and ``--large``
generations at concurrency 32, against the fast stub server in a separate process, which is
not counted); the difference of the two totals divided by the difference of the counts is the
cost of one generation without the start-up and imports. Skipped, saying so, when valgrind is
not installed. Target (issue 11): client CPU per generation <= 1.1x the raw loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _report import line

HERE = Path(__file__).resolve().parent
SUMMARY = re.compile(rb"^(?:summary|totals):\s*(\d+)", re.MULTILINE)


def child(side: str, count: int, url: str) -> None:
    """Run ``count`` generations (after the same warm-up as ``overhead.py``)."""
    sys.path.insert(0, str(HERE))
    import overhead

    job = overhead.sdk_rate if side == "sdk" else overhead.raw_rate
    asyncio.run(job(url, count, 32))


def instructions(side: str, count: int, url: str, folder: str) -> int:
    out = os.path.join(folder, f"callgrind.{side}.{count}")
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            side,
            str(count),
            url,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    match = SUMMARY.search(Path(out).read_bytes())
    if match is None:
        raise RuntimeError(f"no instruction total in {out}")
    return int(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=32, help="generations in the short run")
    parser.add_argument("--large", type=int, default=160, help="generations in the long run")
    parser.add_argument(
        "--child", nargs=3, metavar=("SIDE", "COUNT", "URL"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return 0
    name = "client instructions per generation SDK/raw"
    if shutil.which("valgrind") is None:
        print(f"{name:<48} skipped: valgrind is not installed")
        return 0
    stub = subprocess.Popen(
        [sys.executable, str(HERE / "stub_server.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert stub.stdout is not None
        url = stub.stdout.readline().rsplit(" ", 1)[1].strip()
        per_generation: dict[str, float] = {}
        with tempfile.TemporaryDirectory() as folder:
            for side in ("raw", "sdk"):
                small = instructions(side, args.small, url, folder)
                large = instructions(side, args.large, url, folder)
                per_generation[side] = (large - small) / (args.large - args.small)
    finally:
        stub.terminate()
        stub.wait()
    raw, sdk = per_generation["raw"], per_generation["sdk"]
    print(
        f"callgrind, concurrency 32, {args.large} - {args.small} generations: "
        f"raw {raw:,.0f}, SDK {sdk:,.0f} instructions per generation"
    )
    ratio = sdk / raw
    print(line(name, "<= 1.1", [ratio], ratio <= 1.1, unit="one count"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
