"""The benchmark's processes: start one and wait for its address line, stop one, and the toolwire
server and LiteLLM proxy as the benchmark runs them (bench/run.py, bench/go_load.py)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LITELLM = BENCH / ".venv-litellm" / "bin" / "litellm"


def start(
    command: list[str], pattern: str, env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[subprocess.Popen[str], str]:
    """Starts a process and waits for the stdout line matching `pattern`; returns its group 1."""
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            # keep draining its output so the process never blocks on a full pipe
            threading.Thread(target=_drain, args=(process,), daemon=True).start()
            return process, match[1]
    process.kill()
    raise RuntimeError(f"{command[:3]} did not start:\n{''.join(seen[-30:])}")


def _drain(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    for _ in process.stdout:
        pass


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def toolwire_config(directory: Path, fake_port: int) -> Path:
    path = directory / "toolwire.toml"
    path.write_text(
        f'[providers.openai]\nbase_url = "http://127.0.0.1:{fake_port}/v1"\n\n'
        f'[providers.anthropic]\nbase_url = "http://127.0.0.1:{fake_port}"\n\n'
        "[server]\nmax_concurrent_chats = 4096\n"
    )
    return path


def start_toolwire(
    config: Path, profile: Path | None = None, extra: list[str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    serve = [
        "serve",
        "--config",
        str(config),
        "--listen",
        "127.0.0.1:0",
        "--log-level",
        "warning",
        *(extra or []),
    ]
    command = (
        [sys.executable, str(BENCH / "profiled_server.py"), str(profile), *serve]
        if profile
        else [sys.executable, "-m", "toolwire.server", *serve]
    )
    env = {"OPENAI_API_KEY": "sk-bench", "ANTHROPIC_API_KEY": "sk-bench", "OTEL_SDK_DISABLED": "true"}
    return start(command, r"toolwire listening on (\S+)", env)


def start_litellm(
    directory: Path, fake_port: int, scenarios: list[str]
) -> tuple[subprocess.Popen[bytes], str, str] | None:
    if not LITELLM.exists():
        return None
    config = directory / "litellm.yaml"
    entries = "".join(
        f"  - model_name: {name}\n    litellm_params:\n      model: openai/{name}\n"
        f"      api_base: http://127.0.0.1:{fake_port}/v1\n      api_key: sk-bench\n"
        for name in scenarios
    )
    config.write_text(f"model_list:\n{entries}litellm_settings:\n  drop_params: true\n")
    port = _free_port()
    key = f"sk-{secrets.token_hex(32)}"  # the proxy refuses to start without a master key
    env = {"LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False", "LITELLM_MASTER_KEY": key}
    process = subprocess.Popen(
        [
            str(LITELLM),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **env},
        cwd=directory,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        health = f"http://127.0.0.1:{port}/health/liveliness"
        with contextlib.suppress(OSError), urllib.request.urlopen(health, timeout=2) as reply:
            if reply.status == 200:
                return process, f"http://127.0.0.1:{port}", key
        time.sleep(1)
    stop(process)
    print("litellm: the proxy did not start; running without it", file=sys.stderr)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system
