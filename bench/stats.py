"""The one percentile the benchmark uses, in Python as in the Go load generator (bench/loadgen)."""

from __future__ import annotations


def percentile(values: list[float], q: float) -> float:
    """The sample at rank round(q% of n-1) of the sorted values (an exact sample, no interpolation);
    nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]
