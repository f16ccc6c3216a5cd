"""`toolwire serve --workers 2`: a supervisor and two worker processes on one port (SO_REUSEPORT).

Chats on separate connections are served by both workers; health checks pass, on the health-only
port too; the addresses are announced once; SIGTERM stops everything with exit 0; a killed worker is
replaced while the port keeps serving; the supervisor killed outright takes its workers with it; a
Unix socket or a start-up error stops the supervisor at once. Every test checks that no process it
started is left (each carries a marker in its environment, which its workers inherit).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import grpc
import psutil
import pytest

from tests.conftest import start_request
from tests.e2e.conftest import TOOLWIRE, ServerProcess, start_server, stop_server
from tests.e2e.test_health_command import run_health
from tests.server.test_grpc import run_chat
from toolwire.v1 import chat_pb2_grpc

MARKER = "TOOLWIRE_TEST_WORKERS_MARKER"
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


def marked_processes(marker: str) -> set[int]:
    """The processes whose environment carries `marker` (a supervisor and its workers)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if f"{MARKER}={marker}".encode() in environment.split(b"\0") and state != "Z":
            found.add(int(entry.name))
    return found


def wait_for(condition, seconds: float = 30.0) -> bool:
    """Polls `condition` until it holds or `seconds` pass (bounded; not a timing assertion)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def start_workers(*flags: str) -> tuple[ServerProcess, str]:
    marker = uuid.uuid4().hex
    server = start_server("--workers", "2", "--log-format", "json", *flags, environment={MARKER: marker})
    return server, marker


def worker_pids(server: ServerProcess, marker: str) -> set[int]:
    return marked_processes(marker) - {server.process.pid}


def stop_and_check_nothing_left(server: ServerProcess, marker: str) -> None:
    assert stop_server(server) == 0
    assert wait_for(lambda: not marked_processes(marker)), "a worker outlived its supervisor"


async def chats_on_separate_connections(target: str, count: int) -> list[grpc.StatusCode]:
    """`count` concurrent weather chats, each on a connection of its own (SO_REUSEPORT spreads
    connections; channels to one target share theirs unless each has a subchannel pool of its own)."""

    async def one() -> grpc.StatusCode:
        async with grpc.aio.insecure_channel(target, options=OWN_CONNECTION) as channel:
            _, code, _ = await run_chat(
                chat_pb2_grpc.ChatServiceStub(channel), start_request("scripted/weather")
            )
            return code

    return await asyncio.gather(*(one() for _ in range(count)))


def chat_workers(log_text: str) -> list[int]:
    """The worker of each per-chat log line."""
    entries = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    return [entry["worker"] for entry in entries if entry["logger"] == "toolwire.server.chat"]


async def test_two_workers_serve_chats_then_stop_on_sigterm():
    server, marker = start_workers()
    try:
        assert len(worker_pids(server, marker)) == 2
        codes = await chats_on_separate_connections(server.target, 30)
        assert codes == [grpc.StatusCode.OK] * 30
        health = await asyncio.to_thread(run_health, "--address", server.target)
        assert (health.returncode, health.stdout.strip()) == (0, "SERVING")
        assert wait_for(lambda: len(chat_workers(server.log_text())) == 30)
        assert set(chat_workers(server.log_text())) == {1, 2}, "both workers should have served chats"
        server.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(server.process.wait, 30) == 0
        assert server.process.stdout.read() == "", "only the supervisor announces, and only once"
        assert "SIGTERM: stopping the workers" in server.log_text()
    finally:
        stop_and_check_nothing_left(server, marker)


async def test_two_workers_share_the_health_only_port_the_supervisor_picked_and_announced():
    server, marker = start_workers("--health-listen", "127.0.0.1:0")
    try:
        line = await asyncio.to_thread(server.process.stdout.readline)
        assert line.startswith("toolwire health checks on 127.0.0.1:"), line
        health_target = line.removeprefix("toolwire health checks on ").strip()
        assert health_target != server.target
        health_port = int(health_target.rpartition(":")[2])
        listening = {  # the chosen port, held by every worker (not a port of each worker's own)
            pid for pid in worker_pids(server, marker)
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == health_port
                   for c in psutil.Process(pid).net_connections("tcp"))
        }  # fmt: skip
        assert listening == worker_pids(server, marker) and len(listening) == 2
        for _ in range(6):  # each a connection of its own: the kernel spreads them over both workers
            health = await asyncio.to_thread(run_health, "--address", health_target)
            assert (health.returncode, health.stdout.strip()) == (0, "SERVING"), health.stderr
        assert await chats_on_separate_connections(server.target, 4) == [grpc.StatusCode.OK] * 4
        server.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(server.process.wait, 30) == 0
        assert server.process.stdout.read() == "", "the supervisor announces each address once"
    finally:
        stop_and_check_nothing_left(server, marker)


async def test_a_killed_worker_is_replaced_and_a_killed_supervisor_takes_the_workers_with_it():
    server, marker = start_workers()
    try:
        first = worker_pids(server, marker)
        os.kill(min(first), signal.SIGKILL)
        assert wait_for(lambda: len(worker_pids(server, marker) - first) == 1), "no worker was started again"
        assert await chats_on_separate_connections(server.target, 10) == [grpc.StatusCode.OK] * 10
        assert "exited with code -9; starting it again" in server.log_text()
        assert wait_for(lambda: "started again" in server.log_text())
        health = await asyncio.to_thread(run_health, "--address", server.target)
        assert health.returncode == 0, health.stderr
        server.process.kill()
        await asyncio.to_thread(server.process.wait, 15)
        assert wait_for(lambda: not marked_processes(marker)), "workers outlived a killed supervisor"
    finally:
        stop_server(server)
        assert wait_for(lambda: not marked_processes(marker))


def run_serve(*arguments: str, marker: str = "") -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, MARKER: marker}
    return subprocess.run(
        [str(TOOLWIRE), "serve", *arguments], capture_output=True, text=True, timeout=60, env=environment
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--listen", "unix:/tmp/toolwire-workers.sock", "--workers", "2"),
         "workers = 2 needs TCP listen addresses only: unix:/tmp/toolwire-workers.sock cannot be shared"),
        (("--listen", "127.0.0.1:0", "--listen", "unix:/tmp/tw.sock", "--workers", "3"), "set workers to 1"),
        (("--workers", "0"), "--workers must be at least 1 (got 0)"),
    ],
)  # fmt: skip
def test_a_setting_workers_cannot_use_is_a_config_error(arguments, message):
    result = run_serve(*arguments)
    assert result.returncode == 2 and message in result.stderr


def test_a_start_up_error_stops_the_supervisor_instead_of_restarting(tmp_path):
    (tmp_path / "broken.json").write_text('{"turns": [{"chunks": [{"sound": "beep"}]}]}')
    marker = uuid.uuid4().hex
    result = run_serve("--listen", "127.0.0.1:0", "--workers", "2", "--scripts", str(tmp_path), marker=marker)
    assert result.returncode == 2, result.stderr
    assert "broken.json: turns[0].chunks[0]: unknown or mistyped chunk 'sound'" in result.stderr
    assert "did not start" in result.stderr and "toolwire listening" not in result.stdout
    assert wait_for(lambda: not marked_processes(marker))


async def test_the_chat_cap_is_the_whole_servers_whichever_worker_a_chat_lands_on():
    server, marker = start_workers("--max-concurrent-chats", "2")
    channels = [grpc.aio.insecure_channel(server.target, options=OWN_CONNECTION) for _ in range(8)]
    try:
        calls = [chat_pb2_grpc.ChatServiceStub(channel).Chat(timeout=30) for channel in channels]

        async def outcome(call) -> str:
            try:  # a refusal may end the call before the start is even written
                await call.write(start_request("scripted/slow", tools=()))
                while not (await call.read()).HasField("text_delta"):
                    pass
            except grpc.aio.AioRpcError as error:
                return f"{error.code().name}: {error.details()}"
            return "running"

        outcomes = await asyncio.gather(*(outcome(call) for call in calls))
        assert outcomes.count("running") == 2, outcomes
        refused = [each for each in outcomes if each != "running"]
        assert all(
            each.startswith("RESOURCE_EXHAUSTED: 2 chats are running on this server's 2 workers")
            for each in refused
        ), "\n".join(refused)
        for call in calls:
            call.cancel()
    finally:
        for channel in channels:
            await channel.close()
        stop_and_check_nothing_left(server, marker)
