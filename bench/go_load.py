"""The benchmark's concurrency phase driven by the Go load generator (bench/loadgen).

The Python consumers (bench/consumers.py) cost ~170 µs of CPU per received message; at hundreds of
streams they, not the relay, saturate the 2-core machine. This phase runs the concurrency rows of
the bar against toolwire with each process count (`--workers`) and against the floor, with the load
generator in Go, and records the server's CPU (the whole process tree) for each run:

    sweep   N streams of chats of 60 chunks 50 ms apart (20 chunks/s a stream)
    burst   N streams of chats of 64 chunks 20 ms apart (TTFT and gaps at N streams)
    tool    1 stream, 200 chats with a tool round (ToolResult -> next request at the provider)

Every server (toolwire with 1 and 2 processes, and the floor) runs at once, idle but for the one
under load, and each scenario runs on all of them back to back in a shuffled order: the machine is
shared and its load drifts over a run, which must not favour whichever server ran first. The
scenarios the bars are judged on run `REPEATS` times, and the report takes their median.

A sweep or burst run is steady load, not N starts in one instant: the N streams start evenly spread
over one chat's duration, each runs 3 chats back to back, and the first chat of each stream is left
out of the figures (its failures still count). The figures thus cover the time all N streams run
at once, with chats starting and ending continually as in an application's traffic. (All N starting
in the same instant measures the start-up queue instead: every start costs the server ~1-3 ms of CPU,
so the last of 100 simultaneous starts waits for the other 99 in any single process.)
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psutil

from bench import loadgen
from bench.stats import percentile


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live children (the workers of `--workers N`)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


CONNECTIONS = 8
"""gRPC connections the load generator spreads its streams over: SO_REUSEPORT hands each connection
(not each call) to one worker process, so one connection would load one worker only; 8 spread
evenly enough over 2 workers (an application's many client processes do the same)."""


ROUNDS = 3
"""Chats per stream in a steady run; the first is the ramp, left out of the figures."""


async def measured(
    binary: Path,
    pid: int,
    address: str,
    model: str,
    streams: int,
    chat_seconds: float | None = None,
    provider_pid: int | None = None,
    coalesce_ms: int = 0,
) -> dict[str, Any]:
    """One load-generator run, with the server tree's CPU seconds spent during it (and the fake
    provider's, given its pid): steady load of `streams` when `chat_seconds` (one chat's duration)
    is given, else 200 chats on one stream."""
    before = tree_cpu_seconds(pid)
    provider_before = tree_cpu_seconds(provider_pid) if provider_pid else 0.0
    if chat_seconds is None:  # stamped: the floor times the gRPC leg of each tool round with it
        figures = await loadgen.run(binary, address, model, streams, rounds=200, stamp_tool_results=True)
    else:
        figures = await loadgen.run(
            binary,
            address,
            model,
            streams,
            rounds=ROUNDS,
            connections=min(CONNECTIONS, streams),
            ramp_seconds=chat_seconds,
            warmup=1,
            coalesce_ms=coalesce_ms,
        )
    figures["server_cpu_seconds"] = tree_cpu_seconds(pid) - before
    chunks = figures.get("chunks") or 0
    if chat_seconds is not None:  # the figures leave out each stream's first chat; the CPU does not
        chunks = chunks * ROUNDS / (ROUNDS - 1)
    per_chunk = figures["server_cpu_seconds"] / chunks * 1e6 if chunks else float("nan")
    figures["server_cpu_us_per_chunk"] = per_chunk
    if provider_pid and chunks:
        figures["provider_cpu_us_per_chunk"] = (
            (tree_cpu_seconds(provider_pid) - provider_before) / chunks * 1e6
        )
    return figures


SCENARIOS = {"sweep": ("openai/bench-60x50ms", 3.0), "burst": ("openai/bench-64x20ms", 1.28)}
"""The steady scenarios: (model, one chat's duration in s). sweep: 60 chunks 50 ms apart (20 chunks/s
a stream); burst: 64 chunks 20 ms apart (TTFT and gaps at N streams)."""


REPEATS = 3
"""Runs of each bar's scenario on each server, the table's own run included. A bar is judged on the
median of its runs: one run's p99 on this shared machine moved by up to 37x between two runs."""

TOOL_MODEL = "openai/bench-8x0-tool"


def bar_scenarios(sweep: list[int], burst: list[int]) -> list[tuple[str, int]]:
    """The (kind, streams) runs the bars are judged on: TTFT at 100 streams and gaps at 200 (burst),
    lag at the largest sweep, and the tool round trip."""
    points = [("burst", streams) for streams in (100, 200) if streams in burst]
    return [*points, *([("sweep", max(sweep))] if sweep else []), ("tool", 1)]


def bar_key(kind: str, streams: int) -> str:
    """The key of a bar's runs in `runs["bar_runs"]`."""
    return "tool" if kind == "tool" else f"{kind}-{streams}"


async def _scenario(
    binary: Path, target: tuple[int, str], kind: str, streams: int, provider_pid: int | None
) -> dict[str, Any]:
    pid, address = target
    if kind == "tool":
        return await measured(binary, pid, address, TOOL_MODEL, 1)
    model, chat_seconds = SCENARIOS[kind]
    return await measured(binary, pid, address, model, streams, chat_seconds, provider_pid)


async def interleaved(
    binary: Path,
    targets: dict[str, tuple[int, str]],
    sweep: list[int],
    burst: list[int],
    log: Callable[[str], None],
    provider_pid: int | None = None,
    repeats: int = REPEATS,
) -> dict[str, dict[str, Any]]:
    """The concurrency scenarios against several running servers (label → (pid, address)), each
    scenario on every server back to back in a shuffled order, so that the machine's load, which
    drifts over a run, weighs on each server alike; then the bars' scenarios again until each has
    `repeats` runs. Per label: {"sweep": {streams: figures}, "burst": {...}, "tool": figures,
    "bar_runs": {bar_key: [figures, ...]}}."""
    runs: dict[str, dict[str, Any]] = {label: {"sweep": {}, "burst": {}, "bar_runs": {}} for label in targets}
    for _, address in targets.values():  # warm-up: connections, code paths, the provider's pool
        await loadgen.run(binary, address, "openai/bench-64x0", 32, connections=CONNECTIONS)
    bars = bar_scenarios(sweep, burst)
    plan = [("sweep", n) for n in sweep] + [("burst", n) for n in burst] + [("tool", 1)]
    plan += [point for _ in range(repeats - 1) for point in bars]
    for kind, streams in plan:
        what = "tool round trip, 200 chats" if kind == "tool" else f"{streams} chats of {SCENARIOS[kind][0]}"
        for label in random.sample(list(targets), len(targets)):
            log(f"Go load generator, {label}: {what}")
            figures = await _scenario(binary, targets[label], kind, streams, provider_pid)
            if kind == "tool":
                runs[label].setdefault("tool", figures)
            else:
                runs[label][kind].setdefault(streams, figures)
            if (kind, streams) in bars:
                runs[label]["bar_runs"].setdefault(bar_key(kind, streams), []).append(figures)
    return runs


WINDOWS: list[tuple[str, int, int]] = [("burst", 100, 50), ("sweep", 500, 100)]
"""The client-chosen text coalescing window (ChatStart.text_coalesce_window), run against one server
process: (scenario, streams, window ms). A window merges only chunks that arrive within it, so it is
wider than the scenario's pacing (20 and 50 ms): the client trades that much latency for fewer
messages."""


def window_key(kind: str, streams: int, window_ms: int) -> str:
    """The key of a window run in `runs["window"]`."""
    return f"{kind}-{streams}-{window_ms}ms"


async def window_scenarios(
    binary: Path,
    pid: int,
    address: str,
    windows: list[tuple[str, int, int]],
    log: Callable[[str], None],
    provider_pid: int | None = None,
) -> dict[str, Any]:
    """The `windows` runs against one running server: {window_key: figures}."""
    runs: dict[str, Any] = {}
    for kind, streams, window_ms in windows:
        model, chat_seconds = SCENARIOS[kind]
        log(f"1 server process, text_coalesce_window {window_ms} ms: {streams} chats of {model}")
        runs[window_key(kind, streams, window_ms)] = await measured(
            binary, pid, address, model, streams, chat_seconds, provider_pid, window_ms
        )
    return runs


FLOOR_LABEL = "the floor"


def worker_counts(environment: Mapping[str, str], cores: int) -> list[int]:
    """The toolwire process counts to measure: `BENCH_WORKERS` (e.g. `1,2,4`), else 1 and about two
    thirds of the cores, at least 2. The fake provider and the load generator take about a third of
    the CPU of a paced run (48 + 55 µs per chunk against the relay's ~200), so more workers than that
    would only compete with them."""
    text = environment.get("BENCH_WORKERS", "").strip()
    if not text:
        return sorted({1, max(2, cores * 2 // 3)})
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"BENCH_WORKERS must be process counts such as 1,2,4 (got {text!r})") from None
    if not counts or counts[0] < 1:
        raise ValueError(f"BENCH_WORKERS must be process counts of at least 1 (got {text!r})")
    return counts


async def go_load(
    start_server: Callable[[list[str]], tuple[Any, str]],
    start_floor: Callable[[], tuple[Any, str]] | None,
    stop_server: Callable[[Any], None],
    worker_counts: list[int],
    sweep: list[int],
    burst: list[int],
    log: Callable[[str], None],
    provider_pid: int | None = None,
    windows: list[tuple[str, int, int]] | None = None,
    legs_file: Path | None = None,
    repeats: int = REPEATS,
) -> tuple[dict[int, dict[str, Any]], dict[str, Any] | None]:
    """toolwire with each process count (`--workers`) and the floor (bench/floor_server.py: grpc.aio
    and aiohttp with no relay logic, the floor under any relay built on them), all running at once
    and measured interleaved (`interleaved`); then the `windows` runs on the 1-process server.

    Returns ({workers: runs}, the floor's runs or None). With `legs_file` (the floor's, see its module
    doc), the floor's tool round trip in its two legs too: runs["tool"]["legs_ms"]."""
    binary = loadgen.build()
    servers: list[Any] = []
    targets: dict[str, tuple[int, str]] = {}
    try:
        for workers in worker_counts:
            server, address = start_server(["--workers", str(workers)] if workers > 1 else [])
            servers.append(server)
            targets[_label(workers)] = (server.pid, address)
        if start_floor is not None:
            server, address = start_floor()
            servers.append(server)
            targets[FLOOR_LABEL] = (server.pid, address)
        runs = await interleaved(binary, targets, sweep, burst, log, provider_pid, repeats)
        if 1 in worker_counts and windows:
            runs[_label(1)]["window"] = await window_scenarios(
                binary, *targets[_label(1)], windows, log, provider_pid
            )
    finally:
        for server in servers:
            stop_server(server)
    floor = runs.get(FLOOR_LABEL)
    legs = tool_legs(legs_file)  # the load is over: nothing waits on this small read
    if floor and legs and floor.get("tool"):
        floor["tool"]["legs_ms"] = legs
    return {workers: runs[_label(workers)] for workers in worker_counts}, floor


def _label(workers: int) -> str:
    return f"{workers} server process{'es' if workers > 1 else ''}"


def tool_legs(legs_file: Path | None) -> dict[str, dict[str, float]] | None:
    """p50 and p99 of each leg in the floor's JSON lines: {"grpc": {...}, "http": {...}} (ms); None
    without any."""
    if legs_file is None or not legs_file.exists():
        return None
    rows = [json.loads(line) for line in legs_file.read_text().splitlines() if line.strip()]
    if not rows:
        return None
    return {
        leg: {f"p{q}": percentile([row[f"{leg}_ms"] for row in rows], q) for q in (50, 99)}
        for leg in ("grpc", "http")
    }
