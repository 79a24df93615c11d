"""Pure helpers of the benchmarks: percentiles, paired differences, rates and a plain table.

Nothing here starts a process or opens a socket, so ``test_benchlib.py`` checks it in the
normal test run while the benchmarks themselves (``bench*.py``) are never collected by pytest.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Iterable, Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between closest ranks.

    The same definition as ``numpy.percentile``'s default, so that p50 of an even count is the
    mean of the two middle values and p99 of a short series lies between its two largest.
    """
    if not values:
        raise ValueError("percentile of an empty series")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def describe(values: Sequence[float]) -> dict[str, float | int | None]:
    """n, mean, p50, p99, min and max of a series (``None`` everywhere but n when empty)."""
    if not values:
        return {"n": 0, "mean": None, "p50": None, "p99": None, "min": None, "max": None}
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "min": min(values),
        "max": max(values),
    }


def paired_differences(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """``a[i] - b[i]`` per call: the same request sent both ways in the same step."""
    if len(a) != len(b):
        raise ValueError(f"paired series differ in length: {len(a)} vs {len(b)}")
    return [x - y for x, y in zip(a, b, strict=True)]


def alternating_order(step: int, first: str, second: str) -> tuple[str, str]:
    """Which arm goes first in ``step``: strictly alternating, so that drift, warm caches and
    whichever arm benefits from going first or second cancel out over an even number of steps."""
    return (first, second) if step % 2 == 0 else (second, first)


def per_minute(count: int, seconds: float) -> float | None:
    """A rate per minute (``None`` when no time passed)."""
    return count * 60.0 / seconds if seconds > 0 else None


def phase_means(timings: Iterable[dict[str, float]]) -> dict[str, float]:
    """Mean seconds per phase over trials; a phase a trial lacks is not counted as zero."""
    seen: dict[str, list[float]] = {}
    for t in timings:
        for phase, seconds in t.items():
            if seconds is not None:
                seen.setdefault(phase, []).append(float(seconds))
    return {phase: statistics.fmean(v) for phase, v in sorted(seen.items())}


def fmt(value: Any, digits: int = 1) -> str:
    """A cell: floats with ``digits`` decimals, ``None`` as ``-``, the rest as ``str``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 1) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    cells = [[fmt(c, digits) for c in row] for row in rows]
    for row in cells:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells for {len(headers)} columns: {row}")
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(row: Sequence[str]) -> str:
        parts = [c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(list(headers)), rule, *(line(r) for r in cells)])


def machine_load() -> dict[str, Any]:
    """CPU count and load averages: benchmarks on a shared machine must say how shared it was."""
    one, five, fifteen = os.getloadavg()
    return {"cpus": os.cpu_count(), "load_1m": one, "load_5m": five, "load_15m": fifteen}
