# ruff: noqa: RUF001
"""The Go load generator's part of the report (bench/go_load.py's results): the concurrency bars,
judged with a load generator that is not itself the bottleneck, for 1 and 2 server processes."""

from __future__ import annotations

import math
import statistics
from typing import Any

from bench.go_load import bar_key

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


START_BUDGET_MS = 1000.0
"""The sweep's chats must start streaming within this (TTFT p99; a third of a 3 s chat) for its lag
to count as N chats streaming at once: a saturated server keeps the lag of the chats it runs low by
making new chats wait to start."""


def _waited(runs: dict[str, Any], streams: int) -> str:
    """Why the sweep at `streams` is not N chats at once (its chats waited to start), or ""."""
    ttft = _median([_get(figures, "ttft_ms", "p99") for figures in _bar_runs(runs, "sweep", streams)])
    if ttft > START_BUDGET_MS:
        return (
            f"its chats waited up to {_fmt(ttft, 0)} ms to start (TTFT p99), "
            f"so fewer than {streams} streamed at once"
        )
    return ""


def _bar_runs(runs: dict[str, Any], kind: str, streams: int) -> list[dict[str, Any]]:
    """Every run of a bar's scenario (bench/go_load.py repeats them); the table's one if none."""
    repeated = runs.get("bar_runs", {}).get(bar_key(kind, streams))
    if repeated:
        return list(repeated)
    single = runs.get("tool") if kind == "tool" else runs.get(kind, {}).get(streams)
    return [single] if single else []


def _median(values: list[float]) -> float:
    """The median of the numbers among `values` (NaN: a run without the figure); NaN if none."""
    numbers = [value for value in values if not math.isnan(value)]
    return statistics.median(numbers) if numbers else float("nan")


BarValue = tuple[float, float, list[float]]
"""A bar's figure (the median of its runs), the bar, and each run's figure, in run order (ms)."""


def _bar_values(runs: dict[str, Any], direct_ttft_p99: float, direct_gap_p99: float) -> dict[str, BarValue]:
    """Each concurrency bar's figure in one server's runs: name → (median, bar in ms, per run)."""
    values: dict[str, BarValue] = {}

    def add(name: str, kind: str, streams: int, figure: str, minus: float, bar: float) -> None:
        each = [_get(figures, figure, "p99") - minus for figures in _bar_runs(runs, kind, streams)]
        if each:
            values[name] = (_median(each), bar, each)

    burst, sweep = runs.get("burst", {}), runs.get("sweep", {})
    if 100 in burst:
        add("TTFT p99, 100 streams, added vs direct at 1 stream", "burst", 100, "ttft_ms", direct_ttft_p99, 5)
    if 200 in burst:
        add("gap between chunks − sent gap p99, 200 streams, added vs direct at 1 stream",
            "burst", 200, "gap_ms", direct_gap_p99, 2)  # fmt: skip
    if sweep:
        top = max(sweep)
        add(f"delivery lag p99, {top} chats at 20 chunks/s", "sweep", top, "lag_ms", 0.0, 50)
    if runs.get("tool"):
        add("last ToolResult → next request at provider, p99", "tool", 1, "tool_to_request_ms", 0.0, 1)
    return values


def _each(values: list[float]) -> str:
    """How a median came about: "" for one run, else "; median of N runs: a, b, c"."""
    if len(values) < 2:
        return ""
    return f"; median of {len(values)} interleaved runs: " + ", ".join(_fmt(value) for value in values)


FLOOR = "grpc.aio + aiohttp with no relay logic"


