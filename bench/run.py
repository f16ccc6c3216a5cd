"""toolwire's relay benchmark (issue 6): `make bench`, or `BENCH_QUICK=1 make bench` for a smoke run.

Starts, each in a process of its own: the fake provider (bench/fake_provider.py), a toolwire server
pointed at it, and LiteLLM's proxy when bench/.venv-litellm has it. Then consumes the same streams
three ways, interleaved per iteration:

    direct    the official openai SDK (AsyncOpenAI, stream=True) against the fake: the floor
    toolwire  a raw grpc.aio stub of ChatService (no client library: the least client overhead)
    litellm   the official openai SDK against LiteLLM's proxy

and writes docs/performance.md and docs/performance-lag.png. Every chunk's text carries its send
time, so lags and gaps are exact (one clock, one machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import pickle
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from importlib import metadata
from pathlib import Path

import psutil

from bench import profiling
from bench.consumers import Consumers, Figures, interleaved, parked_memory, throughput
from bench.go_load import REPEATS, WINDOWS, go_load, worker_counts
from bench.probes import probes
from bench.processes import (
    BENCH,
    LITELLM,
    ROOT,
    start,
    start_litellm,
    start_toolwire,
    stop,
    toolwire_config,
)
from bench.startup import startup

QUICK = os.environ.get("BENCH_QUICK") == "1"


# --- the run ----------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    names = ["grpcio", "protobuf", "openai", "anthropic", "aiohttp", "jiter", "uvloop", "toolwire"]
    found = {name: _version(name) for name in names}
    if LITELLM.exists():
        out = subprocess.run(
            [
                str(LITELLM.parent / "python"),
                "-c",
                "import importlib.metadata as m; print(m.version('litellm'))",
            ],
            capture_output=True,
            text=True,
        )
        found["litellm"] = out.stdout.strip() or "?"
    return found


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def machine() -> dict[str, str]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "memory": f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
    }


SCENARIOS = [
    "bench-1x0",
    "bench-64x20ms",
    "bench-2000x0",
    "bench-1x0-tool",
    "bench-8x0-tool",
    "bench-60x50ms",
    "bench-64x0",
    "bench-300x0",
    "bench-500x0",
]
"""Every model name the LiteLLM path is asked for."""


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def main() -> dict[str, object]:
    workers = worker_counts(os.environ, os.cpu_count() or 1)  # a bad BENCH_WORKERS fails here, at once
    results: dict[str, object] = {
        "machine": machine(),
        "versions": versions(),
        "quick": QUICK,
        "load_before": os.getloadavg(),
    }
    rounds = 3 if QUICK else 7
    log(f"server start-up: {rounds} starts for each set of provider keys, in turns")
    results["startup"] = startup(rounds)
    results["startup_rounds"] = rounds
    log("health probes: exec `toolwire health` and kubelet-style gRPC probes on --health-listen, in turns")
    results["probes"] = probes(2, 5, 40) if QUICK else probes(3, 10, 100)
    directory = Path(tempfile.mkdtemp(prefix="toolwire-bench-"))
    fake, fake_port_text = start([sys.executable, str(BENCH / "fake_provider.py")], r"listening on (\d+)")
    fake_port = int(fake_port_text)
    config = toolwire_config(directory, fake_port)
    processes = [fake]
    try:
        server, address = start_toolwire(config)
        processes.append(server)
        litellm = start_litellm(directory, fake_port, SCENARIOS)
        if litellm:
            processes.append(litellm[0])
        consumers = Consumers(
            f"http://127.0.0.1:{fake_port}", address, (litellm[1], litellm[2]) if litellm else None
        )
        pids = {"toolwire": server.pid, "litellm": litellm[0].pid if litellm else None}
        results["paths"] = consumers.paths()
        await _python_phases(consumers, pids, results)
        await consumers.close()
        stop(server)
        processes.remove(server)
        (BENCH / "last-run.pickle").write_bytes(pickle.dumps(results))  # kept even if what follows fails
        await _go_phases(config, fake.pid, fake_port, workers, results)
        (BENCH / "last-run.pickle").write_bytes(pickle.dumps(results))
        await _profile_phase(config, fake_port, directory, results)
        results["micro"] = await _micro()
    finally:
        for process in processes:
            stop(process)
    results["load_after"] = os.getloadavg()
    return results


async def _python_phases(
    consumers: Consumers, pids: dict[str, int | None], results: dict[str, object]
) -> None:
    """The phases with the Python consumers, every path interleaved: one stream, the tool round
    trip, flat out, the concurrency sweep and bursts, and the memory of parked chats."""
    log("warm-up")
    await interleaved(consumers, "bench-64x0", 3)

    n = 3 if QUICK else 25
    log(f"1 stream, 64 chunks 20 ms apart, {n} interleaved iterations")
    results["single"] = await interleaved(consumers, "bench-64x20ms", n)

    # TTFT apart, on enough chats for a p99 (of 25 paced chats above, the p99 is the slowest one)
    n = 10 if QUICK else 200
    log(f"time to first token: 1 stream, one-chunk chats, {n} interleaved iterations")
    results["first_token"] = await interleaved(consumers, "bench-1x0", n)

    n = 10 if QUICK else 200
    log(f"tool round trip (last ToolResult -> next request at the provider), {n} iterations")
    results["tool"] = await interleaved(consumers, "bench-8x0-tool", n)

    log("flat out: 4 streams x 2000 chunks, CPU per relayed chunk")
    flat: dict[str, list[dict[str, float]]] = defaultdict(list)
    for _ in range(1 if QUICK else 3):
        for path in consumers.paths():
            chunks = 300 if path == "litellm" or QUICK else 2000
            try:
                flat[path].append(await throughput(consumers, path, pids.get(path), 4, chunks))
            except Exception as error:  # one path failing must not lose the others' figures
                log(f"{path}: flat-out run failed: {error!r}"[:300])
    results["flat"] = flat

    concurrency = [1, 50] if QUICK else [1, 50, 100, 200, 350, 500]
    sweep: dict[str, dict[int, Figures]] = defaultdict(dict)
    for streams in concurrency:
        log(f"{streams} concurrent streams at 20 chunks/s (60 chunks, 50 ms apart)")
        for path, figures in (await interleaved(consumers, "bench-60x50ms", 1, streams)).items():
            sweep[path][streams] = figures
    results["sweep"] = sweep

    burst: dict[int, dict[str, Figures]] = {}
    for streams in [] if QUICK else [100, 200]:
        log(f"{streams} concurrent streams, 64 chunks 20 ms apart (TTFT, gaps)")
        burst[streams] = await interleaved(consumers, "bench-64x20ms", 1, streams)
    results["burst"] = burst

    chats = 50 if QUICK else 500
    log(f"memory: {chats} chats parked on a ToolRequest")
    toolwire_pid = pids["toolwire"]
    assert toolwire_pid is not None
    results["memory_per_chat"] = await parked_memory(consumers.stub, toolwire_pid, chats)


async def _go_phases(
    config: Path, fake_pid: int, fake_port: int, workers: list[int], results: dict[str, object]
) -> None:
    """The concurrency rows with the Go load generator: toolwire with each of `workers` processes and
    the floor (bench/floor_server.py), interleaved, and the client-chosen window."""
    sweep = [50, 500] if QUICK else [1, 50, 100, 200, 350, 500]
    burst = [100] if QUICK else [100, 200]
    log(
        "the concurrency rows again, with the Go load generator: toolwire with "
        + " and ".join(map(str, workers))
        + " server processes and the floor (grpc.aio + aiohttp with no relay logic, "
        "bench/floor_server.py), interleaved"
    )
    legs = config.parent / "floor-tool-legs.jsonl"
    floor = [sys.executable, str(BENCH / "floor_server.py"), str(fake_port), str(legs)]
    try:
        results["go"], results["go_floor"] = await go_load(
            lambda extra: start_toolwire(config, extra=extra),
            lambda: start(floor, r"floor listening on (\S+)"),
            stop,
            workers,
            sweep,
            burst,
            log,
            fake_pid,
            [("burst", 100, 50)] if QUICK else WINDOWS,
            legs,
            1 if QUICK else REPEATS,
        )
    except Exception as error:  # no Go here, or a failed build: the rest of the run still counts
        log(f"the Go load generator phase failed: {error!r}"[:500])
        results.setdefault("go", {})


async def _profile_phase(config: Path, fake_port: int, directory: Path, results: dict[str, object]) -> None:
    """A server under cProfile, profiling only a flat-out window (signals start and stop it)."""
    log("profile: the server under cProfile, 4 streams x 2000 chunks flat out")
    results["profile"], results["profile_top"], results["profiled"] = {}, [], {}
    for attempt in range(3):  # a signal can land late on a loaded machine: then the profile is empty
        profile = directory / f"server-{attempt}.prof"
        server, address = start_toolwire(config, profile)
        try:
            consumers = Consumers(f"http://127.0.0.1:{fake_port}", address)
            await throughput(consumers, "toolwire", server.pid, 4, 200)
            server.send_signal(signal.SIGRTMIN + 1)  # profile only the measured window, not start-up
            await asyncio.sleep(1.0)
            profiled = await throughput(consumers, "toolwire", server.pid, 4, 500 if QUICK else 2000)
            server.send_signal(signal.SIGRTMIN + 2)
            for _ in range(50):
                await asyncio.sleep(0.1)
                if profile.exists() and profile.stat().st_size > 1000:
                    break
            await consumers.close()
        finally:
            stop(server)
        if profile.exists() and profile.stat().st_size > 1000:
            results["profiled"] = profiled
            results["profile"] = profiling.profile_split(profile)
            results["profile_top"] = profiling.top(profile)
            return
        log(f"the profile came out empty (attempt {attempt + 1}); again")


async def _micro() -> dict[str, float]:
    """Our own code alone: `python -m bench.micro`'s figures."""
    log("our own code alone: python -m bench.micro")
    micro = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.micro", stdout=subprocess.PIPE, cwd=ROOT
    )
    return _micro_figures((await micro.communicate())[0].decode())


def _micro_figures(output: str) -> dict[str, float]:
    return {line.split(":")[0]: float(line.split(":")[1].split()[0]) for line in output.splitlines()}


if __name__ == "__main__":
    from bench import report

    gc.freeze()
    if sys.argv[1:] == ["--report-only"]:  # re-render the last run (after a change to report.py)
        outcome = pickle.loads((BENCH / "last-run.pickle").read_bytes())
        if "micro" not in outcome:
            micro = subprocess.run([sys.executable, "-m", "bench.micro"], capture_output=True, text=True)
            outcome["micro"] = _micro_figures(micro.stdout)
        outcome.setdefault("profile", {})
        outcome.setdefault("profile_top", [])
        outcome.setdefault("profiled", {})
        outcome.setdefault("load_after", outcome["load_before"])
        (BENCH / "last-run.pickle").write_bytes(pickle.dumps(outcome))
    else:
        outcome = asyncio.run(main())
        (BENCH / "last-run.pickle").write_bytes(pickle.dumps(outcome))
    report.write(outcome, ROOT / "docs")
