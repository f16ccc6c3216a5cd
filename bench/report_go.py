# ruff: noqa: RUF001
"""The Go load generator's part of the report (bench/go_load.py's results): the concurrency bars,
judged with a load generator that is not itself the bottleneck, for 1 and 2 server processes."""

from __future__ import annotations

import math
from typing import Any

Verdict = tuple[str, str, bool | None]


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def _mark(holds: bool | None) -> str:
    return "" if holds is None else ("✅" if holds else "❌")


def _get(figures: dict[str, Any] | None, key: str, q: str) -> float:
    if not figures:
        return float("nan")
    value = figures.get(key, {}).get(q)
    return float("nan") if value is None else float(value)


def _processes(workers: int) -> str:
    return "1 process" if workers == 1 else f"{workers} processes"


def bars(
    go: dict[int, dict[str, Any]], direct_ttft_p99: float, direct_gap_p99: float
) -> tuple[list[str], list[Verdict]]:
    """Rows for the main table and verdicts: each concurrency bar for each process count. A bar
    holds when it holds for at least one process count (the deployment can choose it)."""
    lines: list[str] = []
    verdicts: list[Verdict] = []
    checks: dict[str, list[tuple[int, float, bool]]] = {}

    def row(name: str, workers: int, value: float, bar: float, unit: str = "ms") -> None:
        holds = None if math.isnan(value) else value <= bar
        label = f"{name} ({unit}; Go load generator, {_processes(workers)})"
        lines.append(
            f"| {label} | | {_fmt(value)} | | **{_fmt(value)}** | | | | ≤ {bar:g} {unit} {_mark(holds)} |"
        )
        checks.setdefault(name, []).append((workers, value, bool(holds)))

    for workers, runs in sorted(go.items()):
        burst, sweep = runs.get("burst", {}), runs.get("sweep", {})
        if 100 in burst:
            row("TTFT p99, 100 streams, added vs direct at 1 stream", workers,
                _get(burst[100], "ttft_ms", "p99") - direct_ttft_p99, 5)  # fmt: skip
        if 200 in burst:
            row("gap between chunks − sent gap p99, 200 streams, added vs direct at 1 stream", workers,
                _get(burst[200], "gap_ms", "p99") - direct_gap_p99, 2)  # fmt: skip
        if sweep:
            top = max(sweep)
            row(
                f"delivery lag p99, {top} chats at 20 chunks/s",
                workers,
                _get(sweep[top], "lag_ms", "p99"),
                50,
            )
        if runs.get("tool"):
            row("last ToolResult → next request at provider, p99", workers,
                _get(runs["tool"], "tool_to_request_ms", "p99"), 1)  # fmt: skip
    for name, results in checks.items():
        best = min(results, key=lambda item: item[1] if not math.isnan(item[1]) else math.inf)
        holds = any(ok for _, _, ok in results)
        each = ", ".join(f"{_processes(workers)} {_fmt(value)}" for workers, value, _ in results)
        verdicts.append((f"{name}, Go load generator: {each} ms (best: {_processes(best[0])})", name, holds))
    return lines, verdicts


def sweep_table(go: dict[int, dict[str, Any]]) -> str:
    """Lag, coalescing and CPU per process count and concurrency."""
    worker_counts = sorted(go)
    head = (
        "| chats | "
        + " | ".join(
            f"{_processes(w)}: lag p50 | p99 | chunks per message | server CPU µs per chunk"
            for w in worker_counts
        )
        + " | load generator CPU µs per message |"
    )
    rule = "|---:|" + "---:|" * (4 * len(worker_counts) + 1)
    lines = [head, rule]
    counts = sorted({n for w in worker_counts for n in go[w].get("sweep", {})})
    for n in counts:
        cells, generator = [], float("nan")
        for w in worker_counts:
            figures = go[w].get("sweep", {}).get(n)
            failed = figures.get("failed", {}).get("count", 0) if figures else 0
            lost = figures.get("lost_or_reordered", 0) if figures else 0
            note = (f" ({failed} failed)" if failed else "") + (f" ({lost} lost/reordered)" if lost else "")
            cells.append(
                f"{_fmt(_get(figures, 'lag_ms', 'p50'))} | {_fmt(_get(figures, 'lag_ms', 'p99'))}{note} | "
                f"{_fmt((figures or {}).get('chunks_per_message'))} | "
                f"{_fmt((figures or {}).get('server_cpu_us_per_chunk'), 0)}"
            )
            if figures and math.isnan(generator):
                generator = float(figures.get("cpu_us_per_message") or float("nan"))
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {_fmt(generator, 0)} |")
    return "\n".join(lines)


def lost_and_failed(go: dict[int, dict[str, Any]]) -> tuple[int, int]:
    """Streams with a chunk lost or reordered, and chats that failed, over every Go run."""
    lost = failed = 0
    for runs in go.values():
        every = [*runs.get("sweep", {}).values(), *runs.get("burst", {}).values(), runs.get("tool") or {}]
        for figures in every:
            lost += int(figures.get("lost_or_reordered", 0))
            failed += int(figures.get("failed", {}).get("count", 0))
    return lost, failed


def plot_points(go: dict[int, dict[str, Any]]) -> dict[str, dict[int, tuple[float, float]]]:
    """Per line of the lag plot: concurrency → (p50, p99)."""
    return {
        f"toolwire, Go load generator, {_processes(w)}": {
            n: (_get(figures, "lag_ms", "p50"), _get(figures, "lag_ms", "p99"))
            for n, figures in runs.get("sweep", {}).items()
        }
        for w, runs in sorted(go.items())
    }
