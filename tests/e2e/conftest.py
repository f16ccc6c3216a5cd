"""A real `toolwire serve` process on a free loopback port, with the test scripts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parent.parent / "scripts"
TOOLWIRE = Path(sys.executable).parent / "toolwire"


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    target: str


def start_server(*extra: str) -> ServerProcess:
    """Starts `toolwire serve` on port 0 and reads the port it announces."""
    process = subprocess.Popen(
        [str(TOOLWIRE), "serve", "--listen", "127.0.0.1:0", "--scripts", str(SCRIPTS), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("toolwire listening on "):
        process.kill()
        raise RuntimeError(f"server did not start: {line!r} {process.stderr.read() if process.stderr else ''}")
    return ServerProcess(process, line.removeprefix("toolwire listening on ").strip())


def stop_server(server: ServerProcess) -> int:
    """SIGTERM, as an orchestrator would; returns the exit code."""
    server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(timeout=15)
    finally:
        if server.process.poll() is None:
            server.process.kill()


@pytest.fixture(scope="module")
def toolwire_server() -> Iterator[ServerProcess]:
    server = start_server()
    yield server
    assert stop_server(server) == 0
