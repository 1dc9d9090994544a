"""How every benchmark reports: a target next to the measured ratio, with its spread."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def spread(values: Sequence[float], unit: str = "rounds") -> str:
    """Median and the min–max of the rounds (or tasks)."""
    return f"{statistics.median(values):.3f} ({unit} {min(values):.3f}–{max(values):.3f})"


def line(name: str, target: str, values: Sequence[float], ok: bool, unit: str = "rounds") -> str:
    verdict = "ok" if ok else "MISSED"
    return f"{name:<48} target {target:<10} measured {spread(values, unit):<34} {verdict}"
