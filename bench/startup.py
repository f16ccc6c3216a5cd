"""A server's start-up: the time from its exec to the `listening` line, and its resident memory then,
for each set of provider keys (a provider's SDK is imported only when its key is set).

The key sets take turns, one start each per round, so that the machine's noise falls on all of them.
Telemetry stays at its default (nothing exported), as on a server started without OTEL_* variables.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

import psutil

from bench.processes import ROOT, stop
from toolwire.server.workers import ANNOUNCE

KEY_SETS: dict[str, dict[str, str]] = {
    "no provider key": {},
    "an OpenAI key": {"OPENAI_API_KEY": "sk-bench"},
    "OpenAI and Anthropic keys": {"OPENAI_API_KEY": "sk-bench", "ANTHROPIC_API_KEY": "sk-bench"},
}


def startup(rounds: int) -> dict[str, dict[str, float]]:
    """Per key set: the median seconds to `listening` and the median resident MiB at that moment."""
    seconds: dict[str, list[float]] = {name: [] for name in KEY_SETS}
    memory: dict[str, list[float]] = {name: [] for name in KEY_SETS}
    for _ in range(rounds):
        for name, keys in KEY_SETS.items():
            took, resident = _start_once(keys)
            seconds[name].append(took)
            memory[name].append(resident)
    return {
        name: {"seconds": statistics.median(seconds[name]), "rss_mib": statistics.median(memory[name])}
        for name in KEY_SETS
    }


def keyless_environment() -> dict[str, str]:
    """This process's environment without provider keys, provider URLs or OTEL_* settings."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.endswith(("_API_KEY", "_BASE_URL")) and not name.startswith("OTEL_")
    }


def _start_once(keys: dict[str, str]) -> tuple[float, float]:
    """One server start: (seconds to its announce line, resident MiB then)."""
    environment = keyless_environment()
    command = [sys.executable, "-m", "toolwire.server", "serve", "--listen", "127.0.0.1:0"]
    started = time.perf_counter()
    server = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**environment, **keys},
        cwd=ROOT,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        took = time.perf_counter() - started
        if not line.startswith(ANNOUNCE):
            raise RuntimeError(f"the server did not start: {line!r}")
        return took, psutil.Process(server.pid).memory_info().rss / 2**20
    finally:
        stop(server)
