"""A real `toolwire serve` process on a free loopback port, with the test scripts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

SCRIPTS = Path(__file__).parent.parent / "scripts"
TOOLWIRE = Path(sys.executable).parent / "toolwire"


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    target: str
    log: IO[str]

    def log_text(self) -> str:
        self.log.seek(0)
        return self.log.read()


def start_server(
    *extra: str, environment: dict[str, str] | None = None, listen: str = "127.0.0.1:0"
) -> ServerProcess:
    """Starts `toolwire serve` on `listen` (a free loopback port by default) and reads the address it
    announces; `environment` is added to this process's environment (without the provider keys of
    the machine running the tests)."""
    # A file, not a pipe: a chatty server must never block on its log. Closed by stop_server.
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115
    process = subprocess.Popen(
        [str(TOOLWIRE), "serve", "--listen", listen, "--scripts", str(SCRIPTS), *extra],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**_without_provider_settings(os.environ), **(environment or {}), "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    server = ServerProcess(process, line.removeprefix("toolwire listening on ").strip(), log)
    if not line.startswith("toolwire listening on "):
        process.kill()
        process.wait()
        raise RuntimeError(f"server did not start: {line!r} {server.log_text()}")
    return server


def _without_provider_settings(environment: os._Environ[str]) -> dict[str, str]:
    """The environment minus real provider keys and URLs: tests never reach a real provider."""
    prefixes = ("OPENAI_", "ANTHROPIC_", "TOOLWIRE_CONFIG")
    return {name: value for name, value in environment.items() if not name.startswith(prefixes)}


def stop_server(server: ServerProcess) -> int:
    """SIGTERM, as an orchestrator would; returns the exit code."""
    server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(timeout=15)
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
        assert server.process.stdout is not None
        server.process.stdout.close()
        server.log.close()


@pytest.fixture(scope="module")
def toolwire_server() -> Iterator[ServerProcess]:
    server = start_server()
    yield server
    assert stop_server(server) == 0
