"""What a health probe costs the pod: an exec probe (`toolwire health`, a Python process started in the
container every time) against kubelet's own gRPC probe on the health-only port (`--health-listen`:
one RPC the running server answers; kubelet's CPU is the node's, not the pod's). And what the image's
Docker HEALTHCHECK costs the container: grpc-health-probe started in it, so the probe's process and the
server, against `toolwire health` in its place.

One server listens as deploy/kubernetes has it: on a Unix socket, and health alone on a TCP port
(loopback here). The two kinds of probe take turns, a batch of each per round:
- exec: `toolwire health --address unix:...`; the pod pays the probe process's CPU (the children's
  rusage) and the server's;
- gRPC: `grpc-health-probe` (grpc-go, a new connection per probe, as kubelet makes them) against the
  health port; the pod pays the server's CPU only. The probe process stands in for kubelet.
The server's CPU comes from psutil in 10 ms ticks, so it is summed over a whole batch; its CPU while
idle, measured for as long as each batch took, is taken off (both kinds run on an otherwise idle
server).
"""

from __future__ import annotations

import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

from bench.processes import ROOT, stop
from bench.startup import keyless_environment
from toolwire.server.workers import HEALTH_ANNOUNCE

GRPC_HEALTH_PROBE = ROOT / "tools" / "bin" / "grpc-health-probe"
TOOLWIRE = Path(sys.executable).parent / "toolwire"
DEPLOYMENT = ROOT / "deploy" / "kubernetes" / "deployment.yaml"
DOCKERFILE = ROOT / "Dockerfile"


def probes(rounds: int, exec_batch: int, grpc_batch: int) -> dict[str, Any]:
    """Per kind: the median CPU ms per probe of the probe process and of the server; and the steady
    probes per second of deploy/kubernetes' readiness and liveness probes."""
    if not GRPC_HEALTH_PROBE.exists():
        raise RuntimeError(f"{GRPC_HEALTH_PROBE} is missing: `make setup` installs it")
    with tempfile.TemporaryDirectory(prefix="tw-probe-") as folder:
        socket_path = Path(folder) / "toolwire.sock"
        server, health_address = _start_server(socket_path)
        try:
            process = psutil.Process(server.pid)
            runs: dict[str, list[dict[str, float]]] = {"exec": [], "grpc": []}
            for _ in range(rounds):
                runs["exec"].append(_batch(process, _exec_probe(socket_path), exec_batch))
                runs["grpc"].append(_batch(process, _grpc_probe(health_address), grpc_batch))
        finally:
            stop(server)
    medians = {
        kind: {key: statistics.median(run[key] for run in batches) for key in batches[0]}
        for kind, batches in runs.items()
    }
    return {
        **medians,
        "probes_per_second": steady_probes_per_second(),
        "docker_probes_per_second": 1 / docker_interval_seconds(),
        "rounds": rounds,
        "exec_batch": exec_batch,
        "grpc_batch": grpc_batch,
    }


def steady_probes_per_second() -> float:
    """How many probes a second deploy/kubernetes' sidecar gets once started: readiness + liveness."""
    [deployment] = [d for d in yaml.safe_load_all(DEPLOYMENT.read_text()) if d["kind"] == "Deployment"]
    [sidecar] = [
        c for c in deployment["spec"]["template"]["spec"]["initContainers"] if c["name"] == "toolwire"
    ]
    return sum(1 / sidecar[probe].get("periodSeconds", 10) for probe in ("readinessProbe", "livenessProbe"))


def docker_interval_seconds() -> float:
    """The Dockerfile's HEALTHCHECK interval (Docker's default, 30 s, when it names none)."""
    healthcheck = re.search(r"^HEALTHCHECK\b(.*)$", DOCKERFILE.read_text(), re.MULTILINE)
    if healthcheck is None:
        raise RuntimeError(f"{DOCKERFILE} has no HEALTHCHECK")
    interval = re.search(r"--interval=(\d+(?:\.\d+)?)(ms|s|m)\b", healthcheck[1])
    if interval is None:
        return 30.0
    return float(interval[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0}[interval[2]]


def _start_server(socket_path: Path) -> tuple[subprocess.Popen[str], str]:
    environment = keyless_environment()
    command = [
        sys.executable, "-m", "toolwire.server", "serve", "--listen", f"unix:{socket_path}",
        "--health-listen", "127.0.0.1:0", "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=environment, cwd=ROOT
    )
    assert server.stdout is not None
    lines = [server.stdout.readline(), server.stdout.readline()]
    if not lines[1].startswith(HEALTH_ANNOUNCE):
        stop(server)
        raise RuntimeError(f"the server did not announce its health address: {lines!r}")
    time.sleep(0.5)  # let start-up's last work settle before the idle CPU is measured
    return server, lines[1].removeprefix(HEALTH_ANNOUNCE).strip()


def _exec_probe(socket_path: Path) -> list[str]:
    return [str(TOOLWIRE), "health", "--address", f"unix:{socket_path}", "--timeout", "3"]


def _grpc_probe(address: str) -> list[str]:
    return [str(GRPC_HEALTH_PROBE), f"-addr={address}", "-connect-timeout=3s", "-rpc-timeout=3s"]


def _batch(server: psutil.Process, command: list[str], count: int) -> dict[str, float]:
    """`count` probes one after the other: CPU ms per probe of the probe process and of the server
    (idle CPU taken off). An exec probe costs the pod both; a gRPC probe the server's only."""
    server_before = _cpu_seconds(server)
    children_before = _children_cpu_seconds()
    started = time.perf_counter()
    for _ in range(count):
        checked = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        if checked.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {checked.stdout}{checked.stderr}")
    wall = time.perf_counter() - started
    server_seconds = _cpu_seconds(server) - server_before
    probe_seconds = _children_cpu_seconds() - children_before
    idle = _idle_cpu_seconds(server, wall)
    server_ms = max(server_seconds - idle, 0.0) * 1000 / count
    return {"probe_ms": probe_seconds * 1000 / count, "server_ms": server_ms}


def _idle_cpu_seconds(server: psutil.Process, seconds: float) -> float:
    before = _cpu_seconds(server)
    time.sleep(seconds)
    return _cpu_seconds(server) - before


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
