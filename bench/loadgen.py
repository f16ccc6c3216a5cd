"""The Go load generator (bench/loadgen) for the toolwire path of the benchmark's concurrency rows.

A Python grpc.aio consumer costs ~170 us of CPU per message: at thousands of messages a second it,
not the relay, is what saturates the machine. `build()` compiles bench/loadgen once; `run()` starts
it against a toolwire server and returns the one JSON object it prints:

    {"streams", "model", "rounds", "chats", "failed": {"count", "errors"}, "lost_or_reordered",
     "malformed", "chunks", "messages", "events", "chunks_per_message",
     "lag_ms": {"p50", "p99", "max"}, "gap_ms": {"p50", "p99"}, "ttft_ms": {"p50", "p99"},
     "tool_to_request_ms": {"p50", "p99"} (only with a tool round), "cpu_seconds",
     "cpu_us_per_message", "wall_seconds"}

Times are in ms, percentiles exact over all samples (picked as bench/stats.py's `percentile` does).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).resolve().parent / "loadgen"
BINARY = SOURCE / "bin" / "loadgen"


def build() -> Path:
    """Builds bench/loadgen/bin/loadgen with the `go` on PATH (as the Makefile's Go targets do)."""
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("bench/loadgen: no `go` on PATH (`make setup` installs one)")
    done = subprocess.run(
        [go, "build", "-o", str(BINARY.relative_to(SOURCE)), "."],
        cwd=SOURCE,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench/loadgen: go build failed:\n{done.stderr}")
    return BINARY


async def run(
    binary: Path,
    target: str,
    model: str,
    streams: int,
    rounds: int = 1,
    timeout: float = 600.0,  # noqa: ASYNC109 (the binary stops itself at it)
    tool_result: str = '{"value": 42}',
    connections: int = 1,
    ramp_seconds: float = 0.0,
    warmup: int = 0,
    coalesce_ms: int = 0,
    stamp_tool_results: bool = False,
) -> dict[str, Any]:
    """Runs `streams` concurrent chats (`rounds` after one another on each) against `target`: started
    evenly over `ramp_seconds`, each stream's first `warmup` chats left out of the figures; with
    `coalesce_ms`, every chat asks for that ChatStart.text_coalesce_window; with `stamp_tool_results`,
    each ToolResult is `{"sent_ns": <when it was sent>}` instead of `tool_result`."""
    process = await asyncio.create_subprocess_exec(
        str(binary),
        "-target",
        target,
        "-model",
        model,
        "-streams",
        str(streams),
        "-rounds",
        str(rounds),
        "-tool-result",
        tool_result,
        "-timeout",
        f"{timeout}s",
        "-connections",
        str(connections),
        "-ramp",
        f"{ramp_seconds}s",
        "-warmup",
        str(warmup),
        "-coalesce-ms",
        str(coalesce_ms),
        *(["-stamp-tool-results"] if stamp_tool_results else []),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        # the binary stops itself at `timeout`; the margin covers its start and its statistics
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout + 30)
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"bench/loadgen exited with {process.returncode}: {stderr.decode()[-2000:]}")
    figures: dict[str, Any] = json.loads(stdout)
    return figures
