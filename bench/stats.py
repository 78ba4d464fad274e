"""Repeated measurements: the median and the range of the repetitions."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def summary(samples: Sequence[float]) -> dict[str, Any]:
    values = [float(v) for v in samples]
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "samples": values,
    }


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (values need not be sorted)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def fmt(s: dict[str, Any], digits: int = 0, scale: float = 1.0) -> str:
    """`median (min-max)` of a summary."""
    med, lo, hi = (s[k] * scale for k in ("median", "min", "max"))
    return f"{med:,.{digits}f} ({lo:,.{digits}f}-{hi:,.{digits}f})"