def bars(
    go: dict[int, dict[str, Any]],
    direct_ttft_p99: float,
    direct_gap_p99: float,
    floor: dict[str, Any] | None = None,
) -> tuple[list[str], list[Verdict]]:
    """Rows for the main table and verdicts: each concurrency bar for each process count, and for the
    floor (bench/floor_server.py) when it ran. A bar holds when it holds for at least one process
    count (the deployment can choose it); the floor is shown beside it, never counted for toolwire."""
    lines: list[str] = []
    verdicts: list[Verdict] = []
    checks: dict[str, list[tuple[int, float, bool]]] = {}
    waits: list[str] = []
    for workers, runs in sorted(go.items()):
        for name, (value, bar, each) in _bar_values(runs, direct_ttft_p99, direct_gap_p99).items():
            holds = None if math.isnan(value) else value <= bar
            waited = _waited(runs, max(runs["sweep"])) if name.startswith("delivery lag") else ""
            if waited and holds:
                holds = False
                waits.append(f"{_processes(workers)}: {waited}")
            label = f"{name} (ms; Go load generator, {_processes(workers)}{_each(each)})"
            lines.append(
                f"| {label} | | {_fmt(value)} | | **{_fmt(value)}** | | | | ≤ {bar:g} ms {_mark(holds)} |"
            )
            checks.setdefault(name, []).append((workers, value, bool(holds)))
    floor_values = _bar_values(floor, direct_ttft_p99, direct_gap_p99) if floor else {}
    for name, (value, bar, each) in floor_values.items():
        holds = None if math.isnan(value) else value <= bar
        label = f"{name} (ms; Go load generator, the floor: {FLOOR}{_each(each)})"
        lines.append(f"| {label} | | {_fmt(value)} | | {_fmt(value)} | | | | (≤ {bar:g} ms {_mark(holds)}) |")
    for name, results in checks.items():
        best = min(results, key=lambda item: item[1] if not math.isnan(item[1]) else math.inf)
        holds = any(ok for _, _, ok in results)
        each = ", ".join(f"{_processes(workers)} {_fmt(value)}" for workers, value, _ in results)
        text = f"{name}, Go load generator{_medians(go)}: {each} ms (best: {_processes(best[0])})"
        if name in floor_values:
            value, bar, _ = floor_values[name]
            text += f"; the floor ({FLOOR}) measures {_fmt(value)} ms" + (
                ": the bar is below what these libraries do on this machine"
                if value > bar and not holds
                else ""
            )
        if name.startswith("last ToolResult") and floor:
            text += _legs((floor.get("tool") or {}).get("legs_ms"))
        if name.startswith("TTFT"):
            text += _start_part(go, floor)
        if name.startswith("delivery lag") and waits:
            text += "; not held where the lag was low: " + "; ".join(waits)
        verdicts.append((text, name, holds))
    return lines, verdicts


def _medians(go: dict[int, dict[str, Any]]) -> str:
    """' (median of N interleaved runs)' when the bars' scenarios ran more than once, else ''."""
    counts = [len(each) for runs in go.values() for each in runs.get("bar_runs", {}).values()]
    return f" (median of {max(counts)} interleaved runs)" if counts and max(counts) > 1 else ""


def _start_part(go: dict[int, dict[str, Any]], floor: dict[str, Any] | None) -> str:
    """How much of TTFT p99 at 100 streams passed before the chat's request reached the provider (the
    load generator's start_to_request_ms: the call's acceptance, the relay's start path and its
    HTTP request), for each process count and the floor; the rest is the first chunk's way back."""
    parts = []
    for label, runs in [*((_processes(w), r) for w, r in sorted(go.items())), ("the floor", floor)]:
        runs_at_100 = _bar_runs(runs or {}, "burst", 100)
        value = _median([_get(each, "start_to_request_ms", "p99") for each in runs_at_100])
        if not math.isnan(value):
            parts.append(f"{label} {_fmt(value)}")
    if not parts:
        return ""
    figures = ", ".join(parts)
    return f"; of TTFT, from the chat's start to its request reaching the provider, p99: {figures} ms"


def _legs(legs: dict[str, dict[str, float]] | None) -> str:
    """The floor's tool round trip in its two legs (bench/floor_server.py), or ""."""
    if not legs:
        return ""
    grpc, http = legs["grpc"], legs["http"]
    return (
        f"; the floor's round trip in two legs: the client's send to the relay's read (gRPC) "
        f"p50 {_fmt(grpc['p50'])} / p99 {_fmt(grpc['p99'])} ms, the read to the request's arrival "
        f"(aiohttp and the provider) p50 {_fmt(http['p50'])} / p99 {_fmt(http['p99'])} ms"
    )


def capacity(floor: dict[str, Any] | None, cores: int, chunks_per_second: float = 10_000) -> str:
    """What `chunks_per_second` paced chunks cost in cores at the floor, from the floor's largest
    steady run: the relay (floor), the fake provider and the load generator, each measured; beside
    the `cores` of the machine that ran it."""
    sweep = (floor or {}).get("sweep", {})
    if not sweep:
        return ""
    top = max(sweep)
    figures = sweep[top]
    relay = float(figures.get("server_cpu_us_per_chunk") or float("nan"))
    provider = float(figures.get("provider_cpu_us_per_chunk") or float("nan"))
    generator = float(figures.get("cpu_us_per_message") or float("nan"))
    needed = (relay + provider + generator) * chunks_per_second / 1e6
    return (
        f"At {chunks_per_second:,.0f} paced chunks/s (the 500-chat bar), the floor's measured CPU per "
        f"chunk at {top} chats (relay {_fmt(relay, 0)} µs, fake provider {_fmt(provider, 0)} µs, load "
        f"generator {_fmt(generator, 0)} µs per message) adds up to {_fmt(needed, 1)} cores, on a "
        f"{cores}-core machine, before any relay logic."
    )


