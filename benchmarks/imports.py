"""Import cost: ``import jimeng`` against ``import aiohttp``, each in a fresh interpreter.

Interleaved rounds (aiohttp, then jimeng) so both see the same machine load; each round's
ratio is jimeng's time over aiohttp's, measured inside the interpreter (start-up excluded).
Target (issue 11): ``import jimeng`` at most 1.2x ``import aiohttp``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from _report import line

TIMER = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


#: Bytecode is cached, as for an installed package (pip compiles it); a checkout run with
#: PYTHONDONTWRITEBYTECODE would otherwise compile jimeng from source on every import.
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def import_seconds(module: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", TIMER.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        env=ENV,
    ).stdout
    return float(out.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    import_seconds("aiohttp")  # warm the file cache, write jimeng's bytecode
    import_seconds("jimeng")
    ratios, base, ours = [], [], []
    for _ in range(args.rounds):
        aiohttp_time = import_seconds("aiohttp")
        jimeng_time = import_seconds("jimeng")
        base.append(aiohttp_time * 1000)
        ours.append(jimeng_time * 1000)
        ratios.append(jimeng_time / aiohttp_time)
    print(
        f"import aiohttp: {min(base):.0f}–{max(base):.0f} ms; import jimeng: "
        f"{min(ours):.0f}–{max(ours):.0f} ms ({args.rounds} interleaved rounds)"
    )
    ok = sorted(ratios)[len(ratios) // 2] <= 1.2
    print(line("import jimeng / import aiohttp", "<= 1.2", ratios, ok))
    return 0


if __name__ == "__main__":
    sys.exit(main())
