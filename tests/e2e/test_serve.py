"""`toolwire serve` as a process: start-up errors, the announced port, SIGTERM."""

from __future__ import annotations

import socket
import subprocess

from tests.e2e.conftest import TOOLWIRE, start_server, stop_server


def run_serve(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TOOLWIRE), "serve", *arguments], capture_output=True, text=True, timeout=30)


def test_a_malformed_script_stops_the_server_with_the_place(tmp_path):
    (tmp_path / "broken.json").write_text('{"turns": [{"chunks": [{"sound": "beep"}]}]}')
    result = run_serve("--listen", "127.0.0.1:0", "--scripts", str(tmp_path))
    assert result.returncode == 2
    assert "broken.json: turns[0].chunks[0]: unknown or mistyped chunk 'sound'" in result.stderr


def test_a_port_in_use_is_reported():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve("--listen", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"could not listen on 127.0.0.1:{port}" in result.stderr


def test_sigterm_stops_the_server_cleanly():
    server = start_server()
    assert server.target.startswith("127.0.0.1:") and int(server.target.rsplit(":", 1)[1]) > 0
    assert stop_server(server) == 0
