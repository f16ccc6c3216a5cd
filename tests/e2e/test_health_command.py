"""`toolwire health` against a real server process: the exit code and the printed status, over TCP
and a Unix socket (the container's HEALTHCHECK and the Kubernetes exec probes run exactly this)."""

from __future__ import annotations

import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.e2e.conftest import TOOLWIRE, ServerProcess, start_server, stop_server


def run_health(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TOOLWIRE), "health", *arguments], capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def unix_server():
    # A short folder: a socket path must fit in 107 bytes, and pytest's tmp_path can be long.
    with tempfile.TemporaryDirectory(prefix="tw-") as folder:
        socket_path = Path(folder) / "toolwire.sock"
        server = start_server(listen=f"unix:{socket_path}")
        yield server, socket_path
        assert stop_server(server) == 0
        assert not socket_path.exists(), "the server must remove its socket at exit"


def test_a_serving_server_exits_0(toolwire_server: ServerProcess):
    result = run_health("--address", toolwire_server.target)
    assert (result.returncode, result.stdout.strip()) == (0, "SERVING")


def test_the_chat_service_can_be_checked_by_name(toolwire_server: ServerProcess):
    result = run_health("--address", toolwire_server.target, "--service", "toolwire.v1.ChatService")
    assert (result.returncode, result.stdout.strip()) == (0, "SERVING")


def test_an_unknown_service_exits_1(toolwire_server: ServerProcess):
    result = run_health("--address", toolwire_server.target, "--service", "no.such.Service")
    assert result.returncode == 1
    assert "SERVICE_UNKNOWN" in result.stdout and "'no.such.Service'" in result.stdout


def test_a_wildcard_address_is_checked_on_loopback(toolwire_server: ServerProcess):
    port = toolwire_server.target.rsplit(":", 1)[1]
    result = run_health("--address", f"0.0.0.0:{port}")
    assert (result.returncode, result.stdout.strip()) == (0, "SERVING")


def test_nothing_listening_exits_1_with_the_reason():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    result = run_health("--address", f"127.0.0.1:{port}", "--timeout", "5")
    assert result.returncode == 1
    assert "NO_ANSWER" in result.stderr and f"127.0.0.1:{port}" in result.stderr


def test_the_address_comes_from_toolwire_listen(toolwire_server: ServerProcess):
    result = subprocess.run(
        [str(TOOLWIRE), "health"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"TOOLWIRE_LISTEN": toolwire_server.target, "PATH": "/usr/bin:/bin"},
    )
    assert (result.returncode, result.stdout.strip()) == (0, "SERVING")


def test_a_malformed_address_exits_2_and_says_how_to_write_it():
    result = run_health("--address", "localhost")
    assert result.returncode == 2
    assert "'localhost' is not an address" in result.stderr and "unix:/path/to.sock" in result.stderr


def test_a_unix_socket_server_announces_and_answers(unix_server):
    server, socket_path = unix_server
    assert server.target == f"unix:{socket_path}"
    result = run_health("--address", f"unix:{socket_path}")
    assert (result.returncode, result.stdout.strip()) == (0, "SERVING")
    result = run_health("--address", f"unix://{socket_path}")
    assert (result.returncode, result.stdout.strip()) == (0, "SERVING")
