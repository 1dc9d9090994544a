"""Print the mutation score per module from ``mutmut results --all true`` (read on stdin).

Used by ``make mutation``. Exits 1 when a module scores under the target (90 % by default,
``--target`` to change), so the target is a gate and not only a figure.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter, defaultdict

# ``jimeng._retry.x_should_retry__mutmut_3: survived``, ``jimeng._http.xǁTransportǁsend__mutmut_1``
LINE = re.compile(r"^\s*(?P<module>[\w.]+?)\.x[_ǁ]\S*__mutmut_\d+:\s*(?P<status>[\w ]+?)\s*$")
#: Statuses that count: a mutant the suite noticed (killed, or caught by a timeout) or did not.
NOTICED = {"killed", "timeout", "caught by type check"}
MISSED = {"survived", "no tests"}


def scores(lines: list[str]) -> dict[str, Counter[str]]:
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for line in lines:
        match = LINE.match(line)
        if match:
            by_module[match["module"]][match["status"]] += 1
    return by_module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", type=float, default=90.0, help="percent, per module")
    args = parser.parse_args(argv)
    by_module = scores(sys.stdin.read().splitlines())
    if not by_module:
        print("no mutant results: run `mutmut run` first", file=sys.stderr)
        return 2
    print("| module | killed / total | score | other |\n|---|---|---|---|")
    failing = []
    all_noticed = all_counted = 0
    for module in sorted(by_module):
        counts = by_module[module]
        noticed = sum(counts[s] for s in NOTICED)
        counted = noticed + sum(counts[s] for s in MISSED)
        other = ", ".join(
            f"{n} {s}" for s, n in sorted(counts.items()) if s not in NOTICED | MISSED
        )
        all_noticed += noticed
        all_counted += counted
        if not counted:  # nothing of this module was run: no score, and not a pass
            print(f"| `{module}` | 0 / 0 | not run | {other or '-'} |")
            failing.append(module)
            continue
        score = 100.0 * noticed / counted
        print(f"| `{module}` | {noticed} / {counted} | {score:.1f} % | {other or '-'} |")
        if score < args.target:
            failing.append(module)
    total = 100.0 * all_noticed / all_counted if all_counted else 100.0
    print(f"| all | {all_noticed} / {all_counted} | {total:.1f} % | |")
    if failing:
        print(f"under {args.target:g} % or not run: {', '.join(failing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