def sweep_table(go: dict[int, dict[str, Any]], floor: dict[str, Any] | None = None) -> str:
    """Lag, coalescing and CPU per process count and concurrency, and the floor's when it ran."""
    go = {**go, 0: floor} if floor else go
    worker_counts = sorted(go, key=lambda workers: workers or math.inf)  # the floor (0) last
    head = (
        "| chats | "
        + " | ".join(
            f"{_processes(w) if w else 'floor'}: lag p50 | p99 | chunks per message | server CPU µs per chunk"
            for w in worker_counts
        )
        + " | load generator CPU µs per message | fake provider CPU µs per chunk |"
    )
    rule = "|---:|" + "---:|" * (4 * len(worker_counts) + 2)
    lines = [head, rule]
    counts = sorted({n for w in worker_counts for n in go[w].get("sweep", {})})
    for n in counts:
        cells, generator, provider = [], float("nan"), float("nan")
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
            if figures and math.isnan(provider):
                provider = float(figures.get("provider_cpu_us_per_chunk") or float("nan"))
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {_fmt(generator, 0)} | {_fmt(provider, 0)} |")
    return "\n".join(lines)


def window_table(go: dict[int, dict[str, Any]]) -> str:
    """The client-chosen window's runs beside the same scenario without it (1 process)."""
    runs = go.get(1, {})
    windows = runs.get("window") or {}
    if not windows:
        return ""
    lines = [
        "| scenario | text_coalesce_window | TTFT p99 (ms) | delivery lag p99 (ms) | chunks per message "
        "| server CPU µs per chunk |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, figures in windows.items():
        kind, streams, window = key.split("-")
        pacing = "64 chunks 20 ms apart" if kind == "burst" else "20 chunks/s"
        plain = runs.get(kind, {}).get(int(streams))
        for label, run in (("none", plain), (window.removesuffix("ms") + " ms", figures)):
            if not run:
                continue
            failed = run.get("failed", {}).get("count", 0)
            note = f" ({failed} failed)" if failed else ""
            lines.append(
                f"| {streams} chats, {pacing} | {label} | {_fmt(_get(run, 'ttft_ms', 'p99'))} | "
                f"{_fmt(_get(run, 'lag_ms', 'p99'))}{note} | {_fmt(run.get('chunks_per_message'))} | "
                f"{_fmt(run.get('server_cpu_us_per_chunk'), 0)} |"
            )
    return "\n".join(lines)


def section(go: dict[int, dict[str, Any]], floor: dict[str, Any] | None, cores: int) -> str:
    """docs/performance.md's Go load generator part: steady load per process count beside the
    floor, what that load costs in cores, and the client-chosen window."""
    if not go:
        return "The Go load generator phase did not run (no Go toolchain, or its build failed)."
    window = window_table(go)
    return (
        "**The same with the Go load generator, at steady load** (bench/loadgen; toolwire with each "
        "process count, `--workers`, and the floor run at once, each scenario on all of them back to back "
        "in a shuffled order; 8 connections; the first run of each scenario; the streams start spread "
        "over one chat's 3 s, each "
        "runs 3 chats, the first left out, so the figures cover all N streaming at once; server CPU is "
        "the whole process tree's, idle time included, per chunk relayed; *floor* is bench/floor_server.py, "
        "grpc.aio + aiohttp relaying the same stream with no logic at all):\n\n"
        + sweep_table(go, floor)
        + ("\n\n" + capacity(floor, cores) if floor else "")
        + (
            "\n\n**The client-chosen window** (`ChatStart.text_coalesce_window`, 1 process): the "
            "first text of a model round goes out at once, later text is held up to the window and "
            "sent as one message; the same scenario without it beside each:\n\n" + window
            if window
            else ""
        )
    )


def lost_and_failed(go: dict[int, dict[str, Any]]) -> tuple[int, int]:
    """Streams with a chunk lost or reordered, and chats that failed, over every Go run (the bars'
    repeated runs included)."""
    lost = failed = 0
    for runs in go.values():
        every = [*runs.get("sweep", {}).values(), *runs.get("burst", {}).values(), runs.get("tool") or {}]
        every += [figures for repeated in runs.get("bar_runs", {}).values() for figures in repeated]
        unique = {id(figures): figures for figures in every}  # a bar's first run is listed twice
        for figures in unique.values():
            lost += int(figures.get("lost_or_reordered", 0))
            failed += int(figures.get("failed", {}).get("count", 0))
    return lost, failed


def plot_points(
    go: dict[int, dict[str, Any]], floor: dict[str, Any] | None = None
) -> dict[str, dict[int, tuple[float, float]]]:
    """Per line of the lag plot: concurrency → (p50, p99)."""
    lines = {f"toolwire, Go load generator, {_processes(w)}": runs for w, runs in sorted(go.items())}
    if floor:
        lines[f"the floor ({FLOOR}), Go load generator"] = floor
    return {
        name: {
            n: (_get(figures, "lag_ms", "p50"), _get(figures, "lag_ms", "p99"))
            for n, figures in runs.get("sweep", {}).items()
        }
        for name, runs in lines.items()
    }
