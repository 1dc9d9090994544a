"""How every benchmark reports: a target next to the measured ratio, with its spread."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def spread(values: Sequence[float]) -> str:
    """Median and the min–max of the rounds."""
    return f"{statistics.median(values):.3f} (rounds {min(values):.3f}–{max(values):.3f})"


def line(name: str, target: str, values: Sequence[float], ok: bool) -> str:
    verdict = "ok" if ok else "MISSED"
    return f"{name:<48} target {target:<10} measured {spread(values):<34} {verdict}"
